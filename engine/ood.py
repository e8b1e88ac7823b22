"""Out-of-distribution (OOD) score of a classifier's input images, Qt-free.

Method: the Mahalanobis feature ensemble of Lee et al., "A Simple Unified Framework
for Detecting Out-of-Distribution Samples and Adversarial Attacks" (NeurIPS 2018).
At a few depths of the network (the outputs of evenly spaced backbone stages,
averaged over the image, and the penultimate features, i.e. the input of the final
Linear layer) the training images' features are modelled by class-conditional
Gaussians with one shared covariance.  An image's distance at a depth is its
smallest Mahalanobis distance to a class mean.  The shared covariance is shrunk
towards its mean eigenvalue (training sets have fewer images than features) and
stored as probabilistic PCA (Tipping & Bishop 1999): the leading eigenvectors plus
one residual variance, so the parameters stay small (a few hundred kB).

Each depth's distance is standardised on the validation split (median, and the
distance from the median to the 95th percentile) and the standardised distances
are averaged with equal weights: no out-of-distribution images are used to fit
anything.  The threshold is the chosen quantile (default 0.95) of the validation
images' scores, so about 5 % of in-distribution images are flagged.  On the demo
model, early layers are what separate photographs, noise and flat images from the
training data, and the penultimate layer alone does not (bench/bench_ood.py).

Layer names are `<module>:mean` (the module's output averaged over height and
width) and `<module>:input` (the input of the module, flattened).  Parameters are
stored as tensors `medviewer.ood.<i>.means|basis|weights` in the model file, the
rest in the card's `ood` entry (engine.card).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.viewer.errors import ModelFileError

if TYPE_CHECKING:  # pragma: no cover
    import torch
    import torch.nn as nn

METHOD = "mahalanobis-ensemble"
REFERENCE = "Lee et al., NeurIPS 2018 (class-conditional Gaussians, shared covariance, layer ensemble)"
TENSOR_PREFIX = "medviewer.ood."
QUANTILE = 0.95         # of validation scores: ~5 % of in-distribution images flagged
COMPONENTS = 64         # leading eigenvectors kept per layer
SHRINKAGE = 0.1         # covariance shrinkage towards its mean eigenvalue
STAGES = 4              # backbone stages used besides the penultimate features
MAX_LAYERS = 16


# -- which layers ------------------------------------------------------------------------------
def final_linear(module: "nn.Module") -> str:
    """Dotted name of the last Linear layer (the classifier output) of `module`."""
    import torch.nn as nn

    names = [n for n, m in module.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError("the model has no Linear layer")
    return names[-1]


def default_layers(arch: str, module: "nn.Module") -> list[str]:
    """The layers whose features the OOD model uses for `arch`: evenly spaced stage
    outputs (`:mean`) and the penultimate features (`<final Linear>:input`)."""
    import torch.nn as nn

    from medviewer.engine.registry import family

    fam = family(arch)
    if fam == "resnet":
        stages = ["layer1", "layer2", "layer3", "layer4"]
    elif fam == "densenet":
        stages = [f"features.denseblock{i}" for i in (1, 2, 3)] + ["features.norm5"]
    else:
        feats = module.get_submodule("features")
        kids = [n for n, _ in feats.named_children()]
        if fam in ("vgg", "alexnet"):  # stage ends are the max-pooling layers
            kids = [n for n, m in feats.named_children() if isinstance(m, nn.MaxPool2d)]
            stages = [f"features.{n}" for n in kids[-STAGES:]]
        else:
            idx = np.round(np.linspace(0, len(kids) - 1, STAGES + 1)).astype(int)[1:]
            stages = [f"features.{kids[i]}" for i in dict.fromkeys(idx)]
    return [f"{s}:mean" for s in stages] + [f"{final_linear(module)}:input"]


def _split(name: str) -> tuple[str, str]:
    module, _, how = name.rpartition(":")
    if how not in ("mean", "input") or not module:
        raise ValueError(f"OOD layer name {name!r} must be '<module>:mean' or '<module>:input'")
    return module, how


class FeatureTap:
    """Collects the named layers' features during forward passes of this thread.

    A context manager owning its hooks (removed on exit, also after an error);
    forward passes of the same module in other threads (the viewer runs a
    Grad-CAM beside a classification) are ignored.  `features[name]` is a float32
    (N, D) tensor, computed inside the hook (so later in-place operations of the
    network, such as DenseNet's final ReLU, cannot change it).
    """

    def __init__(self, module: "nn.Module", names: Sequence[str]) -> None:
        self.module = module
        self.names = list(names)
        self.features: dict[str, "torch.Tensor"] = {}
        self._handles: list[Any] = []
        self._owner = threading.get_ident()

    def _mean_hook(self, name: str):
        def hook(_mod: Any, _inp: Any, out: Any) -> None:
            if threading.get_ident() == self._owner:
                t = out.detach().float()
                self.features[name] = t.mean(dim=(2, 3)) if t.ndim == 4 else t.flatten(1)
        return hook

    def _input_hook(self, name: str):
        def hook(_mod: Any, inp: Any) -> None:
            if threading.get_ident() == self._owner:
                import torch

                self.features[name] = inp[0].detach().flatten(1).to(torch.float32, copy=True)
        return hook

    def __enter__(self) -> "FeatureTap":
        self._owner = threading.get_ident()
        try:
            for name in self.names:
                mod_name, how = _split(name)
                mod = self.module.get_submodule(mod_name)
                if how == "mean":
                    self._handles.append(mod.register_forward_hook(self._mean_hook(name)))
                else:
                    self._handles.append(mod.register_forward_pre_hook(self._input_hook(name)))
        except BaseException:
            self.release()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def release(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def take(self) -> dict[str, "torch.Tensor"]:
        """The features of the last forward pass (missing layers: ValueError)."""
        missing = [n for n in self.names if n not in self.features]
        if missing:
            raise ValueError(f"OOD layer(s) not reached in the forward pass: {', '.join(missing)}")
        out, self.features = self.features, {}
        return out


# -- the model ------------------------------------------------------------------------------------
@dataclass
class LayerGaussian:
    """Class means and a shared PPCA covariance of one layer's features.

    distance(f) = min_c (f - m_c)^T P (f - m_c) with
    P = I / s2 - V diag(weights) V^T,  weights_j = 1 / s2 - 1 / lambda_j,
    the inverse of V diag(lambda) V^T + s2 (I - V V^T).
    """

    name: str
    means: "torch.Tensor"      # (C, D)
    basis: "torch.Tensor"      # (D, k) orthonormal columns
    weights: "torch.Tensor"    # (k,)
    residual_variance: float   # s2
    center: float = 0.0        # standardisation on the validation split
    scale: float = 1.0

    def __post_init__(self) -> None:
        self._prepare()

    def _prepare(self) -> None:
        # distances are computed around the mean of the class means, by matrix products
        # only ((N, C) and (N, k) intermediates, never (N, C, D))
        self._shift = self.means.mean(dim=0, keepdim=True)
        m = self.means - self._shift
        self._m = m
        self._m_sq = (m * m).sum(dim=1)                       # (C,)
        self._mp = m @ self.basis                             # (C, k)
        self._mp_w = self._mp * self.weights                  # (C, k)
        self._mp_quad = (self._mp * self._mp_w).sum(dim=1)    # (C,)

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    def distance(self, f: "torch.Tensor") -> "torch.Tensor":
        """(N,) squared Mahalanobis distance to the nearest class mean."""
        f = f.float() - self._shift
        inv_s2 = 1.0 / self.residual_variance
        sq = (f * f).sum(dim=1, keepdim=True) - 2.0 * f @ self._m.T + self._m_sq     # (N, C)
        p = f @ self.basis                                                          # (N, k)
        quad = ((p * p) * self.weights).sum(dim=1, keepdim=True) - 2.0 * p @ self._mp_w.T + self._mp_quad
        return (sq * inv_s2 - quad).clamp_min(0.0).min(dim=1).values

    def standardised(self, f: "torch.Tensor") -> "torch.Tensor":
        return (self.distance(f) - self.center) / self.scale

    def to(self, device: Any) -> "LayerGaussian":
        return LayerGaussian(self.name, self.means.to(device), self.basis.to(device), self.weights.to(device),
                             self.residual_variance, self.center, self.scale)


@dataclass
class OODModel:
    """The per-layer Gaussians, the threshold and how they were fitted."""

    layers: list[LayerGaussian]
    threshold: float
    quantile: float = QUANTILE
    info: dict[str, Any] | None = None    # counts and rates measured when fitting

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.layers]

    def score(self, features: dict[str, "torch.Tensor"]) -> "torch.Tensor":
        """(N,) score, higher = more unusual; above `threshold` = flagged."""
        import torch

        first = features[self.layers[0].name]
        with torch.autocast(first.device.type, enabled=False):   # float32 even under fp16 autocast
            return torch.stack([g.standardised(features[g.name].float()) for g in self.layers]).mean(dim=0)

    def score_distances(self, distances: "torch.Tensor") -> "torch.Tensor":
        """(N,) scores from (N, L) raw distances (`layer_distances`)."""
        import torch

        d = distances.double()
        return torch.stack([(d[:, j] - g.center) / g.scale for j, g in enumerate(self.layers)], dim=1).mean(dim=1)

    def flags(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float64) > self.threshold

    def to(self, device: Any) -> "OODModel":
        return OODModel([g.to(device) for g in self.layers], self.threshold, self.quantile, self.info)

    # -- storage: card entry + tensors ------------------------------------------------------
    def card_entry(self) -> dict[str, Any]:
        return {
            "method": METHOD, "reference": REFERENCE, "threshold": float(self.threshold),
            "quantile": float(self.quantile),
            "layers": [{"name": g.name, "dim": g.dim, "components": int(g.basis.shape[1]),
                        "residual_variance": float(g.residual_variance), "center": float(g.center),
                        "scale": float(g.scale)} for g in self.layers],
            **({"fit": dict(self.info)} if self.info else {}),
        }

    def tensors(self) -> dict[str, "torch.Tensor"]:
        out = {}
        for i, g in enumerate(self.layers):
            out[f"{TENSOR_PREFIX}{i}.means"] = g.means.detach().float().cpu().contiguous()
            out[f"{TENSOR_PREFIX}{i}.basis"] = g.basis.detach().float().cpu().contiguous()
            out[f"{TENSOR_PREFIX}{i}.weights"] = g.weights.detach().float().cpu().contiguous()
        return out

    @classmethod
    def from_card(cls, entry: dict[str, Any], tensors: dict[str, "torch.Tensor"], n_classes: int,
                  where: str) -> "OODModel":
        """Rebuild from a (validated) card entry and the file's `medviewer.ood.*` tensors."""
        layers = []
        for i, spec in enumerate(entry["layers"]):
            got = {}
            for part in ("means", "basis", "weights"):
                key = f"{TENSOR_PREFIX}{i}.{part}"
                if key not in tensors:
                    raise ModelFileError(f"{where}: the out-of-distribution model lacks tensor {key!r}")
                got[part] = tensors[key].float()
            d, k = int(spec["dim"]), int(spec["components"])
            shapes = {"means": (n_classes, d), "basis": (d, k), "weights": (k,)}
            for part, shape in shapes.items():
                if tuple(got[part].shape) != shape:
                    raise ModelFileError(f"{where}: OOD tensor {TENSOR_PREFIX}{i}.{part} has shape "
                                         f"{tuple(got[part].shape)}, the card says {shape}")
            layers.append(LayerGaussian(spec["name"], got["means"], got["basis"], got["weights"],
                                        float(spec["residual_variance"]), float(spec["center"]),
                                        float(spec["scale"])))
        extra = sorted(set(tensors) - {f"{TENSOR_PREFIX}{i}.{p}" for i in range(len(layers))
                                       for p in ("means", "basis", "weights")})
        if extra:
            raise ModelFileError(f"{where}: unexpected tensor {extra[0]!r} in the OOD model")
        return cls(layers, float(entry["threshold"]), float(entry.get("quantile", QUANTILE)),
                   entry.get("fit") if isinstance(entry.get("fit"), dict) else None)


def validate_entry(entry: Any, bad) -> None:
    """Check the card's `ood` entry (structure only; shapes are checked against the tensors)."""
    if not isinstance(entry, dict):
        raise bad("ood", "must be an object")
    if not entry:
        return
    if entry.get("method") != METHOD:
        raise bad("ood", f"names an unknown method {str(entry.get('method'))[:40]!r} (known: {METHOD})")
    if not _finite(entry.get("threshold")):
        raise bad("ood", "needs a finite 'threshold'")
    q = entry.get("quantile", QUANTILE)
    if not _finite(q) or not 0 < q < 1:
        raise bad("ood", "'quantile' must be in (0, 1)")
    layers = entry.get("layers")
    if not isinstance(layers, list) or not 1 <= len(layers) <= MAX_LAYERS:
        raise bad("ood", f"'layers' must be a list of 1..{MAX_LAYERS} layers")
    for spec in layers:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or len(spec["name"]) > 200:
            raise bad("ood", "each layer needs a 'name'")
        try:
            _split(spec["name"])
        except ValueError as exc:
            raise bad("ood", str(exc)) from None
        d, k = spec.get("dim"), spec.get("components")
        if not (_int(d) and _int(k) and 1 <= k <= d <= 65536):
            raise bad("ood", f"layer {spec['name']!r}: 'dim' and 'components' must be integers, 1 <= components <= dim")
        for key in ("residual_variance", "scale"):
            if not _finite(spec.get(key)) or spec[key] <= 0:
                raise bad("ood", f"layer {spec['name']!r}: {key!r} must be a positive number")
        if not _finite(spec.get("center")):
            raise bad("ood", f"layer {spec['name']!r}: 'center' must be a finite number")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# -- fitting ------------------------------------------------------------------------------------------
class Accumulator:
    """Per layer: class sums and the second moment of the training features (float64),
    accumulated batch by batch, so the fit reads each training image once and keeps
    no features (a D x D matrix per layer, whatever the number of images)."""

    def __init__(self, n_classes: int) -> None:
        self.n_classes = n_classes
        self.count = np.zeros(n_classes, dtype=np.int64)
        self.sums: dict[str, "torch.Tensor"] = {}
        self.second: dict[str, "torch.Tensor"] = {}
        self.names: list[str] = []
        self.redundant: set[str] = set()
        self._checked = False

    def add(self, features: dict[str, "torch.Tensor"], labels: Any) -> None:
        import torch

        y = torch.as_tensor(labels).long().cpu()
        if not self._checked:
            self.names = list(features)
            self._check_redundant(features)
            self._checked = True
        for name in self.names:
            f = features[name].detach().double().cpu()
            if name not in self.sums:
                self.sums[name] = torch.zeros((self.n_classes, f.shape[1]), dtype=torch.float64)
                self.second[name] = torch.zeros((f.shape[1], f.shape[1]), dtype=torch.float64)
            self.sums[name].index_add_(0, y, f)
            self.second[name] += f.T @ f
        self.count += np.bincount(y.numpy(), minlength=self.n_classes)

    def _check_redundant(self, features: dict[str, "torch.Tensor"]) -> None:
        """The penultimate features of ResNet, DenseNet-less heads, EfficientNet... are the
        last stage averaged: keep one copy, or that depth would count twice."""
        import torch

        names = list(features)
        if len(names) > 1:
            last, pen = names[-2], names[-1]
            a, b = features[last], features[pen]
            if last.endswith(":mean") and pen.endswith(":input") and a.shape == b.shape \
                    and torch.allclose(a.float(), b.float(), rtol=1e-3, atol=1e-4):
                self.redundant.add(last)

    def layer(self, name: str, components: int = COMPONENTS, shrinkage: float = SHRINKAGE) -> LayerGaussian:
        """Class means and the shrunk shared covariance of one layer, as PPCA."""
        import torch

        n = int(self.count.sum())
        if n == 0:
            raise ValueError("no training features to fit the OOD model")
        sums = self.sums[name]
        d = sums.shape[1]
        overall = sums.sum(dim=0) / n
        counts = torch.as_tensor(self.count, dtype=torch.float64)
        # a class without training images gets the overall mean
        means = torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], overall)
        within = self.second[name] - (means.T * counts) @ means      # sum over images of (f - m_y)(f - m_y)^T
        cov = (within + within.T) / (2 * n)
        mean_eig = float(torch.trace(cov)) / d
        if not mean_eig > 0:   # constant features (a dead layer): distances stay finite
            mean_eig = 1.0
        cov = (1 - shrinkage) * cov + shrinkage * mean_eig * torch.eye(d, dtype=torch.float64)
        lam, vec = torch.linalg.eigh(cov)
        lam, vec = lam.flip(0), vec.flip(1)
        k = max(1, min(components, d - 1 if d > 1 else 1))
        s2 = float(lam[k:].mean()) if k < d else float(lam[-1])
        s2 = max(s2, shrinkage * mean_eig)
        weights = 1.0 / s2 - 1.0 / lam[:k].clamp_min(s2)
        return LayerGaussian(name, means.float(), vec[:, :k].float().contiguous(), weights.float(), s2)

    def fit_layers(self, components: int = COMPONENTS) -> list[LayerGaussian]:
        return [self.layer(n, components) for n in self.names if n not in self.redundant]


def layer_distances(layers: Sequence[LayerGaussian], features: dict[str, "torch.Tensor"]) -> "torch.Tensor":
    """(N, L) raw distances of a batch at every layer (for `calibrate`)."""
    import torch

    first = features[layers[0].name]
    with torch.autocast(first.device.type, enabled=False):
        return torch.stack([g.distance(features[g.name].float()) for g in layers], dim=1)


def calibrate(layers: list[LayerGaussian], distances: "torch.Tensor", quantile: float = QUANTILE) -> OODModel:
    """Standardise each layer on in-distribution distances (N, L) (the validation split)
    and put the threshold at their score's `quantile`."""
    import torch

    d = distances.double().cpu()
    if len(d) == 0:
        raise ValueError("no validation features to set the OOD threshold")
    for j, g in enumerate(layers):
        g.center, g.scale = _standardise(d[:, j])
    model = OODModel(layers, 0.0, quantile)
    model.threshold = float(torch.quantile(model.score_distances(d), quantile))
    return model


def _standardise(values: "torch.Tensor") -> tuple[float, float]:
    import torch

    v = values.double()
    center = float(torch.quantile(v, 0.5))
    scale = float(torch.quantile(v, QUANTILE)) - center
    if not scale > 0:
        scale = float(v.std()) if len(v) > 1 and float(v.std()) > 0 else 1.0
    return center, scale


def fit(train: dict[str, "torch.Tensor"], labels: Any, n_classes: int, calib: dict[str, "torch.Tensor"],
        quantile: float = QUANTILE, components: int = COMPONENTS) -> OODModel:
    """In-memory fit: training features and labels, then the threshold on `calib` (the
    validation split's features; the training split's when there is none)."""
    acc = Accumulator(n_classes)
    acc.add(train, labels)
    layers = acc.fit_layers(components)
    return calibrate(layers, layer_distances(layers, calib), quantile)


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """Area under the ROC curve of the score separating `out` (positive) from `in`."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))]
    return float(roc_auc_score(y, np.r_[np.asarray(in_scores, float), np.asarray(out_scores, float)]))
