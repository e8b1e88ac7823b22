"""After training: the trust signals the card carries (issue 13).

1. temperature scaling on the validation split (engine.train.calibrate);
2. the out-of-distribution model (engine.ood): class-conditional Gaussians fitted on
   the training split's features in one pass, standardised and thresholded on the
   validation split (about 5 % of in-distribution images flagged), then measured on
   the test split (flag rate) and against generic far-OOD probes (AUROC,
   engine.train.probes);
3. what the images were (modality, photometric interpretation, body part) for the
   input check (engine.inputcheck);
4. the operating point: the decision rule and its per-class sensitivity and
   specificity on the test split, with the calibration error before and after.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from medviewer.engine import ood as oodmod
from medviewer.engine.train import calibrate


@dataclass
class TrustResult:
    temperature: float
    ood: Any                                   # engine.ood.OODModel | None
    test_scores: np.ndarray | None             # OOD scores of the test images
    trained_on: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _batches(x: torch.Tensor, idx: Sequence[int], batch_size: int):
    idx = list(idx)
    for a in range(0, len(idx), batch_size):
        yield a, x[idx[a:a + batch_size]]


def forward_pass(model: nn.Module, layers: Sequence[str], x: torch.Tensor, idx: Sequence[int],
                 batch_size: int, device: torch.device,
                 each: Callable[[int, torch.Tensor, dict[str, torch.Tensor]], None]) -> None:
    """Run `model` over x[idx] in batches; `each(start, logits, features)` per batch."""
    model.eval()
    with torch.inference_mode(), oodmod.FeatureTap(model, layers) as tap:
        for a, xb in _batches(x, idx, batch_size):
            logits = model(xb.to(device).float()).float()
            each(a, logits, tap.take())


def fit_trust(model: nn.Module, arch: str, images: Any, tr: Sequence[int], va: Sequence[int],
              te: Sequence[int], n_classes: int, batch_size: int, device: torch.device,
              spec: Any, log: Callable[[str], None] = print, probes: bool = True) -> TrustResult:
    """Fit the temperature and the OOD model of a trained `model` (see the module docstring)."""
    notes: list[str] = []
    layers = oodmod.default_layers(arch, model)
    y = images.y

    # 1. one pass over the training split: Gaussian statistics of every layer
    acc = oodmod.Accumulator(n_classes)
    y_train = y[list(tr)]
    forward_pass(model, layers, images.x, tr, batch_size, device,
                 lambda a, z, f: acc.add(f, y_train[a:a + len(z)]))
    gaussians = [g.to(device) for g in acc.fit_layers()]

    # 2. validation: logits for the temperature, distances for the standardisation/threshold
    calib_idx = list(va) if len(va) else list(tr)
    if not len(va):
        notes.append("no validation images: temperature 1 and the OOD threshold set on the training "
                     "images (expect more than 5 % of new in-distribution images flagged)")
    logits_val: list[torch.Tensor] = []
    dist_val: list[torch.Tensor] = []

    def on_val(_a: int, z: torch.Tensor, f: dict[str, torch.Tensor]) -> None:
        logits_val.append(z.cpu())
        dist_val.append(oodmod.layer_distances(gaussians, f).cpu())

    forward_pass(model, layers, images.x, calib_idx, batch_size, device, on_val)
    z_val = torch.cat(logits_val).double().numpy()
    temperature = calibrate.fit_temperature(z_val, y[calib_idx].numpy()) if len(va) else 1.0
    ood_model = oodmod.calibrate(gaussians, torch.cat(dist_val))

    # 3. test images: flag rate of in-distribution images
    test_scores = None
    if len(te):
        scores: list[torch.Tensor] = []
        forward_pass(model, layers, images.x, te, batch_size, device,
                     lambda _a, _z, f: scores.append(ood_model.score(f).cpu()))
        test_scores = torch.cat(scores).numpy()
    val_scores = ood_model.score_distances(torch.cat(dist_val)).numpy()
    info: dict[str, Any] = {
        "train_images": int(len(tr)), "calibration_images": int(len(calib_idx)),
        "calibration_split": "val" if len(va) else "train",
        "val_flagged": float(np.mean(val_scores > ood_model.threshold)),
    }
    if test_scores is not None:
        info["test_images"] = int(len(te))
        info["test_flagged"] = float(np.mean(test_scores > ood_model.threshold))
    if probes and test_scores is not None:
        try:
            info.update(probe_auroc(model, layers, ood_model, spec, test_scores, batch_size, device))
        except Exception as exc:   # a convenience measurement: never lose the model over it
            notes.append(f"far-OOD probes not measured ({type(exc).__name__}: {exc})")
    ood_model.info = info
    how = ("no validation error: mean confidence set to the 95 % lower bound of the accuracy"
           if len(va) and calibrate.separable(z_val, y[calib_idx].numpy()) else "minimum validation NLL")
    log(f"calibration: temperature {temperature:.3f} (fitted on {len(va)} validation images; {how})")
    log("out-of-distribution check: " + ", ".join(
        f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in info.items()))
    return TrustResult(temperature, ood_model, test_scores, trained_on(images, tr), notes)


def score_images(module: nn.Module, ood_model: Any, x: torch.Tensor, idx: Sequence[int], batch_size: int,
                 device: torch.device) -> np.ndarray:
    """OOD scores of x[idx] with a fitted (or loaded) OOD model."""
    scores: list[torch.Tensor] = [torch.zeros(0)]
    forward_pass(module, ood_model.names, x, idx, batch_size, device,
                 lambda _a, _z, f: scores.append(ood_model.score(f).float().cpu()))
    return torch.cat(scores).numpy()


def merge_declared(found: dict[str, list[str]], modality: str = "", body_part: str = "") -> dict[str, list[str]]:
    """Add the values declared with --modality / --body-part (for images without headers)."""
    out = {k: list(v) for k, v in found.items()}
    for key, text in (("modality", modality), ("body_part", body_part)):
        for v in (t.strip().upper() for t in (text or "").split(",")):
            if v and v not in out.setdefault(key, []):
                out[key].append(v)
        if not out.get(key):
            out.pop(key, None)
    return out


def probe_auroc(model: nn.Module, layers: Sequence[str], ood_model: Any, spec: Any, in_scores: np.ndarray,
                batch_size: int, device: torch.device) -> dict[str, Any]:
    """AUROC of the OOD score between the test images and generic far-OOD probes."""
    from medviewer.engine.preprocess import preprocess
    from medviewer.engine.train.probes import GENERIC, probe_set

    probes = probe_set(GENERIC, size=spec.input_size)
    x = torch.stack([preprocess(p.stored, p.meta, spec)[0] for p in probes])
    scores: list[torch.Tensor] = []
    forward_pass(model, layers, x, range(len(x)), batch_size, device,
                 lambda _a, _z, f: scores.append(ood_model.score(f).cpu()))
    s = torch.cat(scores).numpy()
    return {"probe_auroc": oodmod.auroc(in_scores, s), "probe_flagged": float(np.mean(s > ood_model.threshold)),
            "probe_images": len(probes), "probe_categories": list(GENERIC)}


def trained_on(images: Any, tr: Sequence[int]) -> dict[str, list[str]]:
    """Modality, photometric interpretation and body part values of the training images,
    most frequent first (`ImageSet.acquisition`; plain images have no modality)."""
    acq = getattr(images, "acquisition", None) or []
    out: dict[str, list[str]] = {}
    for j, key in enumerate(("modality", "photometric", "body_part")):
        counts = Counter(acq[i][j] for i in tr if i < len(acq) and acq[i][j])
        if counts:
            out[key] = [v for v, _ in counts.most_common(64)]
    return out


def operating_point(y_true: Sequence[int], probs: np.ndarray | None, classes: Sequence[str],
                    probs_uncalibrated: np.ndarray | None, ood_model: Any,
                    test_scores: np.ndarray | None) -> dict[str, Any]:
    """The decision rule and what it measured on the test split (the viewer shows it)."""
    out: dict[str, Any] = {"rule": "top class (highest calibrated probability)", "split": "test",
                           "images": int(len(y_true))}
    if probs is not None and len(y_true):
        y = np.asarray(y_true, dtype=int)
        pred = np.asarray(probs).argmax(1)
        sens, spec = {}, {}
        for i, c in enumerate(classes):
            pos, neg = y == i, y != i
            sens[c] = float(np.mean(pred[pos] == i)) if pos.any() else None
            spec[c] = float(np.mean(pred[neg] != i)) if neg.any() else None
        out["accuracy"] = float(np.mean(pred == y))
        out["sensitivity"] = sens
        out["specificity"] = spec
        out["ece"] = calibrate.ece(probs, y)
        if probs_uncalibrated is not None:
            out["ece_uncalibrated"] = calibrate.ece(probs_uncalibrated, y)
    if ood_model is not None:
        out["ood_threshold"] = float(ood_model.threshold)
        if test_scores is not None and len(test_scores):
            out["ood_flagged"] = float(np.mean(np.asarray(test_scores) > ood_model.threshold))
    return out
