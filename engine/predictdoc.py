"""The `medviewer predict --json` document, built in one place for every engine.

    {"model": {"name", "version", "architecture", "classes", "temperature", "ood_check"},
     "device": str,
     "series": [{"series_uid",
                 "aggregate": {"method", "probabilities": {class: p}},
                 "ood": {"flagged", "checked", "fraction_flagged", "threshold"} | null,
                 "input_warnings": [{"field", "found", "expected", "message"}],
                 "audit_id": str | null,
                 "items": [{"path", "frame", "probabilities", "top", "cam",
                            "ood": {"score", "flag"} | null}]}]}

Probabilities are calibrated (the card's temperature); "ood" is null where the model
has no out-of-distribution model (older files, ensembles) or the engine did not
compute it ("ood_check": false in "model").

The local engine (`engine.cli`) and the Ray engine (`engine.scale`) both call
`series_entry`, so a field added here reaches both outputs.  Paths are relative
to the scanned root (its folder when the root is a file or a CSV list), with '/'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.engine.infer import aggregate, aggregation_name
from medviewer.viewer.io.model import printable

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.engine.modelfile import LoadedModel
    from medviewer.engine.series import SeriesPrediction

__all__ = ["document", "item_entry", "model_entry", "relative", "series_entry"]


def relative(root: Path, path: Path) -> str:
    """`path` relative to the scanned root's folder, '/'-separated, printable (absolute when outside)."""
    base = root if root.is_dir() else root.parent
    try:
        return printable(path.relative_to(base).as_posix())
    except ValueError:
        return printable(path.as_posix())


def model_entry(model: "LoadedModel", ood_check: bool | None = None) -> dict[str, Any]:
    """`ood_check`: whether the results carry OOD scores (default: the model has an OOD model)."""
    card = model.card
    has_ood = getattr(model, "ood", None) is not None
    return {"name": card.name, "version": card.version, "architecture": card.architecture,
            "classes": list(model.classes), "temperature": float(getattr(model, "temperature", 1.0)),
            "ood_check": has_ood if ood_check is None else bool(ood_check and has_ood)}


def document(model: "LoadedModel", device: str, series: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": model_entry(model), "device": device, "series": series}


def item_entry(classes: Sequence[str], path: str, frame: int | None, probs: np.ndarray,
               cam: str | None = None, ood: tuple[float, bool] | None = None) -> dict[str, Any]:
    """One slice: its class probabilities, top class, Grad-CAM file (or None) and
    out-of-distribution (score, flag) (or None)."""
    return {"path": path, "frame": frame,
            "probabilities": {c: float(v) for c, v in zip(classes, probs)},
            "top": classes[int(np.argmax(probs))], "cam": cam,
            "ood": None if ood is None else {"score": float(ood[0]), "flag": bool(ood[1])}}


def series_entry(classes: Sequence[str], series_uid: str, items: Sequence[tuple[str, int | None]],
                 pred: "SeriesPrediction", method: str = "mean", top_k: int = 3,
                 cams: Mapping[int, str] | None = None, input_warnings: Sequence[dict[str, Any]] = (),
                 audit_id: str | None = None) -> dict[str, Any]:
    """One series: `items` are (relative path, frame) in display order; slices in
    `pred.failed` are left out of the items, the aggregate and the OOD summary.
    `input_warnings`: engine.inputcheck warnings as JSON; `audit_id`: its audit-log entry."""
    keep = [i for i in range(len(items)) if i not in pred.failed]
    flags = getattr(pred, "flags", None)
    scores = getattr(pred, "ood", None)
    entries = [item_entry(classes, items[i][0], items[i][1], pred.probs[i], (cams or {}).get(i),
                          None if flags is None else (float(scores[i]), bool(flags[i])))
               for i in keep]
    agg = aggregate(pred.probs[keep], method, top_k) if keep else None
    return {
        "series_uid": series_uid,
        "aggregate": {"method": aggregation_name(method, top_k),
                      "probabilities": ({c: float(v) for c, v in zip(classes, agg)} if agg is not None else {})},
        "ood": pred.ood_summary(keep) if hasattr(pred, "ood_summary") else None,
        "input_warnings": [dict(w) for w in input_warnings],
        "audit_id": audit_id,
        "items": entries,
    }
