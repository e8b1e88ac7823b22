"""`--search N`: Optuna TPE + median pruner in OUT/search.db, resumable; best params used."""

from __future__ import annotations

import json

import optuna

from medviewer.engine.train.cli import main_train
from medviewer.engine.train.synth import make_dataset


def test_search_is_persisted_resumable_and_reported(tmp_path):
    data = make_dataset(tmp_path / "data", ["normal", "nodule"], n=10, size=32, seed=4)
    out = tmp_path / "out"
    flags = ["--data", str(data), "--out", str(out), "--arch", "mobilenet_v3_small", "--image-size", "32",
             "--epochs", "1", "--device", "cpu", "--no-report"]
    assert main_train([*flags, "--search", "2"]) == 0
    rep = json.loads((out / "report.json").read_text())
    s = rep["search"]
    assert s["n_trials"] == 2 and s["completed"] + s["pruned"] == 2
    assert set(s["best_params"]) == {"lr", "optimizer", "dropout", "batch_size", "hidden"}
    assert isinstance(s["importances"], dict)
    # the final model was trained with the best parameters
    for k, v in s["best_params"].items():
        assert rep["hyperparameters"][k] == v
    study = optuna.load_study(study_name="medviewer", storage=f"sqlite:///{out / 'search.db'}")
    assert len(study.trials) == 2
    # resuming: asking for 3 trials runs only the missing one
    assert main_train([*flags, "--search", "3"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["search"]["n_trials"] == 3
