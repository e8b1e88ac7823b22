"""Numbers of a shape on one image: ROI statistics on the stored pixels, lengths, angles.

ROI statistics are computed on the STORED pixel values of the slice converted to
modality values by the Modality LUT / rescale (PS3.3 C.11.1: HU for CT), never on
display grey levels.  A pixel (column i, row j) covers [i, i+1) x [j, j+1) and
counts when its centre (i + 0.5, j + 0.5) lies inside the shape (on the border
counts as inside).  SD is the population standard deviation (ddof = 0), as
Cornerstone / OHIF report it.  Area is the area of the drawn shape (pi a b for an
ellipse, the shoelace area of a polygon) in mm^2, from Pixel Spacing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from medviewer.viewer.display.meta import ImageMeta
from medviewer.viewer.display.pipeline import modality_values, value_at
from medviewer.viewer.measure.geometry import (Angle, Arrow, CobbAngle, Distance, Ellipse, Freehand,
                                               PointProbe, Rectangle, Shape, Spacing)

__all__ = ["RoiStats", "measure", "roi_mask", "roi_stats", "units_of"]


@dataclass(frozen=True)
class RoiStats:
    """What `medviewer measure` prints."""

    area_mm2: float | None    # None without Pixel Spacing
    mean: float | None        # None when no pixel centre lies inside
    std: float | None
    min: float | None
    max: float | None
    n_pixels: int
    units: str                # "HU" for CT, else the modality LUT's / rescale type's units

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def units_of(meta: ImageMeta) -> str:
    """Units of the modality values: Rescale Type / Modality LUT Type (PS3.3 C.11.1.1.2),
    HU for CT; 'unspecified' when the header names none."""
    units = (meta.units or "").strip()
    return "unspecified" if units in ("", "US") else units


def roi_mask(shape: Shape, rows: int, columns: int) -> tuple[np.ndarray, tuple[slice, slice]]:
    """(mask, (row slice, column slice)): the pixels of the image whose centres lie inside
    `shape`, as a boolean mask over the shape's bounding box clipped to the image."""
    if not shape.is_roi:
        raise ValueError(f"a {shape.kind} has no area")
    left, top, right, bottom = shape.box  # type: ignore[attr-defined]
    c0, c1 = max(0, int(math.floor(left - 0.5))), min(columns, int(math.ceil(right + 0.5)))
    r0, r1 = max(0, int(math.floor(top - 0.5))), min(rows, int(math.ceil(bottom + 0.5)))
    if c1 <= c0 or r1 <= r0:
        return np.zeros((0, 0), bool), (slice(0, 0), slice(0, 0))
    x = np.arange(c0, c1, dtype=np.float64)[None, :] + 0.5
    y = np.arange(r0, r1, dtype=np.float64)[:, None] + 0.5
    return shape.contains(x, y), (slice(r0, r1), slice(c0, c1))  # type: ignore[attr-defined]


def roi_stats(shape: Shape, stored: np.ndarray, meta: ImageMeta) -> RoiStats:
    """Area, mean, SD, min, max and pixel count of an ROI on one monochrome image."""
    if stored.ndim != 2 or meta.is_color or meta.is_palette:
        raise ValueError("ROI statistics need a monochrome image")
    mask, (rs, cs) = roi_mask(shape, stored.shape[0], stored.shape[1])
    spacing = meta.pixel_spacing
    area = shape.area(spacing) if spacing is not None else None  # type: ignore[attr-defined]
    values = modality_values(np.ascontiguousarray(stored[rs, cs]), meta)[mask] if mask.size else \
        np.zeros(0, np.float32)
    values = values.astype(np.float64)
    n = int(values.size)
    if n == 0:
        return RoiStats(area, None, None, None, None, 0, units_of(meta))
    return RoiStats(area, float(values.mean()), float(values.std()), float(values.min()),
                    float(values.max()), n, units_of(meta))


def measure(shape: Shape, stored: np.ndarray | None, meta: ImageMeta) -> dict[str, Any]:
    """The numbers shown next to a shape: length (mm), angle (deg), ROI statistics, probe
    value.  Lengths fall back to pixels (unit 'px') without Pixel Spacing."""
    spacing: Spacing = meta.pixel_spacing
    unit = "mm" if spacing is not None else "px"
    if isinstance(shape, Distance):
        return {"length": shape.length(spacing), "unit": unit}
    if isinstance(shape, (Angle, CobbAngle)):
        return {"angle": shape.degrees(spacing), "unit": "deg"}
    if isinstance(shape, (Ellipse, Rectangle, Freehand)):
        if stored is None:
            area = shape.area(spacing)
            return {"area_mm2" if spacing is not None else "area_px": area}
        return roi_stats(shape, stored, meta).to_dict()
    if isinstance(shape, PointProbe):
        col, row = shape.pixel()
        value = value_at(stored, meta, row, col) if stored is not None else None
        if isinstance(value, tuple):
            return {"value": list(value), "units": "RGB"}
        return {"value": value, "units": units_of(meta)}
    if isinstance(shape, Arrow):
        return {"text": shape.text}
    return {}
