"""Export the view to PNG: where (the last-used folder), anonymized overlays, which size.

"Anonymize overlays" (on by default) leaves the patient's name, ID and birth date out
of the burned-in corner text; the size is either the view as on screen or the image at
its own resolution (one image pixel per output pixel).  File > Export view and
AI > Export view with overlay both use this dialog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog,
                               QFormLayout, QHBoxLayout, QLineEdit, QPushButton, QWidget)

from medviewer.viewer.display.text import size_text

SCREEN, NATIVE = "screen", "native"


def default_file_name(window: Any) -> str:
    """'<series description>_<slice>.png', file-name safe, or 'view.png'."""
    series = window.state.series
    if series is None:
        return "view.png"
    desc = (getattr(series, "description", "") or f"series{getattr(series, 'number', '') or ''}").strip()
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in desc).strip("_") or "view"
    return f"{safe[:60]}_{window.state.index + 1}.png"


class ExportDialog(QDialog):
    """File, anonymize (default on) and size; `options()` after exec()."""

    def __init__(self, window: Any, title: str = "Export view", parent: QWidget | None = None) -> None:
        super().__init__(parent or window)
        self.setWindowTitle(title)
        self.setObjectName("export_dialog")
        settings = window.settings
        folder = Path(settings.export_folder() or Path.home())
        self.path = QLineEdit(str(folder / default_file_name(window)))
        self.path.setObjectName("export_path")
        self.path.setMinimumWidth(420)
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        self.anonymize = QCheckBox("Anonymize overlays (no patient name, ID or birth date)")
        self.anonymize.setObjectName("export_anonymize")
        self.anonymize.setChecked(settings.export_anonymize())
        self.size = QComboBox()
        self.size.setObjectName("export_size")
        canvas = window.canvas
        cols, rows = canvas.image_size()
        self.size.addItem(f"As on screen: {size_text(canvas.height(), canvas.width(), False)} px "
                          "(rows x cols), with the corner text", SCREEN)
        if cols and rows:
            native = size_text(round(rows * canvas.aspect()), cols, False)
            self.size.addItem(f"Image's own resolution: {native} px (rows x cols), image and overlays",
                              NATIVE)
        self.size.setCurrentIndex(max(0, self.size.findData(settings.export_size())))
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        form = QFormLayout(self)
        form.addRow("File", row)
        form.addRow(self.anonymize)
        form.addRow("Size", self.size)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        box.accepted.connect(self.accept)
        box.rejected.connect(self.reject)
        form.addRow(box)

    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, self.windowTitle(), self.path.text(), "PNG (*.png)")
        if path:
            self.path.setText(path)

    def options(self) -> tuple[Path, bool, bool]:
        """(file, anonymize, native resolution)."""
        path = Path(self.path.text()).expanduser()
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        return path, self.anonymize.isChecked(), self.size.currentData() == NATIVE


def export_interactive(window: Any, title: str = "Export view") -> Path | None:
    """Ask, export, remember the folder and choices; the written file or None."""
    dlg = ExportDialog(window, title)
    if dlg.exec() != QDialog.DialogCode.Accepted:
        return None
    path, anonymize, native = dlg.options()
    settings = window.settings
    settings.set_export_choices(path.parent, anonymize, NATIVE if native else SCREEN)
    try:
        window.export_view(path, anonymize=anonymize, native=native)
    except OSError as err:
        window.show_message(str(err), 10000)
        return None
    return path
