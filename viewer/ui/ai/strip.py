"""Per-slice probability strip placed under the slice scroller (one cell per slice).

It shows one class, says which (a caption over the cells, and a tooltip per cell with
that slice's probability), and is filled from the stored per-slice probabilities
(viewer.state.ai.StripView), so it follows the panel's Class selector at once.
Slices the out-of-distribution check flagged are hatched and carry a red bar on top,
whatever their probability colour, so a run of unusual slices is seen at a glance.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QHelpEvent, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QToolTip, QWidget

from medviewer.engine.overlay import colormap_lut
from medviewer.viewer.state.ai import StripView

CELL_HEIGHT = 14
HELP = ("AI: per-slice probability (click a cell to jump to that slice); "
        "hatched red = unlike the images the model was trained on")


class SliceStrip(QWidget):
    """Cells coloured by one class's probability; grey until a slice's result arrives.

    Cells span the x-range of `align_to` (the slice slider) so that cell i sits
    under slider position i.  Clicking a cell emits sig_slice_clicked(i).
    """

    sig_slice_clicked = Signal(int)

    def __init__(self, align_to: QWidget | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ai_slice_strip")
        font = QFont(self.font())
        font.setPointSize(max(7, font.pointSize() - 1))
        self.setFont(font)
        self._caption_h = self.fontMetrics().height()
        self.setFixedHeight(self._caption_h + CELL_HEIGHT + 3)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(HELP)
        self.align_to = align_to
        self.values = np.full(0, np.nan, dtype=np.float32)
        self.flags = np.zeros(0, dtype=bool)    # slices flagged out-of-distribution
        self.view: StripView | None = None
        self.current = -1
        self._lut = colormap_lut("inferno")

    # -- data -----------------------------------------------------------------
    @property
    def caption(self) -> str:
        """Which class the cells show (empty before any result)."""
        return self.view.label() if self.view is not None else ""

    def reset(self, n: int) -> None:
        self.values = np.full(int(n), np.nan, dtype=np.float32)
        self.flags = np.zeros(int(n), dtype=bool)
        self.view = None
        self.update()

    def set_view(self, view: StripView | None, n: int) -> None:
        """Show `view` (one class's per-slice values) for a series of `n` slices."""
        self.view = view
        self.values = (np.asarray(view.values, np.float32).copy() if view is not None
                       else np.full(int(n), np.nan, np.float32))
        flags = view.flags if view is not None else None
        self.flags = (np.asarray(flags, bool).copy() if flags is not None and len(flags) == len(self.values)
                      else np.zeros(len(self.values), bool))
        self.update()

    def flagged(self) -> int:
        return int(np.count_nonzero(self.flags))

    def set_current(self, index: int) -> None:
        if index != self.current:
            self.current = int(index)
            self.update()

    def filled(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.values)))

    def tooltip_at(self, x: float) -> str:
        i = self.index_at(x)
        if i is None:
            return HELP
        tip = self.view.tooltip(i) if self.view is not None else f"slice {i + 1}: not analysed"
        return f"{tip}\n{self.caption}" if self.caption else tip

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
        return QRectF(left + i * width / n, self._caption_h + 1.0, width / n, CELL_HEIGHT)

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
        left, width = self.span()
        if self.caption:
            p.setPen(self.palette().windowText().color())
            p.drawText(QRectF(left, 0, width, self._caption_h),
                       Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, self.caption)
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

    def event(self, event: QEvent) -> bool:  # noqa: D102 - Qt override
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            QToolTip.showText(event.globalPos(), self.tooltip_at(event.pos().x()), self)
            return True
        return super().event(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton:
            i = self.index_at(event.position().x())
            if i is not None:
                self.sig_slice_clicked.emit(i)
                return
        super().mousePressEvent(event)
