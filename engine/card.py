"""The model card: a JSON description stored in a `.safetensors` file's metadata.

A medviewer model file is self-describing (STYLE.md pattern 7): the card says
which torchvision architecture to build, which head to put on it, which classes
it predicts, and exactly how pixels were turned into tensors in training
(the DICOM display pipeline of PS3.3 C.11: modality LUT, VOI window,
MONOCHROME1 handling).  The viewer and the trainer both read the same card.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medviewer.viewer.errors import ModelFileError

FORMAT_VERSION = 2   # the newest card format this medviewer reads; 2 adds ensembles ("members") and
#                      the trust fields (temperature, ood + medviewer.ood.* tensors, trained_on, operating_point)
SINGLE_FORMAT = 1    # what single-model cards without trust fields are written as, so older releases read them
ENSEMBLE = "ensemble"  # the architecture of a card whose weights are its members' (engine.ensemble)
MAX_MEMBERS = 16
METADATA_KEY = "medviewer.card"  # key of the card JSON in the safetensors metadata
INTENDED_USES = ("research", "demo", "validated")
RESIZE_MODES = ("letterbox", "stretch", "center_crop")
CHANNEL_RULES = ("grey_to_rgb", "rgb")
MONOCHROME1_RULES = ("invert", "raw")

#: The notice shown and written with every result of a model whose intended use is not "validated".
NOT_VALIDATED = ("Not validated for clinical use (intended use: {use}). "
                 "Results are for research/demo only and must not guide diagnosis.")

MAX_CLASSES = 1000
MAX_CARD_BYTES = 1 * 2**20   # a card is a few kB; anything near this is not a card
MAX_JSON_DEPTH = 32

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
    temperature: logits are divided by it before the softmax (temperature scaling fitted
    on the validation split, Guo et al. 2017); 1.0 = uncalibrated.
    ood: the out-of-distribution model (engine.ood; its tensors are in the file); {} = none.
    trained_on: what the training images were, for the input check (engine.inputcheck):
    {"modality": [..], "photometric": [..], "body_part": [..]} (DICOM (0008,0060),
    (0028,0004), (0018,0015) values); a missing or empty list means unknown.
    operating_point: the decision rule and what it measured on the test split.
    A card with any of these four is written as format 2 (`needed_format`): older
    releases refuse it instead of silently ignoring the calibration or the OOD check.
    tta: how the card's metrics were measured: {} (plain) or {"hflip": bool,
    "shift": fraction} (engine.tta, test-time augmentation).
    members / member_weights: an ensemble (architecture "ensemble", format 2):
    one full card per member, whose tensors are stored under "members.<i>.";
    probabilities are the weighted mean of the members' (each calibrated by its own
    temperature).  Members carry no OOD model (their OOD tensors are not stored in
    an ensemble file), so an ensemble has no out-of-distribution check.  The
    preprocessing fields of an ensemble card repeat its first member's and are
    informative only: every member is fed by its own card.
    """

    name: str
    architecture: str
    classes: list[str]
    version: str = "1.0"
    format_version: int = SINGLE_FORMAT
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
    temperature: float = 1.0
    ood: dict[str, Any] = field(default_factory=dict)
    trained_on: dict[str, list[str]] = field(default_factory=dict)
    operating_point: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    medviewer_version: str = field(default_factory=_medviewer_version)
    tta: dict[str, Any] = field(default_factory=dict)
    members: list[dict[str, Any]] = field(default_factory=list)
    member_weights: list[float] = field(default_factory=list)

    # -- validation ---------------------------------------------------------------
    def validate(self, where: str = "model card") -> "ModelCard":
        """Check every field's type and range; ModelFileError (one line naming the field)."""
        from medviewer.engine.registry import ARCHITECTURES, default_cam_layer

        def bad(name: str, msg: str) -> ModelFileError:
            return ModelFileError(f"{where}: card field {name!r} {msg}")

        fv = self.format_version
        if not _is_int(fv) or fv < 1:
            raise bad("format_version", f"must be a positive integer, got {fv!r}")
        if fv > FORMAT_VERSION:
            raise ModelFileError(f"{where}: card format {fv} is newer than this medviewer "
                                 f"understands ({FORMAT_VERSION}); update medviewer")
        _text(self.name, "name", bad, empty=False, limit=200)
        _text(self.version, "version", bad, empty=False, limit=64)
        ensemble = self.architecture == ENSEMBLE or bool(self.members)
        if ensemble:
            self._validate_members(bad, where)
        elif not isinstance(self.architecture, str) or self.architecture not in ARCHITECTURES:
            raise bad("architecture", f"names an unknown architecture {_short(self.architecture)} "
                      f"(known: {', '.join(sorted(ARCHITECTURES))})")
        if not isinstance(self.classes, list) or not 1 <= len(self.classes) <= MAX_CLASSES:
            raise bad("classes", f"must be a list of 1..{MAX_CLASSES} class names, got {_short(self.classes)}")
        for c in self.classes:
            _text(c, "classes", bad, empty=False, limit=200)
        if len(set(self.classes)) != len(self.classes):
            raise bad("classes", "has duplicate names")
        if not _is_int(self.input_size) or not 16 <= self.input_size <= 2048:
            raise bad("input_size", f"must be an integer in 16..2048, got {_short(self.input_size)}")
        for name, allowed in (("resize", RESIZE_MODES), ("channels", CHANNEL_RULES),
                              ("monochrome1", MONOCHROME1_RULES), ("intended_use", INTENDED_USES)):
            if not isinstance(getattr(self, name), str) or getattr(self, name) not in allowed:
                raise bad(name, f"must be one of {', '.join(allowed)}, got {_short(getattr(self, name))}")
        for key in ("mean", "std"):
            val = getattr(self, key)
            if not (isinstance(val, (list, tuple)) and len(val) == 3 and all(_is_number(v) for v in val)):
                raise bad(key, f"must be a list of 3 finite numbers, got {_short(val)}")
        if any(v <= 0 for v in self.std):
            raise bad("std", "values must be positive")
        from medviewer.viewer.display.windowspec import WindowSpec, WindowSpecError

        try:
            WindowSpec.parse(self.window)
        except WindowSpecError as exc:
            raise bad("window", f'must be "auto", "header" or {{"center": c, "width": w}}: {exc}') from None
        self._validate_head(bad)
        _text(self.cam_layer, "cam_layer", bad, empty=True, limit=200)
        _text(self.description, "description", bad, empty=True, limit=20000)
        _text(self.created, "created", bad, empty=True, limit=64)
        _text(self.medviewer_version, "medviewer_version", bad, empty=True, limit=64)
        if not isinstance(self.training_data, dict):
            raise bad("training_data", "must be an object")
        if not isinstance(self.metrics, dict) or not all(isinstance(k, str) for k in self.metrics):
            raise bad("metrics", "must be an object of named values")
        for k, v in self.metrics.items():
            if not (v is None or isinstance(v, str) or _is_number(v)):
                raise bad("metrics", f"value of {k!r} must be a finite number, got {_short(v)}")
        self._validate_trust(bad)
        self._validate_tta(bad)
        if not self.cam_layer and not ensemble:
            self.cam_layer = default_cam_layer(self.architecture)
        return self

    def _validate_trust(self, bad) -> None:
        from medviewer.engine.ood import validate_entry

        t = self.temperature
        if not _is_number(t) or not 0.01 <= t <= 100:
            raise bad("temperature", f"must be a number in 0.01..100, got {_short(t)}")
        validate_entry(self.ood, bad)
        if not isinstance(self.trained_on, dict):
            raise bad("trained_on", "must be an object of lists of DICOM values")
        for key, values in self.trained_on.items():
            if key not in TRAINED_ON_KEYS:
                raise bad("trained_on", f"has unknown key {_short(key)} (known: {', '.join(TRAINED_ON_KEYS)})")
            if not isinstance(values, list) or len(values) > 64:
                raise bad("trained_on", f"{key!r} must be a list of at most 64 values")
            for v in values:
                _text(v, "trained_on", bad, empty=False, limit=64)
        if not isinstance(self.operating_point, dict):
            raise bad("operating_point", "must be an object")
        for k, v in self.operating_point.items():
            vals = v.values() if isinstance(v, dict) else [v]
            if not all(x is None or isinstance(x, str) or _is_number(x) for x in vals):
                raise bad("operating_point", f"value of {k!r} must be a number, text or an object of numbers")

    @property
    def has_ood(self) -> bool:
        return bool(self.ood)

    def needed_format(self) -> int:
        """The card format a file with this card must declare: 2 for ensembles and for
        cards with trust fields, else SINGLE_FORMAT."""
        trust = self.temperature != 1.0 or self.ood or self.trained_on or self.operating_point
        return FORMAT_VERSION if (self.members or trust) else SINGLE_FORMAT

    @property
    def is_ensemble(self) -> bool:
        return bool(self.members)

    def member_cards(self) -> list["ModelCard"]:
        """The members' own cards (validated), in file order."""
        return [ModelCard.from_dict(m, f"member {i + 1}") for i, m in enumerate(self.members)]

    def _validate_tta(self, bad) -> None:
        from medviewer.engine.tta import TTASpec

        if not isinstance(self.tta, dict):
            raise bad("tta", "must be an object {hflip, shift} (or {} for none)")
        try:
            TTASpec.from_card(self.tta)
        except (ValueError, TypeError) as exc:
            raise bad("tta", str(exc)) from None

    def _validate_members(self, bad, where: str) -> None:
        if self.architecture != ENSEMBLE:
            raise bad("architecture", f'must be "{ENSEMBLE}" for a card with members')
        if self.format_version < 2:
            raise bad("format_version", "must be at least 2 for an ensemble card")
        members = self.members
        if not isinstance(members, list) or not 2 <= len(members) <= MAX_MEMBERS:
            raise bad("members", f"must be a list of 2..{MAX_MEMBERS} member cards, got {_short(members)}")
        checked = []
        for i, m in enumerate(members):
            if not isinstance(m, dict):
                raise bad("members", f"entry {i + 1} is not a card object")
            sub = ModelCard.from_dict(m, f"{where}: member {i + 1}")
            if sub.members or sub.architecture == ENSEMBLE:
                raise bad("members", f"entry {i + 1} is itself an ensemble (members cannot nest)")
            if sub.classes != self.classes:
                raise bad("members", f"entry {i + 1} ({sub.name}) predicts {_short(sub.classes)}, "
                                     f"not the ensemble's classes {_short(self.classes)}")
            if sub.ood:
                raise bad("members", f"entry {i + 1} ({sub.name}) describes an OOD model; an ensemble "
                                     f"file stores none (engine.ensemble drops it)")
            checked.append(sub.to_dict())
        self.members = checked
        w = self.member_weights
        if not isinstance(w, list) or len(w) != len(members) or not all(_is_number(v) and v > 0 for v in w):
            raise bad("member_weights", f"must be {len(members)} positive finite numbers, got {_short(w)}")
        if self.head not in ({}, {"hidden": [], "dropout": 0.0, "batchnorm": False}):
            raise bad("head", "must be empty for an ensemble (each member has its own)")

    def _validate_head(self, bad) -> None:
        head = self.head
        if not isinstance(head, dict):
            raise bad("head", "must be an object {hidden, dropout, batchnorm}")
        unknown = set(head) - {"hidden", "dropout", "batchnorm"}
        if unknown:
            raise bad("head", f"has unknown key(s) {', '.join(sorted(map(str, unknown)))}")
        hidden = head.get("hidden", [])
        if not isinstance(hidden, list) or len(hidden) > 8 or \
                not all(_is_int(h) and 1 <= h <= 65536 for h in hidden):
            raise bad("head", f"'hidden' must be a list of at most 8 layer widths in 1..65536, got {_short(hidden)}")
        dropout = head.get("dropout", 0.0)
        if not _is_number(dropout) or not 0 <= dropout < 1:
            raise bad("head", f"'dropout' must be a number in [0, 1), got {_short(dropout)}")
        if not isinstance(head.get("batchnorm", False), bool):
            raise bad("head", f"'batchnorm' must be true or false, got {_short(head.get('batchnorm'))}")

    # -- (de)serialisation --------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

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
        card.validate(where)
        if extra:  # keep forward-compatible extras readable, but never act on them
            card.training_data = {**card.training_data, "_extra_card_fields": sorted(map(str, extra))}
        return card

    @classmethod
    def from_json(cls, text: str, where: str = "model card") -> "ModelCard":
        return cls.from_dict(load_json(text, where, "model card"), where)

    def summary(self) -> str:
        """One line for lists and logs (no patient data lives in a card)."""
        if self.members:
            archs = ", ".join(str(m.get("architecture")) for m in self.members)
            return (f"{self.name} {self.version} (ensemble of {len(self.members)}: {archs}; "
                    f"{len(self.classes)} classes, {self.intended_use})")
        return (f"{self.name} {self.version} ({self.architecture}, {len(self.classes)} classes, "
                f"{self.input_size}px, {self.intended_use})")


def not_validated_notice(intended_use: str) -> str:
    """The "not validated" statement for a model's intended use; "" for validated models."""
    return "" if intended_use == "validated" else NOT_VALIDATED.format(use=intended_use)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(v: Any, name: str, bad, empty: bool, limit: int) -> None:
    if not isinstance(v, str) or (not empty and not v.strip()) or len(v) > limit:
        raise bad(name, f"must be {'a' if empty else 'a non-empty'} string of at most {limit} characters, "
                        f"got {_short(v)}")
    if any(ord(ch) < 32 and ch not in "\t\n" for ch in v):
        raise bad(name, "holds control characters")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def load_json(text: Any, where: str, what: str, limit: int = MAX_CARD_BYTES) -> Any:
    """Strict JSON (no NaN/Infinity, bounded size and nesting) or one ModelFileError line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFileError(f"{where}: the {what} is not UTF-8 text") from None
    if not isinstance(text, str):
        raise ModelFileError(f"{where}: the {what} is not text")
    if len(text) > limit:
        raise ModelFileError(f"{where}: the {what} is {len(text)} characters, more than the {limit} allowed")
    depth = max_depth = 0
    for ch in text:  # nesting is checked before parsing: deep JSON exhausts the parser's stack
        if ch in "[{":
            depth += 1
            max_depth = max(max_depth, depth)
            if max_depth > MAX_JSON_DEPTH:
                raise ModelFileError(f"{where}: the {what} is nested more than {MAX_JSON_DEPTH} levels deep")
        elif ch in "]}":
            depth -= 1
    try:
        return json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        msg = getattr(exc, "msg", None) or str(exc)
        raise ModelFileError(f"{where}: the {what} is not valid JSON ({msg})") from None


def read_card_file(path: str | Path) -> "ModelCard":
    """A card from a JSON file (convert-model's --card), every problem one line."""
    path = Path(path)
    try:
        if not path.is_file():
            raise ModelFileError(f"{path}: card file not found")
        raw = path.read_bytes()[: MAX_CARD_BYTES + 1]
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the card ({exc.strerror})") from None
    return ModelCard.from_dict(load_json(raw, path.name, "model card"), path.name)


TRAINED_ON_KEYS = ("modality", "photometric", "body_part")

REQUIRED_FIELDS = ("format_version", "name", "version", "architecture", "classes", "input_size",
                   "mean", "std", "window", "intended_use")
