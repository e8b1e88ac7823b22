"""Linked viewports (Qt-free): scroll, window/level and zoom/pan synchronisation.

Scrolling one viewport moves the others to the slice at the same place in the patient:

* series that share a Frame of Reference UID (PS3.3 C.7.4.1: one patient coordinate
  system) are matched by patient position: the target shows its slice whose Image
  Position (Patient) lies closest to the source slice along the target's stack
  direction;
* other series (a prior study, another scanner) by a manual offset, set once with
  `link_at_current()`: the slices shown then correspond, and scrolling moves every
  viewport by the same distance in mm (by the same number of slices for images
  without geometry).

Stacks are compared along their display direction (viewer.display.orientation
`stack_direction`: axial head to feet...), so two axial series scroll together
whatever their file order; stacks at more than 45 degrees to each other (an axial
and a sagittal) are not scrolled together.  Window sync copies the VOI window to
viewports of the same modality; zoom/pan sync copies the magnification relative to
"fit" and the pan scaled to it.  Each link is a toggle (`set_link`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from medviewer.viewer.display.orientation import plane_kind, slice_normal, stack_direction
from medviewer.viewer.state.events import Event
from medviewer.viewer.state.view import ViewportState, clamp_zoom

__all__ = ["LINKS", "StackAxis", "ViewportSync", "frame_of_reference", "nearest_index", "stack_axis"]

LINKS = ("scroll", "window", "zoom")
PARALLEL_COS = math.cos(math.radians(45.0))


@dataclass(frozen=True)
class StackAxis:
    """Where a series' slices lie along its display direction."""

    direction: np.ndarray          # unit vector (LPS): display order runs along it
    positions: np.ndarray          # (n,) mm along `direction` per item (NaN: no geometry)
    points: np.ndarray             # (n, 3) Image Position (Patient) per item (NaN rows)
    kind: str                      # "axial" | "coronal" | "sagittal"
    frame_of_reference: str

    def position(self, index: int) -> float | None:
        v = float(self.positions[index]) if 0 <= index < len(self.positions) else math.nan
        return None if math.isnan(v) else v


def frame_of_reference(series: Any) -> str:
    """The series' Frame of Reference UID ('' when it has none)."""
    headers = getattr(series, "headers", None)
    items = getattr(series, "items", None) or []
    if not headers or not items:
        return ""
    try:
        ds = headers.get(items[0].path)
        return str(ds.get("FrameOfReferenceUID", "") or "") if ds is not None else ""
    except Exception:
        return ""


def stack_axis(series: Any) -> StackAxis | None:
    """The stack axis of a series with patient geometry, else None."""
    items = getattr(series, "items", None) or []
    geometry = getattr(series, "geometry", None) or {}
    geos = [geometry.get(ref) for ref in items]
    first = next((g for g in geos if g is not None), None)
    if first is None:
        return None
    normal = slice_normal(first.orientation)
    if normal is None:
        return None
    direction = np.asarray(stack_direction(normal), dtype=np.float64)
    points = np.array([g.position if g is not None else (math.nan,) * 3 for g in geos], dtype=np.float64)
    return StackAxis(direction, points @ direction, points, plane_kind(normal), frame_of_reference(series))


def nearest_index(positions: np.ndarray, target: float) -> int | None:
    """Index of the position closest to `target` (NaNs ignored); None when all are NaN."""
    d = np.abs(np.asarray(positions, dtype=np.float64) - target)
    if d.size == 0 or np.isnan(d).all():
        return None
    return int(np.nanargmin(d))


@dataclass(frozen=True)
class _Anchor:
    series_uid: str
    index: int
    position: float | None


class ViewportSync:
    """Keeps the visible viewports linked.  `viewports()` returns the viewports to keep
    in step (the layout's); `fit_scale(viewport)` the fit magnification of a viewport
    (screen px per image column), used by zoom sync; None copies zoom as it is.
    events.changed() follows every toggle and every (re)link."""

    def __init__(self, viewports: Callable[[], Sequence[ViewportState]],
                 fit_scale: Callable[[ViewportState], float | None] | None = None) -> None:
        self._viewports = viewports
        self._fit = fit_scale
        self.links = {name: False for name in LINKS}
        self._anchors: dict[int, _Anchor] = {}
        self._axes: dict[str, StackAxis | None] = {}
        self._busy = False
        self._entering: ViewportState | None = None
        self._attached: list[tuple[ViewportState, list[tuple[Event, Callable]]]] = []
        self.changed = Event("sync_changed")

    # -- wiring -------------------------------------------------------------------------
    def attach(self, vp: ViewportState) -> None:
        """Follow `vp`'s slice, window and zoom/pan changes (once per viewport)."""
        if any(v is vp for v, _ in self._attached):
            return
        ev = vp.events
        pairs = [(ev.slice_changed, lambda _i, vp=vp: self._on_slice(vp)),
                 (ev.window_changed, lambda _w, vp=vp: self._on_window(vp)),
                 (ev.view_changed, lambda vp=vp: self._on_view(vp)),
                 (ev.series_changed, lambda _s, vp=vp: self._on_series(vp))]
        for event, cb in pairs:
            event.connect(cb)
        self._attached.append((vp, pairs))

    def detach_all(self) -> None:
        for _vp, pairs in self._attached:
            for event, cb in pairs:
                event.disconnect(cb)
        self._attached = []

    def forget_series(self) -> None:
        """Drop cached stack axes (a scan snapshot grew a series)."""
        self._axes.clear()

    # -- toggles ------------------------------------------------------------------------
    def set_link(self, name: str, on: bool) -> None:
        """Turn link `name` ('scroll', 'window', 'zoom') on or off.  Scroll sync turned on
        links the viewports at their current slices where they need a manual offset."""
        if name not in self.links:
            raise ValueError(f"unknown link {name!r} (choose from {', '.join(LINKS)})")
        on = bool(on)
        if self.links[name] == on:
            return
        self.links[name] = on
        if name == "scroll" and on and self._needs_anchors():
            self._set_anchors()
        self.changed.emit()

    def link_at_current(self) -> None:
        """'Link at current slices': the slices shown now correspond; scroll sync on."""
        self._set_anchors()
        self.links["scroll"] = True
        self.changed.emit()

    def linked_manually(self, vp: ViewportState) -> bool:
        anchor = self._anchors.get(id(vp))
        return anchor is not None and vp.series is not None and anchor.series_uid == vp.series.series_uid

    def describe(self) -> str:
        """'scroll, W/L' style text of the links that are on ('' when none)."""
        names = {"scroll": "scroll", "window": "W/L", "zoom": "zoom/pan"}
        return ", ".join(names[n] for n in LINKS if self.links[n])

    # -- geometry -------------------------------------------------------------------------
    def axis(self, series: Any) -> StackAxis | None:
        if series is None:
            return None
        uid = series.series_uid
        key = f"{uid}:{len(series.items)}"
        if key not in self._axes:
            self._axes[key] = stack_axis(series)
        return self._axes[key]

    def shared_frame(self, a: ViewportState, b: ViewportState) -> bool:
        """Both series in one patient coordinate system (same Frame of Reference UID)."""
        ax, bx = self.axis(a.series), self.axis(b.series)
        return (ax is not None and bx is not None and bool(ax.frame_of_reference)
                and ax.frame_of_reference == bx.frame_of_reference)

    def _needs_anchors(self) -> bool:
        vps = [v for v in self._viewports() if v.series is not None]
        return any(not self.shared_frame(a, b) and not (self.linked_manually(a) and self.linked_manually(b))
                   for i, a in enumerate(vps) for b in vps[i + 1:])

    def _set_anchors(self) -> None:
        self._anchors = {}
        for vp in self._viewports():
            if vp.series is None:
                continue
            axis = self.axis(vp.series)
            pos = axis.position(vp.index) if axis is not None else None
            self._anchors[id(vp)] = _Anchor(vp.series.series_uid, vp.index, pos)

    def target_index(self, src: ViewportState, tgt: ViewportState) -> int | None:
        """The slice `tgt` shows when `src` is at its current slice (None: not linked)."""
        if src.series is None or tgt.series is None or not tgt.series.items:
            return None
        if src.series.series_uid == tgt.series.series_uid:
            return src.index
        sa, ta = self.axis(src.series), self.axis(tgt.series)
        if sa is not None and ta is not None:
            if abs(float(sa.direction @ ta.direction)) < PARALLEL_COS:
                return None                       # e.g. axial and sagittal: no common scroll
            if self.shared_frame(src, tgt):
                point = sa.points[src.index]
                if np.isnan(point).any():
                    return None
                return nearest_index(ta.positions, float(point @ ta.direction))
        if not (self.linked_manually(src) and self.linked_manually(tgt)):
            return None
        a_s, a_t = self._anchors[id(src)], self._anchors[id(tgt)]
        if sa is not None and ta is not None and a_s.position is not None and a_t.position is not None:
            pos = sa.position(src.index)
            if pos is not None:
                return nearest_index(ta.positions, pos - a_s.position + a_t.position)
        return max(0, min(len(tgt.series.items) - 1, src.index - a_s.index + a_t.index))

    # -- followers ------------------------------------------------------------------------
    def _others(self, src: ViewportState) -> list[ViewportState]:
        vps = list(self._viewports())
        if not any(v is src for v in vps):
            return []
        return [v for v in vps if v is not src and v.series is not None]

    def _on_slice(self, src: ViewportState) -> None:
        if self._entering is src:      # the slice a newly shown series was put on: no echo
            self._entering = None
            return
        if self._busy or not self.links["scroll"]:
            return
        self._busy = True
        try:
            for tgt in self._others(src):
                index = self.target_index(src, tgt)
                if index is not None and index != tgt.index:
                    tgt.set_slice(index)
        finally:
            self._busy = False

    def _on_window(self, src: ViewportState) -> None:
        if self._busy or not self.links["window"] or src.series is None:
            return
        self._busy = True
        try:
            for tgt in self._others(src):
                if tgt.series.modality == src.series.modality and tgt.window != src.window:
                    tgt.set_window(src.window)
        finally:
            self._busy = False

    def _on_view(self, src: ViewportState) -> None:
        if self._busy or not self.links["zoom"]:
            return
        self._busy = True
        try:
            fit_s = self._fit(src) if self._fit is not None else None
            for tgt in self._others(src):
                fit_t = self._fit(tgt) if self._fit is not None else None
                if src.zoom is None:
                    tgt.set_zoom(None)
                    continue
                ratio = fit_t / fit_s if fit_s and fit_t else 1.0
                tgt.zoom = clamp_zoom(src.zoom * ratio)
                tgt.pan = (src.pan[0] * ratio, src.pan[1] * ratio)
                tgt.events.view_changed.emit()
        finally:
            self._busy = False

    def _on_series(self, vp: ViewportState) -> None:
        """A viewport got another series: a manual link held for the old one only; with
        scroll sync on, the new series opens at the linked place."""
        anchor = self._anchors.get(id(vp))
        if anchor is not None and (vp.series is None or anchor.series_uid != vp.series.series_uid):
            self._anchors.pop(id(vp), None)
            self.changed.emit()
        if self._busy or not self.links["scroll"] or vp.series is None:
            return
        for src in self._others(vp):
            index = self.target_index(src, vp)
            if index is not None:
                self._busy = True
                try:
                    vp.set_slice(index)
                finally:
                    self._busy = False
                self._entering = vp
                return
