"""Baselines for oblique thick slabs (bench_mpr.py): the same projection computed by
the usual tools, and by medviewer's previous method.

* `SlabPoints`: the slab's sample points by medviewer's rule (each pixel's normal
  line where it crosses the sheets of the index axis it crosses most often), as
  (layers, height, width) fractional indices; the numpy and scipy baselines sample
  exactly these points, so they are also the correctness reference.
* numpy: trilinear interpolation written in numpy (8 gathers) on a float32 copy.
* scipy: scipy.ndimage.map_coordinates(order=1) on the same points.
* SimpleITK: ResampleImageFilter (linear) of a (width, height, layers) block whose
  third axis runs along the normal at the crossing spacing, then the projection over
  it -- the usual way to make an oblique MIP with SimpleITK (evenly spaced layers,
  the same count).
* previous: medviewer before the sheet kernels -- one trilinear plane (two cv2.remap
  per tile) every min-spacing along the normal, reduced layer by layer.
"""

from __future__ import annotations

import math

import numpy as np

from medviewer.viewer.display import mpr, reslice, slab

REDUCE = {"mip": np.max, "minip": np.min, "mean": np.mean}


class SlabPoints:
    """Sample points of a slab of `thickness` mm on `grid` (medviewer's rule)."""

    def __init__(self, geometry, grid, thickness: float) -> None:
        lat = slab.lattice(geometry, grid)
        assert lat is not None, "regular volumes only"
        sl = slab.Slab.of(lat, thickness)
        j = np.arange(lat.height, dtype=np.float64)[:, None]
        i = np.arange(lat.width, dtype=np.float64)[None, :]
        q = [lat.o[a] + j * lat.dv[a] + i * lat.du[a] for a in range(3)]
        first, last = sl.first_last(q[sl.d], lat.shape[sl.d])
        for a in range(3):
            if a != sl.d:
                first, last = sl.bound(first, last, q[a], q[sl.d], a, lat.shape[a])
        self.count = sl.count
        self.spacing_mm = 1.0 / abs(float(lat.m[sl.d]))
        self.inside = np.stack([first + layer <= last for layer in range(sl.count)])
        self.coords = np.empty((3, sl.count) + first.shape, np.float32)
        for layer in range(sl.count):
            sheet = first + layer
            for a in range(3):
                self.coords[a, layer] = q[a] + (sheet - q[sl.d]) * sl.rho[a]
        self.any = self.inside.any(axis=0)

    def reduce(self, values: np.ndarray, how: str) -> np.ndarray:
        if how == "mean":
            total = np.where(self.inside, values, 0).sum(axis=0, dtype=np.float64)
            return total / np.maximum(self.inside.sum(axis=0), 1)
        fill = -np.inf if how == "mip" else np.inf
        out = REDUCE[how](np.where(self.inside, values, fill), axis=0)
        return np.where(self.any, out, 0.0)


def scipy_slab(data: np.ndarray, points: SlabPoints, how: str) -> np.ndarray:
    from scipy import ndimage

    values = ndimage.map_coordinates(data, points.coords, order=1, mode="nearest",
                                     output=np.float32)
    return points.reduce(values, how)


def numpy_slab(data: np.ndarray, points: SlabPoints, how: str) -> np.ndarray:
    n, rows, cols = data.shape
    k, r, c = (np.clip(points.coords[a], 0, s - 1) for a, s in enumerate(data.shape))
    k0 = np.minimum(k.astype(np.intp), n - 2)
    r0 = np.minimum(r.astype(np.intp), rows - 2)
    c0 = np.minimum(c.astype(np.intp), cols - 2)
    wk, wr, wc = k - k0, r - r0, c - c0
    flat = data.reshape(-1)
    base = (k0 * rows + r0) * cols + c0
    out = np.zeros(k.shape, np.float32)
    for dk, fk in ((0, 1 - wk), (rows * cols, wk)):
        for dr, fr in ((0, 1 - wr), (cols, wr)):
            for dc, fc in ((0, 1 - wc), (1, wc)):
                out += fk * fr * fc * flat[base + (dk + dr + dc)]
    return points.reduce(out, how)


def sitk_slab(sitk, image, grid, points: SlabPoints, how: str) -> np.ndarray:
    """`image`: the volume as a SimpleITK image with the patient geometry set."""
    step = points.spacing_mm
    count = points.count
    normal = np.asarray(grid.normal, float)
    res = sitk.ResampleImageFilter()
    res.SetInterpolator(sitk.sitkLinear)
    res.SetOutputSpacing((grid.spacing, grid.spacing, step))
    res.SetSize((grid.width, grid.height, count))
    res.SetOutputOrigin(tuple(np.asarray(grid.origin) - (count - 1) / 2.0 * step * normal))
    right, down = (np.asarray(v, float) for v in (grid.right, grid.down))
    res.SetOutputDirection(tuple(np.stack([right, down, normal]).T.ravel()))
    res.SetDefaultPixelValue(-32768 if how == "mip" else (32767 if how == "minip" else 0))
    res.SetOutputPixelType(sitk.sitkInt16 if how != "mean" else sitk.sitkFloat32)
    resampled = res.Execute(image)     # the array view below needs the image alive
    return REDUCE[how](sitk.GetArrayViewFromImage(resampled), axis=0)


def sitk_image(sitk, data: np.ndarray, geometry):
    image = sitk.GetImageFromArray(data)     # (z, y, x) -> index (x=c, y=r, z=k)
    image.SetSpacing((geometry.pixel_spacing[1], geometry.pixel_spacing[0],
                      float(np.linalg.norm(geometry.step))))
    image.SetOrigin(tuple(geometry.positions[0]))
    k_dir = geometry.step / np.linalg.norm(geometry.step)
    image.SetDirection(tuple(np.stack([geometry.row_dir, geometry.col_dir, k_dir]).T.ravel()))
    return image


def previous_slab(volume, grid, thickness: float, how: str) -> np.ndarray:
    """medviewer's oblique slab before the sheet kernels (commit 66767ca)."""
    geometry, data = volume.geometry, volume.data
    nonneg = mpr.volume_nonnegative(volume)
    step = float(min(geometry.slice_spacing, *geometry.pixel_spacing))
    count = max(1, int(math.floor(thickness / step + 1e-6)) + 1)
    shifts = (np.arange(count) - (count - 1) / 2.0) * step
    layers = [reslice.sample_general(data, *mpr._index_maps(geometry, grid, t), nonneg) for t in shifts]
    values, _ = reslice.reduce_layers(layers, how, data.dtype)
    return values
