"""The image a viewport should show, made ready off the GUI thread.

Decoding (PixelStore) and, for series without window tags, the series' automatic
window (viewer.display.series_auto_window) run as tasks (viewer.ui.workers).  An image
is handed to the canvas only once it can be shown with its final window, so the
first image of a series does not change brightness a moment after it appears.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Signal

from medviewer.viewer.display import has_own_window
from medviewer.viewer.display.serieswindow import DEFAULT_SAMPLES
from medviewer.viewer.ui.workers import (CANCELLED, TaskRunner, TaskState, decode_task, error_line,
                                         series_window_task)

Ready = tuple[Any, Any, "str | None"]   # stored pixels, ImageMeta, error line


class ImageSource(QObject):
    """sig_ready(ref, stored, meta, error) when a requested image became ready."""

    sig_ready = Signal(object, object, object, object)

    def __init__(self, state: Any, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._pending: set[Any] = set()
        self.tasks = TaskRunner(self, name="decode")
        self.tasks.sig_finished.connect(self._on_finished)

    def request(self, ref: Any) -> Ready | None:
        """(stored, meta, error) when `ref` can be shown now; else start what is
        missing and return None (sig_ready follows)."""
        pixels = self.state.pixels
        try:
            cached = ref in pixels
        except TypeError:
            cached = False
        if not cached:
            if ref not in self._pending:
                self._pending.add(ref)
                self.tasks.start(decode_task, pixels, ref, key=ref, replace=False)
            return None
        try:
            stored, meta, error = pixels.get(ref), pixels.meta(ref), None
        except Exception as exc:
            stored, meta, error = None, None, error_line(exc, "decode")
        return self._ready_or_window(stored, meta, error)

    def needs_series_window(self, meta: Any) -> bool:
        series = self.state.series
        return (series is not None and meta is not None and not has_own_window(meta)
                and self.state.session.needs_series_window(series.series_uid, len(series.items)))

    def compute_series_window(self) -> None:
        """Start computing the automatic window of the series in view (once per series,
        once more if it was computed from a scan snapshot)."""
        series = self.state.series
        key = ("window", series.series_uid, len(series.items))
        if key not in self._pending:
            self._pending.add(key)
            self.tasks.start(series_window_task, self.state.pixels, list(series.items),
                             DEFAULT_SAMPLES, key=key, replace=False)

    def computing_window(self) -> bool:
        """A series window of the series in view is being computed."""
        series = self.state.series
        return series is not None and any(
            isinstance(k, tuple) and k[:2] == ("window", series.series_uid) for k in self._pending)

    def shutdown(self, msecs: int = 3000) -> None:
        self.tasks.shutdown(msecs)

    def _ready_or_window(self, stored: Any, meta: Any, error: str | None) -> Ready | None:
        if error is None and self.needs_series_window(meta):
            self.compute_series_window()
            if self.state.session.series_window(self.state.series.series_uid) is None:
                return None   # no window yet: wait for it (a snapshot's window is shown meanwhile)
        return stored, meta, error

    def _on_finished(self, state: TaskState, result: Any, error: str | None) -> None:
        key = state.key
        self._pending.discard(key)
        if isinstance(key, tuple) and key[:1] == ("window",):
            if error != CANCELLED:
                # None (no usable slice, or a failure): one window per image for this series;
                # the session announces it (sig_auto_window_changed) and the canvas refreshes
                self.state.session.remember_series_window(key[1], result if error is None else None, key[2])
            return
        if key != self.state.ref():
            return  # stale: the user moved on (STYLE.md pattern 5)
        stored, meta = result if error is None else (None, None)
        ready = self._ready_or_window(stored, meta, error)
        if ready is not None:
            self.sig_ready.emit(key, *ready)
