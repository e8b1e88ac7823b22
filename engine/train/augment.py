"""Batch augmentation on preprocessed tensors (flip, rotation, zoom, translation, contrast).

Works on the whole (N, 3, S, S) batch at once with one ``affine_grid`` /
``grid_sample`` call, on whatever device the batch is on, so augmentation does
not slow the loader.  Randomness comes only from the ``torch.Generator`` passed
in, which the loop seeds per epoch: runs and resumed runs are reproducible.
Padding uses the batch minimum (the normalised value of black), as letterboxing
does in ``engine.preprocess.fit``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from medviewer.viewer.errors import UsageError


@dataclass(frozen=True)
class AugmentSpec:
    hflip: float = 0.0          # probability of a horizontal flip
    vflip: float = 0.0          # probability of a vertical flip
    rotation: float = 0.0       # max degrees, uniform in [-r, r]
    zoom: float = 0.0           # max relative zoom, scale in [1 - z, 1 + z]
    translation: float = 0.0    # max shift as a fraction of the size
    contrast: float = 0.0       # max relative contrast change around the image mean

    def active(self) -> bool:
        return any(v > 0 for v in asdict(self).values())


PRESETS: dict[str, AugmentSpec] = {
    "none": AugmentSpec(),
    "light": AugmentSpec(hflip=0.5, rotation=5, zoom=0.05, translation=0.05, contrast=0.1),
    "medium": AugmentSpec(hflip=0.5, rotation=10, zoom=0.1, translation=0.1, contrast=0.2),
    "strong": AugmentSpec(hflip=0.5, vflip=0.2, rotation=20, zoom=0.2, translation=0.15, contrast=0.3),
}


def make_spec(preset: str = "none", **overrides: float | None) -> AugmentSpec:
    """A preset with individual values (``--rotation 15`` ...) overriding it."""
    if preset not in PRESETS:
        raise UsageError(f"--augment: unknown preset {preset!r} (none, light, medium, strong)")
    values = asdict(PRESETS[preset])
    for key, val in overrides.items():
        if val is not None:
            if val < 0 or (key in ("hflip", "vflip") and val > 1):
                raise UsageError(f"--{key}: value {val} out of range")
            values[key] = float(val)
    return AugmentSpec(**values)


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (hi - lo) + lo


def augment_batch(x: torch.Tensor, spec: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    """Augmented copy of a float batch (N, C, H, W); identity when the spec is inactive."""
    if not spec.active() or len(x) == 0:
        return x
    n = x.shape[0]
    # draw every random number on the CPU generator, in a fixed order
    sx = torch.where(torch.rand(n, generator=gen) < spec.hflip, -1.0, 1.0)
    sy = torch.where(torch.rand(n, generator=gen) < spec.vflip, -1.0, 1.0)
    ang = _uniform(n, -spec.rotation, spec.rotation, gen) * (math.pi / 180)
    scale = _uniform(n, 1 - spec.zoom, 1 + spec.zoom, gen)
    tx = _uniform(n, -spec.translation, spec.translation, gen) * 2
    ty = _uniform(n, -spec.translation, spec.translation, gen) * 2
    con = _uniform(n, 1 - spec.contrast, 1 + spec.contrast, gen)
    out = x
    if spec.hflip or spec.vflip or spec.rotation or spec.zoom or spec.translation:
        cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
        theta = torch.stack([torch.stack([cos * sx, -sin * sy, tx], 1),
                             torch.stack([sin * sx, cos * sy, ty], 1)], 1).to(x.device, x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        lo = x.amin(dim=(2, 3), keepdim=True)
        out = F.grid_sample(x - lo, grid, mode="bilinear", padding_mode="zeros",
                            align_corners=False) + lo
    if spec.contrast:
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * con.to(x.device, x.dtype).view(-1, 1, 1, 1) + mean
    return out
