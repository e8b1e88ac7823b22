"""The "Reports" dock: Structured Reports of the open folder, rendered for reading.

The list holds every SR document the scan found (medviewer's own AI reports
and other producers'); the chosen one is parsed and rendered
(`medviewer.viewer.report`, Qt-free) on a worker thread and shown in a text
browser.  Image references are links: clicking one shows that image (series
and slice, frame for multi-frame images) when it is part of the open folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QSplitter, QTextBrowser, QVBoxLayout, QWidget

from medviewer.viewer.ui.workers import CANCELLED, TaskRunner, TaskState

log = logging.getLogger("medviewer.ui")
PATH_ROLE = Qt.ItemDataRole.UserRole


def render_task(_state: TaskState, path: Path) -> str:
    """Parse and render one SR file (viewer.report) off the GUI thread."""
    from medviewer.viewer.report import read_report, to_html

    return to_html(read_report(path))


class ReportsPanel(QWidget):
    """List of SR documents + the rendered report; emits sig_open_image(sop_uid, frame)."""

    sig_open_image = Signal(str, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("reports")
        self.list = QListWidget()
        self.list.setObjectName("report_list")
        self.view = QTextBrowser()
        self.view.setObjectName("report_view")
        self.view.setOpenLinks(False)
        self.view.setPlaceholderText("Structured Reports of the open folder appear here.")
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.list)
        split.addWidget(self.view)
        split.setStretchFactor(1, 4)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(split)
        self.shown: Path | None = None
        self.html = ""
        self.jobs = TaskRunner(self, name="report rendering")
        self.jobs.sig_finished.connect(self._on_done)
        self.list.currentItemChanged.connect(lambda item, _old: item is not None and self.show_report(
            Path(item.data(PATH_ROLE))))
        self.view.anchorClicked.connect(self._on_anchor)

    def set_reports(self, result: Any) -> None:
        """List the SR documents of a scan result (keeps the chosen one when still there)."""
        from medviewer.viewer.report import is_report

        items = [n for n in getattr(result, "non_image", []) if is_report(n.sop_class)]
        current = {self.list.item(i).data(PATH_ROLE) for i in range(self.list.count())}
        if current == {str(n.path) for n in items}:
            return
        chosen = self.shown
        self.list.blockSignals(True)
        self.list.clear()
        root = getattr(result, "root", None)
        for n in items:
            try:
                label = str(n.path.relative_to(root)) if root is not None and root.is_dir() else n.path.name
            except ValueError:
                label = n.path.name
            it = QListWidgetItem(f"{label}\n{n.sop_class}")
            it.setData(PATH_ROLE, str(n.path))
            it.setToolTip(str(n.path))
            self.list.addItem(it)
            if chosen is not None and n.path == chosen:
                self.list.setCurrentItem(it)
        self.list.blockSignals(False)
        if not items:
            self.shown = None
            self.view.clear()

    def show_report(self, path: Path) -> None:
        """Render `path` in the background; the newest request wins."""
        self.shown = Path(path)
        self.view.setHtml(f"<p>Reading {path.name}...</p>")
        self.jobs.start(render_task, Path(path))   # a newer request supersedes this one

    def _on_done(self, _state: TaskState, html: str | None, error: str | None) -> None:
        if error == CANCELLED:
            return
        self.html = html or ""
        if error:
            self.view.setHtml(f"<p style='color:#b00000'>{error}</p>")
        else:
            self.view.setHtml(html or "")

    def _on_anchor(self, url: QUrl) -> None:
        if url.scheme() != "sop":
            return
        frame = int(url.fragment()) if url.fragment().isdigit() else 0
        self.sig_open_image.emit(url.path(), frame)

    def wait_idle(self, msecs: int = 5000) -> bool:
        return self.jobs.wait(msecs)


def find_image(result: Any, sop_uid: str, frame: int = 0) -> tuple[Any, int] | None:
    """(series, slice index) of an SOP Instance (and 1-based frame) in a scan result."""
    from medviewer.viewer.io import tags

    for series in result.all_series():
        for path, header in series.headers.entries().items():
            if tags.ascii_text(header, "SOPInstanceUID") != sop_uid:
                continue
            for i, ref in enumerate(series.items):
                if ref.path == path and (ref.frame is None or frame <= 0 or ref.frame == frame - 1):
                    return series, i
    return None


def install(window: Any) -> ReportsPanel:
    """Add the Reports dock to `window` (stored as `window.reports`)."""
    panel = ReportsPanel()
    window.reports_dock = window.add_dock(panel, title="Reports")
    window.reports = panel
    tags = getattr(window, "tags_dock", None)
    if tags is not None:  # a tab next to the DICOM tags: a report needs the height
        window.tabifyDockWidget(tags, window.reports_dock)
        tags.raise_()

    def update(result: Any) -> None:
        panel.set_reports(result)

    def open_image(sop_uid: str, frame: int) -> None:
        found = find_image(window.scan_result, sop_uid, frame) if window.scan_result is not None else None
        if found is None:
            window.show_message("That image is not in the open folder", 6000)
            return
        series, index = found
        window.state.set_series(series)
        window.state.set_slice(index)

    window.state.sig_scan_updated.connect(update)
    window.state.sig_scan_finished.connect(update)
    panel.sig_open_image.connect(open_image)
    return panel
