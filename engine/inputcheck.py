"""Input check: are these the kind of images the model was trained on?  (Qt-free)

Before a model runs, three header values of the images are compared with the
card's `trained_on` (recorded by the trainer from its training images):

* Modality (0008,0060), PS3.3 C.7.3.1.1.1;
* Photometric Interpretation (0028,0004), PS3.3 C.7.6.3.1.2, compared as grey
  versus colour: the model input is made by the display pipeline, which shows
  MONOCHROME1 inverted and turns YBR and PALETTE COLOR into RGB, so those
  differences do not reach the model.  MONOCHROME1 against MONOCHROME2 does count
  when the card keeps MONOCHROME1 polarity raw (`monochrome1: "raw"`);
* Body Part Examined (0018,0015), PS3.3 C.7.3.1, when the image has one.

A mismatch is a warning shown with the result (the viewer, `medviewer predict`,
the audit log), never a silent result and never a refusal: the radiologist decides.
Plain images (PNG/JPEG) carry no modality or body part; only their colour is checked.
A card without `trained_on` (older models) gives no warnings: the check cannot run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.engine.card import ModelCard
    from medviewer.viewer.io.model import Series
    from medviewer.viewer.io.pixels import PixelStore

GREY = ("MONOCHROME1", "MONOCHROME2")
SAMPLES = 3   # headers read per series (first, middle, last): a series is one acquisition
LABELS = {"modality": "modality", "photometric": "photometric interpretation", "body_part": "body part"}


@dataclass(frozen=True)
class GuardWarning:
    """One mismatch between the images and the model card."""

    field: str                     # "modality" | "photometric" | "body_part"
    found: str
    expected: tuple[str, ...]

    def text(self) -> str:
        trained = " / ".join(self.expected)
        if self.field == "photometric" and _colour(self.found) != any(_colour(e) for e in self.expected):
            kind = "a colour" if _colour(self.found) else "a greyscale"
            other = "colour" if any(_colour(e) for e in self.expected) else "greyscale"
            return f"{kind} image ({self.found}); the model was trained on {other} images ({trained})"
        return f"{LABELS[self.field]} {self.found}; the model was trained on {trained}"

    def to_json(self) -> dict[str, Any]:
        return {"field": self.field, "found": self.found, "expected": list(self.expected),
                "message": self.text()}


def _colour(photometric: str) -> bool:
    return photometric.upper() not in GREY


def _norm(text: str) -> str:
    return re.sub(r"[^A-Z0-9]", "", str(text).upper())


def check(card: "ModelCard", modality: Sequence[str] = (), photometric: Sequence[str] = (),
          body_part: Sequence[str] = ()) -> list[GuardWarning]:
    """Warnings for the values found in the images (empty values are not checked)."""
    trained = card.trained_on or {}
    out: list[GuardWarning] = []
    found = {"modality": modality, "photometric": photometric, "body_part": body_part}
    for field, values in found.items():
        expected = tuple(trained.get(field) or ())
        if not expected:
            continue
        allowed = {_norm(e) for e in expected}
        for value in dict.fromkeys(str(v).strip() for v in values if v and str(v).strip()):
            if field == "photometric":
                ok = _photometric_ok(value, expected, card.monochrome1)
            else:
                ok = _norm(value) in allowed
            if not ok:
                out.append(GuardWarning(field, value, expected))
    return out


def _photometric_ok(value: str, expected: Sequence[str], monochrome1: str) -> bool:
    v = value.upper()
    exp = {e.upper() for e in expected}
    if _colour(v):
        return any(_colour(e) for e in exp)
    if not exp & set(GREY):
        return False
    return monochrome1 != "raw" or v in exp


def series_values(series: "Series", store: "PixelStore | None" = None) -> dict[str, list[str]]:
    """Modality, photometric interpretation and body part of a series (a few headers read;
    a plain-image series is decoded once through `store` for its colour)."""
    items = series.items
    picks = sorted({0, len(items) // 2, len(items) - 1}) if items else []
    out: dict[str, list[str]] = {"modality": [], "photometric": [], "body_part": []}
    if series.kind != "dicom":
        if store is not None and items:
            try:
                out["photometric"].append(store.meta(items[0]).photometric)
            except Exception:   # an unreadable image is reported by the analysis itself
                pass
        return out
    if series.modality:
        out["modality"].append(series.modality)
    for i in picks[:SAMPLES]:
        try:
            ds = series.headers[items[i].path]
        except Exception:   # the analysis reports unreadable files
            continue
        for field, keyword in (("photometric", "PhotometricInterpretation"), ("body_part", "BodyPartExamined"),
                               ("modality", "Modality")):
            value = str(ds.get(keyword, "") or "").strip()
            if value and value not in out[field]:
                out[field].append(value)
    return out


def check_series(card: "ModelCard", series: "Series", store: "PixelStore | None" = None) -> list[GuardWarning]:
    """The input check's warnings for one series (see the module docstring)."""
    return check(card, **series_values(series, store))


def summary(warnings: Sequence[GuardWarning]) -> str:
    """One line for the viewer, the CLI and the audit log."""
    return "; ".join(w.text() for w in warnings)
