"""Study scanning on generated edge cases (viewer.io.scan)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydicom.data import get_testdata_file

import dicomgen as g
from medviewer.viewer.errors import NothingToShowError
from medviewer.viewer.io.model import ImageRef
from medviewer.viewer.io.pixels import PixelStore
from medviewer.viewer.io.scan import scan


def _values(refs: list[ImageRef]) -> list[int]:
    """Slice value (pixel [1,1]) of each image: encodes the expected display index."""
    with PixelStore() as store:
        return [int(store.get(r)[1, 1]) for r in refs]


EXPECTED = [g.slice_value(k) for k in range(8)]


@pytest.mark.parametrize("kw", [
    dict(shuffle_names=True, scramble_instances=True),
    dict(reverse=True),
    dict(tilt_deg=20.0, shuffle_names=True),
    dict(reverse=True, tilt_deg=-15.0, scramble_instances=True),
])
def test_series_sorted_by_geometry(tmp_path: Path, kw: dict) -> None:
    paths, uid = g.ct_series(tmp_path, 8, **kw)
    res = scan(tmp_path)
    (series,) = res.all_series()
    assert series.series_uid == uid
    assert [r.path for r in series.items] == paths
    assert _values(series.items) == EXPECTED


def test_without_geometry_instance_number_then_names(tmp_path: Path) -> None:
    paths, _ = g.ct_series(tmp_path / "inst", 5, geometry=False, reverse=True)
    (series,) = scan(tmp_path / "inst").all_series()
    assert [r.path for r in series.items] == paths[::-1]  # instance numbers count down


def test_two_series_in_one_folder(tmp_path: Path) -> None:
    study = "1.2.826.0.1.3680043.8.498.1"
    a, ua = g.ct_series(tmp_path, 4, series_number=3, study_uid=study, prefix="A", shuffle_names=True)
    b, ub = g.ct_series(tmp_path, 6, series_number=2, study_uid=study, prefix="B", seed=3,
                        shuffle_names=True)
    res = scan(tmp_path)
    (st,) = res.studies
    assert [s.series_uid for s in st.series] == [ub, ua]  # by Series Number
    assert [len(s.items) for s in st.series] == [6, 4]
    assert [r.path for r in st.series[1].items] == a
    assert set(st.series[0].headers) == set(b)


def test_signed_and_unsigned_pixels_keep_stored_dtype(tmp_path: Path) -> None:
    g.ct_series(tmp_path / "s", 2, signed=True)
    g.ct_series(tmp_path / "u", 2, signed=False)
    res = scan(tmp_path)
    with PixelStore() as store:
        arrays = {s.items[0].path.parent.name: store.get(s.items[0]) for s in res.all_series()}
    assert arrays["s"].dtype == np.int16 and arrays["s"][0, 0] == -5
    assert arrays["u"].dtype == np.uint16 and arrays["u"][0, 0] == 65000


def test_corrupt_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    paths, _ = g.ct_series(tmp_path, 4)
    g.truncated(tmp_path / "cut_pixels.dcm", paths[0], keep=0.9)
    g.truncated_header(tmp_path / "cut_header.dcm", paths[0])
    g.garbage(tmp_path / "garbage.dcm")
    g.text_file(tmp_path / "notes.txt")
    (tmp_path / "empty").write_bytes(b"")
    g.structured_report(tmp_path / "report.dcm")
    res = scan(tmp_path)
    (series,) = res.all_series()
    assert len(series.items) == 4
    reasons = {s.path.name: s.reason for s in res.skipped}
    assert set(reasons) == {"cut_pixels.dcm", "cut_header.dcm", "garbage.dcm", "notes.txt", "empty"}
    assert reasons["cut_pixels.dcm"].startswith("truncated pixel data")
    assert reasons["notes.txt"] == "not a DICOM or image file"
    assert reasons["empty"] == "empty file"
    assert all("\n" not in r and len(r) < 200 for r in reasons.values())
    assert [(n.path.name, n.sop_class) for n in res.non_image] == [
        ("report.dcm", "Comprehensive SR Storage")]
    doc = res.to_json()
    assert {s["path"] for s in doc["skipped"]} == set(reasons)


def test_real_non_image_objects_listed(tmp_path: Path) -> None:
    for name in ("rtstruct.dcm", "test-SR.dcm", "rtplan.dcm", "CT_small.dcm"):
        shutil.copy(get_testdata_file(name), tmp_path / name)
    res = scan(tmp_path)
    assert {n.path.name: n.sop_class for n in res.non_image} == {
        "rtstruct.dcm": "RT Structure Set Storage",
        "test-SR.dcm": "Comprehensive SR Storage",
        "rtplan.dcm": "RT Plan Storage",
    }
    assert [s.modality for s in res.all_series()] == ["CT"]
    assert not res.skipped


def test_files_without_extension_or_preamble(tmp_path: Path) -> None:
    paths, _ = g.ct_series(tmp_path, 3, suffix="")
    g.no_preamble(tmp_path / "raw")
    res = scan(tmp_path)
    counts = sorted(len(s.items) for s in res.all_series())
    assert counts == [1, 3] and not res.skipped
    raw = next(s for s in res.all_series() if len(s.items) == 1)
    with PixelStore() as store:
        assert store.get(raw.items[0]).tolist() == [[7] * 4] * 4


def test_enhanced_multiframe_ordered_by_frame_position(tmp_path: Path) -> None:
    g.multiframe(tmp_path / "mf.dcm", frames=5, enhanced=True, reversed_positions=True)
    (series,) = scan(tmp_path).all_series()
    assert [r.frame for r in series.items] == [4, 3, 2, 1, 0]
    assert _values(series.items) == EXPECTED[:5]


def test_classic_multiframe_real_file_expands_to_frames(tmp_path: Path) -> None:
    shutil.copy(get_testdata_file("emri_small.dcm"), tmp_path / "emri")
    (series,) = scan(tmp_path).all_series()
    assert [r.frame for r in series.items] == list(range(10))


def test_dicomdir_records_used_and_not_listed(tmp_path: Path) -> None:
    dicomdir, files = g.with_dicomdir(tmp_path / "cd", 3)
    res = scan(tmp_path / "cd")
    (series,) = res.all_series()
    assert sorted(r.path for r in series.items) == sorted(files)
    assert not res.skipped and not res.non_image  # DICOMDIR itself is not listed


def test_dicomdir_given_as_the_path(tmp_path: Path) -> None:
    dicomdir, files = g.with_dicomdir(tmp_path / "cd", 3)
    res = scan(dicomdir)
    assert sorted(r.path for r in res.all_series()[0].items) == sorted(files)
    assert res.to_json()["studies"][0]["series"][0]["items"][0]["path"].startswith("PT000000/")


def test_dicomdir_missing_reference_reported(tmp_path: Path) -> None:
    dicomdir, files = g.with_dicomdir(tmp_path / "cd", 3)
    files[0].unlink()
    res = scan(tmp_path / "cd")
    assert len(res.all_series()[0].items) == 2
    assert [s.reason for s in res.skipped] == ["listed in DICOMDIR but missing"]


def test_real_dicomdir_file_set(tmp_path: Path) -> None:
    src = Path(get_testdata_file("DICOMDIR", download=False) or
               Path(get_testdata_file("CT_small.dcm")).parent / "dicomdirtests" / "DICOMDIR")
    shutil.copytree(src.parent / "77654033", tmp_path / "77654033")
    shutil.copy(src, tmp_path / "DICOMDIR")
    res = scan(tmp_path)
    assert {s.modality for s in res.all_series()} == {"CT", "CR"}
    assert all("DICOMDIR" not in str(x.path) for x in [*res.skipped, *res.non_image])


def test_png_folder_is_one_ot_series(tmp_path: Path) -> None:
    pngs = g.plain_images(tmp_path / "photos", 3, ".png")
    jpgs = g.plain_images(tmp_path / "more", 2, ".jpg", colour=True)
    res = scan(tmp_path)
    series = {s.description: s for s in res.all_series()}
    assert set(series) == {"photos", "more"}
    assert all(s.modality == "OT" and s.kind == "image" for s in series.values())
    assert [r.path for r in series["photos"].items] == pngs
    assert (series["photos"].rows, series["photos"].columns) == (12, 20)
    with PixelStore() as store:
        grey = store.get(series["photos"].items[1])
        rgb = store.get(series["more"].items[0])
    assert grey.shape == (12, 20) and grey.dtype == np.uint8 and grey[0, 0] == g.slice_value(1)
    assert rgb.shape == (12, 20, 3) and rgb[0, 0, 0] > 240  # BGR converted to RGB
    assert len(jpgs) == 2


def test_progress_cancel_and_snapshots(tmp_path: Path) -> None:
    g.ct_series(tmp_path, 30)
    calls: list[tuple[int, int]] = []
    snaps = []
    res = scan(tmp_path, progress=lambda d, t: calls.append((d, t)), on_snapshot=snaps.append)
    assert calls[0] == (0, 30) and calls[-1] == (30, 30) and res.complete
    assert snaps and not snaps[0].complete
    first = snaps[0].first_image()
    assert first is not None and len(snaps[0].all_series()[0].items) == 1
    stop_after = iter(range(10 ** 6))
    part = scan(tmp_path, should_stop=lambda: next(stop_after) >= 5)
    assert not part.complete and len(part.all_series()[0].items) == 5


def test_duplicate_instances_listed_once(tmp_path: Path) -> None:
    paths, _ = g.ct_series(tmp_path / "a", 3)
    shutil.copy(paths[0], tmp_path / "copy.dcm")
    res = scan(tmp_path)
    assert len(res.all_series()[0].items) == 3
    (dup,) = res.skipped
    assert dup.path in (tmp_path / "copy.dcm", paths[0])
    assert "duplicate" in dup.reason and "SOP Instance UID" in dup.reason


def test_missing_path_raises_clean_error(tmp_path: Path) -> None:
    with pytest.raises(NothingToShowError, match="no such file"):
        scan(tmp_path / "nope")


def test_thousand_files_with_corrupt_ones(tmp_path: Path) -> None:
    bad = g.big_folder(tmp_path, 1000, corrupt=(3, 250, 777))
    res = scan(tmp_path)
    (series,) = res.all_series()
    assert len(series.items) == 997
    assert sorted(s.path for s in res.skipped) == sorted(bad)
    assert all(s.reason for s in res.skipped)
    z = [float(series.headers[r.path].ImagePositionPatient[2]) for r in series.items]
    assert z == sorted(z, reverse=True)  # axial stacks run from head to feet


def test_content_beats_extension(tmp_path: Path) -> None:
    paths, _ = g.ct_series(tmp_path, 2, suffix=".png")  # DICOM named like PNG
    (tmp_path / "fake.jpg").write_bytes(b"not an image at all")
    res = scan(tmp_path)
    (series,) = res.all_series()
    assert series.kind == "dicom" and [r.path for r in series.items] == paths
    with PixelStore() as store:  # decoded as DICOM, not handed to OpenCV
        assert store.get(series.items[1])[1, 1] == g.slice_value(1)
        assert store.meta(series.items[1]).modality == "CT"
    assert [(s.path.name, s.reason) for s in res.skipped] == [("fake.jpg", "not a valid JPG image")]


def test_every_pydicom_test_file_is_classified_and_decodes_or_errors_cleanly() -> None:
    """pydicom's own test files (odd, broken and exotic ones included): each file is an
    image, a non-image or skipped with a reason, and each series' first image either
    decodes or raises DecodeError -- never another exception."""
    from medviewer.viewer.errors import DecodeError

    root = Path(get_testdata_file("CT_small.dcm")).parent
    res = scan(root)
    listed = {r.path for s in res.all_series() for r in s.items}
    listed |= {n.path for n in res.non_image} | {s.path for s in res.skipped}
    on_disk = {p for p in root.rglob("*") if p.is_file() and p.name.upper() != "DICOMDIR"
               and not p.name.startswith(".")}
    assert on_disk <= listed
    assert all(s.reason for s in res.skipped)
    assert {"MR_truncated.dcm", "README.txt"} <= {s.path.name for s in res.skipped}
    decoded = failed = 0
    with PixelStore() as store:
        for series in res.all_series():
            try:
                arr = store.get(series.items[0])
                assert arr.ndim in (2, 3) and arr.dtype != np.float64
                decoded += 1
            except DecodeError as err:
                assert str(err).startswith(series.items[0].path.name) and "\n" not in str(err)
                failed += 1
    assert decoded >= 25 and failed <= 2  # JPEG-lossy (libjpeg) and badVR.dcm


def test_mixed_study_generator(tmp_path: Path) -> None:
    info = g.mixed_study(tmp_path)
    res = scan(tmp_path)
    assert {s.path.name for s in res.skipped} == info["skipped"]
    assert {n.path.name for n in res.non_image} == info["non_image"]
    ct = next(s for s in res.all_series() if s.series_uid == info["ct_uid"])
    assert [r.path for r in ct.items] == info["ct"]
    assert sorted(s.modality for s in res.all_series()) == ["CR", "CT", "CT", "OT"]
    a, b = g.two_series(tmp_path / "two")
    two = scan(tmp_path / "two").all_series()
    assert [[r.path for r in s.items] for s in two] == [a, b]


def test_header_longer_than_first_read_chunk(tmp_path: Path) -> None:
    import pydicom

    from medviewer.viewer.io.scan import HEAD_CHUNK

    (path,), _ = g.ct_series(tmp_path / "big", 1)
    ds = pydicom.dcmread(path)
    ds.add_new(0x00090010, "LO", "GENERATED")  # private creator
    ds.add_new(0x00091010, "OB", bytes(HEAD_CHUNK + 5000))  # header beyond the first read
    ds.save_as(path)
    g.truncated(tmp_path / "big" / "cut.dcm", path, keep=0.7)  # cut inside that element
    res = scan(tmp_path / "big")
    (series,) = res.all_series()
    assert [r.path for r in series.items] == [path]
    header = series.headers[path]
    assert 0x00091010 in header
    assert header.filename == str(path) and getattr(header, "buffer", None) is None  # no chunk kept
    assert [s.path.name for s in res.skipped] == ["cut.dcm"]
    assert _values(series.items) == [g.slice_value(0)]


@pytest.mark.parametrize("readers, batch", [(0, 1), (1, 3), (4, 1)])
def test_read_ahead_settings_give_the_same_result(tmp_path: Path, monkeypatch, readers, batch) -> None:
    import medviewer.viewer.io.scan as scan_mod

    info = g.mixed_study(tmp_path)
    monkeypatch.setattr(scan_mod, "READERS", readers)
    monkeypatch.setattr(scan_mod, "READ_BATCH", batch)
    monkeypatch.setattr(scan_mod, "READ_AHEAD", 2)
    res = scan(tmp_path)
    ct = next(s for s in res.all_series() if s.series_uid == info["ct_uid"])
    assert [r.path for r in ct.items] == info["ct"]
    assert {s.path.name for s in res.skipped} == info["skipped"]
    stop = iter(range(10 ** 6))
    part = scan(tmp_path, should_stop=lambda: next(stop) >= 3)  # cancel with reads in flight
    assert not part.complete
