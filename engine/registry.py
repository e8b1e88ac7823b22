"""Supported torchvision architectures, their classifier heads and Grad-CAM layers.

Models are built with `torchvision.models.get_model(name, weights=...)` and the
final Linear layer is replaced by a head for the card's classes.  With no hidden
layers and no dropout the head is a plain `nn.Linear`, so state dicts of ordinary
torchvision fine-tunes load unchanged (see `medviewer convert-model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medviewer.viewer.errors import ModelFileError

if TYPE_CHECKING:  # pragma: no cover
    import torch.nn as nn

@dataclass(frozen=True)
class ArchSpec:
    """One supported torchvision architecture.

    head: dotted name of the final Linear that `build_model` replaces;
    cam_layer: default Grad-CAM target, the family's last convolutional block.
    """

    name: str
    family: str
    head: str
    cam_layer: str


# The VGG configurations of Simonyan & Zisserman (2015), table 1, as torchvision builds
# them (torchvision.models.vgg.cfgs; a test checks they agree): numbers are conv widths,
# "M" max pooling; each conv is Conv2d [+ BatchNorm2d] + ReLU in `features`.  Kept here
# so that naming a Grad-CAM layer does not import torch.
VGG_CFGS: dict[str, list[int | str]] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg13": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
              512, 512, 512, 512, "M"],
}


def _vgg_last_relu(name: str) -> str:
    """`features.<i>` of a VGG's last ReLU (the block before the final max pooling)."""
    bn = name.endswith("_bn")
    cfg = VGG_CFGS[name.removesuffix("_bn")]
    n_layers = sum(1 if v == "M" else (3 if bn else 2) for v in cfg)
    return f"features.{n_layers - 2}"  # ... ReLU, MaxPool


def _specs() -> dict[str, ArchSpec]:
    out: list[ArchSpec] = []
    out += [ArchSpec(f"resnet{d}", "resnet", "fc", "layer4") for d in (18, 34, 50, 101, 152)]
    out += [ArchSpec(f"densenet{d}", "densenet", "classifier", "features.norm5") for d in (121, 161, 169, 201)]
    out += [ArchSpec(n, "vgg", "classifier.6", _vgg_last_relu(n))
            for base in VGG_CFGS for n in (base, f"{base}_bn")]
    out += [ArchSpec("alexnet", "alexnet", "classifier.6", "features.11"),   # last ReLU of features
            ArchSpec("mobilenet_v2", "mobilenet", "classifier.1", "features.18"),
            ArchSpec("mobilenet_v3_small", "mobilenet", "classifier.3", "features.12"),
            ArchSpec("mobilenet_v3_large", "mobilenet", "classifier.3", "features.16")]
    out += [ArchSpec(f"efficientnet_b{i}", "efficientnet", "classifier.1", "features.8") for i in range(5)]
    return {s.name: s for s in out}


#: name -> ArchSpec of every architecture medviewer builds, trains and explains
ARCHITECTURES: dict[str, ArchSpec] = _specs()

_IMAGENET_WEIGHTS = "DEFAULT"


def spec(arch: str) -> ArchSpec:
    """The ArchSpec of `arch`; ModelFileError naming the known ones otherwise."""
    try:
        return ARCHITECTURES[arch]
    except (KeyError, TypeError):
        raise ModelFileError(f"unknown architecture {arch!r} (known: {', '.join(sorted(ARCHITECTURES))})") from None


def family(arch: str) -> str:
    return spec(arch).family


def head_path(arch: str) -> str:
    """Dotted module name of the classifier head that build_model replaces."""
    return spec(arch).head


def default_cam_layer(arch: str) -> str:
    """Module name of the family's last convolutional block (Grad-CAM target)."""
    return spec(arch).cam_layer


def head_spec(hidden: Sequence[int] = (), dropout: float = 0.0, head_batchnorm: bool = False) -> dict[str, Any]:
    """The card's 'head' entry for these build_model arguments."""
    return {"hidden": [int(h) for h in hidden], "dropout": float(dropout), "batchnorm": bool(head_batchnorm)}


def make_head(in_features: int, num_classes: int, hidden: Sequence[int] = (),
              dropout: float = 0.0, head_batchnorm: bool = False) -> "nn.Module":
    """Linear head, or Dropout -> [Linear -> BatchNorm1d? -> ReLU -> Dropout]* -> Linear."""
    import torch.nn as nn

    if not hidden and not dropout:
        return nn.Linear(in_features, num_classes)
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers.append(nn.Linear(width, int(h)))
        if head_batchnorm:
            layers.append(nn.BatchNorm1d(int(h)))
        layers.append(nn.ReLU(inplace=True))
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = int(h)
    if not hidden and dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


def get_submodule(module: "nn.Module", dotted: str) -> "nn.Module":
    try:
        return module.get_submodule(dotted)
    except AttributeError:
        raise ModelFileError(f"model has no layer named {dotted!r}") from None


def _set_submodule(module: "nn.Module", dotted: str, new: "nn.Module") -> None:
    parent_name, _, leaf = dotted.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    if leaf.isdigit():
        parent[int(leaf)] = new  # type: ignore[index]
    else:
        setattr(parent, leaf, new)


def build_model(arch: str, num_classes: int, weights: str | None = None, dropout: float = 0.0,
                hidden: Sequence[int] = (), head_batchnorm: bool = False) -> "nn.Module":
    """Build `arch` with a fresh head for `num_classes`.

    weights: None (random init, no download) or "imagenet" (torchvision's DEFAULT
    weights; needs them cached or a network connection, so never use it in tests).
    """
    import torch.nn as nn
    import torchvision

    spec(arch)
    if num_classes < 1:
        raise ValueError("num_classes must be >= 1")
    if weights not in (None, "imagenet"):
        raise ValueError(f"weights must be None or 'imagenet', got {weights!r}")
    model = torchvision.models.get_model(arch, weights=_IMAGENET_WEIGHTS if weights else None)
    path = head_path(arch)
    old = model.get_submodule(path)
    if not isinstance(old, nn.Linear):  # pragma: no cover - guarded by test_engine_registry
        raise ModelFileError(f"{arch}: expected a Linear head at {path!r}")
    _set_submodule(model, path, make_head(old.in_features, num_classes, hidden, dropout, head_batchnorm))
    return model


def build_from_card(card: Any) -> "nn.Module":
    """Build the (random-initialised) module described by a ModelCard (an ensemble's too)."""
    if getattr(card, "members", None):
        members = card.member_cards()
        return ensemble_module([build_from_card(m) for m in members], card.member_weights,
                               [float(getattr(m, "temperature", 1.0)) for m in members])
    head = card.head or {}
    return build_model(card.architecture, len(card.classes), None,
                       dropout=float(head.get("dropout", 0.0)),
                       hidden=tuple(head.get("hidden", ())),
                       head_batchnorm=bool(head.get("batchnorm", False)))


def ensemble_module(members: Sequence["nn.Module"], weights: Sequence[float],
                    temperatures: Sequence[float] | None = None) -> "nn.Module":
    """An ensemble as one module: state-dict keys ``members.<i>.<member key>``.

    Its forward (for export, members fed the same tensor) returns the logarithm of
    the weighted mean of the members' softmax probabilities, each member's logits
    divided by its card's temperature (as engine.predict does): softmax of that is
    the ensemble's calibrated probabilities, so it stands in for logits.
    """
    import torch
    import torch.nn as nn

    class Ensemble(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.members = nn.ModuleList(members)
            w = torch.tensor([float(v) for v in weights], dtype=torch.float32)
            self.register_buffer("weights", w / w.sum(), persistent=False)
            self.temperatures = [float(t) for t in (temperatures or [1.0] * len(members))]

        def forward(self, x: "torch.Tensor") -> "torch.Tensor":
            p = sum(w * torch.softmax(m(x).float() / t, dim=1)
                    for w, m, t in zip(self.weights, self.members, self.temperatures))
            return torch.log(p.clamp_min(1e-30))

    if len(members) != len(weights) or not members:
        raise ValueError("an ensemble needs one weight per member")
    return Ensemble()
