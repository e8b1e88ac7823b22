"""Multiplanar reformats, oblique planes and thick-slab projections (Qt-free).

    volume = build_volume(series, store)            # viewer.io.volume
    grid = plane_grid(volume.geometry, "coronal")   # the middle coronal plane
    plane = reformat(volume, grid, slab_mm=20, projection="mip")
    grey = render_plane(plane, window)              # uint8, the display pipeline's windowing

Display convention (radiological, PS3.3 C.7.6.2.1.1 LPS axes):

    axial     patient right on the image left, anterior at the top; planes head -> feet
    coronal   patient right on the image left, superior at the top; anterior -> posterior
    sagittal  anterior on the image left, superior at the top;      right -> left

Reformatted pixels are square at the series' in-plane pixel spacing (the smaller
of the two).  A `PlaneGrid` fixes the output pixels in the patient (origin,
right/down/normal unit vectors, spacing, size); `Crosshair` is the linked state of
three views (a point and a rotation): moving or rotating it gives the three grids.
Oblique planes are the standard ones turned by the crosshair's rotation.

Image coordinates follow the measurement convention of viewer.measure: output
pixel (column i, row j) covers [i, i+1) x [j, j+1), its centre is (i+0.5, j+0.5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import cv2
import numpy as np

from medviewer.viewer.display.meta import ImageMeta, Window
from medviewer.viewer.display.orientation import EdgeLabels, edge_labels
from medviewer.viewer.display.pipeline import Renderer, default_window
from medviewer.viewer.display import reslice
from medviewer.viewer.display.slab import FAST_KERNELS, kernel, lattice, sample_oblique

__all__ = ["Crosshair", "PLANES", "PROJECTIONS", "Plane", "PlaneGrid", "STANDARD_AXES",
           "cut_line", "grid_at", "plane_grid", "plane_offsets", "reformat", "render_plane",
           "rotation_about", "slab_speed", "volume_window"]

PLANES = ("axial", "coronal", "sagittal")
PROJECTIONS = ("thin", "mip", "minip", "mean")
#: (right, down, normal): image columns grow along right, rows along down, and the
#: stack of planes runs along normal (the display convention of stacks)
STANDARD_AXES: dict[str, tuple[tuple[float, float, float], ...]] = {
    "axial": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0)),
    "coronal": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
    "sagittal": ((0.0, 1.0, 0.0), (0.0, 0.0, -1.0), (1.0, 0.0, 0.0)),
}
_ALIGNED = 1.0 - 1e-9


def _vec(v: Sequence[float]) -> tuple[float, float, float]:
    return (float(v[0]), float(v[1]), float(v[2]))


@dataclass(frozen=True)
class PlaneGrid:
    """The output pixels of a reformat, fixed in the patient (LPS, mm).

    The centre of output pixel (column i, row j) lies at
    origin + i * spacing * right + j * spacing * down.
    """

    origin: tuple[float, float, float]
    right: tuple[float, float, float]
    down: tuple[float, float, float]
    normal: tuple[float, float, float]   # the direction in which the stack of planes runs
    spacing: float
    width: int
    height: int

    def to_patient(self, x, y) -> np.ndarray:
        """Patient points of image coordinates (x = column, y = row; pixel (i, j)
        spans [i, i+1) x [j, j+1)), broadcast: returns (..., 3)."""
        x = np.asarray(x, dtype=np.float64) - 0.5
        y = np.asarray(y, dtype=np.float64) - 0.5
        return (np.asarray(self.origin) + x[..., None] * self.spacing * np.asarray(self.right)
                + y[..., None] * self.spacing * np.asarray(self.down))

    def from_patient(self, points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, distance along normal) of patient points; the inverse of to_patient."""
        q = np.asarray(points, dtype=np.float64) - np.asarray(self.origin)
        return (q @ np.asarray(self.right) / self.spacing + 0.5,
                q @ np.asarray(self.down) / self.spacing + 0.5, q @ np.asarray(self.normal))

    def center(self) -> np.ndarray:
        return self.to_patient(self.width / 2.0, self.height / 2.0)

    def labels(self, max_letters: int = 3) -> EdgeLabels:
        """Orientation letters for the four edges of this plane."""
        return edge_labels(self.right, self.down, max_letters)

    def offset_along_normal(self, point: Sequence[float]) -> float:
        """Signed distance of a patient point from this plane along its normal."""
        return float((np.asarray(point, dtype=np.float64) - np.asarray(self.origin))
                     @ np.asarray(self.normal))


def rotation_about(axis: Sequence[float], angle_rad: float) -> np.ndarray:
    """3x3 rotation by `angle_rad` about the unit vector `axis` (right-handed; Rodrigues)."""
    a = np.asarray(axis, dtype=np.float64)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + math.sin(angle_rad) * k + (1 - math.cos(angle_rad)) * (k @ k)


def _axes(kind: str, rotation: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if kind not in STANDARD_AXES:
        raise ValueError(f"unknown plane {kind!r} (choose from {', '.join(PLANES)})")
    right, down, normal = (np.asarray(v, dtype=np.float64) for v in STANDARD_AXES[kind])
    if rotation is not None:
        right, down, normal = rotation @ right, rotation @ down, rotation @ normal
    return right, down, normal


def _default_spacing(geometry) -> float:
    return float(min(geometry.pixel_spacing))


def plane_grid(geometry, kind: str, center: Sequence[float] | None = None,
               rotation: np.ndarray | None = None, spacing: float | None = None) -> PlaneGrid:
    """The grid of the `kind` plane ('axial', 'coronal', 'sagittal'), turned by
    `rotation` (3x3, default none) and passing through `center` (default the
    volume's centre), covering the whole volume; square pixels of `spacing` mm
    (default the smaller in-plane pixel spacing)."""
    right, down, normal = _axes(kind, rotation)
    s = float(spacing) if spacing is not None else _default_spacing(geometry)
    c = np.asarray(geometry.center() if center is None else center, dtype=np.float64)
    rel = geometry.corners() - c
    u, v = rel @ right, rel @ down
    umin, vmin = float(u.min()), float(v.min())
    width = int(math.floor((float(u.max()) - umin) / s + 1e-6)) + 1
    height = int(math.floor((float(v.max()) - vmin) / s + 1e-6)) + 1
    origin = c + umin * right + vmin * down
    return PlaneGrid(_vec(origin), _vec(right), _vec(down), _vec(normal), s, width, height)


def plane_offsets(geometry, kind: str, rotation: np.ndarray | None = None,
                  spacing: float | None = None) -> np.ndarray:
    """Positions (mm along the plane normal, increasing) of the stack of `kind` planes
    through the volume, in display order: the acquired slices when the plane is the
    acquisition plane, the voxel rows / columns for the other axis-aligned planes,
    else steps of `spacing` across the volume.  `--slice K` indexes this array."""
    _, _, normal = _axes(kind, rotation)
    along = np.asarray(geometry.along)
    if abs(float(normal @ along)) >= _ALIGNED and not geometry.sheared:
        d = geometry.positions @ normal
        return np.sort(d)
    vectors = geometry.axis_vectors()
    p0 = geometry.positions[0]
    for axis in (1, 2):
        v = vectors[axis]
        length = float(np.linalg.norm(v))
        if abs(float(normal @ v) / length) >= _ALIGNED and geometry.aligned_axes() is not None:
            count = geometry.shape[axis]
            return np.sort(float(p0 @ normal) + np.arange(count) * float(normal @ v))
    s = float(spacing) if spacing is not None else _default_spacing(geometry)
    d = geometry.corners() @ normal
    count = int(math.floor((float(d.max()) - float(d.min())) / s + 1e-6)) + 1
    return float(d.min()) + np.arange(count) * s


@dataclass(frozen=True, eq=False)
class Plane:
    """One reformatted image: stored-dtype values (float32 for float volumes) on `grid`."""

    pixels: np.ndarray              # (height, width)
    valid: np.ndarray | None        # True where the plane lies inside the volume; None: all
    grid: PlaneGrid
    meta: ImageMeta                 # the series' display metadata, sized to this plane
    projection: str = "thin"
    thickness_mm: float = 0.0
    draft: bool = False             # computed at half resolution (reformat(..., draft=True))

    def labels(self) -> EdgeLabels:
        return self.grid.labels()


def _aligned_plan(geometry, grid: PlaneGrid):
    """(normal axis, normal index, col axis, col positions, row axis, row positions) when
    the grid's axes run along the volume's index axes, else None."""
    axes = geometry.aligned_axes()
    if axes is None:
        return None
    vol_dirs = geometry.axis_vectors()
    units = [v / np.linalg.norm(v) for v in vol_dirs]

    def axis_of(direction: Sequence[float]) -> int | None:
        for a, u in enumerate(units):
            if abs(float(np.dot(u, direction))) >= _ALIGNED:
                return a
        return None

    col_axis, row_axis, normal_axis = axis_of(grid.right), axis_of(grid.down), axis_of(grid.normal)
    if None in (col_axis, row_axis, normal_axis) or len({col_axis, row_axis, normal_axis}) < 3:
        return None
    origin = np.asarray(grid.origin)
    cols = origin + np.arange(grid.width)[:, None] * grid.spacing * np.asarray(grid.right)
    rows = origin + np.arange(grid.height)[:, None] * grid.spacing * np.asarray(grid.down)
    col_idx = geometry.patient_to_index(cols)[col_axis]
    row_idx = geometry.patient_to_index(rows)[row_axis]
    normal_idx = float(geometry.patient_to_index(origin)[normal_axis])
    return normal_axis, normal_idx, col_axis, col_idx, row_axis, row_idx


def _slab_range(geometry, axis: int, index: float, thickness: float) -> tuple[int, int] | None:
    """Indices of the voxels along `axis` whose centres lie within the slab."""
    n = geometry.shape[axis]
    if axis == 0:
        d = float(geometry.index_to_offset(np.asarray(index)))
        centres = geometry.offsets
        inside = np.nonzero(np.abs(centres - d) <= thickness / 2.0 + 1e-6)[0]
    else:
        step = geometry.pixel_spacing[axis - 1]
        inside = np.nonzero(np.abs(np.arange(n) - index) * step <= thickness / 2.0 + 1e-6)[0]
    if inside.size == 0:
        return None
    return int(inside[0]), int(inside[-1])


def _index_maps(geometry, grid: PlaneGrid, shift: float = 0.0) -> tuple[np.ndarray, ...]:
    """Fractional (k, r, c) of every output pixel centre (float32, (height, width))."""
    origin = np.asarray(grid.origin) + shift * np.asarray(grid.normal)
    right = np.asarray(grid.right) * grid.spacing
    down = np.asarray(grid.down) * grid.spacing
    u = np.arange(grid.width, dtype=np.float64)
    v = np.arange(grid.height, dtype=np.float64)
    p0 = geometry.positions[0]
    if geometry.regular:
        m = geometry.axis_vectors().T            # index (k, r, c) -> patient offset
        inv = np.linalg.inv(m)
        o = inv @ (origin - p0)
        du, dv = inv @ right, inv @ down
        return tuple((np.float32(o[a]) + (dv[a] * v).astype(np.float32)[:, None]
                      + (du[a] * u).astype(np.float32)[None, :]) for a in range(3))
    along = geometry.along
    col_dir = geometry.col_dir / geometry.pixel_spacing[0]
    row_dir = geometry.row_dir / geometry.pixel_spacing[1]
    rel = origin - p0
    d = (rel @ along + (v * (down @ along))[:, None] + (u * (right @ along))[None, :])
    k = geometry.offset_to_index(d)
    sr, sc = geometry.slice_shift(k)
    r = rel @ col_dir + (v * (down @ col_dir))[:, None] + (u * (right @ col_dir))[None, :] - sr
    c = rel @ row_dir + (v * (down @ row_dir))[:, None] + (u * (right @ row_dir))[None, :] - sc
    return k.astype(np.float32), r.astype(np.float32), c.astype(np.float32)


def reformat(volume, grid: PlaneGrid, slab_mm: float = 0.0, projection: str = "thin",
             draft: bool = False) -> Plane:
    """Sample `volume` (viewer.io.volume.Volume) on `grid`: a thin plane (trilinear), or a
    slab of `slab_mm` centred on it reduced by 'mip', 'minip' or 'mean' over the points
    where each pixel's normal crosses the voxel sheets (viewer.display.slab).

    `draft=True` (while the crosshair is dragged): a slab without a fast kernel
    (`slab_speed` is 'slow': double-oblique planes, irregular slice spacing) is sampled
    on a grid of twice the spacing and interpolated to `grid`, about 4x faster, and
    the Plane says `draft=True`; compute it again without `draft` when the mouse
    stops.  Every other plane is exact whatever `draft` says (Plane.draft False)."""
    if projection not in PROJECTIONS:
        raise ValueError(f"unknown projection {projection!r} (choose from {', '.join(PROJECTIONS)})")
    if projection != "thin" and not slab_mm > 0:
        raise ValueError("a projection needs a slab thickness > 0 mm")
    if projection == "thin":
        slab_mm = 0.0
    if draft and slab_mm > 0 and slab_speed(volume, grid, slab_mm) == "slow":
        return _draft(volume, grid, slab_mm, projection)
    geometry, data = volume.geometry, volume.data
    meta = replace(volume.meta, rows=grid.height, columns=grid.width,
                   pixel_spacing=(grid.spacing, grid.spacing))
    plan = _aligned_plan(geometry, grid)
    valid: np.ndarray | None = None
    if plan is not None:
        normal_axis, normal_idx, col_axis, col_idx, row_axis, row_idx = plan
        slab = _slab_range(geometry, normal_axis, normal_idx, slab_mm) if slab_mm > 0 else None
        values = reslice.sample_aligned(data, normal_axis, normal_idx, col_axis, col_idx,
                                        row_axis, row_idx, slab, projection)
        n_norm = data.shape[normal_axis]
        ok_norm = -1e-3 <= normal_idx <= n_norm - 1 + 1e-3 or slab is not None
        ok_cols = (col_idx >= -1e-3) & (col_idx <= data.shape[col_axis] - 1 + 1e-3)
        ok_rows = (row_idx >= -1e-3) & (row_idx <= data.shape[row_axis] - 1 + 1e-3)
        if not (ok_norm and ok_cols.all() and ok_rows.all()):
            valid = np.outer(ok_rows, ok_cols) & ok_norm
    else:
        nonneg = volume_nonnegative(volume)
        sampled = sample_oblique(data, geometry, grid, slab_mm, projection, nonneg)
        if sampled is not None:
            values, valid = sampled
        elif slab_mm > 0:
            # irregular slice spacing: layers every voxel step along the normal, each
            # resampled through the actual slice positions
            step = float(min(geometry.slice_spacing, *geometry.pixel_spacing))
            count = max(1, int(math.floor(slab_mm / step + 1e-6)) + 1)
            shifts = (np.arange(count) - (count - 1) / 2.0) * step
            layers = [reslice.sample_general(data, *_index_maps(geometry, grid, t), nonneg)
                      for t in shifts]
            values, valid = reslice.reduce_layers(layers, projection, data.dtype)
        else:
            values, valid = reslice.sample_general(data, *_index_maps(geometry, grid), nonneg)
        if valid.all():
            valid = None
    pixels = values if values.dtype == data.dtype else reslice.to_dtype(values, data.dtype)
    return Plane(pixels, valid, grid, meta, projection, slab_mm)


def slab_speed(volume, grid: PlaneGrid, slab_mm: float) -> str:
    """'fast' when a `slab_mm` slab on `grid` has a fast path (planes along the voxel
    axes, single-oblique planes: tens of ms for 20 mm of a 400x512x512 volume on 2
    cores), else 'slow' (double-oblique planes, irregular spacing: about 4x that, or
    more): the viewer asks for a draft while dragging those."""
    if _aligned_plan(volume.geometry, grid) is not None:
        return "fast"
    name = kernel(volume.data, lattice(volume.geometry, grid), slab_mm)
    return "fast" if name in FAST_KERNELS else "slow"


def _draft(volume, grid: PlaneGrid, slab_mm: float, projection: str) -> Plane:
    """The slab on a grid of twice the spacing whose pixel centres sit between four of
    `grid`'s (coarse pixel (i, j) at fine position (2i - 1.5, 2j - 1.5)), enlarged 2x
    bilinearly (cv2.resize's pixel-centre convention is that alignment; every fine
    pixel lies between coarse ones, none on the resize's replicated border); pixels
    next to the volume's edge count as outside when a coarse pixel they blend is."""
    shift = -1.5 * grid.spacing * (np.asarray(grid.right) + np.asarray(grid.down))
    coarse = replace(grid, origin=tuple(np.asarray(grid.origin) + shift), spacing=2.0 * grid.spacing,
                     width=grid.width // 2 + 2, height=grid.height // 2 + 2)
    small = reformat(volume, coarse, slab_mm, projection)
    size = (2 * coarse.width, 2 * coarse.height)
    crop = (slice(2, 2 + grid.height), slice(2, 2 + grid.width))
    stored = small.pixels
    if stored.dtype in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16), np.dtype(np.float32)):
        pixels = cv2.resize(stored, size, interpolation=cv2.INTER_LINEAR)[crop]
    else:
        pixels = reslice.to_dtype(cv2.resize(stored.astype(np.float32), size,
                                             interpolation=cv2.INTER_LINEAR)[crop], volume.data.dtype)
    pixels = np.ascontiguousarray(pixels)
    valid = None
    if small.valid is not None:
        # 255 only where every coarse pixel that contributes is inside
        inside = cv2.resize(small.valid.view(np.uint8) * np.uint8(255), size, interpolation=cv2.INTER_LINEAR)
        valid = np.ascontiguousarray(inside[crop] == 255)
        pixels[~valid] = 0
    meta = replace(volume.meta, rows=grid.height, columns=grid.width,
                   pixel_spacing=(grid.spacing, grid.spacing))
    return Plane(pixels, valid, grid, meta, projection, slab_mm, draft=True)


def volume_nonnegative(volume) -> bool:
    """True when an integer volume holds no negative value (computed once)."""
    cached = getattr(volume, "_nonnegative", None)
    if cached is None:
        data = volume.data
        cached = data.dtype.kind == "u" or (data.dtype.kind == "i" and int(data.min()) >= 0)
        try:
            volume._nonnegative = cached
        except AttributeError:
            pass
    return bool(cached)


def volume_window(volume) -> Window:
    """The series' own window (header, else an automatic one over a sample of the
    whole volume, computed once: no brightness jumps between planes)."""
    cached = getattr(volume, "_default_window", None)
    if cached is not None:
        return cached
    data = volume.data
    step = max(1, data.shape[0] // 16)
    window = default_window(volume.meta, np.ascontiguousarray(data[::step]).reshape(-1, data.shape[2]))
    try:
        volume._default_window = window
    except AttributeError:
        pass
    return window


_RENDERER = Renderer()


def render_plane(plane: Plane, window: Window | None = None,
                 renderer: Renderer | None = None) -> np.ndarray:
    """uint8 grey levels of a reformat through the display pipeline (rescale, VOI,
    MONOCHROME1); `window` None means the series' own window.  Outside the volume: black."""
    r = renderer or _RENDERER
    grey = r.render(np.ascontiguousarray(plane.pixels), plane.meta, window)
    if plane.valid is not None:
        grey = np.where(plane.valid, grey, np.uint8(0))
    return grey


_IDENTITY = ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
Matrix = tuple[tuple[float, float, float], ...]


def _matrix(m: np.ndarray) -> Matrix:
    return tuple(_vec(row) for row in m)


def grid_at(geometry, kind: str, index: int | None = None, rotation: np.ndarray | None = None,
            spacing: float | None = None) -> PlaneGrid:
    """Plane number `index` (0-based, display order; default the middle one) of the
    stack of `kind` planes (`plane_offsets`).  IndexError names the valid range."""
    offsets = plane_offsets(geometry, kind, rotation, spacing)
    count = len(offsets)
    if index is None:
        index = count // 2
    if not 0 <= index < count:
        raise IndexError(f"plane {index} is out of range: {count} {kind} plane(s), 0..{count - 1}")
    _, _, normal = _axes(kind, rotation)
    c = np.asarray(geometry.center())
    c = c + (float(offsets[index]) - float(c @ normal)) * normal
    return plane_grid(geometry, kind, c, rotation, spacing)


def cut_line(view: PlaneGrid, other: PlaneGrid,
             through: Sequence[float]) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """Where `other` cuts `view`, as the two image points (x, y) of that line on the
    view's border (a crosshair line to draw); None when the planes are parallel.
    `through` is a patient point on both planes (the crosshair centre)."""
    d = np.cross(np.asarray(view.normal), np.asarray(other.normal))
    if np.linalg.norm(d) < 1e-9:
        return None
    dx, dy = float(d @ np.asarray(view.right)), float(d @ np.asarray(view.down))
    x0, y0, _ = view.from_patient(np.asarray(through, dtype=np.float64))
    x0, y0 = float(x0), float(y0)
    ts = []
    for p0, dp, lo, hi in ((x0, dx, 0.0, float(view.width)), (y0, dy, 0.0, float(view.height))):
        if abs(dp) < 1e-12:
            if not lo <= p0 <= hi:
                return None
            continue
        ts.append(sorted(((lo - p0) / dp, (hi - p0) / dp)))
    t0 = max(t[0] for t in ts)
    t1 = min(t[1] for t in ts)
    if t0 > t1:
        return None
    return (x0 + t0 * dx, y0 + t0 * dy), (x0 + t1 * dx, y0 + t1 * dy)


@dataclass(frozen=True)
class Crosshair:
    """Linked MPR state of three views: the patient point they share and the rotation
    of each view's axes (identity: the standard axial / coronal / sagittal planes).
    Immutable: each change returns a new state, so a viewport re-renders only when
    its own grid changed."""

    center: tuple[float, float, float]
    rotations: tuple[Matrix, Matrix, Matrix] = (_IDENTITY, _IDENTITY, _IDENTITY)

    @classmethod
    def at_center(cls, geometry) -> Crosshair:
        return cls(_vec(geometry.center()))

    def rotation(self, kind: str) -> np.ndarray:
        return np.asarray(self.rotations[PLANES.index(kind)], dtype=np.float64)

    def oblique(self, kind: str) -> bool:
        return not np.allclose(self.rotation(kind), np.eye(3), atol=1e-12)

    def axes(self, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(right, down, normal) of the `kind` view."""
        return _axes(kind, self.rotation(kind))

    def grid(self, geometry, kind: str, spacing: float | None = None) -> PlaneGrid:
        """The `kind` view's plane through the crosshair point."""
        rot = self.rotation(kind) if self.oblique(kind) else None
        return plane_grid(geometry, kind, self.center, rot, spacing)

    def moved_to(self, point: Sequence[float]) -> Crosshair:
        """Click / drag in a view: the patient point under the cursor (PlaneGrid.to_patient)."""
        return replace(self, center=_vec(point))

    def scrolled(self, kind: str, distance_mm: float) -> Crosshair:
        """Scroll the `kind` view by `distance_mm` along its normal (the others follow)."""
        _, _, normal = self.axes(kind)
        return replace(self, center=_vec(np.asarray(self.center) + distance_mm * normal))

    def rotated(self, kind: str, angle_rad: float) -> Crosshair:
        """Rotate the crosshair lines shown in the `kind` view by `angle_rad`, counter-
        clockwise on screen: the two other planes turn about that view's normal; the
        `kind` view itself does not move (as in 3D Slicer and Cornerstone's crosshairs)."""
        right, down, _ = self.axes(kind)
        # screen x = right, y = down: x cross y points into the screen, so a turn that
        # looks counter-clockwise is a negative turn about it
        rot = rotation_about(np.cross(right, down), -angle_rad)
        rotations = tuple(self.rotations[i] if name == kind else _matrix(rot @ self.rotation(name))
                          for i, name in enumerate(PLANES))
        return replace(self, rotations=rotations)  # type: ignore[arg-type]

    def reset_rotation(self) -> Crosshair:
        return replace(self, rotations=(_IDENTITY, _IDENTITY, _IDENTITY))

    def lines(self, geometry, kind: str):
        """{other kind: (p0, p1)}: the crosshair lines to draw in the `kind` view."""
        view = self.grid(geometry, kind)
        return {other: cut_line(view, self.grid(geometry, other), self.center)
                for other in PLANES if other != kind}
