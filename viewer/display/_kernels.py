"""The numba kernels of viewer.display.jit (imported on first use: numba's import and
the compilation stay off the viewer's start-up).  Compiled code is cached next to
this file when the source is there (a bundle that ships bytecode only compiles once
per process, a few seconds per pixel type)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numba import njit

from medviewer.viewer.display.slab import _ALIGN, _EPS, EDGE

_CACHE = Path(__file__).is_file()
jit = njit(nogil=True, cache=_CACHE, fastmath=True, boundscheck=False)
inline = njit(nogil=True, cache=_CACHE, inline="always")


@inline
def span(base, step, hi, width):
    """Half-open run [i0, i1) of i in [0, width) with 0 <= base + i*step <= hi."""
    if abs(step) < 1e-12:
        return (0, width) if 0.0 <= base <= hi else (0, 0)
    x0 = -base / step
    x1 = (hi - base) / step
    if x0 > x1:
        x0, x1 = x1, x0
    i0 = max(0, int(math.ceil(x0)))
    i1 = min(width, int(math.floor(x1)) + 1)
    return i0, max(i0, i1)

@inline
def trilinear(flat, sk, sr, k, r, c, k0, r0, c0, k1, r1, c1):
    """Trilinear value at (k, r, c) from the corners (k0|k1, r0|r1, c0|c1)."""
    wk = np.float32(k - k0)
    wr = np.float32(r - r0)
    wc = np.float32(c - c0)
    p, q = k0 * sk, k1 * sk
    t0 = np.float32(flat[p + r0 * sr + c0])
    t1 = np.float32(flat[p + r1 * sr + c0])
    u0 = np.float32(flat[q + r0 * sr + c0])
    u1 = np.float32(flat[q + r1 * sr + c0])
    t0 += (np.float32(flat[p + r0 * sr + c1]) - t0) * wc
    t1 += (np.float32(flat[p + r1 * sr + c1]) - t1) * wc
    u0 += (np.float32(flat[q + r0 * sr + c1]) - u0) * wc
    u1 += (np.float32(flat[q + r1 * sr + c1]) - u1) * wc
    t0 += (t1 - t0) * wr
    u0 += (u1 - u0) * wr
    return t0 + (u0 - t0) * wk

@inline
def clamped(flat, shape, k, r, c):
    """Trilinear value at a point clipped to the hull of voxel centres."""
    n, rows, cols = shape
    k = min(max(k, 0.0), n - 1.0)
    r = min(max(r, 0.0), rows - 1.0)
    c = min(max(c, 0.0), cols - 1.0)
    k0 = min(int(k), max(n - 2, 0))
    r0 = min(int(r), max(rows - 2, 0))
    c0 = min(int(c), max(cols - 2, 0))
    return trilinear(flat, rows * cols, cols, k, r, c, k0, r0, c0,
                     min(k0 + 1, n - 1), min(r0 + 1, rows - 1), min(c0 + 1, cols - 1))

@jit
def thin(flat, shape, o, du, dv, tol, rnd, j0, j1, out, valid):
    n, rows, cols = shape
    sk, sr = rows * cols, cols
    width = out.shape[1]
    fk, fr, fc = np.float32(du[0]), np.float32(du[1]), np.float32(du[2])
    for j in range(j0, j1):
        bk = o[0] + j * dv[0]
        br = o[1] + j * dv[1]
        bc = o[2] + j * dv[2]
        # the inner run: whole corners inside the volume, no clipping (the
        # margin keeps int(x) + 1 inside despite float32 steps)
        a0, a1 = span(bk, du[0], n - 1.001, width)
        b0, b1 = span(br, du[1], rows - 1.001, width)
        c0, c1 = span(bc, du[2], cols - 1.001, width)
        i0 = max(a0, max(b0, c0))
        i1 = max(i0, min(a1, min(b1, c1)))
        for i in range(width):      # the rim: clipped within tol, else outside
            if i0 <= i < i1:
                continue
            k = bk + i * du[0]
            r = br + i * du[1]
            c = bc + i * du[2]
            ok = (-tol <= k <= n - 1 + tol) and (-tol <= r <= rows - 1 + tol) \
                and (-tol <= c <= cols - 1 + tol)
            valid[j, i] = ok
            if not ok:
                out[j, i] = 0
                continue
            v = clamped(flat, shape, k, r, c)
            out[j, i] = math.floor(v + np.float32(0.5)) if rnd else v
        gk, gr, gc = np.float32(bk), np.float32(br), np.float32(bc)
        for i in range(i0, i1):
            fi = np.float32(i)
            k = gk + fi * fk
            r = gr + fi * fr
            c = gc + fi * fc
            k0, r0, c0 = int(k), int(r), int(c)
            v = trilinear(flat, sk, sr, k, r, c, k0, r0, c0, k0 + 1, r0 + 1, c0 + 1)
            out[j, i] = math.floor(v + np.float32(0.5)) if rnd else v
            valid[j, i] = True

@inline
def bound(first, last, qx, qd, rho, nx):
    """Narrow [first, last] to the sheets whose crossing lies in 0..nx-1 on axis x."""
    if abs(rho) < _ALIGN:
        if qx < -EDGE or qx > nx - 1 + EDGE:
            return first, first - 1.0
        return first, last
    s1 = qd + (-EDGE - qx) / rho
    s2 = qd + (nx - 1 + EDGE - qx) / rho
    return (max(first, math.ceil(min(s1, s2) - _EPS)),
            min(last, math.floor(max(s1, s2) + _EPS)))

@inline
def sheet_sample(flat, base, xa, xb, ahi, bhi, sa, sb, da, db):
    """Bilinear value at in-sheet position (xa, xb) of the sheet starting at `base`.
    Crossings lie within EDGE of the hull (bound): int() truncates the few just below
    0 to 0, the caps keep the upper neighbours inside; their weights step past 0 or 1
    by that whisker.  Indices are unsigned: numba adds no negative-index wraparound."""
    ia = min(int(xa), ahi)
    ib = min(int(xb), bhi)
    wa = xa - np.float32(ia)
    wb = xb - np.float32(ib)
    p = base + ia * sa + ib * sb
    v00 = np.float32(flat[np.uint64(p)])
    v10 = np.float32(flat[np.uint64(p + da)])
    v00 += (np.float32(flat[np.uint64(p + db)]) - v00) * wb
    v10 += (np.float32(flat[np.uint64(p + da + db)]) - v10) * wb
    return v00 + (v10 - v00) * wa


@jit
def lines(flat, shape, o, du, dv, d, half, tol, rho, how, rnd, j0, j1, out, valid):
    strides = (shape[1] * shape[2], shape[2], 1)
    a = 1 if d == 0 else 0              # the in-sheet axes, a before b
    b = 1 if d == 2 else 2
    nd, na, nb = shape[d], shape[a], shape[b]
    sd, sa, sb = strides[d], strides[a], strides[b]
    ahi = max(na - 2, 0)
    bhi = max(nb - 2, 0)
    da = sa if na > 1 else 0            # a single sheet row / column: no neighbour
    db = sb if nb > 1 else 0
    step_a = np.float32(rho[a])
    step_b = np.float32(rho[b])
    width = out.shape[1]
    for j in range(j0, j1):
        for i in range(width):
            qd = o[d] + j * dv[d] + i * du[d]
            qa = o[a] + j * dv[a] + i * du[a]
            qb = o[b] + j * dv[b] + i * du[b]
            first = max(math.ceil(qd - half - tol), 0.0)
            last = min(math.floor(qd + half + tol), nd - 1.0)
            first, last = bound(first, last, qa, qd, rho[a], na)
            first, last = bound(first, last, qb, qd, rho[b], nb)
            if last < first:
                valid[j, i] = False
                out[j, i] = 0
                continue
            valid[j, i] = True
            s0 = int(first)
            count = int(last) - s0 + 1
            xa = np.float32(qa + (s0 - qd) * rho[a])
            xb = np.float32(qb + (s0 - qd) * rho[b])
            base = s0 * sd
            # one loop per projection (no branch per sample)
            if how == 0:
                acc = np.float32(-np.inf)
                for _ in range(count):
                    acc = max(acc, sheet_sample(flat, base, xa, xb, ahi, bhi, sa, sb, da, db))
                    xa += step_a
                    xb += step_b
                    base += sd
            elif how == 1:
                acc = np.float32(np.inf)
                for _ in range(count):
                    acc = min(acc, sheet_sample(flat, base, xa, xb, ahi, bhi, sa, sb, da, db))
                    xa += step_a
                    xb += step_b
                    base += sd
            else:
                acc = np.float32(0.0)
                for _ in range(count):
                    acc += sheet_sample(flat, base, xa, xb, ahi, bhi, sa, sb, da, db)
                    xa += step_a
                    xb += step_b
                    base += sd
            if how == 2:
                out[j, i] = acc / np.float32(count)
            elif rnd:
                out[j, i] = math.floor(acc + np.float32(0.5))
            else:
                out[j, i] = acc


@jit
def blend_reduce(band, a0, w, s_lo, lines, how, out):
    """Output line t = max (how 0) or min (1) over the band's samples of the linear blend
    of sheets a0[t] and a0[t] + 1 at weight w[t] (band: sheets x samples x width)."""
    layers, width = band.shape[1], band.shape[2]
    acc = np.empty(width, np.float32)
    for t in lines:
        lo = band[a0[t] - s_lo]
        wt = np.float32(w[t])
        hi = band[a0[t] + 1 - s_lo] if wt > 0 else lo
        for u in range(width):
            acc[u] = np.float32(-np.inf) if how == 0 else np.float32(np.inf)
        for layer in range(layers):
            for u in range(width):
                x = np.float32(lo[layer, u])
                v = x + (np.float32(hi[layer, u]) - x) * wt
                acc[u] = max(acc[u], v) if how == 0 else min(acc[u], v)
        for u in range(width):
            out[t, u] = acc[u]

