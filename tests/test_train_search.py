"""`--search N`: Optuna TPE + median pruner in OUT/search.db, resumable; never hands over a chance-level trial."""

from __future__ import annotations

import json

import optuna

from medviewer.engine.train.cli import main_train
from medviewer.engine.train.search import choose
from medviewer.engine.train.synth import make_dataset


def test_search_is_persisted_resumable_and_reported(tmp_path, capsys):
    """The issue's case: every trial stays at chance (2 x 6 training images, 1 epoch).

    The final run keeps the command-line settings, and says so on stderr and in report.json.
    """
    data = make_dataset(tmp_path / "data", ["normal", "nodule"], n=10, size=32, seed=4)
    out = tmp_path / "out"
    flags = ["--data", str(data), "--out", str(out), "--arch", "mobilenet_v3_small", "--image-size", "32",
             "--epochs", "1", "--device", "cpu", "--no-report", "--lr", "0.003", "--batch-size", "8"]
    assert main_train([*flags, "--search", "2"]) == 0
    rep = json.loads((out / "report.json").read_text())
    s = rep["search"]
    assert s["n_trials"] == 2 and s["completed"] + s["pruned"] == 2
    assert set(s["best_params"]) == {"lr", "optimizer", "dropout", "batch_size", "hidden"}
    assert isinstance(s["importances"], dict)
    assert s["used"] == "command line" and not any(t["above_chance"] for t in s["trials"])
    err = capsys.readouterr().err
    assert "WARNING: search: none of the" in err and "the final run uses the command-line settings" in err
    assert any(w.startswith("search: none of the") for w in rep["warnings"])
    assert rep["hyperparameters"]["lr"] == 0.003 and rep["hyperparameters"]["batch_size"] == 8
    study = optuna.load_study(study_name="medviewer", storage=f"sqlite:///{out / 'search.db'}")
    assert len(study.trials) == 2
    # resuming: asking for 3 trials runs only the missing one
    assert main_train([*flags, "--search", "3", "--resume"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["search"]["n_trials"] == 3


def _block(*trials):
    return {"best_params": dict(trials[0][2]), "trials": [
        {"number": i, "state": "COMPLETE", "value": v, "params": p, "val_accuracy": a}
        for i, (v, a, p) in enumerate(trials)]}


def test_choose_takes_the_best_trial_that_beats_chance():
    y_train = [0] * 30 + [1] * 30 + [2] * 30 + [3] * 30
    y_val = [0, 1, 2, 3] * 10                       # 40 images, majority rate 0.25, prior loss ln 4
    good = _block((0.61, 0.85, {"lr": 1e-3}), (1.2, 0.40, {"lr": 1e-2}))
    params, why = choose(good, y_train, y_val, 4)
    assert params == {"lr": 1e-3} and why is None
    # the lowest loss is chance-level (accuracy 0.25), another trial learnt something
    mixed = _block((1.30, 0.25, {"lr": 1e-4}), (1.33, 0.55, {"lr": 3e-3}))
    params, why = choose(mixed, y_train, y_val, 4)
    assert params == {"lr": 3e-3} and "trial 1" in why
    # all at chance: the val loss 1.39 for 4 classes
    flat = _block((1.386, 0.25, {"lr": 1e-4}), (1.39, 0.30, {"lr": 1e-2}))
    params, why = choose(flat, y_train, y_val, 4)
    assert params is None and "none of the 2 completed trial(s) did better than chance" in why
    assert "1.3863" in why and "trial 0's {'lr': 0.0001}" in why
