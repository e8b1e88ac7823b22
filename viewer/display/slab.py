"""Oblique planes and thick slabs sampled sheet by sheet (Qt-free): the fast paths
behind viewer.display.mpr.reformat for planes that do not run along the voxel axes.

Where a slab samples.  A regular volume (equal slice spacing, `VolumeGeometry.regular`)
maps output pixels to fractional voxel indices (k, r, c) affinely: pixel (i, j) lies
at q = o + i du + j dv, and a step of 1 mm along the plane normal moves the index by m.
The *sheets* of index axis a are the planes of whole index a (a = 0: the acquired
slices; 1: rows, i.e. coronal sheets of an axial stack; 2: columns).  A slab of
thickness T samples each pixel's normal line where it crosses the sheets of the
axis it crosses most often per mm (the dominant axis d = argmax |m_a|), at every
crossing within +-T/2 of the plane.  Each such sample is a bilinear interpolation
inside one sheet (the voxel grid's trilinear interpolation at that point), so one
OpenCV remap / warp per sample suffices and every voxel the line passes is seen.
For a plane along the voxel axes this is exactly the rule of the aligned path (the
voxels whose centres lie within the slab).  MIP / MinIP / mean reduce the samples
that lie inside the volume.

Kernels (all exact to that rule within the rounding of OpenCV's float-coordinate
bilinear path, which OpenCV 5 uses for 8U / 16U / 32F images; int16 volumes without
negative values are read through their uint16 view; int16 with negatives goes
through OpenCV's 16S path, which places samples at 1/32 pixel):

* `bands` -- single-oblique planes that contain an index axis a in {k, r} (the
  crosshair turned in the axial or coronal view): every output row (or column)
  lies at one fractional a, and the in-sheet sample positions are the same for
  all of them.  Each a-sheet is remapped once onto a small band (samples x plane
  width, maps shared by all sheets); an output line blends the two bands around
  its a and reduces over the samples.  Also the thin single-oblique plane (one
  sample).
* `strips` -- single-oblique planes that contain the column axis c (the crosshair
  turned in the sagittal view): each d-sheet feeds a rectangle of output rows, one
  cv2.warpAffine per sheet, no masks.
* `viewer.display.jit.slab_lines` -- the rest (double-oblique planes, any pixel
  type): one compiled loop per output pixel walks its normal line through the
  sheets of the dominant axis, samples each crossing bilinearly and reduces on the
  fly (no maps, no intermediate planes).
Thin planes that are not single-oblique go to `viewer.display.jit.thin_plane`
(trilinear, one compiled loop per row).
Volumes with unequal slice spacing keep mpr's own layered sampler (a plane every
voxel step along the normal, resampled through the actual slice positions).

Crossings within 1e-6 mm beyond +-T/2 count; samples within EDGE (index units) of
the hull of voxel centres count as inside.  Sheets run in two worker threads
(OpenCV releases the GIL); per-call OpenCV threading stays as configured
(cv2.setNumThreads).
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["EDGE", "FAST_KERNELS", "KERNELS", "Lattice", "Slab", "bands", "fill_value", "kernel",
           "lattice", "run_parallel", "sample_oblique", "single_oblique", "source_view", "strips"]

EDGE = 1e-5           # index units: slab samples this far outside the voxel hull count as inside
_THIN_EDGE = 1e-3     # thin planes: the tolerance of reslice.inside
_EPS = 1e-9
_ALIGN = 1e-9         # index components below this are zero (a plane containing an axis)
_OUTSIDE = -16.0      # map coordinate of samples that lie outside the volume
_FAST_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16), np.dtype(np.float32))


@dataclass(frozen=True)
class Lattice:
    """Output pixels in fractional voxel indices: pixel (i, j) at o + i*du + j*dv;
    one mm along the plane normal moves the index by m.  (k, r, c) order."""

    o: np.ndarray
    du: np.ndarray
    dv: np.ndarray
    m: np.ndarray
    shape: tuple[int, int, int]
    width: int
    height: int

    def along(self, axis: int, count: int, step: np.ndarray) -> np.ndarray:
        return self.o[axis] + np.arange(count, dtype=np.float64) * step[axis]


def lattice(geometry, grid) -> Lattice | None:
    """The affine index lattice of `grid` in a regular volume (None: not regular)."""
    if not geometry.regular:
        return None
    inv = np.linalg.inv(geometry.axis_vectors().T)
    p0 = geometry.positions[0]
    o = inv @ (np.asarray(grid.origin, dtype=np.float64) - p0)
    du = inv @ (np.asarray(grid.right, dtype=np.float64) * grid.spacing)
    dv = inv @ (np.asarray(grid.down, dtype=np.float64) * grid.spacing)
    m = inv @ np.asarray(grid.normal, dtype=np.float64)
    return Lattice(o, du, dv, m, tuple(geometry.shape), grid.width, grid.height)


@dataclass(frozen=True)
class Slab:
    """The crossings of a slab of `thickness` mm with the sheets of the dominant axis."""

    d: int                 # dominant index axis
    half: float            # half thickness in sheets of axis d
    count: int             # most samples one pixel can have
    rho: np.ndarray        # index change per sheet step (rho[d] == 1)
    tol: float             # 1e-6 mm in sheets: crossings this far beyond +-T/2 count

    @classmethod
    def of(cls, lat: Lattice, thickness: float) -> Slab:
        d = int(np.argmax(np.abs(lat.m)))
        per_mm = abs(float(lat.m[d]))
        half = thickness / 2.0 * per_mm
        tol = 1e-6 * per_mm
        return cls(d, half, int(math.floor(2 * (half + tol))) + 1, lat.m / lat.m[d], tol)

    def first_last(self, qd: np.ndarray, nd: int) -> tuple[np.ndarray, np.ndarray]:
        """First and last sheet (float arrays) inside the slab and the volume for
        lines through index positions qd along d."""
        first = np.maximum(np.ceil(qd - self.half - self.tol), 0.0)
        last = np.minimum(np.floor(qd + self.half + self.tol), nd - 1.0)
        return first, last

    def bound(self, first: np.ndarray, last: np.ndarray, qa: np.ndarray, qd: np.ndarray,
              axis: int, na: int) -> tuple[np.ndarray, np.ndarray]:
        """Narrow [first, last] to the sheets whose crossing lies inside 0..na-1 on
        `axis` (position qa + (sheet - qd) * rho[axis])."""
        rho = float(self.rho[axis])
        if abs(rho) < _ALIGN:
            bad = (qa < -EDGE) | (qa > na - 1 + EDGE)
            return first, np.where(bad, first - 1.0, last)
        s1 = qd + (-EDGE - qa) / rho
        s2 = qd + (na - 1 + EDGE - qa) / rho
        first = np.maximum(first, np.ceil(np.minimum(s1, s2) - _EPS))
        last = np.minimum(last, np.floor(np.maximum(s1, s2) + _EPS))
        return first, last


def single_oblique(lat: Lattice) -> tuple[int, bool] | None:
    """(a, rows) when the plane contains index axis a and every output row (rows=True)
    or column lies at one fractional a with the other two indices fixed per line:
    one of du / dv runs along a only, the other has no a component, m_a == 0."""
    for a in range(3):
        if abs(lat.m[a]) > _ALIGN * np.abs(lat.m).max():
            continue
        others = [x for x in range(3) if x != a]
        for rows, tied, free in ((True, lat.dv, lat.du), (False, lat.du, lat.dv)):
            scale = np.abs(tied).max()
            if (abs(free[a]) <= _ALIGN * np.abs(free).max() and abs(tied[a]) > 0
                    and all(abs(tied[x]) <= _ALIGN * scale for x in others)):
                return a, rows
    return None


def source_view(data: np.ndarray, nonnegative: bool) -> np.ndarray:
    """The array OpenCV reads: int16 without negative values through its uint16 view
    (OpenCV's exact float-coordinate path; same numbers)."""
    if data.dtype == np.int16 and nonnegative:
        return data.view(np.uint16)
    return data


def fill_value(dtype: np.dtype, how: str) -> float:
    """Value of samples outside the volume: never wins a MIP / MinIP, adds 0 to a mean."""
    dtype = np.dtype(dtype)
    if how == "mean":
        return 0.0
    if dtype.kind == "f":
        big = float(np.finfo(np.float32).max)
        return -big if how == "mip" else big
    info = np.iinfo(dtype)
    return float(info.min if how == "mip" else info.max)


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def workers() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def run_parallel(fn: Callable[[Sequence[int]], object], items: Sequence[int], minimum: int = 8) -> list:
    """fn over `workers()` consecutive parts of items (OpenCV / numpy release the GIL;
    neighbouring items share source data, so each worker keeps its own stretch); fewer
    than `minimum` items run in the calling thread."""
    global _POOL
    n = workers()
    if n == 1 or len(items) < max(minimum, 2):
        return [fn(items)]
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="slab")
    size = -(-len(items) // n)
    parts = [items[i * size:(i + 1) * size] for i in range(n)]
    return list(_POOL.map(fn, parts))


def _sheet(src: np.ndarray, axis: int, index: int) -> np.ndarray:
    """The 2-D sheet of `axis` at `index`: (rows, cols) for k, (slices, cols) for r."""
    return src[index] if axis == 0 else src[:, index, :]


# ------------------------------------------------------------------------------
# bands: single-oblique planes containing k or r

def bands(src: np.ndarray, lat: Lattice, a: int, rows: bool, thickness: float,
          how: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Thin plane (thickness 0) or slab of a plane containing axis a in {0, 1}; returns
    (values, valid mask), (height, width): the thin plane in src's dtype, slabs in
    float32.  None when the dominant axis is a (not for a plane containing a)."""
    n_a = lat.shape[a]
    tied, free = (lat.dv, lat.du) if rows else (lat.du, lat.dv)
    n_t, n_u = (lat.height, lat.width) if rows else (lat.width, lat.height)
    y_axis, x_axis = [x for x in range(3) if x != a]
    pos_t = lat.o[a] + np.arange(n_t, dtype=np.float64) * tied[a]
    q = {x: lat.o[x] + np.arange(n_u, dtype=np.float64) * free[x] for x in (y_axis, x_axis)}
    if thickness > 0:
        slab = Slab.of(lat, thickness)
        d = slab.d
        if d == a:
            return None
        b = y_axis if d == x_axis else x_axis
        first, last = slab.first_last(q[d], lat.shape[d])
        first, last = slab.bound(first, last, q[b], q[d], b, lat.shape[b])
        layer = np.arange(slab.count, dtype=np.float64)[:, None]
        sheet = first[None, :] + layer
        ok = sheet <= last[None, :]
        pos = {d: sheet, b: q[b][None, :] + (sheet - q[d][None, :]) * slab.rho[b]}
    else:
        ok = np.ones((1, n_u), bool)
        for x in (y_axis, x_axis):
            ok &= (q[x] >= -_THIN_EDGE) & (q[x] <= lat.shape[x] - 1 + _THIN_EDGE)
        pos = {x: q[x][None, :] for x in (y_axis, x_axis)}
    mx = np.clip(pos[x_axis], 0, lat.shape[x_axis] - 1)
    my = np.clip(pos[y_axis], 0, lat.shape[y_axis] - 1)
    mx = np.where(ok, mx, _OUTSIDE).astype(np.float32)
    my = np.where(ok, my, _OUTSIDE).astype(np.float32)
    ok_u = ok.any(axis=0)
    edge = EDGE if thickness > 0 else _THIN_EDGE
    ok_t = (pos_t >= -edge) & (pos_t <= n_a - 1 + edge)
    if not ok_t.any() or not ok_u.any():
        return np.zeros((lat.height, lat.width), np.float32), np.zeros((lat.height, lat.width), bool)
    if n_a > 1:
        a0 = np.clip(np.floor(pos_t), 0, n_a - 2).astype(np.intp)
        w = np.clip(pos_t - a0, 0.0, 1.0)
    else:
        a0 = np.zeros(n_t, np.intp)
        w = np.zeros(n_t)
    w[w < 1e-9] = 0.0
    lines = np.nonzero(ok_t)[0]
    s_lo = int(a0[lines].min())
    s_hi = int((a0[lines] + (w[lines] > 0)).max())
    fill = fill_value(src.dtype, how)
    layers = mx.shape[0]
    band = np.empty((s_hi - s_lo + 1, layers, n_u), src.dtype)
    sums = np.empty((band.shape[0], n_u), np.float32) if how == "mean" and thickness > 0 else None

    def sample(part: Sequence[int]) -> None:
        for slot in part:
            dst = band[slot]
            cv2.remap(_sheet(src, a, s_lo + slot), mx, my, cv2.INTER_LINEAR, dst=dst,
                      borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
            if sums is not None:
                sums[slot] = cv2.reduce(dst, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32F)[0]

    run_parallel(sample, list(range(band.shape[0])))
    if layers == 1 or sums is not None:
        # thin planes and means (the mean of the blend is the blend of the means): one
        # remap blends the sheets' rows linearly at each line's fractional a
        image = band[:, 0, :] if sums is None else sums
        at = np.clip(pos_t - s_lo, 0, band.shape[0] - 1).astype(np.float32)
        my_t = np.ascontiguousarray(np.broadcast_to(at[:, None], (n_t, n_u)))
        mx_t = np.ascontiguousarray(np.broadcast_to(np.arange(n_u, dtype=np.float32), (n_t, n_u)))
        out = cv2.remap(np.ascontiguousarray(image), mx_t, my_t, cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_REPLICATE)
        if sums is not None:
            out /= np.maximum(ok.sum(axis=0), 1)[None, :].astype(np.float32)
    else:
        from medviewer.viewer.display import jit

        out = jit.blend_reduce(band, a0, w, s_lo, lines, how)
    valid = ok_t[:, None] & ok_u[None, :]
    if not rows:
        out, valid = out.T, valid.T
    return out, valid


# ------------------------------------------------------------------------------
# strips: single-oblique slabs containing c

def strips(src: np.ndarray, lat: Lattice, rows: bool, thickness: float,
           how: str) -> tuple[np.ndarray, np.ndarray]:
    """Slab of a plane containing the column axis c whose output columns (rows=False)
    or rows lie at one c.  Each sheet of the dominant axis (k or r) is warped once onto
    the output rows (columns) whose slab it crosses; returns (values in src dtype or
    float32 sums for the mean, valid)."""
    if rows:   # work on the transposed plane: output columns along c
        t_lat = Lattice(lat.o, lat.dv, lat.du, lat.m, lat.shape, lat.height, lat.width)
        out, valid = strips(src, t_lat, False, thickness, how)
        return np.ascontiguousarray(out.T), np.ascontiguousarray(valid.T)
    slab = Slab.of(lat, thickness)
    d = slab.d
    b = 1 - d                    # the other of k, r (d is never c: the normal has no c part)
    H, W = lat.height, lat.width
    cols = lat.along(2, W, lat.du)
    ok_t = (cols >= -EDGE) & (cols <= lat.shape[2] - 1 + EDGE)
    qd, qb = lat.along(d, H, lat.dv), lat.along(b, H, lat.dv)
    first, last = slab.first_last(qd, lat.shape[d])
    first, last = slab.bound(first, last, qb, qd, b, lat.shape[b])
    ok_v = last >= first
    fill = fill_value(src.dtype, how)
    if not ok_t.any() or not ok_v.any():
        return np.zeros((H, W), np.float32), np.zeros((H, W), bool)
    t0, t1 = int(np.argmax(ok_t)), int(W - np.argmax(ok_t[::-1]))
    lo, hi = int(first[ok_v].min()), int(last[ok_v].max())
    sheets = np.arange(lo, hi + 1, dtype=np.float64)
    inside = (first[None, :] <= sheets[:, None]) & (last[None, :] >= sheets[:, None])
    has = inside.any(axis=1)
    v0 = np.argmax(inside, axis=1)
    v1 = H - np.argmax(inside[:, ::-1], axis=1)
    x_scale, x_off = float(lat.du[2]), float(lat.o[2] + t0 * lat.du[2])
    y_step = float(lat.dv[b] - lat.dv[d] * slab.rho[b])
    dtype_acc = np.float32 if how == "mean" else src.dtype
    op = cv2.max if how == "mip" else cv2.min

    def warp(part: Sequence[int]) -> np.ndarray:
        acc = np.full((H, t1 - t0), fill, dtype_acc)
        for s in part:
            if not has[s]:
                continue
            sheet = lo + int(s)
            j0, j1 = int(v0[s]), int(v1[s])
            y_off = float(lat.o[b] + (sheet - lat.o[d]) * slab.rho[b] + j0 * y_step)
            mat = np.array([[x_scale, 0.0, x_off], [0.0, y_step, y_off]])
            part_img = cv2.warpAffine(_sheet(src, d, sheet), mat, (t1 - t0, j1 - j0),
                                      flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
            roi = acc[j0:j1]
            if how == "mean":
                cv2.accumulate(part_img, roi)
            else:
                op(roi, part_img, dst=roi)
        return acc

    parts = run_parallel(warp, list(range(sheets.size)))
    acc = parts[0]
    for other in parts[1:]:
        if how == "mean":
            acc += other
        else:
            op(acc, other, dst=acc)
    if how == "mean":
        acc = acc / np.maximum(last - first + 1, 1)[:, None].astype(np.float32)
    out = np.zeros((H, W), acc.dtype)
    out[:, t0:t1] = acc
    valid = ok_v[:, None] & ok_t[None, :]
    return out, valid


# ------------------------------------------------------------------------------
# dispatch


KERNELS = ("bands", "strips", "lines", "thin")
FAST_KERNELS = ("bands", "strips", "thin")   # tens of ms or less for a 400x512x512 volume


def kernel(data: np.ndarray, lat: Lattice | None, thickness: float) -> str | None:
    """Which kernel samples this plane: 'bands', 'strips' (OpenCV, single-oblique
    planes), 'lines' (compiled, other slabs), 'thin' (compiled, other thin planes), or
    None (the caller's general sampler: irregular slice spacing, pixel types that are
    not numbers)."""
    from medviewer.viewer.display.jit import DTYPES

    if lat is None or data.dtype not in DTYPES:
        return None
    fast = data.dtype in _FAST_DTYPES and max(lat.shape) < 32767 and max(lat.width, lat.height) < 32767
    single = single_oblique(lat) if fast else None
    if thickness <= 0:
        return "bands" if single is not None and single[0] != 2 else "thin"
    if single is not None and single[0] == 2:
        return "strips"
    if single is not None and single[0] != Slab.of(lat, thickness).d:
        return "bands"
    return "lines"


def sample_oblique(data: np.ndarray, geometry, grid, thickness: float, how: str,
                   nonnegative: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """A plane that does not run along the voxel axes: the thin plane (thickness 0,
    `how` ignored) or the `how` projection of the slab, as (values in the data's
    dtype, valid mask); None where `kernel` names none."""
    lat = lattice(geometry, grid)
    name = kernel(data, lat, thickness)
    if name is None:
        return None
    assert lat is not None
    if name in ("lines", "thin"):
        from medviewer.viewer.display import jit

        if name == "thin":
            values, valid = jit.thin_plane(data, lat)
        else:
            values, valid = jit.slab_lines(data, lat, Slab.of(lat, thickness), how)
        if values.dtype != data.dtype:     # means and float data: float32 (0 outside)
            from medviewer.viewer.display.reslice import to_dtype

            values = to_dtype(values, data.dtype)
        return values, valid              # the kernels write 0 outside the volume
    src = source_view(data, nonnegative)
    if name == "bands":
        a, rows = single_oblique(lat) or (0, True)
        values, valid = bands(src, lat, a, rows, thickness, how if thickness > 0 else "thin")
    else:
        values, valid = strips(src, lat, (single_oblique(lat) or (2, False))[1], thickness, how)
    if values.dtype != src.dtype:
        from medviewer.viewer.display.reslice import to_dtype

        values = to_dtype(np.ascontiguousarray(values, dtype=np.float32), src.dtype)
    values = np.where(valid, values, values.dtype.type(0))
    return values.view(data.dtype) if values.dtype != data.dtype else values, valid
