"""The PySide6 user interface: the only package that imports Qt.

app (entry point), window (main window), state (ViewState), canvas (image view),
loader/workers (background scan, thumbnails, decode), browser (series),
tags (DICOM tag dock), overlays (corner text), actions (menus and shortcuts),
settings (QSettings), welcome, dialogs; plug-ins live in ui/ai (see
ARCHITECTURE.md "UI extension points").
"""
