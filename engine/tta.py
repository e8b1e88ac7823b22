"""Test-time augmentation (TTA): probabilities averaged over flipped and shifted copies.

The copies of each input are the identity, the horizontal mirror (``hflip``) and,
with ``shift`` > 0, the four shifts by ``round(shift * size)`` pixels up, down,
left and right of each of those (so 2, 5 or 10 views).  Pixels shifted in take
the image's own minimum, the normalised value of black, as letterboxing and the
trainer's augmentation do.  The class probabilities are the mean of each view's
softmax (not of the logits).  Mirroring assumes the task does not depend on
laterality (it does for, e.g., situs on a chest radiograph): leave it off there.

Used by `medviewer predict --tta`, the trainer's ``--tta`` evaluation and the
model card field ``tta`` that records how a model's metrics were measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

MAX_SHIFT = 0.25


@dataclass(frozen=True)
class TTASpec:
    hflip: bool = True
    shift: float = 0.0     # fraction of the input size; 0 = no shifted copies

    def __post_init__(self) -> None:
        if not isinstance(self.hflip, bool):
            raise ValueError(f"tta 'hflip' must be true or false, got {self.hflip!r}")
        if isinstance(self.shift, bool) or not isinstance(self.shift, (int, float)) \
                or not math.isfinite(self.shift) or not 0 <= self.shift <= MAX_SHIFT:
            raise ValueError(f"tta 'shift' must be a number in [0, {MAX_SHIFT}], got {self.shift!r}")

    @property
    def enabled(self) -> bool:
        return self.hflip or self.shift > 0

    def n_views(self) -> int:
        return (2 if self.hflip else 1) * (5 if self.shift > 0 else 1)

    def to_card(self) -> dict[str, Any]:
        """The card's ``tta`` entry ({} when no TTA was used)."""
        return {"hflip": self.hflip, "shift": float(self.shift)} if self.enabled else {}

    @classmethod
    def from_card(cls, entry: Any) -> "TTASpec | None":
        if not entry:
            return None
        if not isinstance(entry, dict) or set(entry) - {"hflip", "shift"}:
            raise ValueError("tta must be an object {hflip, shift}")
        return cls(entry.get("hflip", False), entry.get("shift", 0.0))

    def describe(self) -> str:
        parts = (["hflip"] if self.hflip else []) + ([f"shifts of {self.shift:.0%}"] if self.shift > 0 else [])
        return " + ".join(parts) + f" ({self.n_views()} views)" if parts else "none"


def _shift(x: "torch.Tensor", dy: int, dx: int) -> "torch.Tensor":
    """x moved by (dy, dx) pixels; uncovered pixels take each image's minimum."""
    if not dy and not dx:
        return x
    h, w = x.shape[-2:]
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    out = lo.expand_as(x).clone()
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = x[..., ys, xs]
    return out


def views(x: "torch.Tensor", spec: TTASpec) -> Iterator["torch.Tensor"]:
    """The TTA copies of a batch (N, C, H, W), identity first."""
    d = int(round(spec.shift * x.shape[-1]))
    shifts = [(0, 0)] + ([(-d, 0), (d, 0), (0, -d), (0, d)] if d > 0 else [])
    for flip in ((False, True) if spec.hflip else (False,)):
        xf = x.flip(-1) if flip else x
        for dy, dx in shifts:
            yield _shift(xf, dy, dx)


def tta_probs(forward: Callable[["torch.Tensor"], "torch.Tensor"], x: "torch.Tensor",
              spec: TTASpec | None) -> "torch.Tensor":
    """Mean softmax over the views (float32 (N, C)); plain softmax without a spec."""
    import torch

    if spec is None or not spec.enabled:
        return torch.softmax(forward(x).float(), dim=1)
    total = None
    for v in views(x, spec):
        p = torch.softmax(forward(v).float(), dim=1)
        total = p if total is None else total + p
    return total / spec.n_views()


def evaluate(model: "torch.nn.Module", x: "torch.Tensor", y: "torch.Tensor", batch_size: int,
             device: "torch.device", spec: TTASpec,
             weight: "torch.Tensor | None" = None) -> tuple[float, float, "torch.Tensor"]:
    """The trainer's evaluate() with TTA: (mean NLL of the averaged probabilities, accuracy, probs)."""
    import torch
    import torch.nn.functional as F

    model.eval()
    probs = []
    loss_sum = 0.0
    with torch.inference_mode():
        for b in range(0, len(x), batch_size):
            xb = x[b:b + batch_size].to(device).float()
            p = tta_probs(model, xb, spec)
            loss_sum += float(F.nll_loss(torch.log(p.clamp_min(1e-12)), y[b:b + batch_size].to(device),
                                         weight=None if weight is None else weight.to(device), reduction="sum"))
            probs.append(p.cpu())
    if not probs:
        return float("nan"), float("nan"), torch.zeros((0, 0))
    p = torch.cat(probs).double()
    return loss_sum / len(x), float((p.argmax(1) == y).double().mean()), p
