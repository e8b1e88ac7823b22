"""Model construction for the trainer on top of ``engine.registry``.

Adds what training needs and the registry does not: ``--weights PATH``
(a medviewer ``.safetensors`` model, a raw safetensors state dict, or a
``.pt/.pth`` state dict read with ``torch.load(weights_only=True)``), a clear
one-line message when ImageNet weights cannot be downloaded, backbone/head
parameter split for ``--freeze``, and BatchNorm momentum suited to short runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn as nn

from medviewer.engine import registry
from medviewer.viewer.errors import ModelFileError, UsageError


def imagenet_hint(arch: str) -> str:
    """Where torchvision caches ``arch``'s ImageNet weights, for the error message."""
    try:
        import torchvision

        url = torchvision.models.get_model_weights(arch).DEFAULT.url
        name = url.rsplit("/", 1)[-1]
    except Exception:  # pragma: no cover - every registry arch has weights
        url, name = "", f"{arch}-*.pth"
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    return (f"copy {name} (from {url}) into {cache} to pre-seed the cache, "
            "or use --weights none or --weights PATH")


def build(arch: str, num_classes: int, weights: str = "none", dropout: float = 0.0,
          hidden: Sequence[int] = (), head_batchnorm: bool = False) -> nn.Module:
    """Build ``arch`` for ``num_classes`` with ``weights`` = imagenet | none | PATH."""
    if arch not in registry.ARCHITECTURES:
        raise UsageError(f"--arch: unknown architecture {arch!r} "
                         f"(known: {', '.join(sorted(registry.ARCHITECTURES))})")
    w = (weights or "none").strip()
    if w.lower() == "imagenet":
        try:
            model = registry.build_model(arch, num_classes, "imagenet", dropout, hidden, head_batchnorm)
        except (OSError, RuntimeError, ValueError) as exc:   # URLError is an OSError
            reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
            raise ModelFileError(f"cannot download ImageNet weights for {arch} ({reason}): "
                                 f"{imagenet_hint(arch)}") from None
    else:
        model = registry.build_model(arch, num_classes, None, dropout, hidden, head_batchnorm)
        if w.lower() != "none":
            load_pretrained(model, arch, Path(w))
    for m in model.modules():   # torchvision's MobileNet/EfficientNet use 0.01-0.001:
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and (m.momentum or 0) < 0.1:
            m.momentum = 0.1    # too slow for the running stats of short runs
    return model


def load_pretrained(model: nn.Module, arch: str, path: Path) -> int:
    """Copy matching tensors (same name and shape) from ``path``; the head may differ."""
    from medviewer.engine.weights import read_state_dict

    state = read_state_dict(path, str(path), what="--weights")
    own = model.state_dict()
    match = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    prefix = registry.head_path(arch) + "."
    backbone = [k for k in own if not k.startswith(prefix)]
    if not any(k in match for k in backbone):
        raise ModelFileError(f"{path}: no tensor matches a {arch} backbone; wrong --arch?")
    model.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in match.items()}})
    return len(match)


def head_module_names(arch: str) -> str:
    """Prefix of the parameters that belong to the new head (not frozen)."""
    return registry.head_path(arch)


def split_params(model: nn.Module, arch: str) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(backbone parameters, head parameters)."""
    prefix = head_module_names(arch) + "."
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    backbone, head = [], []
    for name, p in core.named_parameters():
        (head if name.startswith(prefix) else backbone).append(p)
    return backbone, head


def set_backbone_trainable(model: nn.Module, arch: str, trainable: bool) -> None:
    backbone, _ = split_params(model, arch)
    for p in backbone:
        p.requires_grad_(trainable)


def freeze_backbone_bn(model: nn.Module, arch: str) -> None:
    """Put the frozen backbone's BatchNorm layers in eval mode (running stats kept)."""
    core = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    prefix = head_module_names(arch)
    for name, m in core.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and not name.startswith(prefix):
            m.eval()


def parse_hidden(text: str | None) -> tuple[int, ...]:
    if not text or text.strip().lower() in ("", "none", "0"):
        return ()
    try:
        out = tuple(int(t) for t in text.replace(" ", "").split(",") if t)
    except ValueError:
        raise UsageError(f"--hidden: expected widths like 256,128, got {text!r}") from None
    if any(h < 1 for h in out):
        raise UsageError("--hidden: widths must be positive")
    return out

