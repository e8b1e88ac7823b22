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
        if losses:
            trial.set_user_attr("val_accuracy", res.history[losses.index(best)]["val_accuracy"])
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
    return {"n_trials": len(study.trials), "completed": len(done), "n_val": len(val_idx),
            "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials),
            "best_params": dict(study.best_params), "best_value": float(study.best_value),
            "importances": importances, "storage": str(out / "search.db"),
            "trials": [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
                        "val_accuracy": t.user_attrs.get("val_accuracy")} for t in study.trials]}


def choose(block: dict[str, Any], y_train: Sequence[int], y_val: Sequence[int],
           num_classes: int) -> tuple[dict[str, Any] | None, str | None]:
    """The parameters the final run should use, and a warning (or None).

    A trial counts only if it did better than chance on validation: its best
    validation loss is below that of always predicting the training class
    frequencies (engine.train.sanity.prior_loss) AND its accuracy at that epoch
    is significantly above the majority class (one-sided binomial test).  The
    best such trial is used.  When no trial qualifies, (None, warning): the
    final run keeps the command-line settings rather than parameters chosen by
    noise.
    """
    from medviewer.engine.train import sanity

    trials = sorted((t for t in block["trials"] if t["state"] == "COMPLETE" and t["value"] is not None),
                    key=lambda t: t["value"])
    if not y_val or not trials:
        return dict(block["best_params"]), None
    floor = sanity.prior_loss(y_train, y_val, num_classes)
    maj = sanity.majority(y_train, num_classes)
    rate = sum(1 for v in y_val if v == maj) / len(y_val)

    def above_chance(t: dict[str, Any]) -> bool:
        acc = t.get("val_accuracy")
        if acc is None or not t["value"] < floor:
            return False
        return sanity.p_above(round(acc * len(y_val)), len(y_val), rate) < sanity.ALPHA

    for t in block["trials"]:
        t["above_chance"] = above_chance(t) if t in trials else None
    good = [t for t in trials if t["above_chance"]]
    best = trials[0]
    block["chance_floor"] = {"val_loss": floor, "majority_accuracy": rate}
    if not good:
        acc = best.get("val_accuracy")
        return None, (f"search: none of the {len(trials)} completed trial(s) did better than chance on validation "
                      f"(best val loss {best['value']:.4f} against {floor:.4f} for always predicting the training "
                      f"class frequencies; its val accuracy {acc if acc is None else round(acc, 3)} against "
                      f"{rate:.3f} for the majority class): the final run uses the command-line settings, not "
                      f"trial {best['number']}'s {best['params']}. Give the trials more epochs (--search-epochs) "
                      "or more trials, and check the data")
    if good[0] is not best:
        return dict(good[0]["params"]), (
            f"search: the trial with the lowest val loss ({best['number']}) did not do better than chance "
            f"(accuracy not above the majority class); the final run uses trial {good[0]['number']}, the best one "
            "that did")
    return dict(best["params"]), None
