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
               num_classes: int, out: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
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
        res = fit(targs, images.x, images.y, train_idx, val_idx, num_classes, None, trial=trial,
                  log=lambda m: None)
        losses = [h["val_loss"] if not math.isnan(h["val_loss"]) else h["train_loss"] for h in res.history]
        best = min(losses) if losses else math.inf
        log(f"search trial {trial.number}: best val loss {best:.4f} with {trial.params}")
        return best

    if todo:
        study.optimize(objective, n_trials=todo, catch=(RuntimeError, ValueError))
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
