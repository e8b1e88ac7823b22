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

from collections.abc import Sequence

import cv2
import numpy as np

from medviewer.viewer.display import reslice
from medviewer.viewer.display.slab import (_OUTSIDE, Lattice, Slab, fill_value, run_parallel)

__all__ = ["crossing_layers", "layers"]

_SHRT = 32767
_PRECISE = 16384      # stacked coordinates below this are float32 to 1/2048 pixel
_TILE_ROWS = 48       # output rows per tile: the tile's sheets stay in the core's cache


def _index(lat: Lattice) -> list[np.ndarray]:
    """(k, r, c) of every output pixel, float64 (height, width)."""
    j = np.arange(lat.height, dtype=np.float64)[:, None]
    i = np.arange(lat.width, dtype=np.float64)[None, :]
    return [lat.o[a] + j * lat.dv[a] + i * lat.du[a] for a in range(3)]


def _crossings(lat: Lattice, slab: Slab) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Index of every pixel, and its first / last sheet inside the slab and the volume."""
    q = _index(lat)
    d = slab.d
    first, last = slab.first_last(q[d], lat.shape[d])
    for a in range(3):
        if a != d:
            first, last = slab.bound(first, last, q[a], q[d], a, lat.shape[a])
    return q, first, last


def _tiles(first: np.ndarray, valid: np.ndarray, spread: int, rows: int) -> list[tuple[int, int, int, int]]:
    """Rectangles (j0, j1, i0, i1) covering the valid pixels, at most `rows` high, whose
    first sheets differ by at most `spread`."""
    H, W = first.shape
    out = []
    stack = [(j0, min(H, j0 + rows), 0, W) for j0 in range(0, H, rows)]
    while stack:
        j0, j1, i0, i1 = stack.pop()
        ok = valid[j0:j1, i0:i1]
        if not ok.any():
            continue
        f = first[j0:j1, i0:i1][ok]
        if int(f.max() - f.min()) <= spread or (j1 - j0 == 1 and i1 - i0 == 1):
            out.append((j0, j1, i0, i1))
        elif i1 - i0 >= j1 - j0:
            mid = (i0 + i1) // 2
            stack += [(j0, j1, i0, mid), (j0, j1, mid, i1)]
        else:
            mid = (j0 + j1) // 2
            stack += [(j0, mid, i0, i1), (mid, j1, i0, i1)]
    return out


def layers(src: np.ndarray, lat: Lattice, thickness: float, how: str) -> tuple[np.ndarray, np.ndarray]:
    """Slab of any plane whose dominant axis is k or r; (values: src dtype for MIP /
    MinIP, float32 means; valid mask)."""
    slab = Slab.of(lat, thickness)
    d = slab.d
    n, R, C = lat.shape
    q, first, last = _crossings(lat, slab)
    valid = last >= first
    H, W = lat.height, lat.width
    fill = fill_value(src.dtype, how)
    out = np.zeros((H, W), np.float32 if how == "mean" else src.dtype)
    if not valid.any():
        return out, valid
    unit = C if d == 1 else R
    window = max(2, min(_SHRT, _PRECISE) // unit - 1)  # sheets in one OpenCV image
    group = min(slab.count, max(1, window // 2))     # layers per remap
    spread = window - group
    img = src.reshape(n, R * C) if d == 1 else src.reshape(n * R, C)
    across = 2 if d == 1 else 1                      # the in-sheet axis stacked with the sheets
    other = 0 if d == 1 else 2                       # the in-sheet axis along the other image axis
    # positions at the first crossing; each further layer adds one sheet step
    pos_a = q[across] + (first - q[d]) * slab.rho[across]
    pos_o = q[other] + (first - q[d]) * slab.rho[other]
    count = last - first                              # last layer index of each pixel
    step_a, step_o = float(unit + slab.rho[across]), float(slab.rho[other])
    tiles = _tiles(first, valid, spread, _TILE_ROWS)
    reduce_op = {"mip": np.maximum, "minip": np.minimum}.get(how)

    def run(part: Sequence[int]) -> None:
        for t in part:
            j0, j1, i0, i1 = tiles[t]
            sl = (slice(j0, j1), slice(i0, i1))
            ok = valid[sl]
            f = first[sl]
            base = int(f[ok].min())
            top = int(count[sl][ok].max())
            acc = None
            for l0 in range(0, top + 1, group):
                g = min(group, top + 1 - l0)
                lo, hi = base + l0, min(base + l0 + window, lat.shape[d])
                lo = max(lo, 0)
                # the stacked coordinate reaches ~32000: one rounding to float32 (1/1024 px)
                rel = (f - lo + l0) * unit + pos_a[sl] + l0 * slab.rho[across]
                ls = np.arange(g, dtype=np.float64)[:, None, None]
                a = (rel[None] + ls * step_a).astype(np.float32)
                o = np.asarray(pos_o[sl] + l0 * slab.rho[other], np.float32)[None] + \
                    ls.astype(np.float32) * np.float32(step_o)
                cnt = count[sl] - l0
                if (cnt[ok].min() < g - 1) or not ok.all():
                    bad = ls > np.where(ok, cnt, -1.0)[None]
                    a[bad] = _OUTSIDE
                x, y = (a, o) if d == 1 else (o, a)
                h, w = j1 - j0, i1 - i0
                view = img[:, lo * C:hi * C] if d == 1 else img[lo * R:hi * R]
                vals = cv2.remap(view, x.reshape(g * h, w), y.reshape(g * h, w), cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=fill).reshape(g, h, w)
                if how == "mean":
                    part_acc = vals.sum(axis=0, dtype=np.float32)
                    acc = part_acc if acc is None else acc + part_acc
                else:
                    part_acc = vals.max(axis=0) if how == "mip" else vals.min(axis=0)
                    acc = part_acc if acc is None else reduce_op(acc, part_acc)
            out[sl] = np.where(ok, acc, out[sl])

    run_parallel(run, list(range(len(tiles))))
    if how == "mean":
        out /= np.maximum(count + 1, 1).astype(np.float32)
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
        values, inside = reslice.sample_general(data, *idx, nonnegative)
        planes.append((values, inside & (layer <= count)))
    return reslice.reduce_layers(planes, how, data.dtype)
