"""``--search N``: Optuna hyperparameter search before the final training run.

TPE sampler and median pruner (on the per-epoch validation loss), persisted in
``OUT/search.db`` (SQLite) under the study name ``medviewer``, so that an
interrupted search resumes where it stopped: only the missing trials run.
Searched: lr (log), optimizer, dropout, batch size, head width and, when the
backbone is pretrained, the freeze mode.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from medviewer.engine.train.loop import fit

STUDY = "medviewer"
SEARCH_DIR = "search"


def suggest(trial: Any, args: Any) -> dict[str, Any]:
    params = {
        "lr": trial.suggest_float("lr", 1e-4, 1e-2, log=True),
        "optimizer": trial.suggest_categorical("optimizer", ["adam", "adamw", "sgd"]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.5),
        "batch_size": trial.suggest_categorical("batch_size", [16, 32, 64]),
        "hidden": trial.suggest_categorical("hidden", ["", "128", "256"]),
    }
    if str(args.weights).lower() != "none":
        params["freeze"] = trial.suggest_categorical("freeze", ["none", "backbone", "staged"])
    return params


def run_search(args: Any, images: Any, train_idx: Sequence[int], val_idx: Sequence[int],
               num_classes: int, out: Path, log: Callable[[str], None] = print,
               classes: Sequence[str] | None = None) -> dict[str, Any]:
    """The search; each trial also lands in OUT/search/trial_<n>/ (report.json with validation
    metrics and intervals, predictions.csv, history.csv) and OUT/search/compare.csv/.html
    compare them as `medviewer compare` does."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{(out / 'search.db').resolve()}"
    study = optuna.create_study(study_name=STUDY, storage=storage, load_if_exists=True,
                                direction="minimize", sampler=optuna.samplers.TPESampler(seed=args.seed),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1))
    finished = [t for t in study.trials if t.state.is_finished()]
    todo = max(0, args.search - len(finished))
    log(f"search: {len(finished)} trial(s) in {out / 'search.db'}, running {todo} more")

    def objective(trial: Any) -> float:
        targs = copy.copy(args)
        for k, v in suggest(trial, args).items():
            setattr(targs, k, v)
        if args.search_epochs:
            targs.epochs = args.search_epochs
        targs.stage_epochs = max(1, targs.epochs // 3)
        targs.resume = False
        history: list[dict] = []
        try:
            res = fit(targs, images.x, images.y, train_idx, val_idx, num_classes, None, trial=trial,
                      log=lambda m: None, on_epoch=history.append)
        except optuna.TrialPruned:
            write_trial(out, trial, targs, images, val_idx, names, counts, history, None, "PRUNED")
            raise
        write_trial(out, trial, targs, images, val_idx, names, counts, res.history, res.model, "COMPLETE")
        losses = [h["val_loss"] if not math.isnan(h["val_loss"]) else h["train_loss"] for h in res.history]
        best = min(losses) if losses else math.inf
        log(f"search trial {trial.number}: best val loss {best:.4f} with {trial.params}")
        return best

    names = list(classes) if classes is not None else [str(i) for i in range(num_classes)]
    counts = {sp: {c: 0 for c in names} for sp in ("train", "val", "test")}
    for sp, idx in (("train", train_idx), ("val", val_idx)):
        for i in idx:
            counts[sp][names[int(images.y[i])]] += 1
    if todo:
        study.optimize(objective, n_trials=todo, catch=(RuntimeError, ValueError))
    trial_dirs = sorted((out / SEARCH_DIR).glob("trial_*/report.json"))
    if trial_dirs:
        from medviewer.engine.train.compare import compare

        compare([p.parent for p in trial_dirs], out / SEARCH_DIR, metric="macro_f1",
                n_boot=max(1, int(getattr(args, "bootstrap", 1000) or 1000)), seed=args.seed,
                title="medviewer: search trials (validation split)")
        log(f"search: trials compared in {out / SEARCH_DIR / 'compare.html'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        from medviewer.viewer.errors import UsageError

        raise UsageError("--search: no trial completed; check the data and the learning-rate range")
    try:
        importances = {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
    except Exception:   # needs >= 2 completed trials with varying parameters
        importances = {}
    return {"n_trials": len(study.trials), "completed": len(done),
            "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
            "best_params": dict(study.best_params), "best_value": float(study.best_value),
            "importances": importances, "storage": str(out / "search.db"),
            "trials": [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
                       for t in study.trials]}


def write_trial(out: Path, trial: Any, targs: Any, images: Any, val_idx: Sequence[int], classes: Sequence[str],
                counts: dict, history: list[dict], model: Any, state: str) -> Path:
    """OUT/search/trial_<n>/: a run folder whose metrics are on the validation split."""
    import json

    import torch

    from medviewer.engine.train.bootstrap import bootstrap_ci
    from medviewer.engine.train.loop import evaluate
    from medviewer.engine.train.report import _clean, build_report, test_metrics, write_predictions
    from medviewer.engine.train.runlog import write_history_csv

    folder = out / SEARCH_DIR / f"trial_{trial.number:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    metrics = None
    y_val = [int(images.y[i]) for i in val_idx]
    probs = None
    if model is not None and len(val_idx):
        device = torch.device(targs.device)
        _, _, p = evaluate(model.to(device), images.x[list(val_idx)], images.y[list(val_idx)],
                           targs.batch_size, device)
        probs = p.numpy()
        metrics = test_metrics(y_val, probs, classes)
        if getattr(targs, "bootstrap", 0):
            metrics["ci95"] = bootstrap_ci(y_val, probs, classes, targs.bootstrap, targs.seed)
    rep = build_report(targs, list(classes), {}, counts, history, {}, None)
    rep["test"] = None
    rep["validation"] = _clean(metrics)
    rep["trial"] = _clean({"number": trial.number, "state": state, "params": dict(trial.params)})
    (folder / "report.json").write_text(json.dumps(rep, indent=2), encoding="utf-8")
    write_history_csv(folder / "history.csv", history)
    write_predictions(folder / "predictions.csv", [images.samples[i] for i in val_idx], y_val,
                      probs if probs is not None else None, classes)
    if probs is None:
        (folder / "predictions.csv").unlink(missing_ok=True)
    return folder
