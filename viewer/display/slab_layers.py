"""Double-oblique slabs (Qt-free): the `layers` kernel of viewer.display.slab, and
the generic per-layer path for what no kernel covers.

`layers` (dominant axis k or r): the sheets of the dominant axis are stacked into
one 2-D OpenCV image -- slices one below the other for k (y = sheet * rows + r),
coronal sheets side by side for r (x = sheet * cols + c) -- so a bilinear remap of
that image at (sheet, position) is the in-sheet interpolation of the slab rule.
The output is cut into tiles whose sheets fit in one such image (OpenCV's remap
takes coordinates below 32767) and, per tile, one cv2.remap samples every layer of
crossings at once (the layers stacked vertically: layer l of pixel p is its l-th
crossing, at base(p) + l * step); a max / min / sum over the layers reduces them.
Samples outside the volume point outside the image and read the fill value.

`crossing_layers` is the same rule evaluated with the trilinear thin-plane sampler
of viewer.display.reslice, one full plane per layer (any dtype, the column axis
dominant): exact and simple, but one plane per sample.
"""

from __future__ import annotations


import cv2
import numpy as np

from medviewer.viewer.display import reslice
from medviewer.viewer.display.slab import (_OUTSIDE, Lattice, Slab, fill_value, run_parallel)

__all__ = ["crossing_layers", "layers"]

_PRECISE = 16384      # stacked coordinates below this are float32 to 1/2048 pixel
_SAMPLES = 400_000    # samples per tile: its maps and sheets stay in the core's cache


def _index(lat: Lattice) -> list[np.ndarray]:
    """(k, r, c) of every output pixel, float64 (height, width)."""
    j = np.arange(lat.height, dtype=np.float64)[:, None]
    i = np.arange(lat.width, dtype=np.float64)[None, :]
    return [lat.o[a] + j * lat.dv[a] + i * lat.du[a] for a in range(3)]


def _crossings(lat: Lattice, slab: Slab, i=None, j=None) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Index of every pixel (or of pixels (i, j)), and its first / last sheet inside the
    slab and the volume."""
    if i is None:
        q = _index(lat)
    else:
        q = [lat.o[a] + j * lat.dv[a] + i * lat.du[a] for a in range(3)]
    d = slab.d
    first, last = slab.first_last(q[d], lat.shape[d])
    for a in range(3):
        if a != d:
            first, last = slab.bound(first, last, q[a], q[d], a, lat.shape[a])
    return q, first, last


def layers(src: np.ndarray, lat: Lattice, thickness: float, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Slab of any plane whose dominant axis is k or r; (values: src dtype for MIP /
    MinIP, float32 means; valid mask).

    The output is walked in sheared column tiles: row j of a tile starts `shift[j]`
    columns further, so that the sheet a pixel's slab starts at changes by at most one
    down a tile column and a narrow tile of all rows needs only a few more sheets
    than it has layers (pixels are re-indexed, never resampled)."""
    slab = Slab.of(lat, thickness)
    d = slab.d
    if abs(lat.du[d]) < abs(lat.dv[d]):        # sheets change faster down the rows
        t_lat = Lattice(lat.o, lat.dv, lat.du, lat.m, lat.shape, lat.height, lat.width)
        out, valid = layers(src, t_lat, thickness, how)
        return np.ascontiguousarray(out.T), np.ascontiguousarray(valid.T)
    n, R, C = lat.shape
    H, W = lat.height, lat.width
    fill = fill_value(src.dtype, how)
    out = np.zeros((H, W), np.float32 if how == "mean" else src.dtype)
    valid = np.zeros((H, W), bool)
    unit = C if d == 1 else R
    window = max(2, _PRECISE // unit - 1)            # sheets in one OpenCV image
    group = min(slab.count, max(1, window // 2))     # layers per remap
    per_col = abs(float(lat.du[d]))
    width = max(1, int((window - group - 2) / per_col)) if per_col > 1e-12 else W
    shift = np.rint(np.arange(H) * (-lat.dv[d] / lat.du[d])).astype(np.int64) if per_col > 1e-12 \
        else np.zeros(H, np.int64)
    img = src.reshape(n, R * C) if d == 1 else src.reshape(n * R, C)
    across = 2 if d == 1 else 1                      # the in-sheet axis stacked with the sheets
    other = 0 if d == 1 else 2                       # the in-sheet axis along the other image axis
    step_a, step_o = float(unit + slab.rho[across]), float(slab.rho[other])
    starts = list(range(int(-shift.max()), int(W - shift.min()), width))
    reduce_op = {"mip": np.maximum, "minip": np.minimum}.get(how)

    def tile(start: tuple[int, int]) -> None:
        u0, r0 = start
        span = np.nonzero((u0 + shift < W) & (u0 + width + shift > 0))[0]
        span = span[(span >= r0) & (span < r0 + rows)]
        if span.size == 0:
            return
        jj = np.arange(int(span[0]), int(span[-1]) + 1)[:, None]
        ii = u0 + np.arange(width)[None, :] + shift[jj[:, 0], None]
        jj = np.broadcast_to(jj, ii.shape)
        q, first, last = _crossings(lat, slab, ii.astype(np.float64), jj.astype(np.float64))
        ok = (ii >= 0) & (ii < W) & (last >= first)
        if not ok.any():
            return
        # layers count from the slab's first sheet, inside the volume or not, so that
        # every pixel of the tile steps through the sheets together; samples outside
        # the volume are masked
        start = np.ceil(q[d] - slab.half - slab.tol)
        lo_l = np.where(ok, first - start, np.inf)
        hi_l = np.where(ok, last - start, -1.0)
        base = int(start[ok].min())
        top = int(hi_l.max())
        layer0 = int(lo_l.min())
        pos_a = q[across] + (start - q[d]) * slab.rho[across]
        pos_o = q[other] + (start - q[d]) * slab.rho[other]
        h, w = ii.shape
        spread = int(start[ok].max()) - base
        step = max(1, min(group, window - spread - 1))
        acc = None
        for l0 in range(layer0, top + 1, step):
            g = min(step, top + 1 - l0)
            lo = base + l0
            lo_v, hi_v = max(lo, 0), min(lo + window, lat.shape[d])
            # stacked coordinates stay below _PRECISE: one rounding to float32 (1/2048 px)
            ls = np.arange(g, dtype=np.float64)[:, None, None]
            rel = (start - lo_v + l0) * unit + pos_a + l0 * slab.rho[across]
            a = (rel[None] + ls * step_a).astype(np.float32)
            o = np.asarray(pos_o + l0 * slab.rho[other], np.float32)[None] + \
                ls.astype(np.float32) * np.float32(step_o)
            if (hi_l - l0).min() < g - 1 or (lo_l - l0).max() > 0:
                a[(ls > (hi_l - l0)[None]) | (ls < (lo_l - l0)[None])] = _OUTSIDE
            x, y = (a, o) if d == 1 else (o, a)
            view = img[:, lo_v * C:hi_v * C] if d == 1 else img[lo_v * R:hi_v * R]
            vals = cv2.remap(view, x.reshape(g * h, w), y.reshape(g * h, w), cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=fill).reshape(g, h, w)
            if how == "mean":
                part = vals.sum(axis=0, dtype=np.float32)
                acc = part if acc is None else acc + part
            else:
                part = vals.max(axis=0) if how == "mip" else vals.min(axis=0)
                acc = part if acc is None else reduce_op(acc, part)
        jy, ix = jj[ok], ii[ok]
        out[jy, ix] = acc[ok] if how != "mean" else acc[ok] / (last - first + 1)[ok].astype(np.float32)
        valid[jy, ix] = True

    rows = int(min(256, max(48, _SAMPLES // (width * slab.count))))
    # row blocks outside, sheared columns inside: consecutive tiles share most sheets
    tiles = [(u0, r0) for r0 in range(0, H, rows) for u0 in starts]
    run_parallel(lambda part: [tile(tiles[t]) for t in part], list(range(len(tiles))))
    return out, valid


def crossing_layers(data: np.ndarray, lat: Lattice, thickness: float, how: str,
                    nonnegative: bool) -> tuple[np.ndarray, np.ndarray]:
    """The slab rule with one trilinear plane per layer of crossings (any dtype);
    returns (values in the data's dtype, valid)."""
    slab = Slab.of(lat, thickness)
    q, first, last = _crossings(lat, slab)
    count = last - first
    planes = []
    for layer in range(slab.count):
        sheet = first + layer
        idx = [np.asarray(q[a] + (sheet - q[slab.d]) * slab.rho[a], np.float32) for a in range(3)]
        values, inside = reslice.sample_general(data, *idx, nonnegative, keep_float=True)
        planes.append((values, inside & (layer <= count)))
    values, valid = reslice.reduce_layers(planes, how, np.float32)
    return reslice.to_dtype(values, data.dtype), valid
