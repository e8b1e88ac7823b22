"""Grad-CAM (Selvaraju et al. 2017) and Grad-CAM++ (Chattopadhay et al. 2018), batched.

`CamHooks` owns the forward hook on the target layer and always removes it
(context manager, STYLE.md pattern 9).  Only the part of the network after the
target layer records a graph, and `torch.autograd.grad` differentiates the class
scores with respect to the layer's activations only (no parameter gradients),
which is what makes the batched computation cheaper than a generic CAM library.
The arithmetic matches pytorch-grad-cam 1.5 (ReLU, min-max scaling before and
after bilinear upsampling) so that maps agree with it to 1e-4.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.engine.infer import Cancelled, batches, forward_probs, iter_prepared, member_inputs

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from medviewer.engine.modelfile import LoadedModel

@dataclass(frozen=True)
class CamMethod:
    """A class-activation-map method: how channel weights come from activations and gradients."""

    name: str     # as in --cam-method, the settings and the bench
    label: str    # what the viewer shows
    reference: str
    weights: Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]  # (acts, grads) -> (N, K)


def _gradcam_weights(acts: "torch.Tensor", grads: "torch.Tensor") -> "torch.Tensor":
    return grads.mean(dim=(2, 3))


def _gradcampp_weights(acts: "torch.Tensor", grads: "torch.Tensor") -> "torch.Tensor":
    import torch

    g2 = grads * grads
    g3 = g2 * grads
    sum_a = acts.sum(dim=(2, 3), keepdim=True)
    aij = g2 / (2 * g2 + sum_a * g3 + 1e-6)
    aij = torch.where(grads != 0, aij, torch.zeros_like(aij))
    return (torch.relu(grads) * aij).sum(dim=(2, 3))


#: every CAM method, by name; the CLI, the viewer and bench/bench_gradcam.py read this
CAM_METHODS: dict[str, CamMethod] = {m.name: m for m in (
    CamMethod("gradcam", "Grad-CAM", "Selvaraju et al., ICCV 2017 (mean gradient per channel)",
              _gradcam_weights),
    CamMethod("gradcampp", "Grad-CAM++", "Chattopadhyay et al., WACV 2018 (eq. 19 alphas)",
              _gradcampp_weights),
)}
METHODS = tuple(CAM_METHODS)


def cam_method(name: str) -> CamMethod:
    try:
        return CAM_METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown CAM method {name!r} (use {', '.join(CAM_METHODS)})") from None


class CamHooks:
    """Capture the target layer's activations as a graph leaf during one forward pass.

    Inside the context the forward runs with autograd off up to the layer and on
    after it.  On exit the hook is removed and references are dropped, even if
    the forward raised.
    """

    def __init__(self, module: "torch.nn.Module", layer_name: str) -> None:
        from medviewer.engine.registry import get_submodule

        self.module = module
        self.layer = get_submodule(module, layer_name)
        self.activation: "torch.Tensor | None" = None
        self._handle: Any = None
        self._owner: int | None = None  # thread whose forward pass is being observed

    def _hook(self, _mod: Any, _inp: Any, output: "torch.Tensor") -> "torch.Tensor | None":
        import torch

        if threading.get_ident() != self._owner:  # another thread's forward of the shared
            return None                             # module (predict beside a CAM job)
        if self.activation is not None:  # layer reused in one forward: keep the first call
            return None
        torch.set_grad_enabled(True)
        leaf = output.detach().requires_grad_(True)
        self.activation = leaf
        return leaf.clone()  # later in-place ops (DenseNet's ReLU) must not touch the leaf

    def __enter__(self) -> "CamHooks":
        self._handle = self.layer.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def release(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        self.activation = None

    def forward(self, x: "torch.Tensor") -> "torch.Tensor":
        import torch

        self.activation = None
        self._owner = threading.get_ident()
        prev = torch.is_grad_enabled()
        torch.set_grad_enabled(False)
        try:
            logits = self.module(x)
        finally:
            torch.set_grad_enabled(prev)
        if self.activation is None:
            raise RuntimeError("the Grad-CAM layer was not reached in the forward pass")
        return logits


def _minmax(cam: "torch.Tensor") -> "torch.Tensor":
    flat = cam.flatten(1)
    lo = flat.min(dim=1).values[:, None, None]
    cam = cam - lo
    hi = cam.flatten(1).max(dim=1).values[:, None, None]
    return cam / (1e-7 + hi)


def cam_weights(acts: "torch.Tensor", grads: "torch.Tensor", method: str) -> "torch.Tensor":
    """Channel weights (N, K) of the named method (CAM_METHODS)."""
    return cam_method(method).weights(acts, grads)


def cam_batch(module: "torch.nn.Module", layer_name: str, x: "torch.Tensor",
              class_index: int | Sequence[int] | None = None, method: str = "gradcam",
              ) -> tuple[np.ndarray, np.ndarray]:
    """CAMs on the input grid for one batch: (maps float32 (N, H, W) in [0, 1], logits (N, C)).

    class_index: None = each image's top class, an int for all, or one per image.
    """
    import torch
    import torch.nn.functional as F

    cam_method(method)
    with CamHooks(module, layer_name) as hooks:
        logits = hooks.forward(x)
        acts = hooks.activation
        assert acts is not None
        if class_index is None:
            idx = logits.detach().argmax(dim=1)
        elif isinstance(class_index, int):
            idx = torch.full((len(x),), int(class_index), dtype=torch.long, device=logits.device)
        else:
            idx = torch.as_tensor(list(class_index), dtype=torch.long, device=logits.device)
        if int(idx.min()) < 0 or int(idx.max()) >= logits.shape[1]:
            raise ValueError(f"class index out of range 0..{logits.shape[1] - 1}")
        score = logits.gather(1, idx[:, None]).sum()
        (grads,) = torch.autograd.grad(score, acts)
        with torch.no_grad():
            a, g = acts.detach().float(), grads.float()
            w = cam_weights(a, g, method)
            cam = torch.relu((w[:, :, None, None] * a).sum(dim=1))
            cam = _minmax(cam)
            cam = F.interpolate(cam[:, None], size=tuple(x.shape[-2:]), mode="bilinear",
                                align_corners=False)[:, 0]
            cam = _minmax(torch.relu(cam))
        out_logits = logits.detach().float().cpu().numpy()
    return cam.cpu().numpy().astype(np.float32, copy=False), out_logits


def gradcam_images(model: "LoadedModel", images: Any, metas: Sequence[Any] | None = None,
                   class_index: int | Sequence[int] | None = None, method: str = "gradcam",
                   batch_size: int = 16, progress: Callable[[int, int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   on_batch: Callable[[int, list[np.ndarray], np.ndarray], None] | None = None,
                   on_scores: Callable[[int, np.ndarray], None] | None = None,
                   ) -> list[np.ndarray]:
    """Maps float32 [0, 1] at each source image's rows x cols (S x S for a ready tensor).

    `on_batch(start, maps, probs)` streams results (probs: softmax of the logits divided
    by the card's temperature, as `predict` gives); `on_scores(start, scores)` the
    out-of-distribution scores of the same forward pass (models with an OOD model),
    before `on_batch`.
    For an ensemble (a model with `members`) each map is the weighted mean of the
    members' maps, each computed on the member's own input grid and mapped back to
    the source image, for the ensemble's top class (or `class_index`); probabilities
    are the weighted mean of the members' calibrated ones; ensembles have no OOD model.
    """
    import torch

    from medviewer.engine.device import prepare_input

    n = len(images)
    per_image = None if class_index is None or isinstance(class_index, int) else list(class_index)
    if per_image is not None and len(per_image) != n:
        raise ValueError("class_index needs one entry per image")
    if getattr(model, "members", None):
        return _gradcam_members(model, images, metas, class_index, per_image, method, batch_size,
                                progress, should_stop, on_batch)
    maps: list[np.ndarray] = []
    if progress:
        progress(0, n)
    for a, b, x, geoms in iter_prepared(model, images, metas, batch_size, should_stop):
        ci = per_image[a:b] if per_image is not None else class_index
        with model.feature_tap() as tap:
            cams, logits = cam_batch(model.module, model.cam_layer, prepare_input(x, model.device), ci, method)
            if on_scores is not None and model.ood is not None:
                with torch.no_grad():
                    on_scores(a, model.ood.score(tap.take()).float().cpu().numpy())
        batch_maps = [cams[i] if geoms is None else np.clip(geoms[i].to_source(cams[i]), 0.0, 1.0)
                      for i in range(b - a)]
        maps.extend(batch_maps)
        if on_batch:
            on_batch(a, batch_maps, torch.softmax(torch.from_numpy(logits) / model.temperature, 1).numpy())
        if progress:
            progress(b, n)
    return maps


def _gradcam_members(model: Any, images: Any, metas: Sequence[Any] | None, class_index: int | None,
                     per_image: list[int] | None, method: str, batch_size: int,
                     progress: Callable[[int, int], None] | None, should_stop: Callable[[], bool] | None,
                     on_batch: Callable[[int, list[np.ndarray], np.ndarray], None] | None) -> list[np.ndarray]:
    from medviewer.engine.device import prepare_input

    cam_method(method)
    n = len(images)
    maps: list[np.ndarray] = []
    if progress:
        progress(0, n)
    for a, b in batches(n, batch_size):
        if should_stop and should_stop():
            raise Cancelled()
        inputs = member_inputs(model, images, metas, a, b)
        probs = sum(w * forward_probs(m, x).astype(np.float64) for w, (m, x, _) in zip(model.weights, inputs))
        probs = np.asarray(probs, dtype=np.float32)
        if per_image is not None:
            ci: int | list[int] = per_image[a:b]
        elif class_index is not None:
            ci = int(class_index)
        else:
            ci = [int(i) for i in probs.argmax(1)]
        acc: list[np.ndarray] | None = None
        for w, (m, x, geoms) in zip(model.weights, inputs):
            cams, _ = cam_batch(m.module, m.cam_layer, prepare_input(x, m.device), ci, method)
            on_src = [cams[i] if geoms is None else np.clip(geoms[i].to_source(cams[i]), 0.0, 1.0)
                      for i in range(b - a)]
            acc = [w * c for c in on_src] if acc is None else [s + w * c for s, c in zip(acc, on_src)]
        batch_maps = [np.clip(c, 0.0, 1.0).astype(np.float32) for c in acc or []]
        maps.extend(batch_maps)
        if on_batch:
            on_batch(a, batch_maps, probs)
        if progress:
            progress(b, n)
    return maps
