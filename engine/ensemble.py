"""Build an ensemble model file from several model files (`medviewer ensemble`).

An ensemble is one `.safetensors` file: a card with architecture "ensemble",
format 2, the members' full cards under ``members`` and their weights under
``member_weights`` (engine.card), and each member's tensors under the prefix
``members.<i>.``.  Members may be of different architectures, input sizes and
windows; they must predict the same classes in the same order.  Loading gives an
`EnsembleModel` (engine.modelfile), which engine.predict / engine.gradcam combine:
probabilities are the weighted mean of the members', Grad-CAM the weighted mean
of the members' maps on each source image's grid.  A member that is itself an
ensemble is flattened into its members (weights multiplied).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from medviewer.engine.card import ENSEMBLE, FORMAT_VERSION, ModelCard
from medviewer.viewer.errors import ModelFileError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from medviewer.engine.modelfile import LoadedModel


def parse_weights(text: str | None, n: int) -> list[float]:
    """``--weights w1,w2,...`` (positive numbers, one per model); equal weights when omitted."""
    if not text:
        return [1.0] * n
    try:
        w = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--weights: expected {n} numbers separated by commas, got {text!r}") from None
    if len(w) != n:
        raise UsageError(f"--weights: give one weight per model ({n}), got {len(w)}")
    if not all(v > 0 and v < float("inf") for v in w):
        raise UsageError("--weights: weights must be positive finite numbers")
    return w


def _flatten(models: Sequence["LoadedModel"], weights: Sequence[float]
             ) -> list[tuple["torch.nn.Module", ModelCard, float, str]]:
    out = []
    for m, w in zip(models, weights):
        where = m.path.name if m.path else m.card.name
        if getattr(m, "members", None):
            total = float(sum(m.card.member_weights))
            for sub, sw in zip(m.members, m.card.member_weights):
                out.append((sub.module, sub.card, w * float(sw) / total, where))
        else:
            out.append((m.module, m.card, float(w), where))
    return out


def build_ensemble(models: Sequence["LoadedModel"], weights: Sequence[float] | None = None,
                   name: str | None = None) -> tuple["torch.nn.Module", ModelCard]:
    """(module, card) of the ensemble of `models` (loaded on the CPU)."""
    from medviewer.engine.registry import ensemble_module

    if len(models) < 2:
        raise UsageError("an ensemble needs at least two models")
    weights = list(weights) if weights is not None else [1.0] * len(models)
    parts = _flatten(models, weights)
    first = parts[0][1]
    for _, card, _, where in parts[1:]:
        if card.classes != first.classes:
            how = "in another order" if sorted(card.classes) == sorted(first.classes) else "different classes"
            raise ModelFileError(f"{where}: predicts {', '.join(card.classes)} ({how}); the ensemble's "
                                 f"members must all predict {', '.join(first.classes)}")
    uses = {card.intended_use for _, card, _, _ in parts}
    # a member's OOD tensors are not stored in the ensemble file: its card drops the OOD entry
    # (the ensemble has no out-of-distribution check); each member keeps its temperature
    members = [{**card.to_dict(), "ood": {}} for _, card, _, _ in parts]
    trained_on = {}
    for key in ("modality", "photometric", "body_part"):   # what every member was trained on
        values = [card.trained_on.get(key) for _, card, _, _ in parts]
        if all(values):
            trained_on[key] = sorted({v for vs in values for v in vs})
    names = ", ".join(f"{card.name} {card.version} ({card.architecture})" for _, card, _, _ in parts)
    card = ModelCard(
        name=name or f"ensemble-{len(parts)}x-{len(first.classes)}cls", architecture=ENSEMBLE,
        classes=list(first.classes), format_version=FORMAT_VERSION,
        input_size=first.input_size, resize=first.resize, channels=first.channels, mean=list(first.mean),
        std=list(first.std), window=first.window, monochrome1=first.monochrome1, cam_layer="",
        intended_use="demo" if "demo" in uses else "research",
        description=f"ensemble (weighted mean of probabilities) of {names}",
        training_data={"summary": f"{len(parts)} members; see each member's card"},
        members=members, member_weights=[w for _, _, w, _ in parts], trained_on=trained_on)
    card.validate("ensemble")
    module = ensemble_module([mod.float().cpu() for mod, _, _, _ in parts], card.member_weights,
                             [float(c.temperature) for _, c, _, _ in parts])
    return module.eval(), card


def make_ensemble(model_refs: Sequence[str | Path], out: str | Path, weights: Sequence[float] | None = None,
                  name: str | None = None) -> ModelCard:
    """Load `model_refs` (paths or model names), write the ensemble to `out`; its card."""
    from medviewer.engine.catalog import resolve_model
    from medviewer.engine.modelfile import load_model, save_model

    models = [load_model(resolve_model(r), device="cpu", cache=False) for r in model_refs]
    module, card = build_ensemble(models, weights, name)
    save_model(Path(out), module, card)
    return card
