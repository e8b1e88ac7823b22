"""`medviewer export --plane` through the real dispatcher, on the demo CT and real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom.data import get_testdata_file

import dicomgen as g
from medviewer.viewer.cli import main
from medviewer.viewer.io import demo


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    return demo.make_demo_study(tmp_path_factory.mktemp("demo"))


def _png(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def test_axial_plane_is_the_exported_slice(capsys, demo_dir: Path, tmp_path: Path) -> None:
    """Same code path, same grey levels: the axial plane K of an axial stack is slice K."""
    for k in ("0", "17", "47"):
        a, b = tmp_path / f"plane{k}.png", tmp_path / f"slice{k}.png"
        code, _, err = run(capsys, "export", str(demo_dir), str(a), "--plane", "axial", "--slice", k,
                           "--preset", "lung")
        assert code == 0, err
        assert f"axial plane {k}/47" in err and "left R, right L, top A, bottom P" in err
        assert run(capsys, "export", str(demo_dir), str(b), "--slice", k, "--preset", "lung")[0] == 0
        np.testing.assert_array_equal(_png(a), _png(b))


def test_coronal_sagittal_and_mip(capsys, demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cor.png"
    code, _, err = run(capsys, "export", str(demo_dir), str(out), "--plane", "coronal", "--preset", "lung")
    assert code == 0 and "top H, bottom F" in err and "coronal plane 128/255" in err
    cor = _png(out)
    assert cor.shape == (76, 256)   # 47 x 2.5 mm at 1.5625 mm pixels -> 76 rows
    # lungs (about -850 HU: grey 85 in the lung window; air is 59) in the upper part only
    lung = (cor > 70) & (cor < 110)
    assert lung[:25].mean() > 0.2 and lung[-15:].mean() < 0.02
    code, _, err = run(capsys, "export", str(demo_dir), str(tmp_path / "sag.png"), "--plane", "sagittal",
                       "--slice", "100")
    assert code == 0 and "left A, right P" in err
    thin, mip = tmp_path / "thin.png", tmp_path / "mip.png"
    run(capsys, "export", str(demo_dir), str(thin), "--plane", "axial", "--preset", "bone")
    code, _, err = run(capsys, "export", str(demo_dir), str(mip), "--plane", "axial", "--slab", "20",
                       "--projection", "mip", "--preset", "bone")
    assert code == 0 and "20 mm MIP" in err
    assert (_png(mip).astype(int) >= _png(thin).astype(int)).all()  # a maximum is never darker
    assert (_png(mip) > _png(thin)).mean() > 0.05
    mean = tmp_path / "mean.png"
    assert run(capsys, "export", str(demo_dir), str(mean), "--plane", "axial", "--slab", "20",
               "--projection", "minip", "--preset", "bone")[0] == 0
    assert (_png(mean).astype(int) <= _png(thin).astype(int)).all()


def test_tilted_series_is_resampled_and_says_so(capsys, tmp_path: Path) -> None:
    g.ct_series(tmp_path / "tilt", 10, rows=12, cols=12, tilt_deg=15.0)
    code, _, err = run(capsys, "export", str(tmp_path / "tilt"), str(tmp_path / "t.png"),
                       "--plane", "sagittal")
    assert code == 0 and "gantry tilt 15.0 deg: resampled" in err


@pytest.mark.parametrize("args, message", [
    (["--plane", "coronal", "--slice", "999"], "--slice 999 is out of range"),
    (["--plane", "coronal", "--projection", "mip"], "--projection mip needs --slab"),
    (["--slab", "10"], "need --plane"),
    (["--plane", "coronal", "--slab", "-3"], "--slab needs a thickness"),
    (["--plane", "coronal", "--frame", "1"], "--frame does not apply"),
    (["--plane", "oblique"], "invalid choice"),
])
def test_bad_arguments_one_line_exit_2(capsys, demo_dir: Path, tmp_path: Path, args, message) -> None:
    code, out, err = run(capsys, "export", str(demo_dir), str(tmp_path / "x.png"), *args)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_series_that_cannot_be_a_volume(capsys, tmp_path: Path) -> None:
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "ct.dcm")
    code, _, err = run(capsys, "export", str(tmp_path), str(tmp_path / "x.png"), "--plane", "coronal")
    assert code == 2 and "cannot be reformatted: a single image" in err
    assert not (tmp_path / "x.png").exists()


def test_window_specifications_apply_to_planes(capsys, demo_dir: Path, tmp_path: Path) -> None:
    outs = {}
    for name, spec in (("pair", ["40", "400"]), ("comma", ["40,400"]), ("auto", ["auto"]),
                       ("header", ["header"]), ("none", [])):
        out = tmp_path / f"{name}.png"
        args = ["--window", *spec] if spec else []
        assert run(capsys, "export", str(demo_dir), str(out), "--plane", "sagittal", *args)[0] == 0
        outs[name] = _png(out)
    np.testing.assert_array_equal(outs["pair"], outs["comma"])
    np.testing.assert_array_equal(outs["header"], outs["none"])   # the demo's header window is 40/400
    np.testing.assert_array_equal(outs["header"], outs["pair"])
    assert not np.array_equal(outs["auto"], outs["pair"])
