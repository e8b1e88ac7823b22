"""``python -m medviewer.engine.train ...`` (used by torchrun): same as ``medviewer --train ...``."""

import sys

from medviewer.engine.train.cli import main_train
from medviewer.viewer.errors import run_command

sys.exit(run_command(main_train, sys.argv[1:]))
