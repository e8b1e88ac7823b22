"""The ruler tool: distances in mm from Pixel Spacing (PS3.3 10.7.1.3: row spacing,
column spacing), kept per image and drawn in image coordinates under any zoom/pan."""

from __future__ import annotations

import math
from typing import Any

from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QPainter, QPen

from medviewer.viewer.state.view import ViewGeometry
from medviewer.viewer.ui.overlays import draw_outlined_text

Line = tuple[QPointF, QPointF]
INK = QColor(255, 220, 0)


def ruler_length(meta: Any, a: QPointF, b: QPointF) -> tuple[float, str]:
    """Length between image points; mm when Pixel Spacing is known, else px."""
    dx, dy = b.x() - a.x(), b.y() - a.y()
    spacing = getattr(meta, "pixel_spacing", None)
    if spacing:
        row_mm, col_mm = float(spacing[0]), float(spacing[1])
        return math.hypot(dx * col_mm, dy * row_mm), "mm"
    return math.hypot(dx, dy), "px"


class Rulers:
    """Measured lines per image (ImageRef)."""

    def __init__(self) -> None:
        self._lines: dict[Any, list[Line]] = {}

    def of(self, ref: Any) -> list[Line]:
        return self._lines.get(ref, [])

    def add(self, ref: Any, a: QPointF, b: QPointF) -> bool:
        """Keep a line longer than half a pixel; True when kept."""
        if ref is None or (b - a).manhattanLength() <= 0.5:
            return False
        self._lines.setdefault(ref, []).append((a, b))
        return True

    def clear(self) -> None:
        self._lines.clear()


def paint_rulers(p: QPainter, geo: ViewGeometry, lines: list[Line], meta: Any) -> None:
    """Each line with its end points and its length, outlined so it reads on bone."""
    pen, under = QPen(INK, 1.5), QPen(QColor(0, 0, 0, 200), 3.5)
    for a, b in lines:
        sa, sb = QPointF(*geo.image_to_screen(a.x(), a.y())), QPointF(*geo.image_to_screen(b.x(), b.y()))
        for stroke in (under, pen):     # a dark edge under the line: visible on bone too
            p.setPen(stroke)
            p.drawLine(sa, sb)
            for pt in (sa, sb):
                p.drawEllipse(pt, 3, 3)
        length, unit = ruler_length(meta, a, b)
        draw_outlined_text(p, sb.x() + 6, sb.y() - 6, f"{length:.1f} {unit}", INK)
