"""`medviewer --train` / `make-dataset` never traceback on bad input: one line, exit 2."""

from __future__ import annotations

import urllib.error

import cv2
import numpy as np
import pytest

from medviewer.engine.train.synth import make_dataset
from medviewer.viewer.cli import main


def small_data(root, classes=("a", "b")):
    for c in classes:
        for i in range(4):
            p = root / c / f"{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), np.full((16, 16), 40 * i + 10, np.uint8))
    return root


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.parametrize("argv,needle", [
    (["--train"], "--data"),
    (["--train", "--data", "{tmp}/missing", "--out", "{tmp}/o"], "data folder not found"),
    (["--train", "--data", "{one}", "--out", "{tmp}/o"], "only one class"),
    (["--train", "--data", "{two}", "--label-from-name", "bact(", "--out", "{tmp}/o"], "invalid regular expression"),
    (["--train", "--data", "{two}", "--arch", "resnet9000", "--out", "{tmp}/o"], "unknown architecture"),
    (["--train", "--data", "{two}", "--class-weights", "1,2,3", "--out", "{tmp}/o", "--epochs", "1",
      "--arch", "mobilenet_v3_small", "--image-size", "32"], "--class-weights"),
    (["--train", "--data", "{two}", "--window", "40", "--out", "{tmp}/o"], "--window"),
    (["--train", "--data", "{two}", "--weights", "{tmp}/nope.pt", "--out", "{tmp}/o",
      "--arch", "mobilenet_v3_small", "--image-size", "32"], "--weights file not found"),
    (["--train", "--data", "{two}", "--arch", "mobilenet_v3_small", "--cam-layer", "features.99",
      "--out", "{tmp}/o"], "has no layer 'features.99'"),
    (["make-dataset", "{tmp}/d", "--classes", "normal"], "at least two distinct --classes"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, needle):
    one = small_data(tmp_path / "one", ("only",))
    two = small_data(tmp_path / "two")
    argv = [a.format(tmp=tmp_path, one=one, two=two) for a in argv]
    assert main(argv) == 2
    assert needle in one_error_line(capsys)


def test_bad_argparse_value_exits_2_without_traceback(capsys):
    assert main(["--train", "--data", "x", "--epochs", "zero"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_imagenet_weights_unavailable_says_how_to_preseed(tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def offline(*a, **k):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    two = small_data(tmp_path / "two")
    code = main(["--train", "--data", str(two), "--out", str(tmp_path / "o"), "--arch", "mobilenet_v3_small",
                 "--weights", "imagenet", "--image-size", "32", "--epochs", "1", "--device", "cpu"])
    assert code == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert "cannot download ImageNet weights for mobilenet_v3_small" in line
    assert str(tmp_path / "torch_home" / "hub" / "checkpoints") in line
    assert "--weights none" in line and "mobilenet_v3_small-" in line


def test_make_dataset_cli_writes_images_masks_and_lesion_table(tmp_path, capsys):
    assert main(["make-dataset", str(tmp_path / "d"), "--classes", "normal,nodule,cavity", "--n", "6",
                 "--size", "48", "--seed", "2"]) == 0
    root = tmp_path / "d"
    assert len(list((root / "train" / "nodule").glob("*.png"))) == 4
    assert len(list((root / "test" / "normal").glob("*.png"))) == 1
    img = cv2.imread(str(root / "train" / "cavity" / "cavity_00005.png"), cv2.IMREAD_UNCHANGED)
    mask = cv2.imread(str(root / "masks" / "train" / "cavity" / "cavity_00005.png"), cv2.IMREAD_UNCHANGED)
    assert img.shape == mask.shape == (48, 48) and img.dtype == np.uint8
    assert 0 < (mask > 0).sum() < 48 * 48 / 4
    normal_mask = cv2.imread(str(root / "masks" / "train" / "normal" / "normal_00005.png"), 0)
    assert normal_mask.max() == 0
    # same seed, same data
    make_dataset(tmp_path / "again", ["normal", "nodule", "cavity"], 6, 48, seed=2)
    again = cv2.imread(str(tmp_path / "again" / "train" / "cavity" / "cavity_00005.png"), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(img, again)
    # lesions are brighter than the lung around them
    assert img[mask > 0].mean() > img[(mask == 0)].mean()
