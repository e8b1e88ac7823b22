"""``python -m engine.train ...`` (used by torchrun): same as ``medviewer --train ...``."""

import sys

from viewer.cli import main

sys.exit(main(["--train", *sys.argv[1:]]))
