"""The model card: a JSON description stored in a `.safetensors` file's metadata.

A medviewer model file is self-describing (STYLE.md pattern 7): the card says
which torchvision architecture to build, which head to put on it, which classes
it predicts, and exactly how pixels were turned into tensors in training
(the DICOM display pipeline of PS3.3 C.11: modality LUT, VOI window,
MONOCHROME1 handling).  The viewer and the trainer both read the same card.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from typing import Any

from medviewer.viewer.errors import ModelFileError

FORMAT_VERSION = 1
METADATA_KEY = "medviewer.card"  # key of the card JSON in the safetensors metadata
INTENDED_USES = ("research", "demo", "validated")
RESIZE_MODES = ("letterbox", "stretch", "center_crop")
CHANNEL_RULES = ("grey_to_rgb", "rgb")
MONOCHROME1_RULES = ("invert", "raw")

#: The notice shown and written with every result of a model whose intended use is not "validated".
NOT_VALIDATED = ("Not validated for clinical use (intended use: {use}). "
                 "Results are for research/demo only and must not guide diagnosis.")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _medviewer_version() -> str:
    try:
        from importlib.metadata import version

        return version("medviewer")
    except Exception:  # pragma: no cover - not installed
        return "0+unknown"


@dataclass
class ModelCard:
    """Everything needed to rebuild, feed and describe a model.

    window: "auto" (robust percentiles of the image, viewer.display.auto_window),
    "header" (the file's first Window Center/Width, PS3.3 C.11.2.1.2, else auto)
    or {"center": c, "width": w} in modality units (e.g. HU).
    monochrome1: "invert" shows MONOCHROME1 with low values white, as on screen
    (PS3.3 C.7.6.3.1.2); "raw" keeps the stored polarity.
    head: {"hidden": [..], "dropout": p, "batchnorm": bool} (engine.registry).
    """

    name: str
    architecture: str
    classes: list[str]
    version: str = "1.0"
    format_version: int = FORMAT_VERSION
    head: dict[str, Any] = field(default_factory=lambda: {"hidden": [], "dropout": 0.0, "batchnorm": False})
    input_size: int = 224
    resize: str = "letterbox"
    channels: str = "grey_to_rgb"
    mean: list[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: list[float] = field(default_factory=lambda: list(IMAGENET_STD))
    window: Any = "auto"
    monochrome1: str = "invert"
    cam_layer: str = ""
    intended_use: str = "research"
    description: str = ""
    training_data: dict[str, Any] = field(default_factory=dict)  # {"summary": str, "sha256": str, ...}
    metrics: dict[str, float] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    medviewer_version: str = field(default_factory=_medviewer_version)

    # -- validation ---------------------------------------------------------------
    def validate(self, where: str = "model card") -> "ModelCard":
        """Raise ModelFileError (one line) for any inconsistent field; return self."""
        from medviewer.engine.registry import ARCHITECTURES, default_cam_layer

        def bad(msg: str) -> ModelFileError:
            return ModelFileError(f"{where}: {msg}")

        if self.format_version > FORMAT_VERSION:
            raise bad(f"card format {self.format_version} is newer than this medviewer "
                      f"understands ({FORMAT_VERSION}); update medviewer")
        if self.architecture not in ARCHITECTURES:
            raise bad(f"unknown architecture {self.architecture!r} "
                      f"(known: {', '.join(sorted(ARCHITECTURES))})")
        if not self.classes or not all(isinstance(c, str) and c for c in self.classes):
            raise bad("'classes' must be a non-empty list of class names")
        if len(set(self.classes)) != len(self.classes):
            raise bad("'classes' has duplicate names")
        if not isinstance(self.input_size, int) or not 16 <= self.input_size <= 2048:
            raise bad(f"'input_size' must be an integer in 16..2048, got {self.input_size!r}")
        if self.resize not in RESIZE_MODES:
            raise bad(f"'resize' must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.channels not in CHANNEL_RULES:
            raise bad(f"'channels' must be one of {CHANNEL_RULES}, got {self.channels!r}")
        if self.monochrome1 not in MONOCHROME1_RULES:
            raise bad(f"'monochrome1' must be one of {MONOCHROME1_RULES}, got {self.monochrome1!r}")
        for key in ("mean", "std"):
            val = getattr(self, key)
            if not (isinstance(val, (list, tuple)) and len(val) == 3
                    and all(isinstance(v, (int, float)) for v in val)):
                raise bad(f"'{key}' must be a list of 3 numbers")
        if any(v <= 0 for v in self.std):
            raise bad("'std' values must be positive")
        w = self.window
        if isinstance(w, dict):
            try:
                if float(w["width"]) < 1:
                    raise bad("window width must be >= 1 (PS3.3 C.11.2.1.2)")
                float(w["center"])
            except (KeyError, TypeError, ValueError):
                raise bad("'window' must be \"auto\", \"header\" or {\"center\": c, \"width\": w}") from None
        elif w not in ("auto", "header"):
            raise bad("'window' must be \"auto\", \"header\" or {\"center\": c, \"width\": w}")
        if self.intended_use not in INTENDED_USES:
            raise bad(f"'intended_use' must be one of {INTENDED_USES}, got {self.intended_use!r}")
        if not isinstance(self.head, dict):
            raise bad("'head' must be an object")
        if not self.cam_layer:
            self.cam_layer = default_cam_layer(self.architecture)
        return self

    # -- (de)serialisation --------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "model card") -> "ModelCard":
        """Build and validate a card; missing required or unknown fields -> ModelFileError."""
        if not isinstance(data, dict):
            raise ModelFileError(f"{where}: the model card is not a JSON object")
        required = [f.name for f in fields(cls) if f.name in REQUIRED_FIELDS]
        missing = [k for k in required if k not in data]
        if missing:
            raise ModelFileError(f"{where}: model card lacks required field(s): {', '.join(missing)}")
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in data.items() if k not in known}
        card = cls(**{k: v for k, v in data.items() if k in known})
        if extra:  # keep forward-compatible extras readable, but never act on them
            card.training_data = {**card.training_data, "_extra_card_fields": sorted(extra)}
        card.classes = list(card.classes)
        return card.validate(where)

    @classmethod
    def from_json(cls, text: str, where: str = "model card") -> "ModelCard":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise ModelFileError(f"{where}: model card is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from None
        return cls.from_dict(data, where)

    def summary(self) -> str:
        """One line for lists and logs (no patient data lives in a card)."""
        return (f"{self.name} {self.version} ({self.architecture}, {len(self.classes)} classes, "
                f"{self.input_size}px, {self.intended_use})")


def not_validated_notice(intended_use: str) -> str:
    """The "not validated" statement for a model's intended use; "" for validated models."""
    return "" if intended_use == "validated" else NOT_VALIDATED.format(use=intended_use)


REQUIRED_FIELDS = ("format_version", "name", "version", "architecture", "classes", "input_size",
                   "mean", "std", "window", "intended_use")
