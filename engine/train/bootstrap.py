"""Bootstrap confidence intervals and paired bootstrap tests for test-set metrics.

Percentile bootstrap (Efron & Tibshirani 1993, ch. 13): the test set is resampled
with replacement ``n`` times (seeded), every metric is recomputed on each
resample, and the 2.5th / 97.5th percentiles of those values are the 95 % interval.
The metrics are exactly those of ``engine.train.metrics`` (scikit-learn's
definitions, ``zero_division=0``), computed here in numpy on all resamples at
once: confusion counts per resample for accuracy, balanced accuracy and macro
precision / recall / F1, and the Mann-Whitney statistic with tied scores counted
half for each class's one-vs-rest ROC AUC (a class without positives or without
negatives in a resample has no AUC there and is left out of that resample).

``paired_bootstrap`` draws the same resamples for two sets of predictions on the
same images (Koehn 2004; Berg-Kirkpatrick et al. 2012) and gives the two-sided
p-value of their difference: twice the smaller share of resamples on either side
of zero, so that p < 0.05 exactly when the 95 % percentile interval of the
difference excludes zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: scalar metrics with an interval in report.json ``test.ci95`` (plus ``roc_auc`` per class)
CI_METRICS = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1", "macro_roc_auc")
_MAX_CELLS = 4_000_000   # resample x image cells held at once (memory bound for large test sets)


def resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) indices drawn with replacement by numpy's PCG64 seeded with `seed`."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_boot, n)) if n else np.zeros((n_boot, 0), dtype=np.int64)


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """Multiplicity of each image in each resample: (B, n) int."""
    b = len(idx)
    flat = (idx + (np.arange(b) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n)


def _confusion(y: np.ndarray, pred: np.ndarray, k: int, w: np.ndarray) -> np.ndarray:
    """Weighted confusion matrices (B, k, k) [true, predicted] from multiplicities w (B, n)."""
    cell = y * k + pred                          # (n,)
    onehot = np.zeros((len(y), k * k))
    onehot[np.arange(len(y)), cell] = 1.0
    return (w @ onehot).reshape(len(w), k, k)


def _label_metrics(cm: np.ndarray) -> dict[str, np.ndarray]:
    """accuracy, balanced accuracy, macro precision/recall/F1 of each confusion matrix."""
    tp = np.diagonal(cm, axis1=1, axis2=2)
    support = cm.sum(2)                           # true counts per class
    predicted = cm.sum(1)
    total = support.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / np.maximum(support, 1), 0.0)
        precision = np.where(predicted > 0, tp / np.maximum(predicted, 1), 0.0)
        denom = 2 * tp + (predicted - tp) + (support - tp)
        f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
        present = support > 0
        bal = np.where(present.any(1), (recall * present).sum(1) / np.maximum(present.sum(1), 1), np.nan)
        acc = np.where(total > 0, tp.sum(1) / np.maximum(total, 1), np.nan)
    return {"accuracy": acc, "balanced_accuracy": bal, "macro_precision": precision.mean(1),
            "macro_recall": recall.mean(1), "macro_f1": f1.mean(1)}


def _auc(scores: np.ndarray, positive: np.ndarray, w: np.ndarray) -> np.ndarray:
    """One-vs-rest ROC AUC per resample (B,), NaN where a side is empty.

    AUC = P(score of a positive > score of a negative) + 1/2 P(equal), with each
    image counted as often as it was drawn (its multiplicity in w)."""
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])   # groups of tied scores
    ws = w[:, order].astype(np.float64)
    pos = positive[order]
    pos_g = np.add.reduceat(ws * pos, starts, axis=1)
    neg_g = np.add.reduceat(ws * ~pos, starts, axis=1)
    below = np.cumsum(neg_g, axis=1) - neg_g
    n_pos, n_neg = pos_g.sum(1), neg_g.sum(1)
    num = (pos_g * (below + 0.5 * neg_g)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((n_pos > 0) & (n_neg > 0), num / (n_pos * n_neg), np.nan)


def metric_samples(y: Sequence[int], probs: np.ndarray, k: int, idx: np.ndarray) -> dict[str, np.ndarray]:
    """Every CI metric on every resample in `idx` (B, n): {metric: (B,)}, 'roc_auc': (B, k)."""
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    n = len(y)
    pred = p.argmax(1) if n else np.zeros(0, np.int64)
    out: dict[str, list[np.ndarray]] = {}
    step = max(1, _MAX_CELLS // max(n, 1))
    for a in range(0, len(idx), step):
        w = _counts(idx[a:a + step], n)
        part = _label_metrics(_confusion(y, pred, k, w))
        aucs = np.stack([_auc(p[:, c], y == c, w) for c in range(k)], axis=1)
        part["roc_auc"] = aucs
        with np.errstate(invalid="ignore"):
            defined = ~np.isnan(aucs)
            part["macro_roc_auc"] = np.where(defined.any(1), np.nansum(aucs, 1) / np.maximum(defined.sum(1), 1),
                                             np.nan)
        for key, v in part.items():
            out.setdefault(key, []).append(v)
    return {key: np.concatenate(v) for key, v in out.items()}


def point_metrics(y: Sequence[int], probs: np.ndarray, k: int) -> dict[str, Any]:
    """The CI metrics on the test set itself (the identity 'resample')."""
    idx = np.arange(len(y))[None, :]
    s = metric_samples(y, probs, k, idx)
    return {key: (v[0] if key != "roc_auc" else v[0].tolist()) for key, v in s.items()}


def _interval(values: np.ndarray, level: float) -> list[float] | None:
    v = values[~np.isnan(values)]
    if len(v) == 0:
        return None
    lo, hi = np.percentile(v, [50 * (1 - level), 100 - 50 * (1 - level)])
    return [float(lo), float(hi)]


def bootstrap_ci(y: Sequence[int], probs: np.ndarray, classes: Sequence[str], n_boot: int = 1000,
                 seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """report.json ``test.ci95``: {metric: [low, high]} and 'roc_auc': {class: [low, high]}.

    An interval is null when the metric is undefined in every resample (e.g. the
    AUC of a class absent from the test set)."""
    k = len(classes)
    if len(y) == 0 or n_boot < 1:
        return {}
    s = metric_samples(y, probs, k, resample_indices(len(y), n_boot, seed))
    out: dict[str, Any] = {m: _interval(s[m], level) for m in CI_METRICS}
    out["roc_auc"] = {c: _interval(s["roc_auc"][:, i], level) for i, c in enumerate(classes)}
    return out


def paired_bootstrap(y: Sequence[int], probs_a: np.ndarray, probs_b: np.ndarray, k: int,
                     metric: str = "macro_f1", n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Difference metric(a) - metric(b) on the same images, its 95 % interval and two-sided p-value."""
    if metric not in CI_METRICS:
        raise ValueError(f"unknown metric {metric!r} (use {', '.join(CI_METRICS)})")
    n = len(y)
    if n == 0:
        return {"metric": metric, "difference": None, "ci95": None, "p_value": None, "n_images": 0}
    idx = resample_indices(n, n_boot, seed)
    da = metric_samples(y, probs_a, k, idx)[metric]
    db = metric_samples(y, probs_b, k, idx)[metric]
    d = da - db
    d = d[~np.isnan(d)]
    observed = point_metrics(y, probs_a, k)[metric] - point_metrics(y, probs_b, k)[metric]
    if len(d) == 0 or np.isnan(observed):
        return {"metric": metric, "difference": None, "ci95": None, "p_value": None, "n_images": n}
    # two-sided percentile test, with the +1 correction so that p is never exactly 0
    below = (np.sum(d <= 0) + 1) / (len(d) + 1)
    above = (np.sum(d >= 0) + 1) / (len(d) + 1)
    p = min(1.0, 2 * min(below, above))
    return {"metric": metric, "difference": float(observed), "ci95": _interval(d, 0.95),
            "p_value": float(p), "n_images": n}
