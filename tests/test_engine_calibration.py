"""engine.train.calibrate: ECE as defined (15 equal-width bins, top label) and temperature
scaling, on synthetic logits and on a deliberately over-confident real model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medviewer.engine.train import calibrate


def test_ece_by_hand():
    # 4 images: confidences 0.95 (right), 0.95 (wrong), 0.55 (right), 0.55 (right)
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.45, 0.55]])
    y = np.array([0, 1, 0, 1])
    # bin (14/15, 1]: acc 0.5, conf 0.95 -> 0.45 * 2/4; bin (8/15, 9/15]: acc 1, conf 0.55 -> 0.45 * 2/4
    assert calibrate.ece(probs, y) == pytest.approx(0.45)
    assert calibrate.ece(np.array([[1.0, 0.0]]), np.array([0])) == pytest.approx(0.0)
    assert calibrate.ece(np.zeros((0, 2)), np.zeros(0)) is None
    r = calibrate.reliability(probs, y)
    assert r["count"].sum() == 4 and len(r["count"]) == 15
    # bins are (k/15, (k+1)/15]: a confidence of exactly 1 is in the last one
    edge = calibrate.reliability(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([0, 0]))
    assert np.flatnonzero(edge["count"]).tolist() == [7, 14]


def test_rescale_equals_softmax_of_logits_over_t():
    z = np.random.default_rng(0).normal(0, 3, (50, 4))
    p = calibrate.softmax(z)
    np.testing.assert_allclose(calibrate.rescale(p, 2.0), calibrate.softmax(z, 2.0), atol=1e-12)
    assert (calibrate.rescale(p, 2.0).argmax(1) == p.argmax(1)).all()


def test_temperature_undoes_synthetic_overconfidence():
    rng = np.random.default_rng(0)
    n, k = 4000, 4
    true_logits = rng.normal(0, 1.5, (n, k))
    y = np.array([rng.choice(k, p=p) for p in calibrate.softmax(true_logits)])   # calibrated by construction
    over = 3.0 * true_logits                                                       # over-confident by 3x
    t = calibrate.fit_temperature(over[:2000], y[:2000])
    assert t == pytest.approx(3.0, rel=0.1)
    before = calibrate.ece(calibrate.softmax(over[2000:]), y[2000:])
    after = calibrate.ece(calibrate.softmax(over[2000:], t), y[2000:])
    assert before > 0.1 and after < 0.03 and after < before / 4
    assert calibrate.fit_temperature(over[:5], y[:5]) == 1.0   # too few images: no fit


def test_temperature_lowers_ece_of_an_overconfident_real_model(tmp_path):
    """The demo classifier made over-confident on purpose: logits multiplied by 4 (final
    Linear weights and bias scaled), on newly generated images with added noise (so that
    it makes mistakes, about 1 in 5).  The temperature fitted on one half lowers the ECE
    on the other half, and predict applies a card's temperature."""
    import copy

    import cv2

    from medviewer import engine
    from medviewer.engine.modelfile import LoadedModel
    from medviewer.engine.ood import final_linear
    from medviewer.engine.preprocess import preprocess
    from medviewer.engine.train.synth import make_dataset

    demo = engine.load_model("demo", device="cpu")
    module = copy.deepcopy(demo.module).float()
    head = module.get_submodule(final_linear(module))
    with torch.no_grad():
        head.weight.mul_(4.0)
        head.bias.mul_(4.0)
    data = make_dataset(tmp_path / "d", n=60, size=96, seed=99)
    files = sorted(f for f in data.rglob("*.png") if "masks" not in f.parts)
    y = np.array([demo.classes.index(f.parent.name) for f in files])
    rng = np.random.default_rng(0)
    imgs = [np.clip(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) + rng.normal(0, 20, (96, 96)), 0, 255).astype(np.uint8)
            for f in files]
    x = torch.stack([preprocess(img, None, demo.spec)[0] for img in imgs])
    with torch.inference_mode():
        logits = module(x).double().numpy()
    order = rng.permutation(len(y))
    val, test = order[: len(y) // 2], order[len(y) // 2:]
    t = calibrate.fit_temperature(logits[val], y[val])
    before = calibrate.ece(calibrate.softmax(logits[test]), y[test])
    after = calibrate.ece(calibrate.softmax(logits[test], t), y[test])
    accuracy = float(np.mean(logits.argmax(1) == y))
    print(f"over-confident demo model: accuracy {accuracy:.3f}, T {t:.2f}, ECE {before:.4f} -> {after:.4f}")
    assert 0.6 < accuracy < 0.95
    assert t > 2.0 and after < 0.75 * before
    # the same temperature in a card is applied by predict
    m = LoadedModel(module, copy.deepcopy(demo.card), demo.device)
    m.temperature = t
    np.testing.assert_allclose(engine.predict(m, x[:8]), calibrate.softmax(logits[:8], t), atol=1e-5)


def test_a_perfect_validation_split_claims_no_more_than_the_95_percent_accuracy_bound():
    """No error on the validation split: the NLL has no minimum (T -> 0); the temperature
    is then the one with mean confidence 0.05 ** (1 / n), the one-sided 95 % lower bound
    of the accuracy after n correct answers out of n."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 60)
    z = rng.normal(0, 1, (60, 3))
    z[np.arange(60), y] += 4.0            # every image right, with varying margins
    assert calibrate.separable(z, y)
    t = calibrate.fit_temperature(z, y)
    assert calibrate.T_MIN < t < calibrate.T_MAX
    assert calibrate.softmax(z, t).max(1).mean() == pytest.approx(0.05 ** (1 / 60), abs=1e-6)
    z[0, (y[0] + 1) % 3] += 20.0          # one confident error: the ordinary NLL minimum again
    assert not calibrate.separable(z, y)
    t2 = calibrate.fit_temperature(z, y)
    grid = np.exp(np.linspace(np.log(calibrate.T_MIN), np.log(calibrate.T_MAX), 2001))
    best = grid[np.argmin([calibrate.nll(z, y, g) for g in grid])]
    assert t2 == pytest.approx(best, rel=0.01)
