"""The validation check against chance and the majority class (engine.train.sanity)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss

from medviewer.engine.train.sanity import judge, prior_loss

CLASSES = ["cavity", "nodule", "normal", "spiculated"]


def test_a_model_at_chance_is_flagged():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(4), 25)                      # 100 balanced images
    v = judge(y, rng.integers(0, 4, 100), y, CLASSES)
    assert v.better_than_chance is False and "NOT better than chance on 100 val images" in v.message
    assert v.chance_accuracy == 0.25 and v.majority_accuracy == 0.25


def test_always_the_majority_class_is_flagged_on_unbalanced_data():
    y_train = np.array([2] * 80 + [0] * 10 + [1] * 10)
    y_val = np.array([2] * 40 + [0] * 5 + [1] * 5)
    v = judge(y_val, np.full(50, 2), y_train, CLASSES[:3])
    assert v.accuracy == 0.8 and v.majority_class == "normal" and v.majority_accuracy == 0.8
    assert v.better_than_chance is False
    assert "not above always answering 'normal'" in v.message and "balanced accuracy 0.333 is at chance" in v.message


def test_a_useful_model_passes_and_a_small_lucky_one_does_not():
    y = np.repeat(np.arange(4), 25)
    pred = y.copy()
    pred[::4] = (pred[::4] + 1) % 4                      # 75 % correct
    v = judge(y, pred, y, CLASSES)
    assert v.better_than_chance is True and v.p_value < 1e-10 and "is above the majority class" in v.message
    v = judge([0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 2, 3], CLASSES)   # 3 of 4: not distinguishable from luck
    assert v.better_than_chance is False and "not significantly above" in v.message
    v = judge([], [], [0, 1], CLASSES)
    assert v.better_than_chance is None and "no val images" in v.message


def test_prior_loss_is_the_log_loss_of_the_class_frequencies():
    y_train = [0] * 60 + [1] * 30 + [2] * 10
    y_val = [0, 1, 2, 2, 1]
    p = (np.bincount(y_train, minlength=3) + 0.5) / (len(y_train) + 1.5)
    assert prior_loss(y_train, y_val, 3) == pytest.approx(log_loss(y_val, np.tile(p, (5, 1)), labels=[0, 1, 2]))
    assert prior_loss([0, 1] * 5, [0, 1], 2) == pytest.approx(math.log(2))
