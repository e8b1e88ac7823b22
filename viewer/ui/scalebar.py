"""The scale bar: a length in mm drawn to the image's scale on the right edge of a view.

Its length is a round number of millimetres (1, 2 or 5 times a power of ten) close
to a fifth of the view's height at the current zoom, from the vertical pixel
spacing (PS3.3 10.7.1.3: Pixel Spacing = row spacing, column spacing; rows are
drawn `aspect` times as high as columns are wide); images without Pixel Spacing get
none.  It runs down the right edge from just below the right orientation letter
and stops above the bottom-right corner text, so it never covers either.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF
from PySide6.QtGui import QColor, QPainter, QPen

from medviewer.viewer.ui.overlays import draw_outlined_text

INK = QColor(235, 235, 160)
NICE = (1.0, 2.0, 5.0)
CORNER_LINES = 3          # lines of the bottom-right corner text kept clear


def bar_length_mm(mm_per_px: float, target_px: float, max_px: float) -> float | None:
    """The round length in mm whose bar is closest to `target_px` without exceeding
    `max_px` nor falling under a third of the target; None when none fits."""
    if not (mm_per_px > 0 and math.isfinite(mm_per_px)) or max_px < 20 or target_px <= 0:
        return None
    exp = math.floor(math.log10(target_px * mm_per_px))
    candidates = [m * 10.0 ** e for e in (exp - 1, exp, exp + 1) for m in NICE]
    fitting = [c for c in candidates if target_px / 3 <= c / mm_per_px <= min(max_px, 1.6 * target_px)]
    if not fitting:
        return None
    return min(fitting, key=lambda c: abs(c / mm_per_px - target_px))


def length_text(mm: float) -> str:
    """'5 cm' for whole centimetres from 1 cm up, else '2 mm' / '0.5 mm'."""
    if mm >= 10 and mm % 10 == 0:
        return f"{mm / 10:g} cm"
    return f"{mm:g} mm"


def paint_scale_bar(p: QPainter, width: float, height: float, mm_per_px: float | None,
                    opacity: float = 1.0) -> float | None:
    """Draw the bar (vertical, ticks at both ends and the middle) on the right edge of a
    `width` x `height` view; `mm_per_px` is mm per screen pixel down the view.  Returns
    its length in mm (None: not drawn)."""
    if mm_per_px is None:
        return None
    fm = p.fontMetrics()
    top = height / 2 + fm.height() + 6                   # below the right orientation letter
    bottom_limit = height - 6 - CORNER_LINES * fm.height() - 10
    mm = bar_length_mm(mm_per_px, height / 5, bottom_limit - top)
    if mm is None:
        return None
    px = mm / mm_per_px
    x, bottom = width - 10, top + px
    p.save()
    p.setOpacity(opacity)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
    for pen in (QPen(QColor(0, 0, 0, 220), 4.0), QPen(INK, 1.6)):
        p.setPen(pen)
        p.drawLine(QPointF(x, top), QPointF(x, bottom))
        for y, tick in ((top, 7), (bottom, 7), ((top + bottom) / 2, 4)):
            p.drawLine(QPointF(x, y), QPointF(x - tick, y))
    text = length_text(mm)
    draw_outlined_text(p, x - 10 - fm.horizontalAdvance(text), (top + bottom) / 2 + fm.ascent() / 2 - 1,
                       text, INK)
    p.restore()
    return mm
