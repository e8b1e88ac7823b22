"""Qt-free view state (STYLE.md pattern 3): what each viewport shows, and the session holding them.

`ViewportState` is one viewport's series, slice, VOI window (PS3.3 C.11.2), zoom/pan and
overlay flags; `ViewSession` holds the open study (and its priors), the viewports of the
layout and what they share: the pixel store and the automatic series windows.
`ViewGeometry` maps image pixels to screen pixels for a viewport of a given size.
Every change is announced through an `Event` (viewer.state.events); the Qt adapter
(viewer.ui.state.ViewState) relays them as signals, and the canvas only renders state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from medviewer.viewer.display.meta import Window
from medviewer.viewer.state.events import Event
from medviewer.viewer.state.layout import DEFAULT_LAYOUT, LayoutSpec, fill_series, layout_spec

MIN_ZOOM = 0.05
MAX_ZOOM = 32.0
DEFAULT_OVERLAY_OPACITY = 0.5


def clamp_zoom(zoom: float) -> float:
    return max(MIN_ZOOM, min(MAX_ZOOM, float(zoom)))


def pixel_aspect(pixel_spacing: Any) -> float:
    """Displayed height of a pixel relative to its width: row spacing / column spacing
    (PS3.3 C.7.6.2.1.1 Pixel Spacing = row spacing, column spacing); 1.0 when unknown or
    implausible (outside 0.1 .. 10)."""
    try:
        row, col = float(pixel_spacing[0]), float(pixel_spacing[1])
    except (TypeError, ValueError, IndexError):
        return 1.0
    if not (col > 0 and row > 0 and math.isfinite(row / col)):
        return 1.0
    ratio = row / col
    return ratio if 0.1 <= ratio <= 10.0 else 1.0


@dataclass(frozen=True)
class ViewGeometry:
    """Image <-> screen mapping of one viewport.

    `zoom` is screen pixels per image column (None: fit the viewport); a row is
    `zoom * aspect` high.  `pan` is the offset of the image centre from the
    viewport centre in screen pixels.  Image point (x, y) = (column, row) with
    pixel (c, r) covering [c, c+1) x [r, r+1).
    """

    width: float
    height: float
    cols: int
    rows: int
    aspect: float = 1.0
    zoom: float | None = None
    pan: tuple[float, float] = (0.0, 0.0)

    def fit_scale(self) -> float:
        if not self.cols or not self.rows:
            return 1.0
        return max(1e-3, min(self.width / self.cols, self.height / (self.rows * self.aspect)))

    def scale(self) -> float:
        return self.zoom if self.zoom is not None else self.fit_scale()

    def scales(self) -> tuple[float, float]:
        s = self.scale()
        return s, s * self.aspect

    def origin(self) -> tuple[float, float]:
        sx, sy = self.scales()
        return (self.width / 2 + self.pan[0] - sx * self.cols / 2,
                self.height / 2 + self.pan[1] - sy * self.rows / 2)

    def image_to_screen(self, x: float, y: float) -> tuple[float, float]:
        (ox, oy), (sx, sy) = self.origin(), self.scales()
        return ox + x * sx, oy + y * sy

    def screen_to_image(self, x: float, y: float) -> tuple[float, float]:
        (ox, oy), (sx, sy) = self.origin(), self.scales()
        return (x - ox) / sx, (y - oy) / sy

    def image_rect(self) -> tuple[float, float, float, float]:
        """(left, top, width, height) of the whole image on screen."""
        (ox, oy), (sx, sy) = self.origin(), self.scales()
        return ox, oy, self.cols * sx, self.rows * sy

    def edge_anchors(self) -> dict[str, tuple[float, float]]:
        """Where the orientation markers go: the middle of each image edge, kept inside
        the viewport when zoom or pan moved that edge out of it ('left' is the point on
        the left edge, and so on).  Empty without an image or when it is off screen."""
        left, top, w, h = self.image_rect()
        right, bottom = left + w, top + h
        x0, x1 = max(left, 0.0), min(right, self.width)
        y0, y1 = max(top, 0.0), min(bottom, self.height)
        if not self.cols or not self.rows or x0 >= x1 or y0 >= y1:
            return {}
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        return {"left": (x0, my), "right": (x1, my), "top": (mx, y0), "bottom": (mx, y1)}


@dataclass
class OverlayFlags:
    """How a plug-in layer (e.g. Grad-CAM) is shown in a viewport."""

    visible: bool = True
    opacity: float = DEFAULT_OVERLAY_OPACITY


class ViewportEvents:
    """series_changed(series), slice_changed(index), window_changed(window),
    view_changed() (zoom / pan), overlays_changed() (corner text, layers)."""

    def __init__(self) -> None:
        self.series_changed = Event("series_changed")
        self.slice_changed = Event("slice_changed")
        self.window_changed = Event("window_changed")
        self.view_changed = Event("view_changed")
        self.overlays_changed = Event("overlays_changed")


class ViewportState:
    """What one viewport shows.  Plain data plus the setters that announce changes."""

    def __init__(self, name: str = "main") -> None:
        self.name = name
        self.series: Any = None          # viewer.io.model.Series | None
        self.index: int = 0              # into series.items (display order)
        self.window: Window | None = None  # None: the file's own (or the series' automatic) window
        self.zoom: float | None = None   # screen px per image column; None = fit
        self.pan: tuple[float, float] = (0.0, 0.0)
        self.show_text: bool = True
        self.overlays: dict[str, OverlayFlags] = {}
        self.default_overlay_opacity = DEFAULT_OVERLAY_OPACITY
        self.events = ViewportEvents()
        self._moved = False  # the user chose a slice in this series

    def __repr__(self) -> str:
        uid = getattr(self.series, "series_uid", None)
        return f"ViewportState({self.name!r}, series={uid}, index={self.index}, zoom={self.zoom})"

    # -- series / slice ------------------------------------------------------
    def count(self) -> int:
        return len(self.series.items) if self.series is not None else 0

    def set_series(self, series: Any) -> None:
        """Show `series` from its first slice, with its own window and fit zoom
        (the same series again keeps slice, window and zoom)."""
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
        ev = self.events
        ev.series_changed.emit(series)
        ev.slice_changed.emit(self.index)
        ev.window_changed.emit(self.window)

    def update_series(self, series: Any) -> None:
        """The same series gained slices (a scan snapshot).  Once the user has moved,
        the image on screen stays on screen; before that the first slice in display
        order stays shown."""
        if self.series is None or series.series_uid != self.series.series_uid:
            return
        ref = self.ref()
        self.series = series
        if self._moved and ref is not None and ref in series.items:
            self.index = series.items.index(ref)
        self.index = min(self.index, max(0, self.count() - 1))
        self.events.slice_changed.emit(self.index)

    def set_slice(self, index: int) -> None:
        """Jump to slice `index` (clamped to the series)."""
        n = self.count()
        if n == 0:
            return
        index = max(0, min(int(index), n - 1))
        self._moved = True
        if index != self.index:
            self.index = index
            self.events.slice_changed.emit(index)

    def step(self, delta: int) -> None:
        self.set_slice(self.index + delta)

    def ref(self) -> Any:
        """The ImageRef shown (None without a series)."""
        if self.series is None or not self.series.items:
            return None
        return self.series.items[min(self.index, len(self.series.items) - 1)]

    def header(self) -> Any:
        """The shown image's header (pydicom Dataset without pixels) or None."""
        ref = self.ref()
        if ref is None:
            return None
        return getattr(self.series, "headers", {}).get(ref.path)

    # -- window / zoom / pan ---------------------------------------------------
    def set_window(self, window: Window | None) -> None:
        """Set the VOI window (PS3.3 C.11.2); None returns to the file's own."""
        self.window = window
        self.events.window_changed.emit(window)

    def set_zoom(self, zoom: float | None) -> None:
        """Screen pixels per image column; None fits the viewport and re-centres."""
        self.zoom = None if zoom is None else clamp_zoom(zoom)
        if zoom is None:
            self.pan = (0.0, 0.0)
        self.events.view_changed.emit()

    def set_pan(self, x: float, y: float) -> None:
        self.pan = (float(x), float(y))
        self.events.view_changed.emit()

    def zoom_by(self, factor: float, scale: float, anchor: tuple[float, float] = (0.0, 0.0)) -> None:
        """Zoom by `factor` from the current `scale` (the fit scale when zoom is None),
        keeping the image point under `anchor` fixed.  `anchor` is measured from the
        viewport centre in screen pixels; both axes scale alike, so the image size and
        pixel aspect do not enter: pan' = a - f (a - pan)."""
        new = clamp_zoom(scale * factor)
        f = new / scale if scale > 0 else 1.0
        ax, ay = anchor
        px, py = self.pan
        self.zoom = new
        self.pan = (ax - f * (ax - px), ay - f * (ay - py))
        self.events.view_changed.emit()

    def set_show_text(self, on: bool) -> None:
        self.show_text = bool(on)
        self.events.overlays_changed.emit()

    # -- plug-in layers ----------------------------------------------------------
    def overlay(self, name: str) -> OverlayFlags:
        """The flags of layer `name` (created visible at the default opacity)."""
        flags = self.overlays.get(name)
        if flags is None:
            flags = self.overlays[name] = OverlayFlags(True, self.default_overlay_opacity)
        return flags

    def set_overlay(self, name: str, visible: bool | None = None, opacity: float | None = None) -> None:
        flags = self.overlay(name)
        if visible is not None:
            flags.visible = bool(visible)
        if opacity is not None:
            flags.opacity = float(min(1.0, max(0.0, opacity)))
        self.events.overlays_changed.emit()


class SessionEvents:
    """scan_updated(result) for every snapshot, scan_finished(result) once, active_changed(viewport),
    auto_window_changed() (per-image / per-series choice, or a series window computed),
    layout_changed(LayoutSpec), priors_changed() (a prior study opened, grown or closed)."""

    def __init__(self) -> None:
        self.scan_updated = Event("scan_updated")
        self.scan_finished = Event("scan_finished")
        self.active_changed = Event("active_changed")
        self.auto_window_changed = Event("auto_window_changed")
        self.layout_changed = Event("layout_changed")
        self.priors_changed = Event("priors_changed")


@dataclass
class ViewSession:
    """The open study and the viewports showing it.

    A layout (viewer.state.layout) shows one or more viewports, each with its own
    state, and exactly one is active (toolbar actions, keys and the AI panels act on
    it).  Prior studies of the patient (`priors`) are scan results opened beside the
    current one.  Automatic windows of series without window tags are computed once
    per series and shared by all viewports (`series_window`), unless the user asks
    for a window per image.
    """

    pixels: Any = None                       # viewer.io.pixels.PixelStore
    scan_result: Any = None                  # viewer.io.model.ScanResult | None
    viewports: list[ViewportState] = field(default_factory=lambda: [ViewportState("main")])
    active_index: int = 0
    auto_window_per_image: bool = False
    # series UID -> (automatic window or None when no slice was usable, slices it was computed from)
    series_windows: dict[str, tuple[Window | None, int]] = field(default_factory=dict)
    events: SessionEvents = field(default_factory=SessionEvents)
    layout: str = DEFAULT_LAYOUT
    priors: list[Any] = field(default_factory=list)   # ScanResults of prior studies

    @property
    def active(self) -> ViewportState:
        return self.viewports[self.active_index]

    def add_viewport(self, name: str | None = None) -> ViewportState:
        vp = ViewportState(name or f"viewport{len(self.viewports) + 1}")
        self.viewports.append(vp)
        return vp

    def set_active(self, viewport: ViewportState | int) -> None:
        i = viewport if isinstance(viewport, int) else self.viewports.index(viewport)
        if i != self.active_index:
            self.active_index = i
            self.events.active_changed.emit(self.active)

    # -- layout -------------------------------------------------------------------------
    def set_layout(self, name: str) -> LayoutSpec:
        """Switch to layout `name` (unknown names: the default); adds the viewports it
        needs, and makes the first one active when the active one is hidden."""
        spec = layout_spec(name)
        while len(self.viewports) < spec.cells:
            self.add_viewport()
        if spec.cells and self.active_index >= spec.cells:
            self.set_active(0)
        if spec.name != self.layout:
            self.layout = spec.name
            self.events.layout_changed.emit(spec)
        return spec

    def show_series(self, all_series: list[Any]) -> None:
        """A scan (snapshot) listed `all_series`: series that grew replace their snapshot
        in every viewport; empty visible viewports get the next series not shown yet
        (viewer.state.layout.fill_series), so a 2 x 2 layout opens on four series."""
        by_uid = {s.series_uid: s for s in all_series}
        for vp in self.viewports:
            same = by_uid.get(vp.series.series_uid) if vp.series is not None else None
            if same is not None and same is not vp.series:
                vp.update_series(same)
        for vp in self.visible_viewports():
            if vp.series is None:
                nxt = fill_series(all_series, [v.series for v in self.viewports])
                if nxt is None:
                    break
                vp.set_series(nxt)

    def visible_viewports(self) -> list[ViewportState]:
        """The stack viewports the layout shows (the MPR layout: the active one, whose
        series the reformats show)."""
        spec = layout_spec(self.layout)
        return self.viewports[:spec.cells] if spec.cells else [self.active]

    # -- the study ------------------------------------------------------------------
    def set_scan_result(self, result: Any) -> None:
        """A new (or grown) scan result; None clears the study, its priors and the series
        windows (a new folder is a new reading: the priors of another patient go)."""
        if result is None or (self.scan_result is not None
                              and getattr(result, "root", None) != getattr(self.scan_result, "root", None)):
            self.series_windows.clear()
            if self.priors:
                self.priors = []
                self.events.priors_changed.emit()
        self.scan_result = result

    def set_prior(self, result: Any) -> None:
        """Add a prior study's scan result, or replace the one of the same folder (a
        snapshot that grew)."""
        root = getattr(result, "root", None)
        self.priors = [p for p in self.priors if getattr(p, "root", None) != root] + [result]
        self.events.priors_changed.emit()

    def results(self) -> list[Any]:
        """The current study's scan result, then the priors'."""
        return [r for r in (self.scan_result, *self.priors) if r is not None]

    def is_prior(self, series: Any) -> bool:
        study = self.study_of(series)
        return study is not None and any(study in r.studies for r in self.priors)

    def study_of(self, series: Any) -> Any:
        if series is None:
            return None
        for res in self.results():
            for study in res.studies:
                if any(s is series or s.series_uid == series.series_uid for s in study.series):
                    return study
        return None

    def result_of(self, study: Any) -> Any:
        """The scan result (current or prior) holding `study`."""
        return next((r for r in self.results() if study in r.studies), None)

    def study_uid_of(self, series: Any) -> str:
        study = self.study_of(series)
        return "" if study is None else str(study.study_uid)

    # -- automatic windows ------------------------------------------------------------
    def scan_complete(self) -> bool:
        res = self.scan_result
        return res is not None and bool(getattr(res, "complete", True))

    def set_auto_window_per_image(self, on: bool) -> None:
        if bool(on) != self.auto_window_per_image:
            self.auto_window_per_image = bool(on)
            self.events.auto_window_changed.emit()

    def needs_series_window(self, series_uid: str, n_slices: int) -> bool:
        """True when the automatic window of the series has not been computed, or was
        computed from a scan snapshot with another number of slices and the scan is now
        complete (computed once more, then never again)."""
        if self.auto_window_per_image:
            return False
        entry = self.series_windows.get(series_uid)
        return entry is None or (entry[1] != n_slices and self.scan_complete())

    def series_window(self, series_uid: str) -> Window | None:
        """The series' automatic window; None when per image (the user's choice, or no
        slice usable) or not computed yet."""
        if self.auto_window_per_image:
            return None
        entry = self.series_windows.get(series_uid)
        return None if entry is None else entry[0]

    def remember_series_window(self, series_uid: str, window: Window | None, n_slices: int) -> None:
        """Store the automatic window computed from a series of `n_slices` slices
        (None: use one per image)."""
        self.series_windows[series_uid] = (window, int(n_slices))
        self.events.auto_window_changed.emit()
