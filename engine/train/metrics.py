"""Test-set metrics from scikit-learn, in the exact ``report.json`` shape of issue 4.

All numbers come from ``sklearn.metrics`` on (true index, probability matrix);
``tests/test_train_report.py`` recomputes them from ``predictions.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm


def _f(x: float) -> float | None:
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def classification_metrics(y_true: Sequence[int], probs: np.ndarray, classes: Sequence[str]) -> dict:
    """The ``test`` block of report.json.

    ``roc_auc`` per class is one-vs-rest; a class absent from ``y_true`` (or the
    only class present) has no defined AUC and gets ``null``.  ``macro_roc_auc``
    is the mean over the defined ones.
    """
    y = np.asarray(y_true, dtype=int)
    p = np.asarray(probs, dtype=np.float64)
    k = len(classes)
    labels = list(range(k))
    pred = p.argmax(1) if len(p) else np.zeros(0, int)
    if len(y) == 0:
        return {"accuracy": None, "balanced_accuracy": None, "macro_precision": None,
                "macro_recall": None, "macro_f1": None, "weighted_f1": None, "log_loss": None,
                "macro_roc_auc": None, "roc_auc": {c: None for c in classes},
                "confusion_matrix": [[0] * k for _ in range(k)],
                "per_class": {c: {"precision": None, "recall": None, "f1": None, "support": 0}
                              for c in classes}}
    prec, rec, f1, sup = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    roc: dict[str, float | None] = {}
    for i, c in enumerate(classes):
        pos = y == i
        roc[c] = _f(skm.roc_auc_score(pos, p[:, i])) if 0 < pos.sum() < len(y) else None
    defined = [v for v in roc.values() if v is not None]
    present = np.unique(y)
    with np.errstate(all="ignore"):
        bal = skm.balanced_accuracy_score(y, pred) if len(present) else float("nan")
    return {
        "accuracy": _f(skm.accuracy_score(y, pred)),
        "balanced_accuracy": _f(bal),
        "macro_precision": _f(skm.precision_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "macro_recall": _f(skm.recall_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "macro_f1": _f(skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": _f(skm.f1_score(y, pred, labels=labels, average="weighted", zero_division=0)),
        "log_loss": _f(skm.log_loss(y, p, labels=labels)),
        "macro_roc_auc": _f(np.mean(defined)) if defined else None,
        "roc_auc": roc,
        "confusion_matrix": skm.confusion_matrix(y, pred, labels=labels).tolist(),
        "per_class": {c: {"precision": _f(prec[i]), "recall": _f(rec[i]), "f1": _f(f1[i]),
                          "support": int(sup[i])} for i, c in enumerate(classes)},
    }


def classification_text(y_true: Sequence[int], probs: np.ndarray, classes: Sequence[str]) -> str:
    """scikit-learn's classification report as text (for the console and HTML)."""
    if len(y_true) == 0:
        return "(no test images)"
    return skm.classification_report(np.asarray(y_true), np.asarray(probs).argmax(1),
                                     labels=list(range(len(classes))), target_names=list(classes),
                                     zero_division=0, digits=3)
