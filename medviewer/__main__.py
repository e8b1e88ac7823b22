"""``python -m medviewer ...``: the same dispatcher as the ``medviewer`` command."""

from medviewer.viewer.cli import run

run()
