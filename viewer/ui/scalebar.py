"""The scale bar: a length in mm drawn to the image's scale at the bottom of a view.

Its length is a round number of millimetres (1, 2 or 5 times a power of ten) that
takes between a sixth and a third of the view's width at the current zoom, from the
horizontal pixel spacing (PS3.3 10.7.1.3: Pixel Spacing = row spacing, column
spacing); images without Pixel Spacing get none.  It sits in the middle of the
bottom edge, above the orientation letter and between the two bottom corner texts.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QPainter, QPen

from medviewer.viewer.ui.overlays import draw_outlined_text

INK = QColor(235, 235, 160)
NICE = (1.0, 2.0, 5.0)


def bar_length_mm(mm_per_px: float, view_width: float) -> float | None:
    """The round length in mm whose bar is closest to a quarter of the view's width
    and within a sixth to a third of it; None when none fits."""
    if not (mm_per_px > 0 and math.isfinite(mm_per_px)) or view_width < 60:
        return None
    target = view_width / 4 * mm_per_px
    exp = math.floor(math.log10(target))
    candidates = [m * 10.0 ** e for e in (exp - 1, exp, exp + 1) for m in NICE]
    fitting = [c for c in candidates if view_width / 6 <= c / mm_per_px <= view_width / 3]
    if not fitting:
        return None
    return min(fitting, key=lambda c: abs(c / mm_per_px - view_width / 4))


def length_text(mm: float) -> str:
    """'5 cm' from 50 mm up, else '2 mm' / '0.5 mm'."""
    if mm >= 10 and mm % 10 == 0:
        return f"{mm / 10:g} cm"
    return f"{mm:g} mm"


def paint_scale_bar(p: QPainter, width: float, height: float, mm_per_px: float | None,
                    opacity: float = 1.0) -> float | None:
    """Draw the bar (horizontal, ticks at both ends and the middle) at the bottom of a
    `width` x `height` view; returns its length in mm (None: not drawn)."""
    if mm_per_px is None:
        return None
    mm = bar_length_mm(mm_per_px, width)
    if mm is None:
        return None
    px = mm / mm_per_px
    fm = p.fontMetrics()
    left, right = width / 2 - px / 2, width / 2 + px / 2
    y = height - 36                         # above the bottom orientation letter
    p.save()
    p.setOpacity(opacity)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    for pen in (QPen(QColor(0, 0, 0, 220), 4.0), QPen(INK, 1.6)):
        p.setPen(pen)
        p.drawLine(QPointF(left, y), QPointF(right, y))
        for x, tick in ((left, 7), (right, 7), ((left + right) / 2, 4)):
            p.drawLine(QPointF(x, y), QPointF(x, y - tick))
    draw_outlined_text(p, right + 6, y + fm.ascent() / 2 - 1, length_text(mm), INK)
    p.restore()
    return mm
