"""Per-slice probability strip placed under the slice scroller (one cell per slice).

Slices the out-of-distribution check flagged are hatched and carry a red bar on top,
whatever their probability colour, so a run of unusual slices is seen at a glance.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from medviewer.engine.overlay import colormap_lut


class SliceStrip(QWidget):
    """Cells coloured by one class's probability; grey until a slice's result arrives.

    Cells span the x-range of `align_to` (the slice slider) so that cell i sits
    under slider position i.  Clicking a cell emits sig_slice_clicked(i).
    """

    sig_slice_clicked = Signal(int)

    def __init__(self, align_to: QWidget | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ai_slice_strip")
        self.setMinimumHeight(14)
        self.setMaximumHeight(18)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("AI: per-slice probability (click a cell to jump to that slice); "
                        "hatched red = unlike the images the model was trained on")
        self.align_to = align_to
        self.values = np.full(0, np.nan, dtype=np.float32)
        self.flags = np.zeros(0, dtype=bool)
        self.current = -1
        self._lut = colormap_lut("inferno")

    # -- data -----------------------------------------------------------------
    def reset(self, n: int) -> None:
        self.values = np.full(int(n), np.nan, dtype=np.float32)
        self.flags = np.zeros(int(n), dtype=bool)
        self.update()

    def set_flags(self, start: int, flags: np.ndarray) -> None:
        """Mark slices flagged out-of-distribution (True) from `start` on."""
        stop = min(len(self.flags), start + len(flags))
        if start < stop:
            self.flags[start:stop] = np.asarray(flags, dtype=bool)[: stop - start]
            self.update()

    def flagged(self) -> int:
        return int(np.count_nonzero(self.flags))

    def set_values(self, start: int, values: np.ndarray) -> None:
        stop = min(len(self.values), start + len(values))
        if start < stop:
            self.values[start:stop] = np.asarray(values, dtype=np.float32)[: stop - start]
            self.update()

    def set_current(self, index: int) -> None:
        if index != self.current:
            self.current = int(index)
            self.update()

    def filled(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.values)))

    # -- geometry ---------------------------------------------------------------
    def span(self) -> tuple[float, float]:
        """(left, width) in this widget's coordinates of the cell row."""
        w = self.align_to
        if w is not None and w.isVisible() and w.width() > 0:
            left = self.mapFromGlobal(w.mapToGlobal(QPoint(0, 0))).x()
            return float(left), float(w.width())
        return 0.0, float(self.width())

    def cell_rect(self, i: int) -> QRectF:
        left, width = self.span()
        n = max(1, len(self.values))
        return QRectF(left + i * width / n, 1.0, width / n, self.height() - 2.0)

    def index_at(self, x: float) -> int | None:
        left, width = self.span()
        n = len(self.values)
        if n == 0 or width <= 0 or not left <= x < left + width:
            return None
        return int(min(n - 1, max(0, (x - left) * n // width)))

    # -- Qt -------------------------------------------------------------------------
    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        n = len(self.values)
        if n:
            for i, v in enumerate(self.values):
                if np.isnan(v):
                    colour = QColor(70, 70, 70)
                else:
                    r, g, b = self._lut[int(round(float(np.clip(v, 0, 1)) * 255))]
                    colour = QColor(int(r), int(g), int(b))
                p.fillRect(self.cell_rect(i), colour)
            if self.flags.any():
                hatch = QBrush(QColor(255, 255, 255, 170), Qt.BrushStyle.BDiagPattern)
                for i in np.flatnonzero(self.flags[:n]):
                    r = self.cell_rect(int(i))
                    p.fillRect(r, hatch)
                    p.fillRect(QRectF(r.left(), r.top(), r.width(), max(3.0, r.height() / 4)), QColor(230, 30, 20))
            if 0 <= self.current < n:
                p.setPen(QPen(QColor(0, 200, 255), 2))
                p.drawRect(self.cell_rect(self.current).adjusted(0, 0, -1, -1))
        p.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton:
            i = self.index_at(event.position().x())
            if i is not None:
                self.sig_slice_clicked.emit(i)
                return
        super().mousePressEvent(event)
