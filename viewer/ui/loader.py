"""StudyLoader: runs one scan at a time off the GUI thread and feeds the window.

It owns the scan worker, the thumbnail pool and the scan generation counter:
results of a scan that was replaced or cancelled never reach the window
(STYLE.md pattern 5).  Everything it emits arrives on the GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThreadPool, Signal

from medviewer.viewer.ui.workers import ScanWorker, ThumbnailJob, thumb_signals

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
        self._gen = 0
        self._worker: ScanWorker | None = None
        self._old: list[ScanWorker] = []
        self._thumbs_requested: set[str] = set()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)  # fewer threads competing with the GUI for the GIL
        self._thumbs = thumb_signals()
        self._thumbs.sig_done.connect(self._on_thumbnail)

    @property
    def generation(self) -> int:
        return self._gen

    def start(self, path: Path | Callable[[], Path]) -> None:
        """Cancel any running scan and start scanning `path`."""
        self.cancel()
        self._gen += 1
        self._thumbs_requested.clear()
        w = ScanWorker(path, self._gen, self)
        w.sig_progress.connect(self._on_progress)
        w.sig_snapshot.connect(self._on_snapshot)
        w.sig_finished.connect(self._on_finished)
        self._worker = w
        w.start()

    def cancel(self) -> None:
        """Ask the running scan to stop; its partial result still arrives as final."""
        if self._worker is not None and self._worker.isRunning():
            self._worker.cancel()
            self._old.append(self._worker)
        self._worker = None
        self._old = [w for w in self._old if w.isRunning()]

    def is_running(self) -> bool:
        return self._worker is not None and self._worker.isRunning()

    def shutdown(self, msecs: int = 3000) -> None:
        """Cancel and wait for the scan and thumbnail threads."""
        self.cancel()
        self._gen += 1  # nothing more reaches the window
        for w in self._old:
            w.wait(msecs)
        self._old = [w for w in self._old if w.isRunning()]
        self._pool.waitForDone(msecs)

    def running_threads(self) -> int:
        return sum(1 for w in self._old if w.isRunning()) + int(self.is_running())

    # -- worker signals (GUI thread) ------------------------------------------------
    def _on_progress(self, gen: int, done: int, total: int) -> None:
        if gen == self._gen:
            self.sig_progress.emit(done, total)

    def _on_snapshot(self, gen: int, result: Any) -> None:
        if gen == self._gen:
            self._publish(result, False)

    def _on_finished(self, gen: int, result: Any, error: str | None) -> None:
        if gen != self._gen:
            return
        self._worker = None
        if error:
            self.sig_failed.emit(error)
        else:
            self._publish(result, True)

    def _publish(self, result: Any, final: bool) -> None:
        add_headers = getattr(self.pixels, "add_headers", None)
        for s in result.all_series():
            if add_headers is not None:
                add_headers(s.headers)  # the decoder need not re-read them
            if s.items and s.series_uid not in self._thumbs_requested:
                self._thumbs_requested.add(s.series_uid)
                self._pool.start(ThumbnailJob(self._thumbs, self._gen, s.series_uid,
                                              s.items[len(s.items) // 2], self.pixels))
        self.sig_result.emit(result, final)

    def _on_thumbnail(self, gen: int, uid: str, grey: Any) -> None:
        if gen == self._gen and grey is not None:
            self.sig_thumbnail.emit(uid, grey)
