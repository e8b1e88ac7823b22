"""Plain data the DICOM writers share: the model's identity and one series' AI result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.engine.card import not_validated_notice
from medviewer.engine.dicomout.source import SourceImage
from medviewer.engine.modelfile import file_sha256

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.engine.modelfile import LoadedModel


@dataclass(frozen=True)
class ModelInfo:
    """What a result object says about the model that produced it."""

    name: str
    version: str
    architecture: str
    classes: tuple[str, ...]
    intended_use: str
    sha256: str | None          # of the .safetensors file; None when there is no file
    input_size: int = 224

    @classmethod
    def from_model(cls, model: "LoadedModel", model_path: str | Path | None = None) -> "ModelInfo":
        path = Path(model_path) if model_path is not None else getattr(model, "path", None)
        sha = file_sha256(path) if path is not None and Path(path).is_file() else None
        card = model.card
        return cls(card.name, card.version, card.architecture, tuple(model.classes), card.intended_use,
                   sha, int(card.input_size))

    @property
    def notice(self) -> str:
        """The "not validated" statement, "" for validated models."""
        return not_validated_notice(self.intended_use)

    @property
    def key(self) -> str:
        """What identifies the model in derived UIDs: the file hash, else name and version."""
        return self.sha256 or f"{self.name}@{self.version}"

    @property
    def title(self) -> str:
        return f"{self.name} {self.version}"


@dataclass
class SeriesResult:
    """One series' AI result in the form the SR, SC and Parametric Map writers use."""

    series_uid: str                      # the source series
    study_uid: str
    series_number: int | None
    description: str
    images: list[SourceImage]            # every analysed image (failed ones left out), display order
    total: int                           # items in the series, failed included
    probs: np.ndarray                    # (len(images), C) per-image probabilities
    aggregation: str                     # "mean" | "max" | "topk_mean"
    top_k: int
    series_probs: np.ndarray             # (C,)
    cam_method: str                      # a name of engine.cam.CAM_METHODS
    failed: dict[int, str] = field(default_factory=dict)   # series index -> reason

    @property
    def top(self) -> int:
        """Index of the series' top class (the Grad-CAM class of the SC and map)."""
        return int(np.argmax(self.series_probs))

    @property
    def aggregation_name(self) -> str:
        from medviewer.engine.infer import aggregation_name

        return aggregation_name(self.aggregation, self.top_k)

    def options(self) -> str:
        """The options that change the content, for derived UIDs."""
        return f"aggregate={self.aggregation_name};cam={self.cam_method}"

    def position(self, src: SourceImage) -> int:
        """Row of `src` in `probs`."""
        return self._rows()[src.index]

    def _rows(self) -> dict[int, int]:
        rows: Any = getattr(self, "_row_cache", None)
        if rows is None:
            rows = {s.index: r for r, s in enumerate(self.images)}
            self._row_cache = rows
        return rows
