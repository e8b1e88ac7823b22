"""The state of the MPR layout (Qt-free): one volume, a linked crosshair, the slab.

`MprState` holds the volume a series was built into (viewer.io.volume), the
`Crosshair` (viewer.display.mpr: the patient point the three views share and the
rotation of their planes), the thick-slab projection and thickness, the VOI window
the three views share and each view's zoom/pan (a `ViewportState` per plane,
used for its zoom/pan only).  The views render `grid(kind)`; every change is
announced by an event, so each view re-renders only when its own plane changed.

Display convention (radiological, as the core renders it): axial with patient right
on the left and anterior at the top, coronal right on the left and head at the top,
sagittal anterior on the left and head at the top.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from medviewer.viewer.display.meta import Window
from medviewer.viewer.display.mpr import PLANES, PROJECTIONS, Crosshair, PlaneGrid, cut_line
from medviewer.viewer.state.events import Event
from medviewer.viewer.state.view import ViewportState

__all__ = ["DEFAULT_SLAB_MM", "MprEvents", "MprState", "PROJECTION_TITLES"]

DEFAULT_SLAB_MM = 10.0
MAX_SLAB_MM = 200.0
PROJECTION_TITLES = {"thin": "Thin", "mip": "MIP", "minip": "MinIP", "mean": "Mean"}
_ALIGNED = 1.0 - 1e-9


class MprEvents:
    """volume_changed(volume | None), crosshair_changed(old, new), slab_changed(),
    window_changed(window)."""

    def __init__(self) -> None:
        self.volume_changed = Event("volume_changed")
        self.crosshair_changed = Event("crosshair_changed")
        self.slab_changed = Event("slab_changed")
        self.window_changed = Event("window_changed")


class MprState:
    """What the three MPR views show."""

    def __init__(self) -> None:
        self.volume: Any = None                 # viewer.io.volume.Volume | None
        self.crosshair: Crosshair | None = None
        self.projection = "thin"                # one of viewer.display.mpr.PROJECTIONS
        self.slab_mm = DEFAULT_SLAB_MM          # used when projection != "thin"
        self.window: Window | None = None       # None: the series' own (volume_window)
        self.views = {kind: ViewportState(f"mpr-{kind}") for kind in PLANES}
        self.events = MprEvents()
        self._grids: dict[str, tuple[Crosshair, PlaneGrid]] = {}
        self._lines: dict[str, tuple[Crosshair, dict]] = {}

    # -- volume -----------------------------------------------------------------------
    def set_volume(self, volume: Any) -> None:
        """Show `volume` (None: nothing), crosshair at its centre, own window, fit views."""
        self.volume = volume
        self.crosshair = Crosshair.at_center(volume.geometry) if volume is not None else None
        self.window = None
        self._grids.clear()
        self._lines.clear()
        for view in self.views.values():
            view.zoom, view.pan = None, (0.0, 0.0)
        self.events.volume_changed.emit(volume)

    @property
    def geometry(self) -> Any:
        return None if self.volume is None else self.volume.geometry

    def grid(self, kind: str) -> PlaneGrid | None:
        """The plane the `kind` view shows now (cached per crosshair)."""
        if self.crosshair is None:
            return None
        cached = self._grids.get(kind)
        if cached is not None and cached[0] is self.crosshair:
            return cached[1]
        grid = self.crosshair.grid(self.geometry, kind)
        self._grids[kind] = (self.crosshair, grid)
        return grid

    def lines(self, kind: str) -> dict[str, Any]:
        """{other kind: ((x0, y0), (x1, y1)) or None}: the crosshair lines of a view
        (cached per crosshair: views repaint far more often than it moves)."""
        if self.crosshair is None:
            return {}
        cached = self._lines.get(kind)
        if cached is not None and cached[0] is self.crosshair:
            return cached[1]
        view = self.grid(kind)
        lines = {other: cut_line(view, self.grid(other), self.crosshair.center)
                 for other in PLANES if other != kind}     # Crosshair.lines on the cached grids
        self._lines[kind] = (self.crosshair, lines)
        return lines

    # -- crosshair ------------------------------------------------------------------------
    def set_crosshair(self, crosshair: Crosshair) -> None:
        old, self.crosshair = self.crosshair, crosshair
        if old != crosshair:
            self.events.crosshair_changed.emit(old, crosshair)

    def move_to(self, point: Sequence[float]) -> None:
        """Click / drag in a view: the crosshair centre goes to this patient point
        (kept inside the volume's bounding box)."""
        if self.crosshair is None:
            return
        corners = self.geometry.corners()
        p = np.clip(np.asarray(point, dtype=np.float64), corners.min(0), corners.max(0))
        self.set_crosshair(self.crosshair.moved_to(p))

    def plane_step(self, kind: str) -> float:
        """mm between neighbouring planes of the `kind` view: the voxel spacing along its
        normal for planes along the volume's axes, else the smallest voxel spacing."""
        geo = self.geometry
        if geo is None or self.crosshair is None:
            return 1.0
        _, _, normal = self.crosshair.axes(kind)
        spacings = (geo.slice_spacing, geo.pixel_spacing[0], geo.pixel_spacing[1])
        for vec, spacing in zip((geo.along, geo.col_dir, geo.row_dir), spacings):
            if abs(float(np.dot(normal, vec))) >= _ALIGNED:
                return float(spacing)
        return float(min(spacings))

    def scroll(self, kind: str, steps: float) -> None:
        """Move the `kind` view `steps` planes along its normal (the others follow),
        stopping at the volume's edge."""
        if self.crosshair is None or not steps:
            return
        moved = self.crosshair.scrolled(kind, steps * self.plane_step(kind))
        _, _, normal = moved.axes(kind)
        d = self.geometry.corners() @ normal
        along = float(np.asarray(moved.center) @ normal)
        if along < d.min() - 1e-6 or along > d.max() + 1e-6:
            clipped = min(max(along, float(d.min())), float(d.max()))
            moved = self.crosshair.scrolled(kind, clipped - float(np.asarray(self.crosshair.center) @ normal))
        self.set_crosshair(moved)

    def rotate(self, kind: str, angle_rad: float, base: Crosshair | None = None) -> None:
        """Turn the crosshair lines shown in the `kind` view by `angle_rad` (counter-
        clockwise on screen) from `base` (default: now): the two other planes turn."""
        base = base if base is not None else self.crosshair
        if base is None or not math.isfinite(angle_rad):
            return
        self.set_crosshair(base.rotated(kind, angle_rad))

    def reset_rotation(self) -> None:
        if self.crosshair is not None:
            self.set_crosshair(self.crosshair.reset_rotation())

    def oblique(self) -> bool:
        return self.crosshair is not None and any(self.crosshair.oblique(k) for k in PLANES)

    # -- acquired slices (AI strip, corner text) ----------------------------------------------
    def nearest_slice(self) -> int | None:
        """The acquired slice nearest the crosshair centre (display order)."""
        if self.crosshair is None:
            return None
        k, _, _ = self.geometry.patient_to_index(np.asarray(self.crosshair.center))
        return int(np.clip(np.rint(float(k)), 0, self.geometry.shape[0] - 1))

    def go_to_slice(self, index: int) -> None:
        """Move the crosshair onto acquired slice `index`, keeping its in-plane place."""
        if self.crosshair is None:
            return
        geo = self.geometry
        k, r, c = geo.patient_to_index(np.asarray(self.crosshair.center))
        index = int(np.clip(index, 0, geo.shape[0] - 1))
        if index != int(np.rint(float(k))):
            self.set_crosshair(self.crosshair.moved_to(geo.index_to_patient(index, float(r), float(c))))

    # -- slab / window ----------------------------------------------------------------------
    def set_slab(self, projection: str | None = None, slab_mm: float | None = None) -> None:
        """Thick-slab projection ('thin', 'mip', 'minip', 'mean') and thickness in mm."""
        if projection is not None:
            if projection not in PROJECTIONS:
                raise ValueError(f"unknown projection {projection!r} (choose from {', '.join(PROJECTIONS)})")
            self.projection = projection
        if slab_mm is not None:
            self.slab_mm = float(min(MAX_SLAB_MM, max(0.0, slab_mm)))
        self.events.slab_changed.emit()

    def slab(self) -> tuple[str, float]:
        """(projection, mm) as reformat takes them: ('thin', 0) without a slab."""
        if self.projection == "thin" or self.slab_mm <= 0:
            return "thin", 0.0
        return self.projection, self.slab_mm

    def set_window(self, window: Window | None) -> None:
        self.window = window
        self.events.window_changed.emit(window)
