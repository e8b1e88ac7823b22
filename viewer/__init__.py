"""medviewer: a desktop DICOM viewer with a built-in AI engine.

`viewer.io` and `viewer.display` are Qt-free; only `viewer.ui` imports PySide6.
"""

__version__ = "0.1.0"
