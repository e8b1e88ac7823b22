"""``--folds K``: stratified, patient-grouped K-fold cross-validation over train + val.

Images of one patient never straddle folds.  The patient of an image is its DICOM
Patient ID (0010,0020; PS3.3 C.7.1.1) when the file has one, else the first match
of ``--group-regex`` in its path relative to the data folder (group 1 when the
regex has a group), else the image alone.  Folds come from scikit-learn's
``StratifiedGroupKFold`` (shuffled with ``--seed``): each fold's class mix is kept
as close to the whole as the groups allow.  The test split is never touched.

Each fold trains with the run's recipe into ``OUT/cv/fold_<k>/`` (checkpoint,
history.csv) and writes ``fold.json`` when done, so ``--resume`` skips finished
folds and continues the interrupted one from its checkpoint.  Patient IDs are
used only to group; they are never logged or written.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import statistics
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.engine.train.data import IMAGE_EXTS
from medviewer.viewer.errors import UsageError

CV_DIR = "cv"
FOLD_METRICS = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1",
                "macro_roc_auc", "log_loss", "val_loss")


def compile_group_regex(pattern: str | None) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--group-regex: invalid regular expression {pattern!r}: {exc}") from None


def dicom_patient_id(path: Path) -> str | None:
    """Patient ID (0010,0020) of a DICOM file, None for other files or an empty ID."""
    if path.suffix.lower() in IMAGE_EXTS:
        try:
            with path.open("rb") as fh:
                head = fh.read(132)
        except OSError:
            return None
        if head[128:132] != b"DICM":
            return None
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=["PatientID"])
        pid = str(ds.get("PatientID", "") or "").strip()
    except (InvalidDicomError, OSError, ValueError, TypeError, AttributeError):
        return None
    return pid or None


def patient_groups(paths: Sequence[Path], root: Path | None, group_regex: str | None
                   ) -> tuple[list[str], dict[str, int]]:
    """A group key per image and how many images each rule grouped ({"dicom", "regex", "file"})."""
    rx = compile_group_regex(group_regex)
    keys: list[str] = []
    how = {"dicom": 0, "regex": 0, "file": 0}
    for p in paths:
        pid = dicom_patient_id(p)
        if pid is not None:
            keys.append("dicom:" + pid)
            how["dicom"] += 1
            continue
        if rx is not None:
            try:
                text = p.relative_to(root).as_posix() if root is not None else p.as_posix()
            except ValueError:
                text = p.as_posix()
            m = rx.search(text)
            if m:
                keys.append("regex:" + (m.group(1) if rx.groups and m.group(1) else m.group(0)))
                how["regex"] += 1
                continue
        keys.append("file:" + p.as_posix())
        how["file"] += 1
    return keys, how


def make_folds(labels: Sequence[int], groups: Sequence[str], k: int, seed: int) -> list[np.ndarray]:
    """K arrays of positions (into labels) holding out each fold; disjoint, grouped, stratified."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(set(groups))
    if k < 2:
        raise UsageError("--folds must be at least 2")
    if n_groups < k:
        raise UsageError(f"--folds {k}: only {n_groups} patient group(s) in train + val; "
                         f"use at most {n_groups} folds")
    codes = {g: i for i, g in enumerate(sorted(set(groups)))}
    g = np.asarray([codes[x] for x in groups])
    y = np.asarray(labels)
    cv = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # "least populated class has only n members": logged by the caller
        return [held for _, held in cv.split(np.zeros(len(y)), y, g)]


def _fingerprint(members: Sequence[int], hashes: Sequence[str]) -> str:
    h = hashlib.sha256()
    for i in sorted(members):
        h.update(hashes[i].encode())
    return h.hexdigest()[:16]


def summarize(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """report.json "cv": the folds and the mean / sample standard deviation of each metric."""
    mean, std = {}, {}
    for key in FOLD_METRICS:
        vals = [f[key] for f in folds if isinstance(f.get(key), (int, float)) and math.isfinite(f[key])]
        mean[key] = float(np.mean(vals)) if vals else None
        std[key] = float(statistics.stdev(vals)) if len(vals) > 1 else (0.0 if vals else None)
    return {"folds": folds, "mean": mean, "std": std}


def run_cv(args: Any, images: Any, pool: Sequence[int], classes: Sequence[str], out: Path,
           log: Callable[[str], None], should_stop: Callable[[], bool] | None = None,
           root: Path | None = None) -> dict[str, Any] | None:
    """Train and validate each fold; report.json's "cv" block, or None when interrupted."""
    import copy

    import torch

    from medviewer.engine.train.loop import fit
    from medviewer.engine.train.report import test_metrics
    from medviewer.engine.train.runlog import EpochLog

    pool = list(pool)
    keys, how = patient_groups([images.samples[i].path for i in pool], root, getattr(args, "group_regex", None))
    n_groups = len(set(keys))
    log(f"cross-validation: {args.folds} folds over {len(pool)} train+val images in {n_groups} groups "
        f"(Patient ID {how['dicom']}, --group-regex {how['regex']}, one image per group {how['file']})")
    if how["file"] and how["file"] == len(pool):
        log("warning: no Patient ID or --group-regex match: images are grouped one by one, so images "
            "of one patient may straddle folds")
    labels = [int(images.y[i]) for i in pool]
    min_groups = min(len({k for k, lab in zip(keys, labels) if lab == c}) for c in set(labels))
    if min_groups < args.folds:
        log(f"warning: a class has only {min_groups} patient group(s), fewer than --folds {args.folds}: "
            "some folds cannot hold every class")
    held_out = make_folds(labels, keys, args.folds, args.seed)
    cv_root = out / CV_DIR
    cv_root.mkdir(parents=True, exist_ok=True)
    results: list[dict[str, Any]] = []
    for k, held in enumerate(held_out, start=1):
        fdir = cv_root / f"fold_{k}"
        val_idx = [pool[i] for i in held]
        held_set = set(held.tolist())
        train_idx = [pool[i] for i in range(len(pool)) if i not in held_set]
        fp = _fingerprint(val_idx, images.hashes)
        done = fdir / "fold.json"
        if args.resume and done.is_file():
            try:
                prev = json.loads(done.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                prev = {}
            if prev.get("fingerprint") == fp:
                log(f"fold {k}/{args.folds}: done before ({done})")
                results.append(prev["metrics"])
                continue
            log(f"fold {k}/{args.folds}: {done} is for other images; training the fold again")
        if not args.resume:
            done.unlink(missing_ok=True)
        fdir.mkdir(parents=True, exist_ok=True)
        log(f"fold {k}/{args.folds}: train {len(train_idx)}, validate {len(val_idx)}")
        fargs = copy.copy(args)
        res = fit(fargs, images.x, images.y, train_idx, val_idx, len(classes), fdir, should_stop=should_stop,
                  log=log, on_epoch=EpochLog(fdir, resume=args.resume))
        if res.interrupted:
            return None
        device = torch.device(args.device)
        v_loss, _, probs = _evaluate(args, res.model.to(device), images, val_idx, device)
        m = test_metrics([int(images.y[i]) for i in val_idx], probs.numpy(), list(classes))
        rec = {"fold": k, "n_train": len(train_idx), "n_val": len(val_idx), "best_epoch": res.best_epoch,
               **{key: m.get(key) for key in FOLD_METRICS if key != "val_loss"}, "val_loss": v_loss}
        done.write_text(json.dumps({"fingerprint": fp, "metrics": _finite(rec)}, indent=2), encoding="utf-8")
        log(f"fold {k}/{args.folds}: accuracy {_fmt(rec['accuracy'])}  macro F1 {_fmt(rec['macro_f1'])}  "
            f"macro AUC {_fmt(rec['macro_roc_auc'])}")
        results.append(_finite(rec))
    cv = summarize(results)
    log("cross-validation: " + ", ".join(f"{k} {_fmt(cv['mean'][k])} ± {_fmt(cv['std'][k])}"
                                         for k in ("accuracy", "macro_f1", "macro_roc_auc")))
    return cv


def _evaluate(args: Any, model: Any, images: Any, idx: Sequence[int], device: Any):
    from medviewer.engine.train.loop import evaluate

    tta = tta_spec(args)
    if tta is not None:
        from medviewer.engine.tta import evaluate as evaluate_tta

        return evaluate_tta(model, images.x[idx], images.y[idx], args.batch_size, device, tta)
    return evaluate(model, images.x[idx], images.y[idx], args.batch_size, device)


def tta_spec(args: Any) -> Any:
    """The run's --tta / --tta-shift as an engine.tta.TTASpec, or None."""
    if not getattr(args, "tta", False):
        return None
    from medviewer.engine.tta import TTASpec

    return TTASpec(hflip=True, shift=float(getattr(args, "tta_shift", 0.0) or 0.0))


def final_recipe(args: Any, cv: dict[str, Any], log: Callable[[str], None]) -> Any:
    """The recipe for the final model on all of train + val (no images left to validate on).

    Early stopping and restore-best need validation images, so the final model trains
    for a fixed number of epochs: --epochs, or, with --patience, the median of the
    folds' best epochs."""
    import copy

    fargs = copy.copy(args)
    fargs.restore_best = False
    if args.patience:
        best = [f["best_epoch"] for f in cv["folds"] if isinstance(f.get("best_epoch"), int) and f["best_epoch"] > 0]
        if best:
            fargs.epochs = max(1, int(round(statistics.median(best))))
        fargs.patience = 0
        log(f"final model: {fargs.epochs} epoch(s) (median best epoch of the folds), no early stopping")
    return fargs


def _finite(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in rec.items()}


def _fmt(v: Any) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) else "n/a"
