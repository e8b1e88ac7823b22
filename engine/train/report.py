"""Training outputs: report.json (exact schema of issue 4), predictions.csv, report.html.

``report.json`` holds exactly the keys classes, class_map, splits,
hyperparameters, history, test, search.  Probabilities in ``test`` and in
``predictions.csv`` are calibrated (the card's temperature); ``test`` also holds
``ece`` (after calibration), ``ece_uncalibrated`` (15 equal-width bins, top label)
and ``ood_flagged`` (fraction of test images the OOD check flags).  The dataset summary (image sizes,
skipped files, duplicates across splits) goes to ``dataset.json`` and the
HTML report, never patient data: only file paths chosen by the user.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.engine.train.loop import args_dict
from medviewer.engine.train.metrics import classification_metrics, classification_text


def test_metrics(y_true: Sequence[int], probs: np.ndarray | None, classes: Sequence[str]) -> dict:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return classification_metrics(list(y_true), probs if probs is not None else np.zeros((0, len(classes))),
                                      classes)


def _clean(obj: Any) -> Any:
    """NaN/inf -> null so that report.json is strict JSON."""
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


HYPER_KEYS = ("arch", "weights", "freeze", "stage_epochs", "unfreeze_lr_factor", "dropout", "hidden",
              "head_batchnorm", "image_size", "resize", "window", "optimizer", "lr", "momentum", "nesterov",
              "weight_decay", "scheduler", "step_size", "gamma", "plateau_patience", "min_lr", "pct_start",
              "epochs", "batch_size", "patience", "restore_best", "precise_bn", "class_weights", "seed", "augment",
              "aug", "val_fraction", "test_fraction", "label_from_name", "device", "amp",
              "bootstrap", "folds", "group_regex", "feature_cache", "feature_cache_copies", "feature_cache_used",
              "tta", "tta_shift")


def build_report(args: Any, classes: list[str], class_map: dict[str, str], counts: dict,
                 history: list[dict], metrics: dict, search: dict | None, cv: dict | None = None,
                 training: dict | None = None, warnings: Sequence[str] = ()) -> dict:
    """report.json: the keys of issue 4, ``cv`` (cross-validation), then ``training`` (which
    epoch the model is, how it was chosen, the validation check against chance) and ``warnings``."""
    hp = {k: v for k, v in args_dict(args).items() if k in HYPER_KEYS}
    return _clean({"classes": list(classes), "class_map": dict(class_map),
                   "splits": {s: dict(counts[s]) for s in ("train", "val", "test")},
                   "hyperparameters": hp, "history": history, "test": metrics, "search": search, "cv": cv,
                   "training": training, "warnings": list(warnings)})


def predictions_text(samples: Sequence[Any], y_idx: Sequence[int], probs: np.ndarray | None,
                     classes: Sequence[str]) -> str:
    """path, split, true, pred, p_<class>... for the test split (full float precision)."""
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["path", "split", "true", "pred"] + [f"p_{c}" for c in classes])
    if probs is not None:
        for s, p in zip(samples, probs):
            w.writerow([str(s.path), s.split, s.label, classes[int(np.argmax(p))]] + [repr(float(v)) for v in p])
    return buf.getvalue()


def write_predictions(path: Path, samples: Sequence[Any], y_idx: Sequence[int], probs: np.ndarray | None,
                      classes: Sequence[str]) -> None:
    write_text(path, predictions_text(samples, y_idx, probs, classes))


def write_text(path: Path, text: str) -> None:
    """Write next to the target and rename over it; on a full disk nothing is left behind."""
    from medviewer.viewer.errors import DiskFullError

    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DiskFullError(f"{path}: cannot write ({exc.strerror or exc})") from None


def write_all(out: Path, *, args: Any, index: Any, images: Any, summ: dict, history: list[dict],
              test_idx: Sequence[int], probs: np.ndarray | None, metrics: dict, search: dict | None,
              card: Any, model: Any, log: Callable[[str], None] = print, cv: dict | None = None,
              training: dict | None = None, warnings: Sequence[str] = (),
              probs_uncalibrated: np.ndarray | None = None) -> dict:
    from medviewer.engine.train.runlog import write_history_csv

    classes = index.classes
    rep = build_report(args, classes, index.class_map, summ["counts"], history, metrics, search, cv,
                       training=training, warnings=warnings)
    write_text(out / "report.json", json.dumps(rep, indent=2))
    if history or not (out / "history.csv").is_file():   # --test-only keeps the training run's
        write_history_csv(out / "history.csv", history)
    write_text(out / "dataset.json", json.dumps(_clean(summ), indent=2))
    test_samples = [images.samples[i] for i in test_idx]
    y_test = [int(images.y[i]) for i in test_idx]
    write_text(out / "predictions.csv", predictions_text(test_samples, y_test, probs, classes))
    log(f"wrote {out / 'report.json'}, {out / 'predictions.csv'}")
    if getattr(args, "report", True):
        try:
            from medviewer.engine.train.plots import write_html

            write_html(out, rep, summ, images, test_idx, probs, classes, card, model,
                       classification_text(y_test, probs, classes) if probs is not None else "",
                       n_gallery=getattr(args, "gallery", 12), probs_uncalibrated=probs_uncalibrated)
            log(f"wrote {out / 'report.html'}")
        except Exception as exc:  # plots are a convenience: never lose the model over them
            log(f"warning: report.html not written ({type(exc).__name__}: {exc})")
    return rep
