"""Badges: short labels at the top of a viewport (study date of a prior, links, key image).

A `BadgeLayer` is a canvas layer (ImageCanvas.add_layer) that asks each registered
provider ``provider(viewport_state) -> [(text, QColor)]`` what to show, and draws the
labels side by side under the top orientation letter, each on a dark rounded plate so
it reads on any image.  Providers are plain functions of the Qt-free viewport state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter

Badge = tuple[str, QColor]
Provider = Callable[[Any], list[Badge]]
TOP = 30          # below the top orientation letter


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

    def paint(self, p: QPainter, geo: Any, canvas: Any) -> None:
        items = self.badges.of(canvas.state.viewport)
        if not items:
            return
        font = QFont(p.font())
        font.setPointSize(max(8, font.pointSize()))
        font.setBold(True)
        p.setFont(font)
        fm = p.fontMetrics()
        pad, gap = 5, 6
        widths = [fm.horizontalAdvance(text) + 2 * pad for text, _ in items]
        x = geo.width / 2 - (sum(widths) + gap * (len(items) - 1)) / 2
        h = fm.height() + 4
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for (text, colour), w in zip(items, widths):
            rect = QRectF(x, TOP, w, h)
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(0, 0, 0, 170))
            p.drawRoundedRect(rect, 4, 4)
            p.setPen(colour)
            p.drawText(rect, Qt.AlignmentFlag.AlignCenter, text)
            x += w + gap
