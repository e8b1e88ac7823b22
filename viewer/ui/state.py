"""The Qt adapter of the view state (STYLE.md pattern 3).

The state itself is Qt-free (`medviewer.viewer.state`: `ViewportState` per viewport,
`ViewSession` holding them); `ViewState` wraps one viewport and its session, reads
and writes go straight to them, and every change they announce is relayed as a Qt
signal, so widgets and plug-ins bind with ``connect`` as usual.  A second viewport
gets its own `ViewState` over its own `ViewportState` in the same session.
All signals are emitted on the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from medviewer.viewer.display import Window
from medviewer.viewer.state.view import MAX_ZOOM, MIN_ZOOM, ViewportState, ViewSession

__all__ = ["MAX_ZOOM", "MIN_ZOOM", "CurrentImage", "ViewState", "dragged_window"]


@dataclass(frozen=True)
class CurrentImage:
    """The image on screen, as plug-ins see it (stored pixels, PS3.3 C.7.6.3)."""

    study_uid: str
    series_uid: str
    series: Any  # viewer.io.model.Series
    index: int
    ref: Any  # viewer.io.model.ImageRef
    pixels: np.ndarray
    meta: Any  # viewer.display.ImageMeta
    header: Any  # pydicom.Dataset | None


def _delegate(name: str) -> property:
    return property(lambda self: getattr(self.viewport, name),
                    lambda self, value: setattr(self.viewport, name, value))


class ViewState(QObject):
    """One viewport's state (series, slice, window, zoom/pan, overlays) with Qt signals."""

    sig_scan_updated = Signal(object)
    sig_scan_finished = Signal(object)
    sig_series_changed = Signal(object)
    sig_slice_changed = Signal(int)
    sig_window_changed = Signal(object)
    sig_view_changed = Signal()
    sig_overlays_changed = Signal()
    sig_auto_window_changed = Signal()

    series = _delegate("series")
    index = _delegate("index")
    window = _delegate("window")
    zoom = _delegate("zoom")
    pan = _delegate("pan")
    show_text = _delegate("show_text")

    def __init__(self, pixels: Any = None, parent: QObject | None = None,
                 session: ViewSession | None = None, viewport: ViewportState | None = None) -> None:
        super().__init__(parent)
        self.session = session if session is not None else ViewSession(pixels=pixels)
        if pixels is not None:
            self.session.pixels = pixels
        self.viewport = viewport if viewport is not None else self.session.active
        self._relays: list[tuple[Any, Any]] = []
        self._connect_viewport()
        sev = self.session.events
        sev.scan_updated.connect(self.sig_scan_updated.emit)
        sev.scan_finished.connect(self.sig_scan_finished.emit)
        sev.auto_window_changed.connect(self.sig_auto_window_changed.emit)

    def _connect_viewport(self) -> None:
        ev = self.viewport.events
        self._relays = [(ev.series_changed, self.sig_series_changed.emit),
                        (ev.slice_changed, self.sig_slice_changed.emit),
                        (ev.window_changed, self.sig_window_changed.emit),
                        (ev.view_changed, self.sig_view_changed.emit),
                        (ev.overlays_changed, self.sig_overlays_changed.emit)]
        for event, relay in self._relays:
            event.connect(relay)

    def rebind(self, viewport: ViewportState) -> None:
        """Relay `viewport` from now on, and announce what it shows (series, slice,
        window, view, overlays) as if it had just changed."""
        if viewport is self.viewport:
            return
        for event, relay in self._relays:
            event.disconnect(relay)
        self.viewport = viewport
        self._connect_viewport()
        self.sig_series_changed.emit(viewport.series)
        self.sig_slice_changed.emit(viewport.index)
        self.sig_window_changed.emit(viewport.window)
        self.sig_view_changed.emit()
        self.sig_overlays_changed.emit()

    def follow_active(self) -> None:
        """Stay bound to the session's active viewport (the window's state)."""
        self.session.events.active_changed.connect(self.rebind)

    # -- the session ------------------------------------------------------------------
    @property
    def pixels(self) -> Any:
        return self.session.pixels

    @property
    def scan_result(self) -> Any:
        return self.session.scan_result

    @scan_result.setter
    def scan_result(self, result: Any) -> None:
        self.session.set_scan_result(result)

    def study_of(self, series: Any) -> Any:
        return self.session.study_of(series)

    def study_uid_of(self, series: Any) -> str:
        return self.session.study_uid_of(series)

    # -- the viewport (see viewer.state.view.ViewportState) ------------------------------
    def set_series(self, series: Any) -> None:
        self.viewport.set_series(series)

    def update_series(self, series: Any) -> None:
        self.viewport.update_series(series)

    def count(self) -> int:
        return self.viewport.count()

    def set_slice(self, index: int) -> None:
        self.viewport.set_slice(index)

    def step(self, delta: int) -> None:
        self.viewport.step(delta)

    def ref(self) -> Any:
        return self.viewport.ref()

    def header(self) -> Any:
        return self.viewport.header()

    def set_window(self, window: Any) -> None:
        self.viewport.set_window(window)

    def set_zoom(self, zoom: float | None) -> None:
        self.viewport.set_zoom(zoom)

    def set_pan(self, x: float, y: float) -> None:
        self.viewport.set_pan(x, y)

    def zoom_by(self, factor: float, scale: float, anchor: tuple[float, float] = (0.0, 0.0)) -> None:
        self.viewport.zoom_by(factor, scale, anchor)

    def set_show_text(self, on: bool) -> None:
        self.viewport.set_show_text(on)

    # -- plug-in view ---------------------------------------------------------------------
    def current(self) -> CurrentImage | None:
        """The displayed image with its stored pixels and metadata, or None.
        Decodes synchronously when the slice is not cached (see ARCHITECTURE.md)."""
        ref = self.ref()
        if ref is None or self.pixels is None:
            return None
        return CurrentImage(
            study_uid=self.study_uid_of(self.series),
            series_uid=str(self.series.series_uid),
            series=self.series,
            index=self.index,
            ref=ref,
            pixels=self.pixels.get(ref),
            meta=self.pixels.meta(ref),
            header=self.header(),
        )


def dragged_window(start: Any, dx: float, dy: float) -> Window:
    """Window after a right-drag of (dx, dy) screen pixels from `start`.

    Right widens, left narrows the width; down raises, up lowers the centre.
    Sensitivity scales with the starting width so CT, 8-bit and small float ranges
    all feel natural.  LINEAR width stays >= 1 (PS3.3 C.11.2.1.2), LINEAR_EXACT > 0
    (C.11.2.1.3.2).
    """
    function = getattr(start, "function", "LINEAR")
    exact = function == "LINEAR_EXACT"
    w0 = float(start.width)
    k = (max(w0, 1e-9) if exact else max(w0, 2.0)) / 256.0
    width = max(1e-9 if exact else 1.0, w0 + dx * k)
    center = float(start.center) + dy * k
    if not exact:
        width, center = round(width, 2), round(center, 2)
    return Window(center=center, width=width, function=function, name="")
