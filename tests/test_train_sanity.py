"""The validation check against chance and the majority class (engine.train.sanity)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss

from medviewer.engine.train.sanity import judge, prior_loss

CLASSES = ["cavity", "nodule", "normal", "spiculated"]


def test_a_model_at_chance_is_flagged():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 25)                      # 100 balanced images
    v = judge(y, rng.integers(0, 4, 100), y, CLASSES)
    assert v.better_than_chance is False and "NOT better than chance on 100 val images" in v.message
    assert v.chance_accuracy == 0.25 and v.majority_accuracy == 0.25


def test_always_the_majority_class_is_flagged_on_unbalanced_data():
    y_train = np.array([2] * 80 + [0] * 10 + [1] * 10)
    y_val = np.array([2] * 40 + [0] * 5 + [1] * 5)
    v = judge(y_val, np.full(50, 2), y_train, CLASSES[:3])
    assert v.accuracy == 0.8 and v.majority_class == "normal" and v.majority_accuracy == 0.8
    assert v.better_than_chance is False
    assert "not above always answering 'normal'" in v.message and "balanced accuracy 0.333 is at chance" in v.message


def test_a_useful_model_passes_and_a_small_lucky_one_does_not():
    y = np.repeat(np.arange(4), 25)
    pred = y.copy()
    pred[::4] = (pred[::4] + 1) % 4                      # 75 % correct
    v = judge(y, pred, y, CLASSES)
    assert v.better_than_chance is True and v.p_value < 1e-10 and "is above the majority class" in v.message
    v = judge([0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 2, 3], CLASSES)   # 3 of 4: not distinguishable from luck
    assert v.better_than_chance is False and "not significantly above" in v.message
    v = judge([], [], [0, 1], CLASSES)
    assert v.better_than_chance is None and "no val images" in v.message


def test_prior_loss_is_the_log_loss_of_the_class_frequencies():
    y_train = [0] * 60 + [1] * 30 + [2] * 10
    y_val = [0, 1, 2, 2, 1]
    p = (np.bincount(y_train, minlength=3) + 0.5) / (len(y_train) + 1.5)
    assert prior_loss(y_train, y_val, 3) == pytest.approx(log_loss(y_val, np.tile(p, (5, 1)), labels=[0, 1, 2]))
    assert prior_loss([0, 1] * 5, [0, 1], 2) == pytest.approx(math.log(2))


def _noise_data(root, n=12):
    """Two classes of pure noise: nothing to learn, so the model stays at chance."""
    import cv2

    rng = np.random.default_rng(1)
    for c in ("benign", "malignant"):
        for i in range(n):
            p = root / c / f"{c}_{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), rng.integers(0, 255, (32, 32), dtype=np.uint8))
    return root


def test_a_chance_level_model_is_reported_everywhere(tmp_path, capsys):
    """stderr, the log file, report.json, report.html and the model card all say it."""
    import json

    from medviewer.engine.modelfile import read_card
    from medviewer.viewer import logs
    from medviewer.viewer.cli import main

    data = _noise_data(tmp_path / "d")
    out = tmp_path / "o"
    # the command line's log file (pytest's own file handler stops run_command from adding it)
    log_file = logs.setup_logging(directory=tmp_path / "logs")
    try:
        code = main(["--train", "--data", str(data), "--out", str(out), "--arch", "mobilenet_v3_small",
                     "--image-size", "32", "--epochs", "2", "--batch-size", "8", "--device", "cpu",
                     "--val-fraction", "0.34", "--gallery", "2"])
    finally:
        logs.close_logging()
    assert code == 0                                   # the model is written, and flagged
    cap = capsys.readouterr()
    assert "medviewer: WARNING: the model is NOT better than chance on 8 val images" in cap.err
    assert "Traceback" not in cap.err
    assert "WARNING MainThread medviewer.train: the model is NOT better" in log_file.read_text(encoding="utf-8")
    assert "the model is NOT better than chance" in log_file.read_text(encoding="utf-8")
    rep = json.loads((out / "report.json").read_text())
    check = rep["training"]["validation_check"]
    assert check["better_than_chance"] is False and check["n"] == 8 and check["chance_accuracy"] == 0.5
    assert any("NOT better than chance" in w for w in rep["warnings"])
    assert rep["training"]["restored_epoch"] in (1, 2) and rep["training"]["epochs_run"] == 2
    assert rep["training"]["selected_on"] == "val_loss"
    html = (out / "report.html").read_text()
    assert "class='warn'" in html and "NOT better than chance" in html
    assert f"the weights of epoch {rep['training']['restored_epoch']} of 2" in html
    td = read_card(out / "model.safetensors").training_data
    assert td["better_than_chance_on_val"] is False
    assert td["restored_epoch"] == rep["training"]["restored_epoch"] and td["epochs_run"] == 2
    assert any("NOT better than chance" in w for w in td["warnings"])
