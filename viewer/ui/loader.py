"""StudyLoader: runs one scan at a time off the GUI thread and feeds the window.

It owns two task runners (viewer.ui.workers): the scan, and the thumbnails of the
series found.  A new scan supersedes the old one (its generation), so results of a
scan that was replaced never reach the window (STYLE.md pattern 5).  Everything
it emits arrives on the GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from medviewer.viewer.ui.workers import CANCELLED, TaskRunner, TaskState, scan_task, thumbnail_task

log = logging.getLogger("medviewer.ui")


class StudyLoader(QObject):
    """Scan a folder/file (or a folder made by a callable) with snapshots and thumbnails.

    Signals: sig_progress(done, total); sig_result(ScanResult, final: bool) for
    each snapshot and once at the end; sig_failed(message);
    sig_thumbnail(series uid, uint8 array).
    """

    sig_progress = Signal(int, int)
    sig_result = Signal(object, bool)
    sig_failed = Signal(str)
    sig_thumbnail = Signal(str, object)

    def __init__(self, pixels: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pixels = pixels
        self._scan: TaskState | None = None
        self._thumbs_requested: set[str] = set()
        self.scans = TaskRunner(self, name="scan")
        # one thumbnail thread: fewer threads competing with the GUI for the GIL
        self.thumbnails = TaskRunner(self, name="thumbnail")
        self.scans.sig_progress.connect(lambda _s, done, total: self.sig_progress.emit(done, total))
        self.scans.sig_partial.connect(lambda _s, result: self._publish(result, False))
        self.scans.sig_finished.connect(self._on_finished)
        self.thumbnails.sig_finished.connect(self._on_thumbnail)

    @property
    def generation(self) -> int:
        return self.scans.generation

    def start(self, path: Path | Callable[[], Path]) -> None:
        """Cancel any running scan (and its thumbnails) and start scanning `path`."""
        self.thumbnails.cancel()
        self._thumbs_requested.clear()
        self._scan = self.scans.start(scan_task, path)

    def cancel(self) -> None:
        """Ask the running scan to stop; its partial result still arrives as final."""
        if self._scan is not None:
            self._scan.cancel()

    def is_running(self) -> bool:
        return self._scan is not None

    def shutdown(self, msecs: int = 3000) -> None:
        """Cancel and wait for the scan and thumbnail threads; nothing more is delivered."""
        self._scan = None
        self.scans.shutdown(msecs)
        self.thumbnails.shutdown(msecs)

    def running_threads(self) -> int:
        return self.scans.running() + self.thumbnails.running()

    # -- task signals (GUI thread) ----------------------------------------------------
    def _on_finished(self, state: TaskState, result: Any, error: str | None) -> None:
        if state is not self._scan:
            return
        self._scan = None
        if error and error != CANCELLED:
            self.sig_failed.emit(error)
        elif result is not None:
            self._publish(result, True)

    def _publish(self, result: Any, final: bool) -> None:
        add_headers = getattr(self.pixels, "add_headers", None)
        for s in result.all_series():
            if add_headers is not None:
                add_headers(s.headers)  # the decoder need not re-read them
            if s.items and s.series_uid not in self._thumbs_requested:
                self._thumbs_requested.add(s.series_uid)
                self.thumbnails.start(thumbnail_task, self.pixels, s.items[len(s.items) // 2],
                                      key=s.series_uid, replace=False)
        self.sig_result.emit(result, final)

    def _on_thumbnail(self, state: TaskState, grey: Any, error: str | None) -> None:
        if error is None and grey is not None:
            self.sig_thumbnail.emit(state.key, grey)
        elif error and error != CANCELLED:
            log.warning("thumbnail failed: %s", error)
