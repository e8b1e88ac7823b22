"""The status bar of the main window: cursor value, scan progress with Cancel, skipped files."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar


def scan_summary(result: Any) -> str:
    """'3 series, 120 images, 2 file(s) skipped (scan cancelled)' or why nothing shows."""
    series = result.all_series()
    n_img = sum(len(s.items) for s in series)
    if n_img == 0:
        return f"No displayable images in {result.root}" + (
            f" ({len(result.skipped)} file(s) skipped)" if result.skipped else "")
    msg = f"{len(series)} series, {n_img} images"
    if result.skipped:
        msg += f", {len(result.skipped)} file(s) skipped"
    if not getattr(result, "complete", True):
        msg += " (scan cancelled)"
    return msg


class ScanStatus(QObject):
    """Widgets in `bar`; sig_cancel() from the Cancel button, sig_show_skipped() from the
    'Skipped: N' button."""

    sig_cancel = Signal()
    sig_show_skipped = Signal()

    def __init__(self, bar: QStatusBar, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.bar = bar
        self.cursor_label = QLabel("")
        self.cursor_label.setObjectName("cursor_label")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.skipped_button = QPushButton("Skipped: 0")
        self.skipped_button.setObjectName("skipped_button")
        self.skipped_button.setFlat(True)
        self.skipped_button.setVisible(False)
        for w in (self.cursor_label, self.progress, self.cancel_button, self.skipped_button):
            bar.addPermanentWidget(w)
        self.cancel_button.clicked.connect(self.sig_cancel.emit)
        self.skipped_button.clicked.connect(self.sig_show_skipped.emit)

    def started(self, label: str) -> None:
        self.skipped_button.setVisible(False)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.bar.showMessage(f"Scanning {label}...", 0)

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done}/{total}")

    def failed(self, error: str) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.bar.showMessage(error, 15000)

    def finished(self, result: Any) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.skipped_button.setText(f"Skipped: {len(result.skipped)}"
                                    + (f" (+{len(result.non_image)} non-image)" if result.non_image else ""))
        self.skipped_button.setVisible(bool(result.skipped or result.non_image))
        self.bar.showMessage(scan_summary(result), 0)

    def set_cursor(self, cv: Any) -> None:
        self.cursor_label.setText("" if cv is None else f"({cv.col}, {cv.row}) {cv.text}")
