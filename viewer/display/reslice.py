"""Sampling a volume on a plane: the kernels behind viewer.display.mpr (Qt-free).

Two paths give the same values (trilinear interpolation, voxel centres at
integer indices):

* `sample_aligned`: the plane's axes run along the volume's index axes (an
  axial, coronal or sagittal plane of a stack acquired along the patient axes).
  The plane is cut out of the array with numpy slicing and resampled along each
  axis by exact linear interpolation; slabs reduce the voxels in the slab with
  numpy / OpenCV reductions (the sagittal one transposes with OpenCV so that the
  reduction runs over contiguous rows).
* `sample_general`: any plane through any volume, given the fractional index of
  every pixel; mpr uses it for volumes with unequal slice spacing (regular volumes'
  oblique planes go through viewer.display.slab and viewer.display.jit).  Fractional indices (k, r, c) of
  every output pixel are computed from the plane (affine, or through the actual
  slice positions), and the array is read as a 2-D image of stacked slices by
  `cv2.remap` twice (slice k and slice k + 1, bilinear in-plane) and blended along
  k in float32.  OpenCV's remap takes coordinates below 32767, so the output is cut
  into tiles whose slices fit in one such window (63 slices of 512 rows).
  With float maps OpenCV 5 interpolates 8U, 16U and 32F images at the exact float32
  position (an int16 volume without negative values is read through its uint16
  view); its 16S path, used for int16 volumes with negative values, still places
  samples at 1/32 pixel (INTER_BITS = 5: within 1/64 pixel of the point, 0.01 mm at
  0.7 mm pixels).  Each remap rounds to a stored value, so a thin oblique plane is
  within 1 stored value of the trilinear value (two roundings) on the exact paths.

Oblique planes and slabs of regular volumes go through viewer.display.slab.

Results stay in the stored dtype (rounded) so the display pipeline's LUT /
affine windowing applies unchanged; float volumes stay float32.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

_REMAP_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int16), np.dtype(np.float32))
_REDUCE_DTYPES = _REMAP_DTYPES  # cv2.reduce MAX/MIN/SUM on these
_SHRT_MAX = 32767
EPS = 1e-6


_CV_DEPTH = {np.dtype(np.uint8): cv2.CV_8U, np.dtype(np.uint16): cv2.CV_16U,
             np.dtype(np.int16): cv2.CV_16S, np.dtype(np.float32): cv2.CV_32F}


def to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Round float samples back to the volume's stored dtype (nearest, saturating)."""
    dtype = np.dtype(dtype)
    if values.dtype == dtype:
        return values
    if dtype.kind == "f":
        return values.astype(np.float32, copy=False)
    if dtype in _CV_DEPTH and values.dtype == np.float32 and values.ndim == 2:
        return cv2.add(values, 0.0, dtype=_CV_DEPTH[dtype])   # cvRound + saturate_cast
    info = np.iinfo(dtype)
    out = np.rint(values)
    np.clip(out, info.min, info.max, out=out)
    return out.astype(dtype)


# ------------------------------------------------------------------------------
# aligned path

def _lerp_axis(arr: np.ndarray, axis: int, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of a 2-D `arr` along `axis` at fractional positions `pos`
    (clipped to [0, n-1]): a plain slice (no copy) when pos are consecutive integers,
    a gather for other whole numbers, else float32 a + (b - a) * w."""
    n = arr.shape[axis]
    pos = np.clip(np.asarray(pos, dtype=np.float64), 0, n - 1)
    if pos.size and np.all(np.abs(pos - np.rint(pos)) < EPS):
        idx = np.rint(pos).astype(np.intp)
        if idx.size > 1 and np.all(np.diff(idx) == idx[1] - idx[0]) and abs(idx[1] - idx[0]) == 1:
            step = int(idx[1] - idx[0])
            stop = idx[-1] + step
            sl = slice(int(idx[0]), None if stop < 0 else int(stop), step)
            return arr[(slice(None),) * axis + (sl,)]
        return np.take(arr, idx, axis=axis)
    if n == 1:
        return np.take(arr, np.zeros(pos.size, np.intp), axis=axis).astype(np.float32)
    i0 = np.minimum(np.floor(pos).astype(np.intp), n - 2)
    w = (pos - i0).astype(np.float32)
    a = np.take(arr, i0, axis=axis)
    b = np.take(arr, i0 + 1, axis=axis)
    if arr.ndim == 2 and a.dtype in _CV_DEPTH:
        # OpenCV's SIMD arithmetic on the gathered rows / columns (2 threads)
        wfull = np.repeat(w, a.shape[1]).reshape(a.shape) if axis == 0 else \
            np.tile(w, (a.shape[0], 1))
        diff = cv2.subtract(b, a, dtype=cv2.CV_32F)
        cv2.multiply(diff, wfull, dst=diff)
        return cv2.add(diff, a, dtype=cv2.CV_32F)
    shape = [1] * arr.ndim
    shape[axis] = w.size
    w = w.reshape(shape)
    a = a.astype(np.float32)
    b = b.astype(np.float32)
    b -= a
    b *= w
    b += a
    return b


def _reduce_last_axis(flat: np.ndarray, how: str) -> np.ndarray:
    """Reduce the columns of a 2-D strided view: OpenCV transposes it so the reduction
    runs down contiguous rows (numpy reduces short inner axes slowly)."""
    if flat.dtype in _REDUCE_DTYPES and flat.shape[1] > 1:
        t = cv2.transpose(flat)
        if how == "mip":
            return cv2.reduce(t, 0, cv2.REDUCE_MAX)[0]
        if how == "minip":
            return cv2.reduce(t, 0, cv2.REDUCE_MIN)[0]
        return cv2.reduce(t, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32F)[0] / np.float32(flat.shape[1])
    if how == "mip":
        return flat.max(axis=1)
    if how == "minip":
        return flat.min(axis=1)
    return flat.mean(axis=1, dtype=np.float64).astype(np.float32)


def reduce_slab(data: np.ndarray, axis: int, lo: int, hi: int, how: str) -> np.ndarray:
    """MIP / MinIP / mean of data[..., lo:hi+1, ...] along `axis` (inclusive indices)."""
    if hi <= lo:
        return np.take(data, lo, axis=axis)
    if axis == 2:
        n, rows, cols = data.shape
        flat = data.reshape(n * rows, cols)[:, lo:hi + 1]
        return _reduce_last_axis(flat, how).reshape(n, rows)
    part = data[lo:hi + 1] if axis == 0 else data[:, lo:hi + 1, :]
    if how == "mip":
        return part.max(axis=axis)
    if how == "minip":
        return part.min(axis=axis)
    return part.sum(axis=axis, dtype=np.float32) / np.float32(hi - lo + 1)


def _at(data: np.ndarray, axis: int, k: int) -> np.ndarray:
    return data[(slice(None),) * axis + (k,)]


def _cut(data: np.ndarray, axis: int, index: float) -> np.ndarray:
    """The 2-D plane at fractional `index` along `axis`: a view of the array when
    the index is a whole number, else the linear blend of the two planes around it."""
    n = data.shape[axis]
    x = min(max(float(index), 0.0), n - 1.0)
    k = int(round(x))
    if abs(x - k) < EPS:
        return _at(data, axis, k)
    k0 = min(int(math.floor(x)), n - 2)
    w = x - k0
    if axis == 2 and data.dtype in _CV_DEPTH:
        # the two neighbouring columns share cache lines: gather them in one pass
        nk, rows, cols = data.shape
        pair = cv2.transpose(data.reshape(nk * rows, cols)[:, k0:k0 + 2])
        out = cv2.addWeighted(pair[0], 1.0 - w, pair[1], w, 0.0, dtype=cv2.CV_32F)
        return out.reshape(nk, rows)
    a, b = _at(data, axis, k0), _at(data, axis, k0 + 1)
    if a.dtype in _CV_DEPTH:
        return cv2.addWeighted(np.ascontiguousarray(a), 1.0 - w, np.ascontiguousarray(b), w, 0.0,
                               dtype=cv2.CV_32F)
    return a.astype(np.float32) * np.float32(1.0 - w) + b.astype(np.float32) * np.float32(w)


def sample_aligned(data: np.ndarray, normal_axis: int, normal_index: float,
                   col_axis: int, col_pos: np.ndarray, row_axis: int, row_pos: np.ndarray,
                   slab: tuple[int, int] | None = None, how: str = "mip") -> np.ndarray:
    """A plane whose normal is volume axis `normal_axis` at fractional `normal_index`
    (or the slab of indices slab[0]..slab[1] reduced by `how`), output columns along
    `col_axis` at positions `col_pos`, rows along `row_axis` at `row_pos`.
    Returns float32 (or a view of `data` when no interpolation was needed)."""
    if slab is not None:
        plane = reduce_slab(data, normal_axis, slab[0], slab[1], how)
    else:
        plane = _cut(data, normal_axis, normal_index)
    if not plane.flags.c_contiguous and plane.strides[-1] != plane.itemsize:
        plane = np.ascontiguousarray(plane)  # a sagittal cut: gather it once, not per row
    # remaining axes keep their order: map the two volume axes to plane axes 0 / 1
    rest = [a for a in range(3) if a != normal_axis]
    row_dim, col_dim = rest.index(row_axis), rest.index(col_axis)
    plane = _lerp_axis(plane, row_dim, row_pos)
    plane = _lerp_axis(plane, col_dim, col_pos)
    if row_dim != 0:
        plane = plane.T
    return plane


# ------------------------------------------------------------------------------
# general path

def _tiles(k0: np.ndarray, span: int) -> list[tuple[int, int, int, int, int]]:
    """Rectangles (i0, i1, j0, j1, kmin) of the output whose slice indices k0..k0+1 fit
    in `span` consecutive slices; k0 is monotonic along rows and columns."""
    out: list[tuple[int, int, int, int, int]] = []
    stack = [(0, k0.shape[0], 0, k0.shape[1])]
    while stack:
        i0, i1, j0, j1 = stack.pop()
        corners = (k0[i0, j0], k0[i0, j1 - 1], k0[i1 - 1, j0], k0[i1 - 1, j1 - 1])
        kmin, kmax = int(min(corners)), int(max(corners))
        if kmax + 1 - kmin < span or (i1 - i0 == 1 and j1 - j0 == 1):
            out.append((i0, i1, j0, j1, kmin))
            continue
        var_i = abs(int(k0[i1 - 1, j0]) - int(k0[i0, j0]))
        var_j = abs(int(k0[i0, j1 - 1]) - int(k0[i0, j0]))
        if (var_i >= var_j and i1 - i0 > 1) or j1 - j0 == 1:
            mid = (i0 + i1) // 2
            stack += [(i0, mid, j0, j1), (mid, i1, j0, j1)]
        else:
            mid = (j0 + j1) // 2
            stack += [(i0, i1, j0, mid), (i0, i1, mid, j1)]
    return out


def _remap_trilinear(data: np.ndarray, f: np.ndarray, r: np.ndarray, c: np.ndarray,
                     nonnegative: bool = False) -> np.ndarray:
    """Trilinear samples at in-range fractional indices via two cv2.remap per tile, in
    the data's dtype (rounded, saturated) for integer data, float32 for float data.

    OpenCV's bilinear remap has a SIMD path for uint16 but not for int16: an int16
    volume without negative values (`nonnegative`, most CT stored values) is read
    through its uint16 view, which holds the same numbers."""
    n, rows, cols = data.shape
    src = data.view(np.uint16) if nonnegative and data.dtype == np.int16 else data
    k0 = np.floor(f).astype(np.int32)
    np.clip(k0, 0, max(n - 2, 0), out=k0)
    w = f - k0.astype(np.float32)
    span = min(n, _SHRT_MAX // rows)
    a = np.empty(f.shape, src.dtype)
    b = np.empty(f.shape, src.dtype)
    for i0, i1, j0, j1, kmin in _tiles(k0, span):
        kmin = min(kmin, max(n - span, 0))
        block = src[kmin:kmin + span].reshape(-1, cols)
        mx = c[i0:i1, j0:j1]
        my = ((k0[i0:i1, j0:j1] - kmin) * rows).astype(np.float32)
        my += r[i0:i1, j0:j1]
        cv2.remap(block, mx, my, cv2.INTER_LINEAR, dst=a[i0:i1, j0:j1],
                  borderMode=cv2.BORDER_REPLICATE)
        if n > 1:
            my += np.float32(rows)
            cv2.remap(block, mx, my, cv2.INTER_LINEAR, dst=b[i0:i1, j0:j1],
                      borderMode=cv2.BORDER_REPLICATE)
    if n == 1:
        return a.view(data.dtype) if a.dtype != data.dtype else a
    if src.dtype != data.dtype:     # the uint16 view of an int16 volume: same numbers
        a, b = a.view(data.dtype), b.view(data.dtype)
    diff = cv2.subtract(b, a, dtype=cv2.CV_32F)
    cv2.multiply(diff, w, dst=diff)
    if data.dtype.kind == "f":
        return cv2.add(diff, a, dtype=cv2.CV_32F)
    depth = {np.dtype(np.uint8): cv2.CV_8U, np.dtype(np.uint16): cv2.CV_16U,
             np.dtype(np.int16): cv2.CV_16S}[data.dtype]
    return cv2.add(diff, a, dtype=depth)   # rounds to nearest, saturates


def _numpy_trilinear(data: np.ndarray, f: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Reference-exact trilinear interpolation (dtypes OpenCV cannot remap)."""
    n, rows, cols = data.shape
    out = np.zeros(f.shape, np.float32)
    k0 = np.clip(np.floor(f), 0, max(n - 2, 0)).astype(np.intp)
    r0 = np.clip(np.floor(r), 0, max(rows - 2, 0)).astype(np.intp)
    c0 = np.clip(np.floor(c), 0, max(cols - 2, 0)).astype(np.intp)
    wk, wr, wc = f - k0, r - r0, c - c0
    for dk, fk in ((0, 1 - wk), (1, wk)):
        for dr, fr in ((0, 1 - wr), (1, wr)):
            for dc, fc in ((0, 1 - wc), (1, wc)):
                kk = np.minimum(k0 + dk, n - 1)
                rr = np.minimum(r0 + dr, rows - 1)
                cc = np.minimum(c0 + dc, cols - 1)
                out += (fk * fr * fc).astype(np.float32) * data[kk, rr, cc].astype(np.float32)
    return out


def inside(f: np.ndarray, r: np.ndarray, c: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Samples within the hull of voxel centres (a whisker of tolerance)."""
    n, rows, cols = shape
    tol = 1e-3
    ok = (f >= -tol) & (f <= n - 1 + tol)
    ok &= (r >= -tol) & (r <= rows - 1 + tol)
    ok &= (c >= -tol) & (c <= cols - 1 + tol)
    return ok


def sample_general(data: np.ndarray, f: np.ndarray, r: np.ndarray, c: np.ndarray,
                   nonnegative: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Trilinear samples at fractional indices (float32 arrays of one shape, clipped in
    place) in the data's dtype (rounded; float32 for float data),
    and the mask of samples inside the volume (samples outside hold the nearest edge
    value)."""
    n, rows, cols = data.shape
    valid = inside(f, r, c, data.shape)
    np.clip(f, 0, n - 1, out=f)
    np.clip(r, 0, rows - 1, out=r)
    np.clip(c, 0, cols - 1, out=c)
    if data.dtype in _REMAP_DTYPES and (n == 1 or _SHRT_MAX // rows >= 2) and cols < _SHRT_MAX:
        out = _remap_trilinear(data, f, r, c, nonnegative)
    else:
        out = to_dtype(_numpy_trilinear(data, f, r, c), data.dtype)
    return out, valid


def reduce_layers(layers: Sequence[tuple[np.ndarray, np.ndarray]], how: str,
                  dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """MIP / MinIP / mean over sampled layers (stored dtype), ignoring samples outside
    the volume; returns (values in `dtype`, mask of pixels with any sample inside)."""
    first = layers[0][0]
    count = np.zeros(first.shape, np.int32)
    if how == "mean":
        acc = np.zeros(first.shape, np.float32)
        for values, valid in layers:
            acc += np.where(valid, values, 0).astype(np.float32)
            count += valid
        valid_any = count > 0
        acc[valid_any] /= count[valid_any]
        return to_dtype(acc, dtype), valid_any
    if np.dtype(dtype).kind == "f":
        fill = np.float32(-np.inf if how == "mip" else np.inf)
    else:
        info = np.iinfo(dtype)
        fill = info.min if how == "mip" else info.max
    acc = np.full(first.shape, fill, dtype)
    op = np.maximum if how == "mip" else np.minimum
    for values, valid in layers:
        op(acc, np.where(valid, values, fill), out=acc)
        count += valid
    valid_any = count > 0
    acc[~valid_any] = 0
    return acc, valid_any
