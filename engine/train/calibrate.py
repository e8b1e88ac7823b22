"""Probability calibration: temperature scaling and the expected calibration error.

Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML
2017): one scalar T > 0 divides the logits before the softmax; it is fitted after
training by minimising the negative log-likelihood on the validation split, so it
never changes which class is on top (accuracy, ROC curves), only how confident the
probabilities are.  The card stores T and every consumer (predict, the viewer, the
report) applies it (`LoadedModel.outputs`).

A validation split the model classifies without a single error has no NLL minimum
(T -> 0 makes every probability 1).  The temperature is then the one at which the
mean top-class confidence on that split equals the accuracy we can be 95 % sure of
after n correct answers out of n: the one-sided Clopper-Pearson lower bound 0.05^(1/n)
(about 1 - 3/n, the "rule of three").  The model never claims more confidence than
the validation split supports; on the demo model this temperature lowered the NLL
both on the test split and on newly generated images, where the rule-of-succession
estimate (n + 1) / (n + 2) sharpened too much for the new images.

ECE: top-label expected calibration error with 15 equal-width confidence bins
(Guo et al. 2017, eq. 3; Naeini et al. 2015): the |accuracy - confidence| gap of
each bin, weighted by its share of the images.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

ECE_BINS = 15
T_MIN, T_MAX = 0.05, 20.0   # a wider range only happens on degenerate validation sets
MIN_VAL_IMAGES = 10         # fewer: keep T = 1 (the fit would follow noise)
SEPARABLE_ALPHA = 0.05      # no validation error: confidence = the 95 % lower bound of the accuracy


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def rescale(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities softmax(z) -> softmax(z / T), from the probabilities alone
    (log p = z - logsumexp(z), and the constant cancels in the softmax).  The result
    sums to 1 in float64 also for T = 1 (float32 softmax outputs do not, quite)."""
    p = np.asarray(probs, dtype=np.float64)
    if len(p) == 0:
        return p
    with np.errstate(divide="ignore"):
        return softmax(np.log(p), temperature)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    p = softmax(logits, temperature)
    y = np.asarray(labels, dtype=int)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-300, None))))


def separable(logits: Any, labels: Any) -> bool:
    """True when every image's top class is its label (the NLL then has no minimum)."""
    z = np.asarray(logits, dtype=np.float64)
    return bool(len(z)) and bool(np.all(z.argmax(axis=1) == np.asarray(labels, dtype=int)))


def _mean_confidence(z: np.ndarray, temperature: float) -> float:
    return float(softmax(z, temperature).max(axis=1).mean())


def fit_temperature(logits: Any, labels: Any) -> float:
    """The T minimising the validation NLL of softmax(logits / T), in [T_MIN, T_MAX].

    The NLL is convex in 1/T, so a bounded golden-section search on log T finds the
    optimum without tuning (LBFGS, used by Guo et al., reaches the same point).  On a
    separable validation split: the temperature of the 95 % lower accuracy bound (module docstring).
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    if len(y) < MIN_VAL_IMAGES or z.ndim != 2 or z.shape[1] < 2:
        return 1.0
    lo, hi = math.log(T_MIN), math.log(T_MAX)
    if separable(z, y):
        target = SEPARABLE_ALPHA ** (1.0 / len(y))
        if _mean_confidence(z, T_MIN) <= target:
            return T_MIN
        a, b = lo, hi   # the mean confidence falls as T grows: bisection on log T
        for _ in range(100):
            mid = (a + b) / 2
            if _mean_confidence(z, math.exp(mid)) > target:
                a = mid
            else:
                b = mid
            if b - a < 1e-7:
                break
        return float(math.exp((a + b) / 2))
    g = (math.sqrt(5) - 1) / 2
    a, b = lo, hi
    c, d = b - g * (b - a), a + g * (b - a)
    fc, fd = nll(z, y, math.exp(c)), nll(z, y, math.exp(d))
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - g * (b - a)
            fc = nll(z, y, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + g * (b - a)
            fd = nll(z, y, math.exp(d))
        if b - a < 1e-6:
            break
    return float(math.exp((a + b) / 2))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per equal-width bin of the top-class confidence: count, mean confidence, accuracy."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=int)
    conf = p.max(axis=1) if len(p) else np.zeros(0)
    correct = (p.argmax(axis=1) == y) if len(p) else np.zeros(0, bool)
    idx = np.clip(np.ceil(conf * bins).astype(int) - 1, 0, bins - 1)   # bin (k/bins, (k+1)/bins]
    count = np.bincount(idx, minlength=bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=bins) / count
        acc = np.bincount(idx, weights=correct.astype(float), minlength=bins) / count
    return {"edges": np.linspace(0, 1, bins + 1), "count": count, "confidence": mean_conf, "accuracy": acc}


def ece(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float | None:
    """Top-label expected calibration error (None without images)."""
    if len(labels) == 0:
        return None
    r = reliability(probs, labels, bins)
    used = r["count"] > 0
    gaps = np.abs(r["accuracy"][used] - r["confidence"][used])
    return float(np.sum(r["count"][used] * gaps) / np.sum(r["count"]))
