"""Volumes from scanned series (viewer.io.volume): checks, shared bytes, real files."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

import dicomgen as g
from medviewer.viewer.display import mpr
from medviewer.viewer.io import demo
from medviewer.viewer.io.pixels import PixelStore
from medviewer.viewer.io.scan import scan
from medviewer.viewer.io.volume import VolumeCancelled, VolumeError, build_volume, check_series


def _series(folder: Path):
    (series,) = scan(folder).all_series()
    return series


def test_tilted_series_builds_with_a_note_and_the_store_serves_views(tmp_path: Path) -> None:
    paths, _ = g.ct_series(tmp_path, 8, tilt_deg=20.0, shuffle_names=True)
    series = _series(tmp_path)
    check = check_series(series)
    assert check.ok and any("gantry tilt 20.0 deg" in n for n in check.notes)
    with PixelStore(headers=series.headers) as store:
        expected = [store.get(r).copy() for r in series.items]   # cached as separate arrays
        assert store.cached_bytes == sum(a.nbytes for a in expected)
        volume = build_volume(series, store, check)
        assert volume.data.dtype == np.int16 and not volume.data.flags.writeable
        for k, ref in enumerate(series.items):
            np.testing.assert_array_equal(volume.data[k], expected[k])
            assert np.shares_memory(store.get(ref), volume.data)   # held once
        assert store.cached_bytes == volume.nbytes == store.pinned_bytes
        assert volume.geometry.tilt_deg == pytest.approx(20.0, abs=1e-6)
        volume.close()
        assert store.pinned_bytes == 0
        again = store.get(series.items[3])
        assert not np.shares_memory(again, volume.data)
        np.testing.assert_array_equal(again, expected[3])


def test_build_from_files_decodes_without_filling_the_lru(tmp_path: Path) -> None:
    g.ct_series(tmp_path, 6, reverse=True)
    series = _series(tmp_path)
    seen = []
    with PixelStore(headers=series.headers, max_bytes=10 * 16 * 16 * 2) as store:
        volume = build_volume(series, store, progress=lambda done, total: seen.append((done, total)))
        assert seen[-1] == (6, 6)
        assert [int(volume.data[k, 1, 1]) for k in range(6)] == [g.slice_value(k) for k in range(6)]
        assert store.pinned_bytes == volume.nbytes and store.cached_bytes == volume.nbytes
        volume.close()


def test_cancel_leaves_nothing_pinned(tmp_path: Path) -> None:
    g.ct_series(tmp_path, 6)
    series = _series(tmp_path)
    with PixelStore(headers=series.headers) as store:
        with pytest.raises(VolumeCancelled):
            build_volume(series, store, should_stop=lambda: True)
        assert store.pinned_bytes == 0


def test_enhanced_multiframe_volume(tmp_path: Path) -> None:
    g.multiframe(tmp_path / "mf.dcm", frames=5, enhanced=True, reversed_positions=True)
    series = _series(tmp_path)
    with PixelStore(headers=series.headers) as store, build_volume(series, store) as volume:
        assert [int(volume.data[k, 1, 1]) for k in range(5)] == [g.slice_value(k) for k in range(5)]
        assert volume.geometry.kind == "axial"


def test_real_enhanced_ct_volume_and_axial_plane(tmp_path: Path) -> None:
    """pydicom-data eCT_Supplemental.dcm: 2 frames 10 mm apart, rows running right to left."""
    shutil.copy(get_testdata_file("eCT_Supplemental.dcm"), tmp_path / "ect.dcm")
    series = _series(tmp_path)
    check = check_series(series)
    assert check.ok, check.reason
    with PixelStore(headers=series.headers) as store, build_volume(series, store, check) as volume:
        assert volume.geometry.slice_spacing == pytest.approx(10.0)
        plane = mpr.reformat(volume, mpr.grid_at(volume.geometry, "axial", 0))
        # Image Orientation (-1, 0, 0, 0, 1, 0): the radiological axial view flips the rows
        np.testing.assert_array_equal(plane.pixels, store.get(series.items[0])[:, ::-1])
        assert plane.labels().left == "R"


@pytest.mark.parametrize("make, reason", [
    (lambda d: g.ct_series(d, 1), "a single image"),
    (lambda d: g.ct_series(d, 4, geometry=False), "no Image Position/Orientation"),
    (lambda d: g.plain_images(d, 3), "plain images"),
])
def test_refusals_say_why(tmp_path: Path, make, reason) -> None:
    make(tmp_path)
    check = check_series(_series(tmp_path))
    assert not check.ok and reason in check.reason
    with PixelStore() as store, pytest.raises(VolumeError, match=reason):
        build_volume(_series(tmp_path), store)


def _edit(path: Path, **values) -> None:
    import pydicom

    ds = pydicom.dcmread(path)
    for key, value in values.items():
        setattr(ds, key, value)
    ds.save_as(path)


def test_refusals_for_inconsistent_slices(tmp_path: Path) -> None:
    cases = {
        "orient": ({"ImageOrientationPatient": [1, 0, 0, 0, 0, -1]}, "Image Orientation (Patient) differs"),
        "spacing": ({"PixelSpacing": [0.5, 0.5]}, "Pixel Spacing differs"),
        "rescale": ({"RescaleSlope": 2}, "Rescale Slope differs"),
        "dup": ({"ImagePositionPatient": None}, "lie at one position"),
    }
    for name, (edit, reason) in cases.items():
        folder = tmp_path / name
        paths, _ = g.ct_series(folder, 5)
        if name == "dup":
            import pydicom

            edit = {"ImagePositionPatient": list(pydicom.dcmread(paths[1]).ImagePositionPatient)}
        _edit(paths[2], **edit)
        check = check_series(_series(folder))
        assert not check.ok and reason in check.reason, (name, check.reason)
        assert "\n" not in check.reason


def test_missing_slices_refused_unequal_spacing_accepted(tmp_path: Path) -> None:
    paths, _ = g.ct_series(tmp_path / "gap", 8, dz=2.0)
    for p in paths[3:6]:
        p.unlink()
    check = check_series(_series(tmp_path / "gap"))
    assert not check.ok and "slices missing" in check.reason and "gap 8.00 mm" in check.reason
    paths, _ = g.ct_series(tmp_path / "uneven", 8, dz=2.0)
    paths[4].unlink()      # one missing slice: spacing 2 and 4 mm, resampled
    check = check_series(_series(tmp_path / "uneven"))
    assert check.ok and "slice spacing varies 2.00-4.00 mm" in check.notes[0]


def test_colour_and_too_big_refused(tmp_path: Path) -> None:
    g.ct_series(tmp_path / "ct", 4)
    assert "MiB" in check_series(_series(tmp_path / "ct"), max_bytes=100).reason
    shutil.copy(get_testdata_file("color3d_jpeg_baseline.dcm"), tmp_path / "us.dcm")
    series = next(s for s in scan(tmp_path / "us.dcm").all_series())
    assert not check_series(series).ok


def test_demo_phantom_planes(tmp_path: Path) -> None:
    folder = demo.make_demo_study(tmp_path)
    series = _series(folder)
    with PixelStore(headers=series.headers) as store, build_volume(series, store) as volume:
        geo = volume.geometry
        assert geo.kind == "axial" and geo.slice_spacing == pytest.approx(demo.DZ_MM)
        for k in (0, 20, 47):
            plane = mpr.reformat(volume, mpr.grid_at(geo, "axial", k))
            np.testing.assert_array_equal(plane.pixels, store.get(series.items[k]))
        cor = mpr.reformat(volume, mpr.grid_at(geo, "coronal"))
        # superior at the top: the thorax (lungs, about -850 HU) above the abdomen
        hu = cor.pixels.astype(float) - 1024
        top, bottom = hu[: cor.grid.height // 3], hu[-cor.grid.height // 4:]
        assert (top < -700).mean() > (bottom < -700).mean() + 0.05
        assert cor.grid.spacing == pytest.approx(min(geo.pixel_spacing))
        assert cor.grid.height == int(math.floor((47 * demo.DZ_MM) / cor.grid.spacing + 1e-6)) + 1
