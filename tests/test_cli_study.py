"""`medviewer info` / `medviewer export` through the real dispatcher (viewer.cli.main)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import dicomgen as g
from medviewer.viewer.cli import main
from medviewer.viewer.display import PRESETS, Window, auto_window, meta_from_dataset, render

SERIES_KEYS = ["series_uid", "number", "modality", "description", "rows", "columns", "images", "items"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def study(tmp_path: Path) -> dict:
    root = tmp_path / "study"
    paths, uid = g.ct_series(root / "ct", 5, shuffle_names=True, scramble_instances=True)
    g.multiframe(root / "mf" / "enh.dcm", frames=3)
    g.structured_report(root / "sr.dcm")
    g.garbage(root / "junk.dcm")
    return {"root": root, "paths": paths, "uid": uid}


def test_info_json_schema_exact(capsys, study: dict) -> None:
    code, out, err = run(capsys, "info", str(study["root"]), "--json")
    assert code == 1  # ok, but a file was skipped
    doc = json.loads(out)
    assert list(doc) == ["root", "studies", "non_image", "skipped"]
    assert doc["root"] == str(study["root"])
    assert len(doc["studies"]) == 2
    for st in doc["studies"]:
        assert list(st) == ["study_uid", "patient_id", "description", "date", "series"]
        for se in st["series"]:
            assert list(se) == SERIES_KEYS
            assert se["images"] == len(se["items"])
            assert all(list(i) == ["path", "frame"] for i in se["items"])
    ct = next(se for st in doc["studies"] for se in st["series"] if se["series_uid"] == study["uid"])
    assert ct == {
        "series_uid": study["uid"], "number": 1, "modality": "CT", "description": "Axial CT",
        "rows": 16, "columns": 16, "images": 5,
        "items": [{"path": p.relative_to(study["root"]).as_posix(), "frame": None} for p in study["paths"]],
    }
    mf = next(se for st in doc["studies"] for se in st["series"] if se["series_uid"] != study["uid"])
    assert mf["items"] == [{"path": "mf/enh.dcm", "frame": f} for f in (2, 1, 0)]
    assert doc["non_image"] == [{"path": "sr.dcm", "sop_class": "Comprehensive SR Storage"}]
    assert [s["path"] for s in doc["skipped"]] == ["junk.dcm"]
    assert set(doc["skipped"][0]) == {"path", "reason"}


def test_info_text_listing(capsys, study: dict) -> None:
    code, out, _ = run(capsys, "info", str(study["root"]))
    assert code == 1
    assert "Axial CT" in out and "5 image(s)" in out
    assert "junk.dcm:" in out and "Comprehensive SR Storage" in out


def test_info_single_file_exit_zero(capsys) -> None:
    code, out, _ = run(capsys, "info", get_testdata_file("CT_small.dcm"), "--json")
    doc = json.loads(out)
    assert code == 0
    assert doc["studies"][0]["series"][0]["items"] == [{"path": "CT_small.dcm", "frame": None}]


@pytest.mark.parametrize("argv, message", [
    (["info", "/no/such/folder"], "no such file or directory"),
    (["info"], "arguments are required"),
    (["export", "{root}", "{tmp}/o.png", "--slice", "99"], "out of range"),
    (["export", "{root}", "{tmp}/o.png", "--preset", "liver"], "unknown preset"),
    (["export", "{root}", "{tmp}/o.png", "--window", "40", "0"], "width must be >= 1"),
    (["export", "{root}", "{tmp}/o.png", "--window", "40"], "expected auto | header | CENTER,WIDTH"),
    (["export", "{root}", "{tmp}/o.png", "--window", "40", "nan"], "must be finite"),
    (["export", "{root}", "{tmp}/o.png", "--window", "40", "400", "--preset", "lung"], "not allowed"),
    (["export", "{root}", "{tmp}/o.png", "--series", "77"], "no series '77'"),
    (["export", "{root}", "{tmp}/o.jpg"], "must be a .png"),
    (["export", "{root}", "{tmp}/missing/o.png"], "does not exist"),
    (["export", "{root}", "{tmp}/o.png", "--slice", "x"], "invalid int value"),
    (["export", "{root}/junk.dcm", "{tmp}/o.png"], "no displayable image"),
    (["export", "{root}/ct", "{tmp}/o.png", "--frame", "2"], "--frame 2 is out of range"),
])
def test_bad_input_one_line_exit_2(capsys, study: dict, tmp_path: Path, argv, message) -> None:
    argv = [a.format(root=study["root"], tmp=tmp_path) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


def _png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def test_export_default_window_matches_render(capsys, tmp_path: Path) -> None:
    src = get_testdata_file("CT_small.dcm")
    out = tmp_path / "ct.png"
    code, _, err = run(capsys, "export", src, str(out))
    assert code == 0, err
    ds = pydicom.dcmread(src)
    expected = render(ds.pixel_array, meta_from_dataset(ds))
    got = _png(out)
    assert got.dtype == np.uint8 and got.shape == (128, 128)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("extra, window", [
    (["--preset", "lung"], PRESETS["lung"]),
    (["--preset", "Bone"], PRESETS["bone"]),
    (["--window", "-100", "700"], Window(-100.0, 700.0)),
    (["--window=-100,700"], Window(-100.0, 700.0)),
    (["--window", "header"], None),
    (["--window", "auto"], "auto"),
])
def test_export_window_override(capsys, tmp_path: Path, extra, window) -> None:
    src = get_testdata_file("CT_small.dcm")
    out = tmp_path / "w.png"
    assert run(capsys, "export", src, str(out), *extra)[0] == 0
    ds = pydicom.dcmread(src)
    meta = meta_from_dataset(ds)
    if window == "auto":
        window = auto_window(ds.pixel_array, meta)
    np.testing.assert_array_equal(_png(out), render(ds.pixel_array, meta, window))


def test_export_series_slice_in_folder(capsys, study: dict, tmp_path: Path) -> None:
    out = tmp_path / "s.png"
    code, _, _ = run(capsys, "export", str(study["root"]), str(out), "--series", study["uid"],
                     "--slice", "3", "--window", str(g.slice_value(3) - 1024), "100")
    assert code == 1  # junk.dcm was skipped
    got = _png(out)
    assert got.shape == (16, 16)
    assert abs(int(got[1, 1]) - 128) <= 1  # slice 3's value sits at the window centre
    assert got[0, 0] == 0  # the stored -5 corner is far below the window


def test_export_multiframe_frame(capsys, study: dict, tmp_path: Path) -> None:
    out = tmp_path / "f.png"
    mf = study["root"] / "mf" / "enh.dcm"
    assert run(capsys, "export", str(mf), str(out), "--frame", "1")[0] == 0
    ds = pydicom.dcmread(mf)
    np.testing.assert_array_equal(_png(out), render(ds.pixel_array[1], meta_from_dataset(ds, 1)))


def test_export_monochrome1_and_rgb(capsys, tmp_path: Path) -> None:
    m1 = g.monochrome1(tmp_path / "m1.dcm")
    assert run(capsys, "export", str(m1), str(tmp_path / "m1.png"))[0] == 0
    row = _png(tmp_path / "m1.png")[0]
    assert row[0] > row[-1]  # MONOCHROME1: low values are bright
    rgb_path, rgb = g.rgb_image(tmp_path / "rgb.dcm")
    assert run(capsys, "export", str(rgb_path), str(tmp_path / "rgb.png"))[0] == 0
    np.testing.assert_array_equal(_png(tmp_path / "rgb.png"), rgb)


def test_export_header_unreadable_one_line(capsys, tmp_path: Path) -> None:
    src = tmp_path / "ct.dcm"
    shutil.copy(get_testdata_file("CT_small.dcm"), src)
    ds = pydicom.dcmread(src)
    ds.file_meta.TransferSyntaxUID = "1.2.826.0.1.3680043.8.498.999"  # not a transfer syntax
    ds.save_as(src)
    code, _, err = run(capsys, "export", str(src), str(tmp_path / "o.png"))
    assert code == 2 and "no displayable image: unreadable DICOM" in err and err.count("\n") == 1


def test_export_undecodable_pixels_one_line(capsys, tmp_path: Path) -> None:
    src = tmp_path / "mr.dcm"
    data = bytearray(Path(get_testdata_file("MR_small_jp2klossless.dcm")).read_bytes())
    data[-3000:-100] = bytes(2900)  # wipe most of the JPEG 2000 code stream
    src.write_bytes(bytes(data))
    code, _, err = run(capsys, "export", str(src), str(tmp_path / "o.png"))
    assert code == 2, err
    assert err.startswith("medviewer: error: mr.dcm: cannot decode pixel data")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_study_io_and_cli_work_without_qt(tmp_path: Path) -> None:
    """viewer.io and the headless CLI never import PySide6 (STYLE.md pattern 2)."""
    import subprocess
    import sys

    g.ct_series(tmp_path, 3)
    code = (
        "import sys, json; sys.modules['PySide6'] = None\n"
        "import medviewer.viewer.io.scan, medviewer.viewer.io.pixels, medviewer.viewer.io.demo\n"
        "import medviewer.viewer.cli_study\n"
        "from medviewer.viewer.cli import main\n"
        f"rc = main(['export', {str(tmp_path)!r}, {str(tmp_path / 'o.png')!r}])\n"
        "assert not any(m.startswith('PySide6') for m in sys.modules if sys.modules[m]), 'Qt'\n"
        "sys.exit(rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o.png").exists()


def test_info_empty_folder_exit_2(capsys, tmp_path: Path) -> None:
    g.text_file(tmp_path / "notes.txt")
    code, out, _ = run(capsys, "info", str(tmp_path))
    assert code == 2 and "No displayable images." in out and "notes.txt" in out


def test_export_plain_png_matches_render(capsys, tmp_path: Path) -> None:
    from medviewer.viewer.display import meta_for_plain_image

    (src,) = g.plain_images(tmp_path / "pics", 1, ".png")
    grad = np.tile(np.arange(20, dtype=np.uint8) * 12, (12, 1))
    cv2.imwrite(str(src), grad)
    out = tmp_path / "o.png"
    assert run(capsys, "export", str(tmp_path / "pics"), str(out))[0] == 0
    np.testing.assert_array_equal(_png(out), render(grad, meta_for_plain_image(grad)))
