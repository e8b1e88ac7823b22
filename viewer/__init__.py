"""The viewer side of medviewer: study I/O (`io`), display pipeline (`display`), Qt UI (`ui`).

`medviewer.viewer.io` and `medviewer.viewer.display` are Qt-free; only
`medviewer.viewer.ui` imports PySide6 (import-linter contracts in pyproject.toml).
"""

from medviewer import __version__

__all__ = ["__version__"]
