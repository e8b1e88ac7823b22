"""The generated demo study (viewer.io.demo)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medviewer.viewer.display import modality_values
from medviewer.viewer.io import demo
from medviewer.viewer.io.pixels import PixelStore
from medviewer.viewer.io.scan import scan


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return demo.make_demo_study(tmp_path_factory.mktemp("cache"))


def test_phantom_series_geometry_and_header(demo_dir: Path) -> None:
    res = scan(demo_dir)
    assert not res.skipped and not res.non_image
    (study,) = res.studies
    assert study.patient_name == "DEMO^PHANTOM"
    (series,) = study.series
    assert (series.modality, series.rows, series.columns) == ("CT", 256, 256)
    assert len(series.items) == demo.SLICES
    z = [float(series.headers[r.path].ImagePositionPatient[2]) for r in series.items]
    # head to feet (the stack convention): instance 1 (CT001, the top slice) first
    assert z == sorted(z, reverse=True) and np.allclose(np.diff(z), -demo.DZ_MM)
    assert series.items[0].path.name == "CT001.dcm"
    ds = series.headers[series.items[0].path]
    assert (ds.RescaleIntercept, ds.RescaleSlope, ds.PixelRepresentation) == (-1024, 1, 1)
    assert float(ds.WindowCenter[0]) == 40 and float(ds.WindowWidth[0]) == 400


def test_phantom_hu_values(demo_dir: Path) -> None:
    (series,) = scan(demo_dir).all_series()
    with PixelStore(headers=series.headers) as store:
        top = series.items[7]  # thorax (display order runs head to feet)
        bottom = series.items[-3]  # upper abdomen
        stored = store.get(top)
        assert stored.dtype == np.int16
        hu = modality_values(stored, store.meta(top))
        hu_abd = modality_values(store.get(bottom), store.meta(bottom))
    assert abs(np.median(hu[:10, :10]) + 1000) < 30  # air outside the body
    assert abs(np.median(hu[128 - 20:128 - 10, 128 + 40:128 + 50]) + 850) < 40  # lung
    assert hu.max() > 1000  # cortical bone
    liver = hu_abd[128 - 5:128 + 5, 128 - 40:128 - 30]  # patient right = image left
    assert abs(np.median(liver) - 60) < 15


def test_generated_once_and_deterministic(demo_dir: Path, tmp_path: Path) -> None:
    first = sorted(demo_dir.glob("*.dcm"))
    stamp = first[0].stat().st_mtime_ns
    assert demo.make_demo_study(demo_dir.parent) == demo_dir
    assert first[0].stat().st_mtime_ns == stamp  # not rewritten
    other = demo.make_demo_study(tmp_path)
    a = scan(demo_dir).all_series()[0]
    b = scan(other).all_series()[0]
    assert a.series_uid == b.series_uid  # UIDs derived from fixed text


def test_demo_root_holds_phantom_and_real_files(tmp_path: Path) -> None:
    root = demo.demo_root(tmp_path)
    res = scan(root)
    modalities = {s.modality for s in res.all_series()}
    assert "CT" in modalities
    real = demo.real_files()
    assert {p.name for p in (root / "pydicom").iterdir()} == {p.name for p in real}
    assert len(res.all_series()) >= 1 + min(len(real), 1)
    assert not res.skipped
    paths = demo.demo_paths(tmp_path)
    assert paths[0].is_dir() and all(p.exists() for p in paths)
