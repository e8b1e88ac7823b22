"""One viewport: the canvas, its slice scroller with the slice number, and a strip holder.

It binds to one `ViewState` (one Qt-free `ViewportState`), so a layout of several
viewports is several of these over one `ViewSession`.  Slices around the shown one
are prefetched (decoded in the PixelStore's background threads).
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from medviewer.viewer.ui.canvas import ImageCanvas
from medviewer.viewer.ui.state import ViewState

log = logging.getLogger("medviewer.ui")

PREFETCH_RADIUS = 3


class Viewport(QWidget):
    """Canvas + slice slider + 'i/n' label + a place for per-slice strips (AI)."""

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.canvas = ImageCanvas(state)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("slice_slider")
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slice_label = QLabel("")
        self._strip_holder = QVBoxLayout()
        self._strip_holder.setContentsMargins(0, 0, 0, 0)
        self._strip: QWidget | None = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.canvas, 1)
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.slice_label)
        lay.addLayout(row)
        lay.addLayout(self._strip_holder)
        self.slider.valueChanged.connect(state.set_slice)
        state.sig_series_changed.connect(lambda _s: self._sync_slider())
        state.sig_slice_changed.connect(self._on_slice_changed)

    def set_slice_strip(self, widget: QWidget | None) -> None:
        """Place a per-slice widget under the slice scroller (None removes it)."""
        if self._strip is not None:
            self._strip_holder.removeWidget(self._strip)
            self._strip.setParent(None)
        self._strip = widget
        if widget is not None:
            self._strip_holder.addWidget(widget)
            widget.show()

    def _sync_slider(self) -> None:
        n = self.state.count()
        self.slider.blockSignals(True)
        if self.slider.maximum() != max(0, n - 1):
            self.slider.setRange(0, max(0, n - 1))
        self.slider.setValue(self.state.index)
        self.slider.blockSignals(False)
        self.slice_label.setText(f"{self.state.index + 1}/{n}" if n else "")

    def _on_slice_changed(self, index: int) -> None:
        self._sync_slider()
        series, n = self.state.series, self.state.count()
        if series is not None and n and self.state.pixels is not None:
            lo, hi = max(0, index - PREFETCH_RADIUS), min(n, index + PREFETCH_RADIUS + 1)
            try:
                self.state.pixels.prefetch(series.items[lo:hi])
            except Exception:
                log.debug("prefetch failed", exc_info=True)
