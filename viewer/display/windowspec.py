"""The one parser of window specifications: ``auto | header | CENTER,WIDTH``.

Model cards, the trainer's ``--window``, ``medviewer export --window`` and the
engine's preprocessing all say which VOI window (PS3.3 C.11.2) turns modality
values into grey levels in one of three ways:

    auto            robust percentiles of each image (`auto_window`)
    header          the file's own window / VOI LUT (`default_window`), else auto
    CENTER,WIDTH    a fixed LINEAR window in modality units (e.g. HU), width >= 1

Accepted spellings: the strings above (``"40,400"``, ``"40 400"``), a
``{"center": c, "width": w}`` mapping (the card's JSON form), a (c, w) pair, a
`Window`, or another `WindowSpec`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from medviewer.viewer.display.meta import ImageMeta, Window

KINDS = ("auto", "header", "fixed")
HELP = "auto | header | CENTER,WIDTH (modality units, e.g. HU; width >= 1)"


class WindowSpecError(ValueError):
    """The text is not a window specification; str() says what is accepted."""


@dataclass(frozen=True)
class WindowSpec:
    kind: str = "auto"
    center: float | None = None
    width: float | None = None

    @classmethod
    def parse(cls, value: Any) -> "WindowSpec":
        """Any accepted spelling -> WindowSpec; WindowSpecError (one line) otherwise."""
        if isinstance(value, WindowSpec):
            return value
        if isinstance(value, Window):
            return cls.fixed(value.center, value.width)
        if isinstance(value, str):
            text = value.strip().lower()
            if text in ("auto", "header"):
                return cls(text)
            parts = text.replace(",", " ").split()
            if len(parts) != 2:
                raise WindowSpecError(f"expected {HELP}, got {value!r}")
            return cls.fixed(*parts)
        if isinstance(value, Mapping):
            if set(value) != {"center", "width"}:
                raise WindowSpecError(f'a window object needs exactly "center" and "width", got {sorted(value)}')
            return cls.fixed(value["center"], value["width"])
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return cls.fixed(*value)
        raise WindowSpecError(f"expected {HELP}, got {value!r}")

    @classmethod
    def fixed(cls, center: Any, width: Any) -> "WindowSpec":
        try:
            if isinstance(center, bool) or isinstance(width, bool):
                raise TypeError
            c, w = float(center), float(width)
        except (TypeError, ValueError):
            raise WindowSpecError(f"window centre and width must be numbers, got {center!r}, {width!r}") from None
        if not (math.isfinite(c) and math.isfinite(w)):
            raise WindowSpecError("window centre and width must be finite")
        if w < 1:
            raise WindowSpecError(f"window width must be >= 1 (PS3.3 C.11.2.1.2), got {w:g}")
        return cls("fixed", c, w)

    def to_json(self) -> str | dict[str, float]:
        """The card's form: "auto", "header" or {"center": c, "width": w}."""
        return self.kind if self.kind != "fixed" else {"center": self.center, "width": self.width}

    def __str__(self) -> str:
        return self.kind if self.kind != "fixed" else f"{self.center:g},{self.width:g}"

    def resolve(self, stored: np.ndarray, meta: ImageMeta) -> Window | None:
        """The Window for one image; None means "the file's own" (`render`'s default)."""
        from medviewer.viewer.display.pipeline import auto_window

        if self.kind == "auto":
            return auto_window(stored, meta)
        if self.kind == "header":
            return None
        return Window(float(self.center), float(self.width), "LINEAR", "fixed")
