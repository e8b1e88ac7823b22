"""One viewport: the canvas, its slice scroller with the slice number, and a strip holder.

It binds to one `ViewState` (one Qt-free `ViewportState`), so a layout of several
viewports is several of these over one `ViewSession` (viewer.ui.viewgrid).  A press
or the wheel in it makes it the active viewport (`sig_activated`); the active one
has a highlighted border when more than one is shown.  A series dragged from the
browser (`SERIES_MIME`) or files dropped on it are announced by signal.  Slices
around the shown one are prefetched (decoded in the PixelStore's background threads).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

from medviewer.viewer.ui.canvas import ImageCanvas
from medviewer.viewer.ui.state import ViewState

log = logging.getLogger("medviewer.ui")

PREFETCH_RADIUS = 3
SERIES_MIME = "application/x-medviewer-series"
ACTIVE_COLOUR = QColor(255, 176, 32)
BORDER = 2


def dropped_series_uid(mime: Any) -> str | None:
    """The Series Instance UID a drag from the series browser carries."""
    if mime is None or not mime.hasFormat(SERIES_MIME):
        return None
    return bytes(mime.data(SERIES_MIME)).decode("ascii", "replace").strip() or None


class Viewport(QWidget):
    """Canvas + slice slider + 'i/n' label + a place for per-slice strips (AI)."""

    sig_activated = Signal(object)               # this viewport
    sig_series_dropped = Signal(object, str)     # this viewport, Series Instance UID
    sig_paths_dropped = Signal(object, list)     # this viewport, [Path]

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.highlight = False
        self.setAcceptDrops(True)
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
        self._activation = _Activation(self)
        for w in (self.canvas, self.slider):
            w.installEventFilter(self._activation)

    @property
    def viewport_state(self) -> Any:
        return self.state.viewport

    # -- active border ----------------------------------------------------------------
    def set_highlight(self, on: bool, framed: bool = True) -> None:
        """`framed`: a border (several viewports shown), highlighted when `on` (active)."""
        m = BORDER if framed else 0
        if self.layout().contentsMargins().left() != m:
            self.layout().setContentsMargins(m, m, m, m)
        if on != self.highlight:
            self.highlight = on
        self.update()

    def paintEvent(self, _event: Any) -> None:  # noqa: N802 - Qt override
        if self.layout().contentsMargins().left() == 0:
            return
        p = QPainter(self)
        colour = ACTIVE_COLOUR if self.highlight else QColor(45, 45, 45)
        p.setPen(QPen(colour, BORDER))
        p.drawRect(self.rect().adjusted(1, 1, -1, -1))
        p.end()

    # -- strip ----------------------------------------------------------------------
    def set_slice_strip(self, widget: QWidget | None) -> None:
        """Place a per-slice widget under the slice scroller (None removes it)."""
        if self._strip is not None and self._strip is not widget:
            self._strip_holder.removeWidget(self._strip)
            if self._strip.parent() is self:
                self._strip.setParent(None)
        self._strip = widget
        if widget is not None:
            self._strip_holder.addWidget(widget)
            if hasattr(widget, "align_to"):
                widget.align_to = self.slider     # its cells sit under this scroller
            widget.update()

    def slice_strip(self) -> QWidget | None:
        return self._strip

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
        if series is not None and n and self.state.pixels is not None and self.isVisible():
            lo, hi = max(0, index - PREFETCH_RADIUS), min(n, index + PREFETCH_RADIUS + 1)
            try:
                self.state.pixels.prefetch(series.items[lo:hi])
            except Exception:
                log.debug("prefetch failed", exc_info=True)

    # -- drops ----------------------------------------------------------------------
    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        mime = event.mimeData()
        if dropped_series_uid(mime) or (mime.hasUrls() and any(u.isLocalFile() for u in mime.urls())):
            event.acceptProposedAction()

    def dragMoveEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.dragEnterEvent(event)

    def dropEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        mime = event.mimeData()
        uid = dropped_series_uid(mime)
        if uid:
            event.acceptProposedAction()
            self.sig_series_dropped.emit(self, uid)
            return
        paths = [Path(u.toLocalFile()) for u in mime.urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.sig_paths_dropped.emit(self, paths)


class _Activation(QObject):
    """A press, the wheel or focus in the canvas or scroller activates the viewport."""

    TYPES = (QEvent.Type.MouseButtonPress, QEvent.Type.Wheel, QEvent.Type.FocusIn)

    def __init__(self, viewport: Viewport) -> None:
        super().__init__(viewport)
        self.viewport = viewport

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() in self.TYPES:
            self.viewport.sig_activated.emit(self.viewport)
        return False
