"""View state: a plain object the widgets bind to (STYLE.md pattern 3).

It holds which series and slice are shown, the VOI window, zoom and pan, and
overlay visibility.  Widgets and plug-ins listen to its signals; they never
keep their own copy of these values.  All signals are emitted on the GUI thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

MIN_ZOOM = 0.05
MAX_ZOOM = 32.0


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


class ViewState(QObject):
    """Current series, slice, window, zoom/pan and overlay flags."""

    sig_scan_updated = Signal(object)
    sig_scan_finished = Signal(object)
    sig_series_changed = Signal(object)
    sig_slice_changed = Signal(int)
    sig_window_changed = Signal(object)
    sig_view_changed = Signal()
    sig_overlays_changed = Signal()

    def __init__(self, pixels: Any = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pixels = pixels  # viewer.io.pixels.PixelStore
        self.scan_result: Any = None
        self.series: Any = None
        self.index: int = 0
        self.window: Any = None  # viewer.display.Window; None = the file's own window
        self.zoom: float | None = None  # None = fit to window
        self.pan: tuple[float, float] = (0.0, 0.0)  # screen pixels from centre
        self.show_text: bool = True
        self.ruler_mode: bool = False
        self._moved = False  # the user chose a slice in this series

    # -- series / slice ------------------------------------------------------
    def study_uid_of(self, series: Any) -> str:
        res = self.scan_result
        if res is None or series is None:
            return ""
        for study in res.studies:
            if any(s is series or s.series_uid == series.series_uid for s in study.series):
                return str(study.study_uid)
        return ""

    def study_of(self, series: Any) -> Any:
        res = self.scan_result
        if res is None or series is None:
            return None
        for study in res.studies:
            if any(s.series_uid == series.series_uid for s in study.series):
                return study
        return None

    def set_series(self, series: Any) -> None:
        """Show `series` from its first slice, with its own window and fit zoom."""
        same = (series is not None and self.series is not None
                and series.series_uid == self.series.series_uid)
        self.series = series
        if not same:
            self._moved = False
            self.index = 0
            self.window = None
            self.zoom = None
            self.pan = (0.0, 0.0)
        else:
            self.index = min(self.index, max(0, self.count() - 1))
        self.sig_series_changed.emit(series)
        self.sig_slice_changed.emit(self.index)
        self.sig_window_changed.emit(self.window)

    def update_series(self, series: Any) -> None:
        """The same series gained slices (scan snapshot).

        Once the user has moved, the image on screen stays on screen; before
        that the view stays on the first slice in display order.
        """
        if self.series is None or series.series_uid != self.series.series_uid:
            return
        ref = self.ref()
        self.series = series
        if self._moved and ref is not None and ref in series.items:
            self.index = series.items.index(ref)
        self.index = min(self.index, max(0, self.count() - 1))
        self.sig_slice_changed.emit(self.index)

    def count(self) -> int:
        return len(self.series.items) if self.series is not None else 0

    def set_slice(self, index: int) -> None:
        """Jump to slice `index` (clamped to the series)."""
        n = self.count()
        if n == 0:
            return
        index = max(0, min(int(index), n - 1))
        self._moved = True
        if index != self.index:
            self.index = index
            self.sig_slice_changed.emit(index)

    def step(self, delta: int) -> None:
        self.set_slice(self.index + delta)

    def ref(self) -> Any:
        if self.series is None or not self.series.items:
            return None
        return self.series.items[min(self.index, len(self.series.items) - 1)]

    def header(self) -> Any:
        ref = self.ref()
        if ref is None:
            return None
        return getattr(self.series, "headers", {}).get(ref.path)

    # -- window / view -------------------------------------------------------
    def set_window(self, window: Any) -> None:
        """Set the VOI window (PS3.3 C.11.2); None returns to the file's own."""
        self.window = window
        self.sig_window_changed.emit(window)

    def set_zoom(self, zoom: float | None) -> None:
        self.zoom = None if zoom is None else max(MIN_ZOOM, min(MAX_ZOOM, float(zoom)))
        if zoom is None:
            self.pan = (0.0, 0.0)
        self.sig_view_changed.emit()

    def set_pan(self, x: float, y: float) -> None:
        self.pan = (float(x), float(y))
        self.sig_view_changed.emit()

    def set_show_text(self, on: bool) -> None:
        self.show_text = bool(on)
        self.sig_overlays_changed.emit()

    def set_ruler_mode(self, on: bool) -> None:
        self.ruler_mode = bool(on)
        self.sig_overlays_changed.emit()

    # -- plug-in view --------------------------------------------------------
    def current(self) -> CurrentImage | None:
        """The displayed image with its stored pixels and metadata, or None."""
        ref = self.ref()
        if ref is None or self.pixels is None:
            return None
        pixels = self.pixels.get(ref)
        meta = self.pixels.meta(ref)
        return CurrentImage(
            study_uid=self.study_uid_of(self.series),
            series_uid=str(self.series.series_uid),
            series=self.series,
            index=self.index,
            ref=ref,
            pixels=pixels,
            meta=meta,
            header=self.header(),
        )


def dragged_window(start: Any, dx: float, dy: float) -> Any:
    """Window after a right-drag of (dx, dy) screen pixels from `start`.

    Right widens, left narrows the width; down raises, up lowers the centre.
    Sensitivity scales with the starting width so CT and 8-bit images both feel
    natural.  Width stays >= 1 (PS3.3 C.11.2.1.2).
    """
    from medviewer.viewer.display import Window

    k = max(float(start.width), 2.0) / 256.0
    width = max(1.0, float(start.width) + dx * k)
    center = float(start.center) + dy * k
    return Window(center=round(center, 2), width=round(width, 2),
                  function=getattr(start, "function", "LINEAR"), name="")
