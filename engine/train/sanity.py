"""Is a trained model better than guessing?  The check run on the validation split.

Two trivial classifiers set the bar: *chance* (a uniformly random class:
accuracy 1/k, balanced accuracy 1/k) and the *majority class* (always the most
frequent class of the training split: its accuracy on validation is that
class's share there).  A model passes when

* its validation accuracy is above the majority rate by more than the noise of
  that many images: a one-sided exact binomial test (scipy.stats.binomtest)
  with p < ``ALPHA``, and
* its balanced accuracy is above chance (1/k), so that a model that only learnt
  the class frequencies of an unbalanced set does not pass either.

``prior_loss`` is the cross-entropy of the constant prediction "the training
class frequencies" on the validation labels: a validation loss that does not
go below it means nothing was learnt (the search uses it for its trials).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

ALPHA = 0.05


@dataclass(frozen=True)
class Verdict:
    split: str                   # "val" (or "train" when there is no validation split)
    n: int                       # images judged
    accuracy: float | None
    balanced_accuracy: float | None
    chance_accuracy: float       # 1 / k
    majority_class: str
    majority_accuracy: float     # share of the training split's most frequent class in `split`
    p_value: float | None        # P(accuracy this high | the majority rate)
    better_than_chance: bool | None   # None: nothing to judge (no images)
    message: str

    def to_json(self) -> dict:
        return asdict(self)


def majority(y_train: Sequence[int], k: int) -> int:
    counts = np.bincount(np.asarray(y_train, dtype=int), minlength=k)
    return int(np.argmax(counts))


def prior_loss(y_train: Sequence[int], y_eval: Sequence[int], k: int) -> float:
    """Cross-entropy on ``y_eval`` of always predicting the training class frequencies."""
    if len(y_eval) == 0:
        return math.nan
    counts = np.bincount(np.asarray(y_train, dtype=int), minlength=k).astype(float) + 0.5   # no log(0)
    p = counts / counts.sum()
    return float(-np.mean(np.log(p[np.asarray(y_eval, dtype=int)])))


def p_above(correct: int, n: int, rate: float) -> float:
    """One-sided exact binomial p-value of ``correct`` out of ``n`` when the true rate is ``rate``."""
    from scipy.stats import binomtest

    if n == 0:
        return math.nan
    return float(binomtest(int(correct), int(n), min(max(rate, 0.0), 1.0), alternative="greater").pvalue)


def judge(y_true: Sequence[int], pred: Sequence[int], y_train: Sequence[int], classes: Sequence[str],
          split: str = "val") -> Verdict:
    """The verdict for predictions ``pred`` of labels ``y_true`` (class indices)."""
    k = len(classes)
    y = np.asarray(y_true, dtype=int)
    pr = np.asarray(pred, dtype=int)
    maj = majority(y_train, k)
    chance = 1.0 / k
    if len(y) == 0:
        return Verdict(split, 0, None, None, chance, classes[maj], math.nan, None, None,
                       f"no {split} images: the model could not be compared with chance")
    maj_rate = float(np.mean(y == maj))
    correct = int(np.sum(y == pr))
    acc = correct / len(y)
    present = np.unique(y)
    bal = float(np.mean([np.mean(pr[y == c] == c) for c in present]))
    p = p_above(correct, len(y), maj_rate)
    ok = p < ALPHA and bal > chance + 1e-9
    where = f"on {len(y)} {split} image{'s' if len(y) != 1 else ''}"
    if ok:
        msg = (f"{split} accuracy {acc:.3f} is above the majority class ({classes[maj]!r}, {maj_rate:.3f}) "
               f"and chance ({chance:.3f}) {where} (p = {p:.2g})")
    else:
        reasons = []
        if acc <= maj_rate:
            reasons.append(f"accuracy {acc:.3f} is not above always answering {classes[maj]!r} ({maj_rate:.3f})")
        elif p >= ALPHA:
            reasons.append(f"accuracy {acc:.3f} is not significantly above always answering {classes[maj]!r} "
                           f"({maj_rate:.3f}, p = {p:.2g})")
        if bal <= chance + 1e-9:
            reasons.append(f"balanced accuracy {bal:.3f} is at chance (1/{k} = {chance:.3f})")
        msg = (f"the model is NOT better than chance {where}: " + "; ".join(reasons) +
               ". Do not use it; train longer, check the labels, the learning rate or the data")
    return Verdict(split, len(y), acc, bal, chance, classes[maj], maj_rate, p, ok, msg)
