"""The measurement core's `Painter` protocol (viewer.measure.tools) drawn with QPainter.

Shapes and tools draw in image coordinates; this painter maps them to the screen
through the viewport's ViewGeometry (zoom, pan, pixel aspect), so annotations follow
zoom and pan.  Lines get a dark edge under them and text a dark outline, so both read
on bone as on air.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF

from medviewer.viewer.state.view import ViewGeometry
from medviewer.viewer.measure.labels import place_label
from medviewer.viewer.ui.overlays import draw_outlined_text

Point = tuple[float, float]
INK = QColor(255, 220, 0)
SELECTED = QColor(80, 230, 255)
DRAWING = QColor(255, 140, 40)
HANDLE = 4.0


class QtShapePainter:
    """Implements viewer.measure.tools.Painter on a QPainter for one viewport."""

    def __init__(self, p: QPainter, geo: ViewGeometry, colour: QColor = INK, width: float = 1.5,
                 labels: list | None = None) -> None:
        self.p, self.geo, self.colour, self.width = p, geo, colour, width
        self.labels = labels if labels is not None else []   # label rects placed in this paint
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)

    def screen(self, pt: Point) -> QPointF:
        return QPointF(*self.geo.image_to_screen(float(pt[0]), float(pt[1])))

    def _pens(self) -> tuple[QPen, QPen]:
        under = QPen(QColor(0, 0, 0, 190), self.width + 2.0)
        over = QPen(self.colour, self.width)
        for pen in (under, over):
            pen.setCapStyle(Qt.PenCapStyle.RoundCap)
            pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
        return under, over

    def polyline(self, points: Sequence[Point], closed: bool = False) -> None:
        poly = QPolygonF([self.screen(pt) for pt in points])
        self.p.setBrush(Qt.BrushStyle.NoBrush)
        for pen in self._pens():
            self.p.setPen(pen)
            if closed:
                self.p.drawPolygon(poly)
            else:
                self.p.drawPolyline(poly)

    def ellipse(self, left: float, top: float, right: float, bottom: float) -> None:
        rect = QRectF(self.screen((left, top)), self.screen((right, bottom)))
        self.p.setBrush(Qt.BrushStyle.NoBrush)
        for pen in self._pens():
            self.p.setPen(pen)
            self.p.drawEllipse(rect)

    def handle(self, pt: Point) -> None:
        q = self.screen(pt)
        self.p.setPen(QPen(QColor(0, 0, 0, 220), 1.0))
        self.p.setBrush(self.colour)
        self.p.drawRect(QRectF(q.x() - HANDLE, q.y() - HANDLE, 2 * HANDLE, 2 * HANDLE))

    def text(self, anchor: Point, text: str) -> None:
        if not text:
            return
        q = self.screen(anchor)
        fm = self.p.fontMetrics()
        lines = text.split("\n")
        x = q.x() + 8
        y = q.y() - 6 - (len(lines) - 1) * fm.height()     # baseline of the first line
        width = max(fm.horizontalAdvance(line) for line in lines)
        if x + width > self.geo.width - 4:          # keep the label inside the view
            x = max(4.0, q.x() - 8 - width)
        height = len(lines) * fm.height()
        # keep clear of the labels already drawn in this view (viewer.measure.labels)
        rect = place_label((x, y - fm.ascent(), float(width), float(height)), self.labels,
                           (4.0, 2.0, self.geo.width - 8.0, self.geo.height - 6.0))
        self.labels.append(rect)
        x, y = rect[0], rect[1] + fm.ascent()
        for i, line in enumerate(lines):
            draw_outlined_text(self.p, x, y + i * fm.height(), line, self.colour)

    def arrow(self, tail: Point, tip: Point) -> None:
        a, b = self.screen(tail), self.screen(tip)
        self.polyline([tail, tip])
        angle = math.atan2(b.y() - a.y(), b.x() - a.x())
        head = []
        for side in (-1, 1):
            t = angle + math.pi - side * math.radians(25)
            head.append(QPointF(b.x() + 12 * math.cos(t), b.y() + 12 * math.sin(t)))
        poly = QPolygonF([head[0], b, head[1]])
        for pen in self._pens():
            self.p.setPen(pen)
            self.p.drawPolyline(poly)
