"""Viewport layouts of a reading session (Qt-free).

A layout is a grid of stack viewports (rows x columns), or the MPR layout: the
axial, coronal and sagittal reformats of one series side by side.  The session
keeps one `ViewportState` per cell; cells a smaller layout hides keep their state
(going back to 2 x 2 shows them again).  `fill_series` picks the series an empty
viewport gets when a layout grows: the next series of the study not yet shown,
as reading workstations fill a new layout.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_LAYOUT", "LAYOUTS", "LayoutSpec", "MAX_VIEWPORTS", "fill_series", "layout_spec"]


@dataclass(frozen=True)
class LayoutSpec:
    """`rows` x `columns` cells; `mpr`: the three reformat views instead of stacks."""

    name: str
    title: str
    rows: int
    columns: int
    mpr: bool = False

    @property
    def cells(self) -> int:
        """Stack viewports shown (0 for the MPR layout, whose views are reformats)."""
        return 0 if self.mpr else self.rows * self.columns


LAYOUTS: dict[str, LayoutSpec] = {spec.name: spec for spec in (
    LayoutSpec("1x1", "1 x 1", 1, 1),
    LayoutSpec("1x2", "1 x 2 (side by side)", 1, 2),
    LayoutSpec("2x1", "2 x 1 (one above the other)", 2, 1),
    LayoutSpec("2x2", "2 x 2", 2, 2),
    LayoutSpec("mpr", "MPR 1 x 3 (axial / coronal / sagittal)", 1, 3, mpr=True),
)}
DEFAULT_LAYOUT = "1x1"
MAX_VIEWPORTS = max(spec.cells for spec in LAYOUTS.values())


def layout_spec(name: str | None) -> LayoutSpec:
    """The layout called `name`; the default one for unknown names (old settings)."""
    return LAYOUTS.get(str(name or ""), LAYOUTS[DEFAULT_LAYOUT])


def fill_series(candidates: Sequence[Any], shown: Iterable[Any]) -> Any:
    """The first series of `candidates` (browser order) with images that no viewport
    shows yet; None when every one is shown (the viewport stays empty rather than
    repeat a series)."""
    shown_uids = {getattr(s, "series_uid", None) for s in shown if s is not None}
    return next((s for s in candidates if getattr(s, "items", None) and s.series_uid not in shown_uids),
                None)
