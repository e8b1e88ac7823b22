"""engine.train.bootstrap: the resampled metrics are scikit-learn's, intervals bracket and reproduce."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from medviewer.engine.train.bootstrap import (CI_METRICS, bootstrap_ci, metric_samples, paired_bootstrap,
                                              point_metrics, resample_indices)
from medviewer.engine.train.metrics import classification_metrics


def predictions(n: int, k: int, seed: int, skill: float = 1.0, decimals: int | None = 1):
    """Labels and probabilities with some skill; rounding makes tied scores (as real models do)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    p = rng.random((n, k))
    p[np.arange(n), y] += skill * rng.random(n)
    if decimals is not None:
        p = np.round(p, decimals) + 1e-3
    return y, p / p.sum(1, keepdims=True)


def sklearn_metrics(y, p, k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return classification_metrics(list(y), p, [str(i) for i in range(k)])


def same(a, b) -> bool:
    return (a is None and np.isnan(b)) or (a is not None and abs(a - b) < 1e-12)


@pytest.mark.parametrize("n,k,seed", [(30, 3, 0), (7, 4, 1), (200, 2, 2), (50, 5, 3), (12, 3, 4)])
def test_each_resample_equals_scikit_learn_on_that_resample(n, k, seed):
    y, p = predictions(n, k, seed)
    idx = resample_indices(n, 6, seed)
    got = metric_samples(y, p, k, idx)
    for b in range(len(idx)):      # brute force: scikit-learn on the drawn rows themselves
        ref = sklearn_metrics(y[idx[b]], p[idx[b]], k)
        for m in CI_METRICS:
            assert same(ref[m], got[m][b]), (m, b, ref[m], got[m][b])
        for c in range(k):
            assert same(ref["roc_auc"][str(c)], got["roc_auc"][b, c]), (c, b)


def test_point_estimate_equals_report_metrics_with_an_absent_class():
    y, p = predictions(40, 4, 5)
    y[y == 2] = 0                  # class 2 never occurs: no AUC, recall counted as 0 in the macro mean
    ref = sklearn_metrics(y, p, 4)
    pt = point_metrics(y, p, 4)
    for m in CI_METRICS:
        assert same(ref[m], pt[m]), m
    assert ref["roc_auc"]["2"] is None and np.isnan(pt["roc_auc"][2])


def test_interval_brackets_the_estimate_reproduces_and_narrows_with_more_images():
    classes = ["a", "b", "c"]
    y, p = predictions(120, 3, 7, skill=0.8)
    ci = bootstrap_ci(y, p, classes, n_boot=1000, seed=11)
    pt = point_metrics(y, p, 3)
    assert set(ci) == set(CI_METRICS) | {"roc_auc"} and set(ci["roc_auc"]) == set(classes)
    for m in CI_METRICS:
        lo, hi = ci[m]
        assert lo < pt[m] < hi, (m, lo, pt[m], hi)
    for i, c in enumerate(classes):
        assert ci["roc_auc"][c][0] < pt["roc_auc"][i] < ci["roc_auc"][c][1]
    assert bootstrap_ci(y, p, classes, n_boot=1000, seed=11) == ci          # same seed, same interval
    assert bootstrap_ci(y, p, classes, n_boot=1000, seed=12) != ci          # another seed, other draws
    y4, p4 = predictions(1200, 3, 7, skill=0.8)
    wide = ci["macro_f1"][1] - ci["macro_f1"][0]
    ci4 = bootstrap_ci(y4, p4, classes, n_boot=1000, seed=11)
    assert ci4["macro_f1"][1] - ci4["macro_f1"][0] < wide / 2               # ~ 1/sqrt(10) as wide


def test_percentiles_are_those_of_the_resampled_values():
    y, p = predictions(60, 2, 9)
    s = metric_samples(y, p, 2, resample_indices(60, 500, 3))
    ci = bootstrap_ci(y, p, ["a", "b"], n_boot=500, seed=3)
    assert ci["accuracy"] == pytest.approx(list(np.percentile(s["accuracy"], [2.5, 97.5])))


def test_no_test_images_or_no_resamples_give_no_intervals():
    assert bootstrap_ci([], np.zeros((0, 2)), ["a", "b"]) == {}
    y, p = predictions(10, 2, 1)
    assert bootstrap_ci(y, p, ["a", "b"], n_boot=0) == {}


def test_paired_bootstrap_same_predictions_and_a_clearly_better_model():
    y, p_good = predictions(300, 3, 2, skill=2.0)
    _, p_noise = predictions(300, 3, 99, skill=0.0)
    same_run = paired_bootstrap(y, p_good, p_good, 3, "macro_f1", 500, 0)
    assert same_run["difference"] == 0 and same_run["p_value"] == 1.0
    better = paired_bootstrap(y, p_good, p_noise, 3, "macro_f1", 500, 0)
    assert better["difference"] > 0.3 and better["p_value"] < 0.01
    assert better["ci95"][0] > 0
    with pytest.raises(ValueError, match="unknown metric"):
        paired_bootstrap(y, p_good, p_noise, 3, "f2")
