"""engine.ood: the Mahalanobis feature ensemble, its storage in model files, and what it
measures on generated in-distribution images against far-out-of-distribution probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medviewer import engine
from medviewer.engine import ood as oodmod
from medviewer.engine.card import ModelCard
from medviewer.engine.infer import predict_full
from medviewer.engine.modelfile import clear_cache, load_model, save_model
from medviewer.engine.preprocess import PreprocessSpec, preprocess
from medviewer.engine.registry import build_model
from medviewer.viewer.errors import ModelFileError


def make_ood_model_file(path, images, labels, arch="resnet18", classes=("normal", "lesion"), size=32,
                        temperature=1.0, calib_images=None, **card_kw):
    """A model file whose OOD model is fitted on `images` ((pixels, meta) pairs) with `labels`
    and thresholded on `calib_images` (default: the same images, as with no validation split)."""
    torch.manual_seed(0)
    module = build_model(arch, len(classes)).eval()
    card = ModelCard(name="tiny-ood", architecture=arch, classes=list(classes), input_size=size,
                     temperature=temperature, **card_kw)
    spec = PreprocessSpec.from_card(card)
    layers = oodmod.default_layers(arch, module)

    def features(imgs):
        x = torch.stack([preprocess(p, m, spec)[0] for p, m in imgs])
        with torch.inference_mode(), oodmod.FeatureTap(module, layers) as tap:
            module(x)
            return tap.take()

    feats = features(images)
    calib = features(calib_images) if calib_images is not None else feats
    model = oodmod.fit(feats, torch.as_tensor(labels), len(classes), calib)
    save_model(path, module, card, ood=model)
    return module, card, model


# -- the math ------------------------------------------------------------------------------------------
def _dense_precision(g: oodmod.LayerGaussian) -> np.ndarray:
    v = g.basis.double().numpy()
    return np.eye(v.shape[0]) / g.residual_variance - v @ np.diag(g.weights.double().numpy()) @ v.T


def test_distance_is_the_mahalanobis_distance_of_the_ppca_covariance():
    rng = np.random.default_rng(0)
    d, n = 12, 300
    mix = rng.normal(size=(d, d))
    y = rng.integers(0, 3, n)
    f = rng.normal(size=(n, d)) @ mix + np.array([[0] * d, [3] * d, [-2] * d])[y]
    acc = oodmod.Accumulator(3)
    acc.add({"x:input": torch.tensor(f, dtype=torch.float32)}, y)
    for k in (3, 11):
        g = acc.layer("x:input", components=k)
        prec = _dense_precision(g)
        means = g.means.double().numpy()
        # PPCA precision is the inverse of  V diag(lambda) V^T + s2 (I - V V^T)
        lam = 1.0 / (1.0 / g.residual_variance - g.weights.double().numpy())
        v = g.basis.double().numpy()
        cov = v @ np.diag(lam) @ v.T + g.residual_variance * (np.eye(d) - v @ v.T)
        np.testing.assert_allclose(prec @ cov, np.eye(d), atol=1e-5)   # float32 storage
        test = rng.normal(size=(20, d)) @ mix
        expect = np.min([np.einsum("nd,de,ne->n", test - m, prec, test - m) for m in means], axis=0)
        got = g.distance(torch.tensor(test, dtype=torch.float32)).double().numpy()
        np.testing.assert_allclose(got, expect, rtol=2e-4, atol=1e-3)


def test_streamed_fit_equals_one_batch_and_threshold_is_the_quantile():
    rng = np.random.default_rng(1)
    f = torch.tensor(rng.normal(size=(400, 6)), dtype=torch.float32)
    y = torch.as_tensor(rng.integers(0, 2, 400))
    one = oodmod.Accumulator(2)
    one.add({"a:mean": f}, y)
    two = oodmod.Accumulator(2)
    two.add({"a:mean": f[:150]}, y[:150])
    two.add({"a:mean": f[150:]}, y[150:])
    g1, g2 = one.layer("a:mean"), two.layer("a:mean")
    torch.testing.assert_close(g1.means, g2.means)
    assert g1.residual_variance == pytest.approx(g2.residual_variance)
    calib = {"a:mean": torch.tensor(rng.normal(size=(1000, 6)), dtype=torch.float32)}
    model = oodmod.calibrate([g1], oodmod.layer_distances([g1], calib))
    scores = model.score(calib).numpy()
    assert abs(np.mean(scores > model.threshold) - 0.05) < 0.002
    # an image far from every class scores far above the threshold
    far = {"a:mean": torch.full((1, 6), 8.0)}
    assert float(model.score(far)[0]) > 10 * model.threshold


def test_default_layers_exist_in_every_family():
    for arch in ("resnet18", "densenet121", "vgg11", "alexnet", "mobilenet_v3_small", "efficientnet_b0",
                 "mobilenet_v2"):
        with torch.device("meta"):
            module = build_model(arch, 3)
        layers = oodmod.default_layers(arch, module)
        assert 4 <= len(layers) <= 5 and layers[-1].endswith(":input")   # AlexNet has 3 poolings
        for name in layers:
            module.get_submodule(name.rpartition(":")[0])


# -- model files -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def grey_images():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:40]
    imgs, labels = [], []
    for i in range(40):
        disk = (np.hypot(yy - 20 + rng.integers(-4, 5), xx - 20 + rng.integers(-4, 5)) < 8 + i % 2 * 6)
        imgs.append(((disk * 150 + 40 + rng.normal(0, 8, (40, 40))).clip(0, 255).astype(np.uint8), None))
        labels.append(i % 2)
    return imgs, labels


def test_model_file_round_trip_with_ood_and_temperature(tmp_path, grey_images):
    imgs, labels = grey_images
    p = tmp_path / "m.safetensors"
    module, card, fitted = make_ood_model_file(p, imgs, labels, temperature=2.5,
                                               trained_on={"modality": ["CT"], "photometric": ["MONOCHROME2"]})
    clear_cache()
    m = load_model(p, device="cpu")
    assert m.card == card and m.card.format_version == 2 and m.temperature == 2.5
    assert m.ood is not None and m.ood.names == fitted.names and m.ood.threshold == fitted.threshold
    assert m.card.ood["method"] == oodmod.METHOD and m.card.trained_on["modality"] == ["CT"]
    noise = [(np.random.default_rng(3).integers(0, 256, (40, 40), dtype=np.uint8), None)]
    pred = predict_full(m, imgs[:6] + noise, batch_size=4)
    x = torch.stack([preprocess(px, mt, m.spec)[0] for px, mt in imgs[:6] + noise])
    with torch.inference_mode(), oodmod.FeatureTap(module, fitted.names) as tap:
        logits = module(x)
        expect = fitted.score(tap.take()).numpy()
    np.testing.assert_allclose(pred.probs, torch.softmax(logits / 2.5, 1).numpy(), atol=1e-6)
    np.testing.assert_allclose(pred.ood, expect, rtol=1e-4, atol=1e-4)
    assert pred.flags.tolist() == (expect > fitted.threshold).tolist()
    assert pred.flags[-1] and not pred.flags[:6].all()        # noise is unlike the disks
    # predict (the public API) returns the calibrated probabilities too
    np.testing.assert_allclose(engine.predict(m, x), pred.probs, atol=1e-6)


def test_old_model_file_without_ood_loads_and_says_so(tmp_path):
    from test_engine_modelfile import make_model_file

    p = tmp_path / "old.safetensors"
    make_model_file(p)
    m = load_model(p, device="cpu")
    assert m.ood is None and m.temperature == 1.0 and not m.card.has_ood
    pred = predict_full(m, [np.zeros((20, 20), np.uint8)])
    assert pred.ood is None and pred.flags is None and pred.probs.shape == (1, 2)


def test_a_file_whose_ood_tensors_do_not_fit_the_card_is_refused(tmp_path, grey_images):
    from safetensors.torch import load_file, save_file

    imgs, labels = grey_images
    p = tmp_path / "m.safetensors"
    make_ood_model_file(p, imgs, labels)
    from medviewer.engine.modelfile import read_header

    meta = read_header(p)["__metadata__"]
    tensors = load_file(str(p))
    bad = dict(tensors)
    bad["medviewer.ood.0.basis"] = bad["medviewer.ood.0.basis"][:, :2].contiguous()
    save_file(bad, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ModelFileError, match=r"bad.safetensors: OOD tensor medviewer.ood.0.basis has shape"):
        load_model(tmp_path / "bad.safetensors", device="cpu")
    missing = {k: v for k, v in tensors.items() if k != "medviewer.ood.1.means"}
    save_file(missing, str(tmp_path / "missing.safetensors"), metadata=meta)
    with pytest.raises(ModelFileError, match="lacks tensor 'medviewer.ood.1.means'"):
        load_model(tmp_path / "missing.safetensors", device="cpu")
    stray = {**tensors, "medviewer.extra": torch.zeros(1)}
    meta_no_ood = dict(meta)
    import json

    card = json.loads(meta["medviewer.card"])
    card["ood"] = {}
    meta_no_ood["medviewer.card"] = json.dumps(card)
    save_file(stray, str(tmp_path / "stray.safetensors"), metadata=meta_no_ood)
    with pytest.raises(ModelFileError, match="not described by the card"):
        load_model(tmp_path / "stray.safetensors", device="cpu")


def test_gradcam_path_scores_like_predict(tmp_path, grey_images):
    from medviewer.engine.cam import gradcam_images

    imgs, labels = grey_images
    p = tmp_path / "m.safetensors"
    make_ood_model_file(p, imgs, labels, temperature=1.7)
    m = load_model(p, device="cpu")
    got: dict[str, np.ndarray] = {}
    gradcam_images(m, imgs[:5], batch_size=5, on_scores=lambda a, s: got.setdefault("s", s),
                   on_batch=lambda a, maps, probs: got.setdefault("p", probs))
    pred = predict_full(m, imgs[:5])
    np.testing.assert_allclose(got["s"], pred.ood, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got["p"], pred.probs, atol=1e-5)


# -- what it measures (the acceptance figures) ----------------------------------------------------
def test_demo_model_flags_far_ood_probes_and_few_generated_in_distribution_images(tmp_path):
    """AUROC >= 0.95 between newly generated in-distribution images and far-OOD probes
    (other modalities, colour images, photographs, noise, flat images), and at most
    10 % of the in-distribution images flagged (bench/bench_ood.py prints the details)."""
    import cv2

    from medviewer.engine.train.probes import CATEGORIES, probe_set
    from medviewer.engine.train.synth import make_dataset

    m = engine.load_model("demo", device="cpu")
    assert m.ood is not None, "the bundled demo model must carry an OOD model (resources/models/make_demo.sh)"
    data = make_dataset(tmp_path / "id", n=30, size=96, seed=1234)   # not the training seed (7)
    id_images = [(cv2.imread(str(f), cv2.IMREAD_UNCHANGED), None) for f in sorted(data.rglob("*.png"))
                 if "masks" not in f.parts]
    probes = probe_set(CATEGORIES, size=96)
    assert {p.category for p in probes} == set(CATEGORIES)
    s_in = predict_full(m, id_images, batch_size=32).ood
    pred_out = predict_full(m, [(p.stored, p.meta) for p in probes], batch_size=32)
    auc = oodmod.auroc(s_in, pred_out.ood)
    flagged_in = float(np.mean(s_in > m.ood.threshold))
    per_cat = {c: float(np.mean([f for p, f in zip(probes, pred_out.flags) if p.category == c]))
               for c in CATEGORIES}
    print(f"demo model: AUROC {auc:.4f} over {len(id_images)} in / {len(probes)} out; "
          f"in-distribution flagged {flagged_in:.3f}; flagged per category {per_cat}")
    assert auc >= 0.95
    assert flagged_in <= 0.10
