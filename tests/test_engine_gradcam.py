"""medviewer.engine.cam: agreement with pytorch-grad-cam, class choice, source-grid maps, hook hygiene."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from medviewer.engine.cam import CamHooks, cam_batch
from medviewer.engine.modelfile import load_model
from medviewer.engine.registry import build_model, default_cam_layer
from test_engine_modelfile import make_model_file
from medviewer import engine


def _reference(model, layer, x, method, targets=None):
    cls = GradCAM if method == "gradcam" else GradCAMPlusPlus
    with cls(model=model, target_layers=[model.get_submodule(layer)]) as cam:
        return cam(input_tensor=x, targets=targets)


@pytest.mark.parametrize("arch", ["resnet18", "mobilenet_v3_small", "vgg11", "efficientnet_b0"])
@pytest.mark.parametrize("method", ["gradcam", "gradcampp"])
def test_agrees_with_pytorch_grad_cam(arch, method):
    torch.manual_seed(0)
    model = build_model(arch, 3).eval()
    x = torch.randn(3, 3, 64, 64)
    layer = default_cam_layer(arch)
    mine, logits = cam_batch(model, layer, x, None, method)
    ref = _reference(model, layer, x, method)
    assert mine.shape == ref.shape == (3, 64, 64) and mine.dtype == np.float32
    assert np.abs(mine - ref).max() < 1e-4
    assert mine.min() >= 0.0 and mine.max() <= 1.0 + 1e-6
    with torch.inference_mode():
        np.testing.assert_allclose(logits, model(x).numpy(), atol=1e-4)


def test_selected_class_matches_reference_and_differs_from_top():
    torch.manual_seed(1)
    model = build_model("resnet18", 4).eval()
    x = torch.randn(2, 3, 64, 64)
    per_class = [cam_batch(model, "layer4", x, c)[0] for c in range(4)]
    ref = _reference(model, "layer4", x, "gradcam", [ClassifierOutputTarget(2), ClassifierOutputTarget(2)])
    assert np.abs(per_class[2] - ref).max() < 1e-4
    assert np.abs(per_class[0] - per_class[3]).max() > 1e-3
    mixed = cam_batch(model, "layer4", x, [0, 3])[0]
    np.testing.assert_allclose(mixed[0], per_class[0][0], atol=1e-6)
    np.testing.assert_allclose(mixed[1], per_class[3][1], atol=1e-6)
    with pytest.raises(ValueError, match="out of range"):
        cam_batch(model, "layer4", x, 7)


def test_loaded_model_maps_on_source_grid_batch_equals_single(tmp_path):
    p = tmp_path / "m.safetensors"
    make_model_file(p, size=48)
    loaded = load_model(p, device="cpu", cache=False)
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 255, shape, dtype=np.uint8) for shape in [(30, 70), (64, 64), (90, 40)]]
    maps = engine.gradcam(loaded, images, batch_size=3)
    singles = [engine.gradcam(loaded, [im], batch_size=1)[0] for im in images]
    for im, m, s in zip(images, maps, singles):
        assert m.shape == im.shape and m.dtype == np.float32
        assert 0.0 <= m.min() and m.max() <= 1.0
        np.testing.assert_allclose(m, s, atol=1e-5)
    pp = engine.gradcam(loaded, images[:1], method="gradcampp")[0]
    assert pp.shape == images[0].shape


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


def test_hooks_removed_and_nothing_accumulates():
    torch.manual_seed(0)
    model = build_model("resnet18", 2).eval()
    layer = model.get_submodule("layer4")
    x = torch.randn(2, 3, 32, 32)
    cam_batch(model, "layer4", x)
    before = _live_tensors()
    for _ in range(15):
        cam_batch(model, "layer4", x, method="gradcampp")
    assert _live_tensors() == before
    assert not layer._forward_hooks and not layer._backward_hooks
    assert all(p.grad is None for p in model.parameters())  # no parameter gradients computed
    assert torch.is_grad_enabled()


def test_hooks_removed_when_forward_fails():
    model = build_model("resnet18", 2).eval()
    layer = model.get_submodule("layer4")
    with pytest.raises(RuntimeError):
        with CamHooks(model, "layer4") as hooks:
            hooks.forward(torch.randn(1, 5, 32, 32))  # wrong channel count
    assert not layer._forward_hooks and hooks.activation is None
    assert torch.is_grad_enabled()


def test_gradcam_beside_predict_on_the_same_model_in_another_thread(tmp_path):
    """The viewer runs Grad-CAM (its own pool) while a series is classified with the
    same model: the forward hook is on the shared module, so it must act only for the
    thread computing the CAM.  Both results equal those of quiet runs."""
    import threading

    p = tmp_path / "m.safetensors"
    make_model_file(p, arch="resnet18", classes=("a", "b"), size=32)
    model = load_model(p, device="cpu", cache=False)
    x = torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    quiet_probs = engine.predict(model, x, batch_size=4)
    quiet_cams = engine.gradcam(model, x[:4], batch_size=4)
    stop = threading.Event()
    probs: list[np.ndarray] = []
    errors: list[BaseException] = []

    def classify() -> None:
        try:
            while not stop.is_set():
                probs.append(engine.predict(model, x, batch_size=4))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    th = threading.Thread(target=classify)
    th.start()
    try:
        cams = [engine.gradcam(model, x[:4], batch_size=4) for _ in range(15)]
    finally:
        stop.set()
        th.join()
    assert not errors, errors
    assert probs
    for got in probs:
        np.testing.assert_allclose(got, quiet_probs, atol=1e-5)
    for got in cams:
        for a, b in zip(got, quiet_cams):
            np.testing.assert_allclose(a, b, atol=1e-5)
