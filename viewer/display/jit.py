"""Compiled sampling kernels for oblique planes (Qt-free; numba, compiled on first use).

Two loops that OpenCV has no single call for, fused per output pixel so that no map,
mask or intermediate plane is written to memory:

* `thin_plane` -- trilinear samples of a regular volume on a plane lattice
  (viewer.display.slab.Lattice): pixel (i, j) at fractional voxel index
  o + i*du + j*dv, voxel centres at whole indices.  Each output row's run of pixels
  inside the hull of voxel centres is found analytically (three intervals), so the
  inner loop has no bounds test; the edge pixels within `tol` outside the hull are
  sampled clipped to it (the rule of viewer.display.reslice.sample_general).
* `slab_lines` -- a thick slab by the crossing rule of viewer.display.slab: each
  pixel's normal line is sampled where it crosses the sheets (whole indices) of the
  dominant axis d within +-T/2 and inside the volume, bilinearly inside each sheet,
  and the samples are reduced (MIP, MinIP or mean) on the fly.

Values are computed in float32 from the stored values; integer volumes get the
nearest stored value (halves round up), float volumes float32.
Positions are float64 per pixel and float32 along a line.  Both kernels release the
GIL and take a band of output rows, so viewer.display.slab.run_parallel splits them
over its worker threads; numba's own threading layer is not used (it is not safe to
enter from several threads at once, and the viewer computes planes in workers).

The loops live in viewer.display._kernels, imported on first use; numba caches the
compiled code next to that file.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from medviewer.viewer.display.slab import run_parallel, workers

__all__ = ["DTYPES", "HOW", "MEAN", "MINIP", "MIP", "blend_reduce", "slab_lines", "thin_plane", "warm"]

MIP, MINIP, MEAN = 0, 1, 2
HOW = {"mip": MIP, "minip": MINIP, "mean": MEAN}
DTYPES = tuple(np.dtype(t) for t in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32,
                                     np.int64, np.uint64, np.float32, np.float64))

_LOCK = threading.Lock()
_KERNELS: dict[str, Any] = {}


def _compile() -> dict[str, Any]:
    """The numba dispatchers (imported once; numba compiles each pixel type on first call)."""
    with _LOCK:
        if not _KERNELS:
            from medviewer.viewer.display import _kernels

            _KERNELS.update(thin=_kernels.thin, lines=_kernels.lines, blend_reduce=_kernels.blend_reduce)
        return _KERNELS


def _output(data: np.ndarray, height: int, width: int, mean: bool = False) -> tuple[np.ndarray, bool]:
    """The output array (stored dtype for integer data, float32 otherwise or for means)
    and whether samples are rounded to whole stored values."""
    if mean or data.dtype.kind == "f":
        return np.empty((height, width), np.float32), False
    return np.empty((height, width), data.dtype), True


def _flat(data: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int]]:
    """The volume as one flat array (a view of a C-ordered volume) and its shape."""
    n, rows, cols = data.shape
    return np.ascontiguousarray(data).reshape(-1), (int(n), int(rows), int(cols))


_BLOCK = 16     # output rows per call


def _rows(height: int, fn) -> None:
    """fn(j0, j1) over blocks of output rows, the workers taking alternate blocks (the
    pixels inside the volume, and so the work, are not spread evenly over the rows)."""
    blocks = list(range(0, height, _BLOCK))
    n = workers()
    order = [b for w in range(n) for b in blocks[w::n]]
    run_parallel(lambda part: [fn(j, min(j + _BLOCK, height)) for j in part], order, minimum=2)


def warm(dtype) -> None:
    """Import numba and compile (or load from its cache) both kernels for volumes of
    `dtype`: the MPR layout calls this on the worker that builds the volume, so the
    first oblique plane does not wait for the compiler."""
    dtype = np.dtype(dtype)
    if dtype not in DTYPES:
        return
    from medviewer.viewer.display.slab import Lattice, Slab

    tiny = np.zeros((2, 2, 2), dtype)
    lat = Lattice(np.zeros(3), np.array([0.0, 0.3, 0.4]), np.array([0.3, 0.4, 0.0]),
                  np.array([1.0, 0.0, 0.0]), tiny.shape, 2, 2)
    thin_plane(tiny, lat)
    slab_lines(tiny, lat, Slab.of(lat, 1.0), "mip")
    # the band kernel reads int16 volumes without negative values as uint16
    for band_type in {dtype, np.dtype(np.uint16) if dtype == np.int16 else dtype}:
        blend_reduce(np.zeros((2, 1, 2), band_type), np.zeros(1, np.intp), np.zeros(1), 0,
                     np.zeros(1, np.intp), "mip")


def blend_reduce(band: np.ndarray, a0: np.ndarray, w: np.ndarray, s_lo: int, lines: np.ndarray,
                 how: str) -> np.ndarray:
    """The band kernel's reduction (viewer.display.slab.bands): output line t is the
    MIP / MinIP over the samples of band[a0[t] - s_lo] blended with the next sheet's
    at weight w[t]; float32 (lines x band width), lines not in `lines` zero."""
    kernel = _compile()["blend_reduce"]
    out = np.zeros((a0.size, band.shape[2]), np.float32)
    lines = np.asarray(lines, np.int64)
    code = HOW[how]
    run_parallel(lambda part: kernel(band, a0, w, s_lo, lines[int(part[0]):int(part[-1]) + 1], code, out),
                 list(range(lines.size)))
    return out


def thin_plane(data: np.ndarray, lat, tol: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Trilinear samples on `lat` (viewer.display.slab.Lattice) of a (slices, rows,
    cols) array: (values in the stored dtype, float32 for float data; mask of pixels
    inside the hull of voxel centres within `tol` index units; outside: 0)."""
    thin = _compile()["thin"]
    out, rnd = _output(data, lat.height, lat.width)
    valid = np.empty(out.shape, bool)
    o, du, dv = (np.asarray(v, np.float64) for v in (lat.o, lat.du, lat.dv))
    flat, shape = _flat(data)
    _rows(lat.height, lambda j0, j1: thin(flat, shape, o, du, dv, float(tol), rnd, j0, j1, out, valid))
    return out, valid


def slab_lines(data: np.ndarray, lat, slab, how: str) -> tuple[np.ndarray, np.ndarray]:
    """The `how` projection of `slab` (viewer.display.slab.Slab) on `lat` by the
    crossing rule: (values in the stored dtype for MIP / MinIP of integer data, float32
    for means and float data; mask of pixels with a crossing inside the volume)."""
    lines = _compile()["lines"]
    code = HOW[how]
    out, rnd = _output(data, lat.height, lat.width, mean=code == MEAN)
    valid = np.empty(out.shape, bool)
    o, du, dv = (np.asarray(v, np.float64) for v in (lat.o, lat.du, lat.dv))
    rho = np.asarray(slab.rho, np.float64)
    flat, shape = _flat(data)
    _rows(lat.height, lambda j0, j1: lines(flat, shape, o, du, dv, int(slab.d), float(slab.half),
                                           float(slab.tol), rho, code, rnd, j0, j1, out, valid))
    return out, valid
