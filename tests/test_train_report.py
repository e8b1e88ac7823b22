"""End-to-end `medviewer --train` outputs: model file, report.json schema, metrics parity."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from sklearn import metrics as skm

from medviewer.engine.train.cli import main_make_dataset, main_train
from medviewer import engine

FLAGS = ["--arch", "mobilenet_v3_small", "--image-size", "32", "--epochs", "2", "--batch-size", "16",
         "--device", "cpu", "--gallery", "4"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = root / "data"
    main_make_dataset([str(data), "--classes", "normal,nodule,cavity", "--n", "12", "--size", "40"])
    out = root / "out"
    assert main_train(["--data", str(data), "--out", str(out), *FLAGS]) == 0
    return data, out


def test_outputs_exist_and_model_loads(run):
    from medviewer.engine.modelfile import load_model

    _, out = run
    for name in ("model.safetensors", "report.json", "predictions.csv", "report.html", "dataset.json", "history.csv",
                 "checkpoint.pt", "plots/curves.png", "plots/confusion.png", "plots/roc.png", "plots/pr.png",
                 "plots/reliability.png", "plots/classes.png", "plots/sizes.png"):
        assert (out / name).is_file(), name
    m = load_model(out / "model.safetensors", device="cpu", cache=False)
    assert m.classes == ["cavity", "nodule", "normal"]
    assert m.card.architecture == "mobilenet_v3_small" and m.card.input_size == 32
    assert m.card.training_data["sha256"] and "accuracy" in m.card.metrics
    probs = engine.predict(m, np.zeros((1, 40, 40), np.uint8))
    assert probs.shape == (1, 3) and abs(probs.sum() - 1) < 1e-5
    html = (out / "report.html").read_text()
    assert "plots/roc.png" in html and "Test metrics" in html
    ci = json.loads((out / "report.json").read_text())["test"]["ci95"]["macro_f1"]
    assert "95% CI" in html and f"{ci[0]:.3f} - {ci[1]:.3f}" in html


def test_report_json_schema_is_exact(run):
    _, out = run
    rep = json.loads((out / "report.json").read_text())
    assert list(rep) == ["classes", "class_map", "splits", "hyperparameters", "history", "test", "search", "cv",
                         "training", "warnings"]
    assert rep["search"] is None and rep["cv"] is None
    assert rep["class_map"] == {"cavity": "cavity", "nodule": "nodule", "normal": "normal"}
    assert rep["splits"]["train"] == {"cavity": 8, "nodule": 8, "normal": 8}
    assert [set(h) for h in rep["history"]] == [{"epoch", "train_loss", "train_accuracy", "val_loss",
                                                 "val_accuracy", "lr", "seconds"}] * 2
    assert set(rep["test"]) == {"accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1",
                                "weighted_f1", "log_loss", "macro_roc_auc", "roc_auc", "confusion_matrix",
                                "per_class", "ece", "ece_uncalibrated", "ood_flagged", "ci95"}
    ci = rep["test"]["ci95"]
    assert set(ci) == {"accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1",
                       "macro_roc_auc", "roc_auc"} and set(ci["roc_auc"]) == {"cavity", "nodule", "normal"}
    for k in ("accuracy", "macro_f1"):
        assert ci[k][0] <= rep["test"][k] <= ci[k][1]
    assert rep["hyperparameters"]["bootstrap"] == 1000 and rep["hyperparameters"]["folds"] == 0
    assert set(rep["test"]["per_class"]["nodule"]) == {"precision", "recall", "f1", "support"}
    assert rep["hyperparameters"]["arch"] == "mobilenet_v3_small" and rep["hyperparameters"]["epochs"] == 2


def test_metrics_equal_scikit_learn_on_predictions_csv(run):
    _, out = run
    rep = json.loads((out / "report.json").read_text())
    classes = rep["classes"]
    with (out / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6 and all(r["split"] == "test" for r in rows)
    y = np.array([classes.index(r["true"]) for r in rows])
    p = np.array([[float(r[f"p_{c}"]) for c in classes] for r in rows])
    pred = p.argmax(1)
    assert [classes[i] for i in pred] == [r["pred"] for r in rows]
    t = rep["test"]
    labels = list(range(len(classes)))
    assert t["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert t["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert t["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro", labels=labels, zero_division=0))
    assert t["weighted_f1"] == pytest.approx(skm.f1_score(y, pred, average="weighted", labels=labels,
                                                          zero_division=0))
    assert t["macro_precision"] == pytest.approx(skm.precision_score(y, pred, average="macro", labels=labels,
                                                                     zero_division=0))
    assert t["log_loss"] == pytest.approx(skm.log_loss(y, p, labels=labels))
    assert t["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=labels).tolist()
    for i, c in enumerate(classes):
        assert t["roc_auc"][c] == pytest.approx(skm.roc_auc_score(y == i, p[:, i]))
    assert t["macro_roc_auc"] == pytest.approx(np.mean(list(t["roc_auc"].values())))
    from medviewer.engine.train.calibrate import ece

    assert t["ece"] == pytest.approx(ece(p, y))          # the CSV holds the calibrated probabilities


def test_card_carries_temperature_ood_model_and_what_it_was_trained_on(run):
    """The trainer fits the temperature and the OOD model after training; `predict` with
    the saved file reproduces the calibrated test probabilities of predictions.csv."""
    import cv2

    from medviewer.engine.modelfile import load_model

    data, out = run
    m = load_model(out / "model.safetensors", device="cpu", cache=False)
    card = m.card
    assert card.format_version == 2 and 0.05 <= card.temperature <= 20
    assert m.ood is not None and card.ood["method"] == "mahalanobis-ensemble"
    fit = card.ood["fit"]
    assert fit["train_images"] == 24 and fit["calibration_split"] == "val" and fit["test_images"] == 6
    assert 0 <= fit["test_flagged"] <= 1 and fit["probe_images"] > 30 and 0 <= fit["probe_auroc"] <= 1
    assert card.trained_on == {"photometric": ["MONOCHROME2"]}        # PNG files: no modality, no body part
    rep = json.loads((out / "report.json").read_text())
    assert rep["test"]["ood_flagged"] == pytest.approx(fit["test_flagged"])
    assert card.metrics["ece"] == pytest.approx(rep["test"]["ece"])
    assert card.metrics["ece_uncalibrated"] == pytest.approx(rep["test"]["ece_uncalibrated"])
    op = card.operating_point
    assert op["images"] == 6 and set(op["sensitivity"]) == set(m.classes) and op["ood_threshold"] == m.ood.threshold
    with (out / "predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    imgs = [cv2.imread(r["path"], cv2.IMREAD_UNCHANGED) for r in rows]
    served = engine.predict(m, imgs)
    saved = np.array([[float(r[f"p_{c}"]) for c in m.classes] for r in rows])
    np.testing.assert_allclose(served, saved, atol=0.02)
    html = (out / "report.html").read_text()
    assert "Calibration and out-of-distribution check" in html and "mahalanobis-ensemble" in html


def test_declared_modality_and_body_part_are_recorded(tmp_path):
    from medviewer.engine.train.trust import merge_declared

    got = merge_declared({"photometric": ["MONOCHROME2"]}, "ct", "chest, abdomen")
    assert got == {"photometric": ["MONOCHROME2"], "modality": ["CT"], "body_part": ["CHEST", "ABDOMEN"]}
    assert merge_declared({"modality": ["MR"]}, "", "") == {"modality": ["MR"]}


def test_test_only_reevaluates_saved_model(run):
    data, out = run
    before = json.loads((out / "report.json").read_text())["test"]
    assert main_train(["--data", str(data), "--out", str(out), *FLAGS, "--test-only", "--no-report"]) == 0
    after = json.loads((out / "report.json").read_text())
    assert after["history"] == []
    assert after["test"]["confusion_matrix"] == before["confusion_matrix"]


def test_train_serve_parity_card_reproduces_training_tensors(run):
    """The saved card's preprocessing gives the tensors the model was trained on."""
    from medviewer.engine.modelfile import load_model
    from medviewer.engine.preprocess import PreprocessSpec
    from medviewer.engine.train.data import discover
    from medviewer.engine.train.images import load_images, read_stored

    data, out = run
    m = load_model(out / "model.safetensors", device="cpu", cache=False)
    ix = discover(data)
    trained = load_images(ix.samples[:5], ix.classes, PreprocessSpec(input_size=32))
    for s, x in zip(trained.samples, trained.x):
        stored, meta = read_stored(s.path)
        served, geom = m.preprocess(stored, meta)
        assert served.shape == (3, 32, 32) and geom.src_rows == 40
        assert np.allclose(served.numpy(), x.float().numpy(), atol=2e-3)
