"""Oblique thick slabs (viewer.display.slab / jit via mpr.reformat) against an
independent numpy / scipy reference.

The reference follows the documented rule with nothing from medviewer but the
PlaneGrid: voxel indices from the DICOM definition of the volume (PS3.3
C.7.6.2.1.1), each output pixel's normal line, its crossings with the sheets of the
index axis the normal crosses most often per mm within +-T/2, and
scipy.ndimage.map_coordinates (order 1) on a float64 copy at those points; then the
max / min / mean over the crossings inside the volume.  Volumes mix smooth anatomy-
like texture with sharp-edged blocks (CT-like edges of 2000 stored values).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from medviewer.viewer.display import jit, mpr, slab
from medviewer.viewer.io.volume import Volume
from test_display_mpr import GEOMETRIES, META, axial_stack, make_volume

EDGE = 1e-5      # index units (the documented tolerance of slab samples)


def textured(shape, seed=0, offset=1000.0) -> np.ndarray:
    """Smooth texture plus sharp blocks: values offset..offset+~2600."""
    rng = np.random.default_rng(seed)
    vol = ndimage.gaussian_filter(rng.normal(0, 300, shape), 1.2) + offset + 300
    n, rows, cols = shape
    for _ in range(6):
        k, r, c = (int(rng.integers(0, s)) for s in shape)
        vol[max(0, k - 2):k + 3, max(0, r - 3):r + 4, max(0, c - 2):c + 3] = offset + 2300
    return vol


def slab_reference(volume: Volume, grid: mpr.PlaneGrid, thickness: float, how: str):
    """(values float64, inside mask) of the slab rule, computed independently."""
    geo = volume.geometry
    positions = np.asarray(geo.positions, float)
    n = len(positions)
    step = (positions[-1] - positions[0]) / (n - 1)
    m_inv = np.linalg.inv(np.stack([step, geo.col_dir * geo.pixel_spacing[0],
                                    geo.row_dir * geo.pixel_spacing[1]]).T)
    x, y = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    q = np.einsum("ab,hwb->ahw", m_inv, grid.to_patient(x, y) - positions[0])
    m = m_inv @ np.asarray(grid.normal)
    d = int(np.argmax(np.abs(m)))
    half, tol = thickness / 2 * abs(m[d]), 1e-6 * abs(m[d])
    first, last = np.ceil(q[d] - half - tol), np.floor(q[d] + half + tol)
    data = volume.data.astype(np.float64)
    fill = {"mip": -np.inf, "minip": np.inf, "mean": 0.0}[how]
    acc = np.full(q.shape[1:], fill)
    count = np.zeros(q.shape[1:], int)
    for sheet in range(int(first.min()), int(last.max()) + 1):
        idx = q + ((sheet - q[d]) / m[d])[None] * m[:, None, None]
        ok = (sheet >= first) & (sheet <= last)
        for a in range(3):
            ok &= (idx[a] >= -EDGE) & (idx[a] <= data.shape[a] - 1 + EDGE)
        if not ok.any():
            continue
        values = ndimage.map_coordinates(data, idx, order=1, mode="nearest")
        if how == "mip":
            acc = np.where(ok, np.maximum(acc, values), acc)
        elif how == "minip":
            acc = np.where(ok, np.minimum(acc, values), acc)
        else:
            acc = np.where(ok, acc + values, acc)
        count += ok
    inside = count > 0
    if how == "mean":
        acc = acc / np.maximum(count, 1)
    return np.where(inside, acc, 0.0), inside


def check(volume: Volume, grid: mpr.PlaneGrid, thickness: float, how: str, p999=1.0, worst=1.5):
    plane = mpr.reformat(volume, grid, thickness, how)
    ref, inside = slab_reference(volume, grid, thickness, how)
    valid = np.ones(inside.shape, bool) if plane.valid is None else plane.valid
    assert np.array_equal(valid, inside)
    assert inside.sum() > 50
    err = np.abs(plane.pixels.astype(np.float64) - ref)[inside]
    assert np.percentile(err, 99.9) <= p999 and err.max() <= worst, \
        (how, np.percentile(err, 99.9), err.max())
    assert (plane.pixels[~valid] == 0).all() and not plane.draft
    return plane


def _cross(geo, turns):
    cross = mpr.Crosshair.at_center(geo)
    for view, deg in turns:
        cross = cross.rotated(view, math.radians(deg))
    return cross


def kernel_of(volume: Volume, grid: mpr.PlaneGrid, thickness: float) -> str | None:
    return slab.kernel(volume.data, slab.lattice(volume.geometry, grid), thickness)


# (crosshair turns, view) -> the kernel that samples it on an axial stack
SINGLE = [
    ([("axial", 30)], "coronal", "bands"),       # contains k; r dominant
    ([("axial", 30)], "sagittal", "bands"),      # contains k; c dominant
    ([("coronal", -25)], "axial", "bands"),      # contains r
    ([("coronal", 35)], "sagittal", "bands"),
    ([("sagittal", 30)], "axial", "strips"),     # contains c; k dominant
    ([("sagittal", -40)], "coronal", "strips"),  # contains c; r dominant
]
DOUBLE = [
    ([("axial", 30), ("sagittal", 20)], "coronal", "lines"),      # r dominant
    ([("axial", -20), ("coronal", 15)], "axial", "lines"),        # k dominant
    ([("axial", 25), ("coronal", -30)], "axial", "lines"),        # c dominant
]


@pytest.mark.parametrize("how", ["mip", "minip", "mean"])
@pytest.mark.parametrize("turns, view, expected", SINGLE + DOUBLE)
def test_oblique_slabs_match_the_reference(turns, view, expected, how) -> None:
    """Anisotropic voxels (0.6 x 0.8 mm pixels, 2 mm slices), every kernel, 6 mm slab."""
    positions, row_dir, col_dir = GEOMETRIES["axial anisotropic"]
    base, _ = make_volume(positions, row_dir, col_dir, rows=30, cols=26)
    volume = Volume(textured(base.data.shape).astype(np.int16), base.geometry, META)
    grid = _cross(volume.geometry, turns).grid(volume.geometry, view)
    assert kernel_of(volume, grid, 6.0) == expected
    check(volume, grid, 6.0, how)


@pytest.mark.parametrize("name", ["reversed slice order", "rows run right to left",
                                  "sagittal acquisition", "oblique acquisition", "gantry tilt 20 deg"])
@pytest.mark.parametrize("how", ["mip", "mean"])
def test_slabs_in_other_acquisitions(name, how) -> None:
    """Reversed slice order, mirrored rows, sagittal, oblique and tilted stacks: single-
    and double-oblique slabs of every view follow the same rule."""
    base, _ = make_volume(*GEOMETRIES[name], rows=26, cols=24)
    volume = Volume(textured(base.data.shape, seed=2).astype(np.int16), base.geometry, META)
    geo = volume.geometry
    seen = set()
    for turns in ([("axial", 27)], [("coronal", 33), ("sagittal", -21)]):
        cross = _cross(geo, turns)
        for view in mpr.PLANES:
            grid = cross.grid(geo, view)
            if mpr._aligned_plan(geo, grid) is not None:
                continue
            seen.add(kernel_of(volume, grid, 5.0))
            check(volume, grid, 5.0, how)
    assert seen - {None}


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8, np.float32])
def test_other_pixel_types(dtype) -> None:
    positions, row_dir, col_dir = GEOMETRIES["axial anisotropic"]
    base, _ = make_volume(positions, row_dir, col_dir, rows=30, cols=26)
    scale = 1 / 12 if dtype == np.uint8 else 1.0
    values = textured(base.data.shape, seed=5, offset=0.0) * scale
    volume = Volume(values.astype(dtype), base.geometry, META)
    geo = volume.geometry
    bound = 1.5 if np.dtype(dtype).kind != "f" else 0.05
    for turns, view, _ in SINGLE[:1] + SINGLE[4:5] + DOUBLE[:1]:
        check(volume, _cross(geo, turns).grid(geo, view), 6.0, "mip", p999=min(bound, 1.0), worst=bound)


def test_signed_int16_with_negative_values() -> None:
    """OpenCV's 16S path places samples at 1/32 pixel: on smooth data within
    1/32 of the local range of the values."""
    positions, row_dir, col_dir = GEOMETRIES["axial anisotropic"]
    base, _ = make_volume(positions, row_dir, col_dir, rows=30, cols=26)
    data = (ndimage.gaussian_filter(np.random.default_rng(7).normal(0, 400, base.data.shape), 2.0)
            - 200).astype(np.int16)
    assert data.min() < 0
    volume = Volume(data, base.geometry, META)
    geo = volume.geometry
    bound = 1.0 + (ndimage.maximum_filter(data.astype(float), 2)
                   - ndimage.minimum_filter(data.astype(float), 2)).max() / 32
    for turns, view, _ in SINGLE[:1] + SINGLE[4:5] + DOUBLE:
        check(volume, _cross(geo, turns).grid(geo, view), 6.0, "mip", p999=bound, worst=bound)


def test_compiled_kernels_give_the_same_result_in_one_thread_and_in_row_blocks(monkeypatch) -> None:
    """Row blocks of the compiled loops handed to two workers (alternate blocks) give
    exactly what one thread computes over all rows, for slabs and thin planes."""
    positions, row_dir, col_dir = GEOMETRIES["axial anisotropic"]
    base, _ = make_volume(positions, row_dir, col_dir, rows=30, cols=26)
    volume = Volume(textured(base.data.shape, seed=9).astype(np.int16), base.geometry, META)
    geo = volume.geometry
    grid = _cross(geo, DOUBLE[0][0]).grid(geo, "coronal")
    lat = slab.lattice(geo, grid)
    monkeypatch.setattr(jit, "_BLOCK", 8)
    assert lat.height > 4 * jit._BLOCK
    calls: list[tuple[int, int]] = []
    real = jit._rows
    monkeypatch.setattr(jit, "_rows", lambda height, fn: real(height, lambda a, b: calls.append((a, b)) or fn(a, b)))
    parallel = {how: jit.slab_lines(volume.data, lat, slab.Slab.of(lat, 12.0), how) for how in jit.HOW}
    parallel["thin"] = jit.thin_plane(volume.data, lat)
    blocks = sorted(calls)
    assert blocks[0][0] == 0 and blocks[-1][1] == lat.height and len(set(calls)) == len(blocks) // 4
    monkeypatch.setattr(slab, "workers", lambda: 1)
    monkeypatch.setattr(jit, "workers", lambda: 1)
    for how, (values, valid) in parallel.items():
        if how == "thin":
            one = jit.thin_plane(volume.data, lat)
        else:
            one = jit.slab_lines(volume.data, lat, slab.Slab.of(lat, 12.0), how)
        np.testing.assert_array_equal(values, one[0])
        np.testing.assert_array_equal(valid, one[1])


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.int32, np.float64])
@pytest.mark.parametrize("turns, view", [([("axial", 30), ("sagittal", 20)], "coronal"),
                                         ([("axial", 25), ("coronal", -30)], "axial"),
                                         ([("sagittal", 30)], "axial")])
def test_thin_oblique_planes_are_trilinear_like_scipy(turns, view, dtype) -> None:
    """The compiled thin plane: map_coordinates' trilinear values rounded once to the
    stored type (float volumes: float32), the same pixels inside (1e-3 index units of
    tolerance at the hull), zeros outside; also on a single-slice volume."""
    positions, row_dir, col_dir = GEOMETRIES["axial anisotropic"]
    base, _ = make_volume(positions, row_dir, col_dir, rows=30, cols=26)
    scale = 1 / 12 if dtype == np.uint8 else 1.0
    offset = -1500.0 if np.dtype(dtype).kind in "if" else 0.0
    volume = Volume((textured(base.data.shape, seed=4, offset=0.0) * scale + offset).astype(dtype),
                    base.geometry, META)
    geo = volume.geometry
    grid = _cross(geo, turns).grid(geo, view)
    assert kernel_of(volume, grid, 0.0) in ("thin", "bands")
    plane = mpr.reformat(volume, grid)
    x, y = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    k, r, c = geo.patient_to_index(grid.to_patient(x, y))
    n, rows, cols = volume.data.shape
    tol = 1e-3
    inside = ((k >= -tol) & (k <= n - 1 + tol) & (r >= -tol) & (r <= rows - 1 + tol)
              & (c >= -tol) & (c <= cols - 1 + tol))
    expected = ndimage.map_coordinates(volume.data.astype(float), [k, r, c], order=1, mode="nearest")
    valid = np.ones(inside.shape, bool) if plane.valid is None else plane.valid
    assert np.array_equal(valid, inside) and inside.sum() > 100
    err = np.abs(plane.pixels.astype(float) - expected)[inside]
    bound = 0.51 if np.dtype(dtype).kind in "iu" else 0.01     # float32 arithmetic, values ~4000
    if kernel_of(volume, grid, 0.0) == "bands":
        bound = 1.0 if np.dtype(dtype).kind in "iu" else 0.05   # OpenCV: two roundings
    assert err.max() <= bound, err.max()
    assert (plane.pixels[~valid] == 0).all()


def test_compiled_kernels_on_a_single_slice_and_a_single_row() -> None:
    """Degenerate volumes: one slice (no neighbour along k), one row; a linear ramp
    comes back exactly on the plane through it."""
    ramp = (np.arange(1, dtype=float)[:, None, None] * 0 + 7 * np.arange(9)[None, :, None]
            + 3 * np.arange(11)[None, None, :]).astype(np.int16)          # (1, 9, 11)
    lat = slab.Lattice(np.array([0.0, 0.5, 0.25]), np.array([0.0, 0.0, 0.9]), np.array([0.0, 0.8, 0.0]),
                       np.array([1.0, 0.0, 0.0]), ramp.shape, 12, 11)
    values, valid = jit.thin_plane(ramp, lat)
    j, i = np.mgrid[0:11, 0:12]
    r, c = 0.5 + 0.8 * j, 0.25 + 0.9 * i
    inside = (r <= 8 + 1e-3) & (c <= 10 + 1e-3)
    assert np.array_equal(valid, inside)
    np.testing.assert_array_equal(values[inside], np.floor(7 * r + 3 * c + 0.5)[inside].astype(np.int16))
    row = ramp[:, :1, :]                                                    # (1, 1, 11)
    lat1 = slab.Lattice(np.array([0.0, 0.0, 0.5]), np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0]),
                        np.array([0.0, 1.0, 0.0]), row.shape, 10, 3)
    values, valid = jit.slab_lines(row, lat1, slab.Slab.of(lat1, 0.5), "mip")
    assert valid[0].all() and not valid[1:].any()
    np.testing.assert_array_equal(values[0], np.floor(3 * (0.5 + np.arange(10)) + 0.5).astype(np.int16))


@pytest.mark.parametrize("how", ["mip", "minip", "mean"])
def test_a_barely_turned_plane_gives_the_aligned_slab(how) -> None:
    """The crossing rule is the aligned path's rule: a coronal plane turned by 1e-4
    rad reduces the same voxels as the coronal plane."""
    base, _ = make_volume(axial_stack(n=12, dz=0.7), (1, 0, 0), (0, 1, 0), spacing=(0.7, 0.7),
                          rows=28, cols=24)
    smooth = ndimage.gaussian_filter(np.random.default_rng(3).normal(0, 400, base.data.shape), 1.5)
    volume = Volume((smooth + 1500).astype(np.int16), base.geometry, META)   # no sharp edges:
    geo = volume.geometry                          # the 1e-4 rad turn moves samples < 0.002 px
    straight = mpr.Crosshair.at_center(geo)
    grid = straight.grid(geo, "coronal")
    turned = straight.rotated("axial", 1e-4).grid(geo, "coronal")
    assert mpr._aligned_plan(geo, turned) is None and kernel_of(volume, turned, 4.2) == "bands"
    a = mpr.reformat(volume, grid, 4.2, how)
    b = mpr.reformat(volume, turned, 4.2, how)
    inside = np.ones(a.pixels.shape, bool) if b.valid is None else b.valid
    assert inside.mean() > 0.9
    assert np.abs(a.pixels.astype(int) - b.pixels.astype(int))[inside].max() <= 1


def test_draft_is_asked_for_and_reported() -> None:
    """draft=True halves the resolution of slow (double-oblique) slabs only, on the
    same grid, and says so; fast planes come back exact."""
    positions, row_dir, col_dir = GEOMETRIES["axial anisotropic"]
    base, _ = make_volume(positions, row_dir, col_dir, rows=40, cols=36)
    smooth = ndimage.gaussian_filter(np.random.default_rng(1).normal(0, 300, base.data.shape), 2.5) + 1500
    volume = Volume(smooth.astype(np.int16), base.geometry, META)
    geo = volume.geometry
    double = _cross(geo, DOUBLE[0][0]).grid(geo, "coronal")
    single = _cross(geo, SINGLE[0][0]).grid(geo, "coronal")
    assert mpr.slab_speed(volume, double, 6.0) == "slow"
    assert mpr.slab_speed(volume, single, 6.0) == "fast"
    assert mpr.slab_speed(volume, mpr.plane_grid(geo, "coronal"), 6.0) == "fast"
    full = mpr.reformat(volume, double, 6.0, "mip")
    draft = mpr.reformat(volume, double, 6.0, "mip", draft=True)
    assert draft.draft and not full.draft and draft.grid == double
    assert draft.pixels.shape == full.pixels.shape and draft.pixels.dtype == full.pixels.dtype
    both = draft.valid & full.valid
    assert both.sum() > 0.8 * full.valid.sum() and not (draft.valid & ~full.valid).any()
    assert np.median(np.abs(draft.pixels.astype(int) - full.pixels.astype(int))[both]) <= 20
    exact = mpr.reformat(volume, single, 6.0, "mip", draft=True)
    assert not exact.draft
    np.testing.assert_array_equal(exact.pixels, mpr.reformat(volume, single, 6.0, "mip").pixels)


def test_thin_single_oblique_planes_blend_the_sheets_like_scipy() -> None:
    """The thin plane of the band kernel: trilinear like map_coordinates within the
    two roundings to stored values (of the in-sheet samples, and of the blend)."""
    positions, row_dir, col_dir = GEOMETRIES["axial anisotropic"]
    base, _ = make_volume(positions, row_dir, col_dir, rows=30, cols=26)
    volume = Volume(textured(base.data.shape, seed=4).astype(np.int16), base.geometry, META)
    geo = volume.geometry
    for turns, view, _ in SINGLE[:4]:
        grid = _cross(geo, turns).grid(geo, view)
        assert kernel_of(volume, grid, 0.0) == "bands"
        plane = mpr.reformat(volume, grid)
        x, y = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
        k, r, c = geo.patient_to_index(grid.to_patient(x, y))
        expected = ndimage.map_coordinates(volume.data.astype(float), [k, r, c], order=1, mode="nearest")
        ok = plane.valid if plane.valid is not None else np.ones(expected.shape, bool)
        assert ok.sum() > 100
        assert np.abs(plane.pixels.astype(float) - expected)[ok].max() <= 1.0
