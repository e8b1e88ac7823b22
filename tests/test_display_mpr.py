"""Reformats (viewer.display.mpr / reslice) against numpy references.

Volumes are written the way DICOM defines them (PS3.3 C.7.6.2.1.1): voxel (k, r, c)
lies at IPP_k + r * row spacing * column cosine + c * column spacing * row cosine,
computed here independently of viewer.io.volume.  A volume whose values are a
linear function of the patient position must reformat to that same function at
every output pixel, whatever the spacing, tilt, obliquity or slice order.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from medviewer.viewer.display import PRESETS, mpr, reslice
from medviewer.viewer.display.meta import ImageMeta
from medviewer.viewer.io.volume import Volume, VolumeGeometry

GRAD = np.array([3.0, -2.0, 5.0])     # stored units per mm
OFFSET = 4000.0
META = ImageMeta(photometric="MONOCHROME2", bits_stored=16, bits_allocated=16,
                 pixel_representation=1, rescale_intercept=-1024.0, modality="CT", units="HU")


def _rot(axis, deg: float) -> np.ndarray:
    return mpr.rotation_about(axis, math.radians(deg))


def patient_points(positions, row_dir, col_dir, spacing, rows, cols) -> np.ndarray:
    """(n, rows, cols, 3) voxel centres straight from PS3.3 C.7.6.2.1.1."""
    positions = np.asarray(positions, float)
    r = np.arange(rows)[:, None, None] * spacing[0] * np.asarray(col_dir, float)
    c = np.arange(cols)[None, :, None] * spacing[1] * np.asarray(row_dir, float)
    return positions[:, None, None, :] + r[None] + c[None]


def make_volume(positions, row_dir, col_dir, spacing=(0.6, 0.8), rows=24, cols=20,
                values=None, dtype=np.int16) -> tuple[Volume, np.ndarray]:
    pts = patient_points(positions, row_dir, col_dir, spacing, rows, cols)
    linear = pts @ GRAD + OFFSET
    data = ((linear if np.dtype(dtype).kind == "f" else np.rint(linear)) if values is None
            else values(pts)).astype(dtype)
    geo = VolumeGeometry(positions, row_dir, col_dir, spacing, data.shape)
    return Volume(data, geo, META), pts


def axial_stack(n=14, dz=2.0, z0=30.0):
    return [(-8.0, -9.0, z0 - k * dz) for k in range(n)]  # head to feet


def _tilt(deg: float) -> tuple[float, float, float]:
    return (0.0, math.cos(math.radians(deg)), math.sin(math.radians(deg)))


_OBL = _rot((1, 2, 3), 25)
# name -> (positions, row cosine, column cosine)
GEOMETRIES = {
    "axial anisotropic": (axial_stack(), (1, 0, 0), (0, 1, 0)),
    "reversed slice order": (axial_stack()[::-1], (1, 0, 0), (0, 1, 0)),
    "rows run right to left": (axial_stack(), (-1, 0, 0), (0, 1, 0)),
    "unequal slice spacing": ([(-8.0, -9.0, z) for z in (30, 29, 27.5, 25, 24, 21, 20.2, 18, 17, 14)],
                              (1, 0, 0), (0, 1, 0)),
    "gantry tilt 20 deg": (axial_stack(), (1, 0, 0), _tilt(20)),
    "oblique acquisition": ([tuple(np.array([-5.0, -6.0, 10.0]) + k * 1.5 * (_OBL @ [0, 0, 1]))
                             for k in range(12)], _OBL @ [1, 0, 0], _OBL @ [0, 1, 0]),
    "sagittal acquisition": ([(-10.0 + 1.2 * k, -9.0, 30.0) for k in range(12)], (0, 1, 0), (0, 0, -1)),
    "tilt + unequal spacing": ([(-8.0, -9.0, z) for z in (30, 28, 27, 24, 23, 20, 19, 17)],
                               (1, 0, 0), _tilt(-15)),
}


def case(name: str, **kw) -> tuple[Volume, np.ndarray]:
    return make_volume(*GEOMETRIES[name], **kw)




def _expected(grid: mpr.PlaneGrid) -> np.ndarray:
    x, y = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    return grid.to_patient(x, y) @ GRAD + OFFSET


def _check_linear(plane: mpr.Plane, tol: float = 0.75) -> int:
    expected = _expected(plane.grid)
    ok = np.ones(expected.shape, bool) if plane.valid is None else plane.valid
    if not ok.any():   # the first / last plane across a tilted volume may touch a corner only
        return 0
    err = np.abs(plane.pixels.astype(float) - expected)[ok]
    assert err.max() <= tol, f"max error {err.max():.3f}"
    return int(ok.sum())


@pytest.mark.parametrize("dtype, tol", [(np.float32, 0.01), (np.int16, 1.5)])
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_every_plane_reproduces_a_linear_volume(name, dtype, tol) -> None:
    """Thin standard planes (several positions) and oblique planes land on the patient
    position that PlaneGrid.to_patient gives for each output pixel.  float32: exact;
    int16 (no negative values: OpenCV's exact float-coordinate path): the voxels, the
    in-sheet samples and the blend along the slices are each rounded (3 x 0.5)."""
    volume, _ = case(name, dtype=dtype)
    geo = volume.geometry
    cross = mpr.Crosshair.at_center(geo)
    seen = 0
    for kind in mpr.PLANES:
        count = len(mpr.plane_offsets(geo, kind))
        for index in {0, count // 3, count - 1}:
            seen += _check_linear(mpr.reformat(volume, mpr.grid_at(geo, kind, index)), tol)
    oblique = cross.rotated("axial", math.radians(30)).rotated("sagittal", math.radians(-20))
    for kind in mpr.PLANES:
        seen += _check_linear(mpr.reformat(volume, oblique.grid(geo, kind)), tol)
    assert seen > 2000


def test_standard_planes_follow_the_radiological_convention() -> None:
    volume, _ = case("oblique acquisition")
    geo = volume.geometry
    expected = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "H", "F"),
                "sagittal": ("A", "P", "H", "F")}
    for kind, letters in expected.items():
        grid = mpr.plane_grid(geo, kind)
        lab = grid.labels()
        assert (lab.left, lab.right, lab.top, lab.bottom) == letters
        # one pixel step right / down moves by the spacing along the convention's axes
        right, down, normal = mpr.STANDARD_AXES[kind]
        p00, p10, p01 = grid.to_patient(0.5, 0.5), grid.to_patient(1.5, 0.5), grid.to_patient(0.5, 1.5)
        np.testing.assert_allclose(p10 - p00, np.array(right) * grid.spacing, atol=1e-9)
        np.testing.assert_allclose(p01 - p00, np.array(down) * grid.spacing, atol=1e-9)
        assert grid.spacing == pytest.approx(0.6)  # square, the smaller in-plane spacing


def test_acquired_axial_plane_is_the_slice_itself_and_flips_when_rows_run_right_to_left() -> None:
    volume, _ = make_volume(axial_stack(), (1, 0, 0), (0, 1, 0), spacing=(0.7, 0.7),
                            values=lambda p: np.random.default_rng(3).integers(0, 3000, p.shape[:3]))
    for k in (0, 5, 13):
        plane = mpr.reformat(volume, mpr.grid_at(volume.geometry, "axial", k))
        assert plane.valid is None
        np.testing.assert_array_equal(plane.pixels, volume.data[k])
        assert np.shares_memory(plane.pixels, volume.data)  # no copy for the acquired plane
    flipped, _ = make_volume(axial_stack(), (-1, 0, 0), (0, 1, 0), spacing=(0.7, 0.7),
                             values=lambda p: np.random.default_rng(3).integers(0, 3000, p.shape[:3]))
    plane = mpr.reformat(flipped, mpr.grid_at(flipped.geometry, "axial", 4))
    np.testing.assert_array_equal(plane.pixels, flipped.data[4][:, ::-1])  # patient right on the left


def test_isotropic_coronal_and_sagittal_are_rows_and_columns_of_the_stack() -> None:
    rng = np.random.default_rng(5)
    volume, _ = make_volume(axial_stack(n=10, dz=0.7), (1, 0, 0), (0, 1, 0), spacing=(0.7, 0.7),
                            values=lambda p: rng.integers(-2000, 3000, p.shape[:3]))
    geo = volume.geometry
    for r in (0, 7, 23):   # coronal plane r: anterior (row 0) first
        plane = mpr.reformat(volume, mpr.grid_at(geo, "coronal", r))
        np.testing.assert_array_equal(plane.pixels, volume.data[:, r, :])  # superior (k=0) on top
    for c in (0, 11, 19):  # sagittal plane c: patient right (column 0) first
        plane = mpr.reformat(volume, mpr.grid_at(geo, "sagittal", c))
        np.testing.assert_array_equal(plane.pixels, volume.data[:, :, c])  # anterior on the left


def _smooth(shape, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.normal(0, 400, shape), 1.5) + 1500


def _reference(volume: Volume, grid: mpr.PlaneGrid, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """scipy.ndimage.map_coordinates (order 1) at indices from an independent inversion."""
    geo = volume.geometry
    p0 = np.asarray(geo.positions[0])
    n = geo.shape[0]
    step = (np.asarray(geo.positions[-1]) - p0) / (n - 1)
    m = np.stack([step, geo.col_dir * geo.pixel_spacing[0], geo.row_dir * geo.pixel_spacing[1]]).T
    x, y = np.meshgrid(np.arange(grid.width) + 0.5, np.arange(grid.height) + 0.5)
    pts = grid.to_patient(x, y) + shift * np.asarray(grid.normal)
    idx = np.linalg.solve(m, (pts - p0).reshape(-1, 3).T).reshape(3, *x.shape)
    ref = ndimage.map_coordinates(volume.data.astype(float), idx, order=1, mode="nearest")
    inside = np.all([(idx[a] >= -1e-3) & (idx[a] <= volume.data.shape[a] - 1 + 1e-3) for a in range(3)],
                    axis=0)
    return ref, inside


@pytest.mark.parametrize("name", ["axial anisotropic", "reversed slice order", "gantry tilt 20 deg",
                                  "oblique acquisition"])
@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float32])
def test_trilinear_values_match_scipy(name, dtype) -> None:
    """Smooth random volumes: thin oblique planes agree with map_coordinates within the
    two roundings to stored values (OpenCV 5 interpolates uint16 / float32 at the exact
    float position; a non-negative int16 volume is read through its uint16 view)."""
    base, _ = case(name)
    geo = base.geometry
    data = _smooth(geo.shape).astype(dtype)
    volume = Volume(data, geo, META)
    cross = mpr.Crosshair.at_center(geo).rotated("axial", math.radians(23)).rotated(
        "coronal", math.radians(11))
    for kind in mpr.PLANES:
        grid = cross.grid(geo, kind)
        plane = mpr.reformat(volume, grid)
        ref, inside = _reference(volume, grid)
        ok = inside if plane.valid is None else plane.valid
        assert np.array_equal(ok, inside)
        bound = 0.01 if dtype == np.float32 else 1.0
        err = np.abs(plane.pixels.astype(float) - ref)[ok]
        assert err.max() <= bound and err.mean() < 0.6, (err.max(), bound)


def test_signed_int16_with_negative_values_uses_the_signed_path() -> None:
    base, _ = case("oblique acquisition")
    data = (_smooth(base.geometry.shape) - 2500).astype(np.int16)   # values below 0
    volume = Volume(data, base.geometry, META)
    assert not mpr.volume_nonnegative(volume)
    grid = mpr.Crosshair.at_center(base.geometry).rotated("axial", 0.4).grid(base.geometry, "coronal")
    plane = mpr.reformat(volume, grid)
    ref, inside = _reference(volume, grid)
    assert np.abs(plane.pixels.astype(float) - ref)[inside].max() <= 0.5 + np.ptp(data) / 32


@pytest.mark.parametrize("how, fn", [("mip", np.max), ("minip", np.min), ("mean", np.mean)])
def test_axis_aligned_slabs_reduce_the_voxels_inside(how, fn) -> None:
    rng = np.random.default_rng(9)
    volume, _ = make_volume(axial_stack(n=16, dz=2.0), (1, 0, 0), (0, 1, 0), spacing=(0.7, 0.7),
                            values=lambda p: rng.integers(-1000, 3000, p.shape[:3]))
    geo, data = volume.geometry, volume.data
    # axial slab of 8 mm around slice 6: slices whose centres lie within +-4 mm -> 4..8
    plane = mpr.reformat(volume, mpr.grid_at(geo, "axial", 6), 8.0, how)
    expected = fn(data[4:9].astype(float), axis=0)
    np.testing.assert_allclose(plane.pixels, np.rint(expected) if how == "mean" else expected, atol=0.5)
    # coronal slab of 2.1 mm around row 10 (0.7 mm rows): rows 9..11, then the slices
    # (2 mm apart) resampled to 0.7 mm rows
    plane = mpr.reformat(volume, mpr.grid_at(geo, "coronal", 10), 2.1, how)
    red = fn(data[:, 9:12, :].astype(float), axis=1)
    rows = np.arange(plane.grid.height) * 0.7 / 2.0
    k0 = np.minimum(np.floor(rows).astype(int), 14)
    w = (rows - k0)[:, None]
    ref = red[k0] * (1 - w) + red[k0 + 1] * w
    assert np.abs(plane.pixels - ref).max() <= 0.5 + 1e-3
    # sagittal slab (the OpenCV transposed reduction) around column 5
    plane = mpr.reformat(volume, mpr.grid_at(geo, "sagittal", 5), 1.5, how)
    red = fn(data[:, :, 4:7].astype(float), axis=2)
    ref = red[k0] * (1 - w) + red[k0 + 1] * w
    assert np.abs(plane.pixels - ref).max() <= 0.5 + 1e-3
    assert plane.projection == how and plane.thickness_mm == 1.5


def test_plane_offsets_index_acquired_slices_rows_and_columns() -> None:
    volume, _ = case("unequal slice spacing")
    geo = volume.geometry
    axial = mpr.plane_offsets(geo, "axial")
    np.testing.assert_allclose(axial, sorted(-z for z in (30, 29, 27.5, 25, 24, 21, 20.2, 18, 17, 14)))
    assert len(mpr.plane_offsets(geo, "coronal")) == 24 and len(mpr.plane_offsets(geo, "sagittal")) == 20
    with pytest.raises(IndexError, match="0..9"):
        mpr.grid_at(geo, "axial", 10)
    # the middle plane by default
    assert mpr.grid_at(geo, "axial").offset_along_normal(geo.positions[5]) == pytest.approx(0.0)


def test_crosshair_rotation_turns_the_other_views_only() -> None:
    volume, _ = case("axial anisotropic")
    geo = volume.geometry
    cross = mpr.Crosshair.at_center(geo)
    turned = cross.rotated("axial", math.radians(90))
    # the axial view does not move; the coronal plane becomes a sagittal-like plane
    assert turned.grid(geo, "axial") == cross.grid(geo, "axial")
    right, down, normal = turned.axes("coronal")
    np.testing.assert_allclose(down, [0, 0, -1], atol=1e-12)
    assert abs(normal[0]) == pytest.approx(1.0)   # counter-clockwise on screen: 90 deg
    # the crosshair lines of the axial view pass through the centre point
    lines = turned.lines(geo, "axial")
    view = turned.grid(geo, "axial")
    cx, cy, _ = view.from_patient(np.asarray(turned.center))
    for (x0, y0), (x1, y1) in lines.values():
        cross_z = (x1 - x0) * (cy - y0) - (y1 - y0) * (cx - x0)
        assert abs(cross_z) < 1e-6
    moved = turned.moved_to(geo.positions[3]).scrolled("axial", 2.0)
    assert moved.center[2] == pytest.approx(geo.positions[3][2] - 2.0)  # axial scrolls to the feet


def test_render_plane_uses_the_display_pipeline_and_blacks_out_the_outside() -> None:
    volume, _ = case("oblique acquisition")
    grid = mpr.Crosshair.at_center(volume.geometry).rotated("axial", 0.7).grid(volume.geometry, "coronal")
    plane = mpr.reformat(volume, grid)
    window = PRESETS["bone"]
    grey = mpr.render_plane(plane, window)
    from medviewer.viewer.display import render

    assert plane.valid is not None and not plane.valid.all()
    np.testing.assert_array_equal(grey[plane.valid], render(plane.pixels, META, window)[plane.valid])
    assert (grey[~plane.valid] == 0).all()
    assert mpr.volume_window(volume) == mpr.volume_window(volume)  # computed once


def test_tiles_cover_the_output_within_the_remap_limit() -> None:
    k0 = np.add.outer(np.arange(300) // 2, np.arange(200) // 3).astype(np.int32)
    tiles = reslice._tiles(k0, 10)
    cover = np.zeros(k0.shape, int)
    for i0, i1, j0, j1, kmin in tiles:
        cover[i0:i1, j0:j1] += 1
        assert k0[i0:i1, j0:j1].max() + 1 - kmin < 10 and k0[i0:i1, j0:j1].min() >= kmin
    assert (cover == 1).all()
