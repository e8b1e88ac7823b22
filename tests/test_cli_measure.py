"""`medviewer measure` through the real dispatcher, on real files and the demo CT."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medviewer.viewer.cli import main
from medviewer.viewer.io import demo


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _reference(pixels: np.ndarray, box, kind: str):
    x0, y0, x1, y1 = box
    y, x = np.mgrid[0:pixels.shape[0], 0:pixels.shape[1]] + 0.5
    if kind == "ellipse":
        cx, cy, a, b = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
        mask = ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1
    else:
        mask = (x >= min(x0, x1)) & (x <= max(x0, x1)) & (y >= min(y0, y1)) & (y <= max(y0, y1))
    return pixels[mask]


@pytest.mark.parametrize("kind", ["ellipse", "rectangle"])
def test_ct_small_in_hounsfield_units(capsys, kind) -> None:
    path = get_testdata_file("CT_small.dcm")
    box = (20.0, 24.5, 51.0, 40.0)
    code, out, err = run(capsys, "measure", path, "--roi", kind, *map(str, box), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc) == ["area_mm2", "mean", "std", "min", "max", "n_pixels", "units"]
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    values = _reference(hu, box, kind)
    assert doc["n_pixels"] == values.size and doc["units"] == "HU"
    assert doc["mean"] == pytest.approx(values.mean()) and doc["std"] == pytest.approx(values.std())
    assert (doc["min"], doc["max"]) == (values.min(), values.max())
    sy, sx = (float(v) for v in ds.PixelSpacing)
    area = (math.pi / 4 if kind == "ellipse" else 1.0) * 31.0 * 15.5 * sx * sy
    assert doc["area_mm2"] == pytest.approx(area)


def test_demo_slice_and_series_selection(capsys, tmp_path: Path) -> None:
    root = demo.make_demo_study(tmp_path)
    code, out, _ = run(capsys, "measure", str(root), "--series", "2", "--slice", "7",
                       "--roi", "ellipse", "78", "108", "98", "128", "--json")
    doc = json.loads(out)
    assert code == 0 and abs(doc["mean"] + 850) < 40   # right lung of the phantom's thorax
    code, out, _ = run(capsys, "measure", str(root), "--slice", "7", "--roi", "rectangle", "0", "0", "10", "10")
    assert code == 0 and out.startswith("rectangle on CT008.dcm: area ") and "HU" in out


def test_mr_units_unspecified(capsys) -> None:
    code, out, _ = run(capsys, "measure", get_testdata_file("MR_small.dcm"), "--roi", "ellipse",
                       "10", "10", "40", "40", "--json")
    assert code == 0 and json.loads(out)["units"] == "unspecified"


@pytest.mark.parametrize("args, message", [
    (["--roi", "circle", "1", "1", "5", "5"], "choose ellipse or rectangle"),
    (["--roi", "ellipse", "1", "1", "x", "5"], "must be numbers"),
    (["--roi", "ellipse", "1", "1", "nan", "5"], "finite"),
    (["--roi", "ellipse", "900", "900", "950", "950"], "holds no pixel centre"),
    (["--slice", "3", "--roi", "ellipse", "1", "1", "5", "5"], "--slice 3 is out of range"),
    (["--series", "77", "--roi", "ellipse", "1", "1", "5", "5"], "no series '77'"),
    ([], "--roi"),
])
def test_bad_arguments_exit_2_one_line(capsys, args, message) -> None:
    code, out, err = run(capsys, "measure", get_testdata_file("CT_small.dcm"), *args)
    assert code == 2 and message in err and err.count("\n") == 1 and not out


def test_colour_image_refused(capsys, tmp_path: Path) -> None:
    shutil.copy(get_testdata_file("US1_UNCR.dcm"), tmp_path / "us.dcm")
    code, _, err = run(capsys, "measure", str(tmp_path / "us.dcm"), "--roi", "ellipse", "1", "1", "9", "9")
    assert code == 2 and "need a monochrome image" in err
