"""Badges: short labels at the top of a viewport (study date of a prior, links, key image).

A `BadgeLayer` is a canvas layer (ImageCanvas.add_layer) that asks each registered
provider ``provider(viewport_state) -> [(text, QColor)]`` what to show, and draws the
labels one under the other in the middle of the top edge, below the lines of the top
corner texts (so narrow viewports do not mix them), each on a dark rounded plate so
it reads on any image.  Providers are plain functions of the Qt-free viewport state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter

Badge = tuple[str, QColor]
Provider = Callable[[Any], list[Badge]]
CORNER_LINES = 5         # the top-left corner text has at most 5 lines (viewer.ui.overlays)


class Badges:
    """The providers shared by every viewport's layer."""

    def __init__(self) -> None:
        self.providers: list[Provider] = []

    def add(self, provider: Provider) -> None:
        self.providers.append(provider)

    def of(self, vstate: Any) -> list[Badge]:
        out: list[Badge] = []
        for provider in self.providers:
            try:
                out += provider(vstate)
            except Exception:   # a badge must never break painting
                continue
        return out


class BadgeLayer:
    """Paint-only canvas layer drawing the badges of the canvas' viewport."""

    def __init__(self, badges: Badges) -> None:
        self.badges = badges

    def _boxes(self, p: QPainter, geo: Any, canvas: Any) -> tuple[QFont, list[tuple[QRectF, str, QColor]]]:
        """The badges' plates (screen rectangles) one under the other, with their text."""
        font = QFont(p.font())
        font.setPointSize(max(8, font.pointSize()))
        font.setBold(True)
        items = self.badges.of(canvas.state.viewport)
        if not items:
            return font, []
        fm = QFontMetricsF(font)
        pad, gap = 5, 3
        h = fm.height() + 4
        y = 8 + CORNER_LINES * (fm.height() + 1) if canvas.state.show_text else 8
        out = []
        for text, colour in items:
            w = fm.horizontalAdvance(text) + 2 * pad
            out.append((QRectF(geo.width / 2 - w / 2, y, w, h), text, colour))
            y += h + gap
        return font, out

    def occupied(self, p: QPainter, geo: Any, canvas: Any) -> list[QRectF]:
        """Where the badges are: the orientation letters keep clear of them."""
        return [rect for rect, _t, _c in self._boxes(p, geo, canvas)[1]]

    def paint(self, p: QPainter, geo: Any, canvas: Any) -> None:
        font, boxes = self._boxes(p, geo, canvas)
        if not boxes:
            return
        p.setFont(font)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for rect, text, colour in boxes:
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(0, 0, 0, 170))
            p.drawRoundedRect(rect, 4, 4)
            p.setPen(colour)
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
