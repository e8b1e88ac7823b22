"""Frozen-backbone feature cache: compute the backbone once per image, train the head on features.

With ``--freeze backbone`` the layers before the classifier do not change during
training, and with frozen BatchNorm statistics (``model.freeze_backbone_bn``) and no
dropout before the classifier they compute the same features for an image every
epoch.  The cache runs them once (``torch.inference_mode``) over the training and
validation images and trains the classifier module - the model's top-level
module holding the head (``fc`` of a ResNet, ``classifier`` of a VGG, including
VGG's frozen Linear/ReLU/Dropout layers before the new head) - on the stored
features.  The batches, their order, the dropout draws of the classifier and the
optimiser steps are exactly those of the uncached run with the same seed, so the
head's weights agree with it within float rounding (tests/test_train_featcache.py).

When it applies (``--feature-cache`` auto, the default): ``--freeze backbone``, no
augmentation that changes the input, one process, a backbone without random
layers in training mode (EfficientNet's stochastic depth is one), and features
that fit in a quarter of the available memory.  ``--feature-cache`` also caches
with augmentation: the features of ``--feature-cache-copies`` fixed augmented
copies of each training image are computed once and the epochs cycle through
them (this is not the uncached run's sampling: each epoch sees one of a fixed set
of augmentations instead of fresh ones).  ``--no-feature-cache`` turns it off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from medviewer.engine import registry
from medviewer.engine.train.augment import AugmentSpec, augment_batch
from medviewer.viewer.errors import UsageError

SETTINGS = ("auto", "on", "off")
MEMORY_SHARE = 0.25      # the cache may take at most this share of the available memory
FEATURE_BATCH = 64


@dataclass
class Decision:
    use: bool
    copies: int
    reason: str


@dataclass
class FeatureCache:
    """Cached features: ``train`` (copies, n, F) / ``val`` (n_val, F), rows in the order given."""

    tail: nn.Module          # the classifier module trained on the features
    train: torch.Tensor
    val: torch.Tensor
    train_y: torch.Tensor    # labels of the rows of ``train``
    remap: torch.Tensor      # image index -> row of ``train`` (-1 for others)
    seconds: float

    def train_features(self, epoch: int) -> torch.Tensor:
        return self.train[epoch % len(self.train)]


def tail_name(arch: str) -> str:
    """The top-level module that holds the head (what runs on the cached features)."""
    return registry.head_path(arch).split(".")[0]


def _stochastic_backbone(model: nn.Module, tail: str) -> str | None:
    """The first module before the classifier that is random in training mode, if any."""
    for name, m in model.named_modules():
        if name == tail or name.startswith(tail + "."):
            continue
        kind = type(m).__name__
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            return f"{name} ({kind})"
        if kind == "StochasticDepth" and getattr(m, "p", 0) > 0:
            return f"{name} ({kind})"
    return None


def decide(args: Any, model: nn.Module, n_images: int, feature_dim: int | None = None,
           world: int = 1) -> Decision:
    """Whether this run trains on cached features, with the reason (for the log and report)."""
    setting = getattr(args, "feature_cache", "auto") or "auto"
    if setting not in SETTINGS:
        raise UsageError(f"--feature-cache: unknown setting {setting!r}")
    if setting == "off":
        return Decision(False, 0, "off (--no-feature-cache)")
    if args.freeze != "backbone":
        if setting == "on":
            raise UsageError("--feature-cache needs --freeze backbone (the backbone must not change)")
        return Decision(False, 0, "off (the backbone is trained)")
    if world > 1:
        if setting == "on":
            raise UsageError("--feature-cache runs in one process; start it without torchrun")
        return Decision(False, 0, "off (distributed run)")
    random_layer = _stochastic_backbone(model, tail_name(args.arch))
    if random_layer:
        if setting == "on":
            raise UsageError(f"--feature-cache: {args.arch} has a random layer before the classifier "
                             f"({random_layer}), so its features differ every epoch")
        return Decision(False, 0, f"off ({random_layer} is random in training)")
    aug: AugmentSpec = args.aug
    copies = 1
    if aug.active():
        if setting == "auto":
            return Decision(False, 0, "off (augmentation changes the input every epoch; --feature-cache "
                                      "trains on --feature-cache-copies fixed augmented copies)")
        copies = int(getattr(args, "feature_cache_copies", 4))
        if copies < 1:
            raise UsageError("--feature-cache-copies must be at least 1")
    if feature_dim is not None:
        need = 4 * feature_dim * n_images * copies
        avail = _available_bytes()
        if need > MEMORY_SHARE * avail:
            msg = (f"the features need {need / 2**30:.1f} GiB, more than a quarter of the "
                   f"{avail / 2**30:.1f} GiB available")
            if setting == "on":
                raise UsageError(f"--feature-cache: {msg}")
            return Decision(False, 0, f"off ({msg})")
    what = f"{copies} augmented cop{'ies' if copies > 1 else 'y'} per image" if aug.active() else "1 pass"
    return Decision(True, copies, f"on ({what})")


def _available_bytes() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - psutil is a dependency
        return 8 * 2**30


def feature_dim(arch: str, size: int) -> int:
    """Width of the classifier's input for a size x size image (built on the meta device: no compute)."""
    got: dict[str, int] = {}
    with torch.device("meta"):
        probe = registry.build_model(arch, 2).eval()
    probe.get_submodule(tail_name(arch)).register_forward_pre_hook(
        lambda m, inp: got.update(n=int(inp[0][0].numel())))
    with torch.no_grad():
        probe(torch.zeros(1, 3, size, size, device="meta"))
    return got["n"]


def _features(model: nn.Module, tail: nn.Module, x: torch.Tensor, idx: Sequence[int], device: torch.device,
              aug: AugmentSpec | None, gen: torch.Generator | None) -> torch.Tensor:
    """The classifier's input for x[idx] (float32, CPU), optionally augmented first."""
    got: list[torch.Tensor] = []

    class _Stop(Exception):
        pass

    def hook(_m: Any, inp: tuple) -> None:
        got.append(inp[0].detach().float().reshape(len(inp[0]), -1).cpu())
        raise _Stop()   # nothing after the classifier's input is needed

    h = tail.register_forward_pre_hook(hook)
    idx_t = torch.as_tensor(list(idx), dtype=torch.long)
    try:
        with torch.inference_mode():
            for b in range(0, len(idx_t), FEATURE_BATCH):
                xb = x[idx_t[b:b + FEATURE_BATCH]].to(device).float()
                if aug is not None and gen is not None:
                    xb = augment_batch(xb, aug, gen)
                try:
                    model(xb)
                except _Stop:
                    pass
    finally:
        h.remove()
    return torch.cat(got) if got else torch.zeros((0, 0))


def prepare(args: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor, train_idx: Sequence[int],
            val_idx: Sequence[int], device: torch.device, world: int,
            log: Callable[[str], None]) -> tuple[FeatureCache | None, str]:
    """The cache for this run, or None; and the decision's reason (logged, and kept in the report)."""
    dim = feature_dim(args.arch, int(x.shape[-1])) if args.freeze == "backbone" else None
    decision = decide(args, model, len(train_idx) + len(val_idx), dim, world)
    if not decision.use:
        if args.freeze == "backbone":
            log(f"feature cache {decision.reason}")
        return None, decision.reason
    cache = build(args, model, x, y, train_idx, val_idx, device, decision)
    log(f"feature cache {decision.reason}: {dim} features of {len(train_idx)} + {len(val_idx)} images "
        f"computed in {cache.seconds:.1f}s")
    return cache, decision.reason


def build(args: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor, train_idx: Sequence[int],
          val_idx: Sequence[int], device: torch.device, decision: Decision) -> FeatureCache:
    """Run the frozen backbone once (eval mode: frozen BatchNorm, no dropout before the classifier)."""
    import time

    t0 = time.perf_counter()
    tail = model.get_submodule(tail_name(args.arch))
    was_training = model.training
    model.eval()
    try:
        copies = []
        for c in range(decision.copies):
            if args.aug.active():
                gen = torch.Generator().manual_seed(args.seed * 100003 + 7919 * c + 1)
                copies.append(_features(model, tail, x, train_idx, device, args.aug, gen))
            else:
                copies.append(_features(model, tail, x, train_idx, device, None, None))
        val = _features(model, tail, x, val_idx, device, None, None) if len(val_idx) else \
            torch.zeros((0, copies[0].shape[1] if copies and copies[0].numel() else 0))
    finally:
        model.train(was_training)
    remap = torch.full((len(x),), -1, dtype=torch.long)
    tr = torch.as_tensor(list(train_idx), dtype=torch.long)
    remap[tr] = torch.arange(len(train_idx))
    train = torch.stack(copies)
    home = torch.device("cpu")
    if device.type == "cuda":   # on the GPU when it fits in a quarter of its free memory
        free, _ = torch.cuda.mem_get_info(device)
        if 4 * (train.numel() + val.numel()) < free // 4:
            home = device
    return FeatureCache(tail, train.to(home), val.to(home), y[tr].to(home), remap, time.perf_counter() - t0)
