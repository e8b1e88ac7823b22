"""Training logs (history.csv, TensorBoard) and the ``--lr-find`` range test."""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import pytest

from medviewer.engine.train.cli import main_train
from medviewer.engine.train.lrfind import steep, suggestions, valley
from medviewer.engine.train.synth import make_dataset
from medviewer.viewer.cli import main

FLAGS = ["--arch", "mobilenet_v3_small", "--image-size", "32", "--batch-size", "8", "--device", "cpu",
         "--no-report", "--bootstrap", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("logs") / "d", ["normal", "nodule", "cavity"], n=8, size=32, seed=3)


def test_history_csv_and_tensorboard_events(data, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "o"
    assert main_train(["--data", str(data), "--out", str(out), *FLAGS, "--epochs", "3", "--tensorboard"]) == 0
    rep = json.loads((out / "report.json").read_text())
    with (out / "history.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"]
    assert len(rows) == 3 == len(rep["history"])
    for row, h in zip(rows, rep["history"]):
        for k, v in h.items():
            assert float(row[k]) == pytest.approx(v, rel=1e-12)
        assert float(row["seconds"]) > 0
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    tags = acc.Tags()
    for tag in ("loss/train", "loss/val", "accuracy/train", "accuracy/val", "lr", "time/seconds_per_epoch"):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [1, 2, 3], tag
    assert [e.value for e in acc.Scalars("loss/train")] == pytest.approx([h["train_loss"] for h in rep["history"]],
                                                                         rel=1e-5)
    assert acc.Scalars("test/accuracy")[0].value == pytest.approx(rep["test"]["accuracy"])
    assert "test/confusion_matrix" in tags["images"]
    img = acc.Images("test/confusion_matrix")[0]
    assert img.width > 100 and img.height > 100 and img.encoded_image_string[:4] == b"\x89PNG"


def test_resumed_run_keeps_the_earlier_rows(data, tmp_path):
    out = tmp_path / "o"
    assert main_train(["--data", str(data), "--out", str(out), *FLAGS, "--epochs", "2"]) == 0
    assert main_train(["--data", str(data), "--out", str(out), *FLAGS, "--epochs", "3", "--resume"]) == 0
    rows = list(csv.DictReader((out / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]


def test_tensorboard_missing_is_one_line_hint(data, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    code = main(["--train", "--data", str(data), "--out", str(tmp_path / "o"), *FLAGS, "--epochs", "1",
                 "--tensorboard"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "pip install 'medviewer[tensorboard]'" in err[-1] and "Traceback" not in "".join(err)


def test_valley_and_steep_on_a_known_curve():
    lrs = list(np.logspace(-6, 1, 71))
    x = np.log10(lrs)
    losses = list(2.0 - 1.5 / (1 + np.exp(-3 * (x + 3))) + np.where(x > -0.5, (x + 0.5) ** 2 * 4, 0))
    i = valley(lrs, losses)                 # halfway along the decreasing stretch 1e-6 .. 10**-0.5
    assert lrs[i] == pytest.approx(10 ** -3.3, rel=0.3)
    assert lrs[steep(lrs, losses)] == pytest.approx(1e-3, rel=0.3)   # the sigmoid's steepest point
    s = suggestions(lrs, losses)
    assert set(s) == {"valley", "steep", "minimum/10"}
    assert s["minimum/10"] == pytest.approx(10 ** -0.5 / 10, rel=0.3) and s["valley"] < 10 * s["minimum/10"]


def test_lr_find_plots_and_suggests_without_training_a_model(data, tmp_path, capsys):
    out = tmp_path / "o"
    assert main(["--train", "--data", str(data), "--out", str(out), *FLAGS, "--lr-find",
                 "--lr-find-iters", "40", "--lr-find-range", "1e-5,1"]) == 0
    res = json.loads((out / "lr_find.json").read_text())
    assert (out / "lr_find.png").stat().st_size > 5000
    assert not (out / "model.safetensors").exists() and not (out / "report.json").exists()
    assert 2 <= res["iterations"] <= 40 and len(res["lrs"]) == len(res["losses"]) == res["iterations"]
    assert res["lrs"][0] == pytest.approx(1e-5) and all(np.diff(res["lrs"]) > 0)
    assert 1e-5 <= res["suggested_lr"] <= 1 and res["suggested_lr"] == res["suggestions"]["valley"]
    assert "suggested --lr" in capsys.readouterr().out
    assert main(["--train", "--data", str(data), "--out", str(out), "--lr-find", "--lr-find-range", "1,0.1"]) == 2
