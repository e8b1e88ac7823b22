"""The image canvas: paints the rendered slice, plug-in overlays, layers and text.

It renders the view state (STYLE.md pattern 3; geometry from the Qt-free
viewer.state.ViewGeometry) through viewer.display and maps mouse gestures to
state changes: wheel = slice, Ctrl+wheel = zoom, left or middle drag = pan, right
drag = window/level (PS3.3 C.11.2.1.2).  Layers (`add_layer`: the measurement
tools, viewport badges) paint over the image in image coordinates and may take a
left-button gesture first.  Orientation letters, a scale bar in mm (Pixel Spacing,
PS3.3 10.7.1.3) and the corner text are drawn on top.  Decoding and the
automatic window of a series run on a worker (viewer.ui.workers); the previous
image stays up until the new one can be shown with its final window.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QWidget

from medviewer.viewer.display import Renderer, default_window, has_own_window
from medviewer.viewer.state.view import ViewGeometry, pixel_aspect
from medviewer.viewer.ui.imagesource import ImageSource
from medviewer.viewer.display.orientation import EdgeLabels
from medviewer.viewer.ui.canvaslayers import PluginOverlays
from medviewer.viewer.ui.overlays import (CursorValue, corner_text_boxes, corner_texts, orientation_labels,
                                          paint_corner_texts, paint_edge_labels, pixel_value_text)
from medviewer.viewer.ui.qimage import array_to_qimage, screen_image
from medviewer.viewer.ui.scalebar import paint_scale_bar
from medviewer.viewer.ui.state import ViewState, dragged_window
from medviewer.viewer.ui.workers import error_line

log = logging.getLogger("medviewer.ui")

ZOOM_STEP = 1.25


class ImageCanvas(PluginOverlays, QWidget):
    """Displays `state`'s current image; see ARCHITECTURE.md 'UI extension points'."""

    sig_cursor = Signal(object)  # CursorValue | None
    sig_rendered = Signal()
    sig_overlay_opacity = Signal(float)  # last opacity a plug-in chose (saved in settings)

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.renderer = Renderer()
        self.setMouseTracking(True)
        # wheel focus: scrolling the image takes the keys back from a text field
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.setMinimumSize(200, 200)
        self.setAcceptDrops(False)  # the main window handles drops
        self.text_opacity = 1.0
        self.rendered: np.ndarray | None = None  # uint8 grey levels on screen
        self.stored: np.ndarray | None = None
        self.meta: Any = None
        self.ref: Any = None
        self.error: str | None = None
        self.cursor_value: CursorValue | None = None
        self._last_pos: QPointF | None = None
        self._qimage: QImage | None = None
        self._scaled: tuple | None = None   # (x, y, QImage): the visible part, scaled
        self._scaled_key: tuple | None = None
        self._image_windows: dict[Any, Any] = {}
        self._layers: dict[str, Any] = {}      # plug-in overlays (PluginOverlays)
        self.layers: list[Any] = []   # see add_layer
        self._deferred = False        # a refresh waits until the canvas is shown
        self._edge_labels: tuple[Any, EdgeLabels | None] = (None, None)
        self._drag: dict[str, Any] | None = None
        self.source = ImageSource(state, self)
        self.source.sig_ready.connect(self._on_ready)
        state.sig_series_changed.connect(lambda _s: self.refresh())
        state.sig_slice_changed.connect(lambda _i: self.refresh())
        state.sig_window_changed.connect(lambda _w: self.refresh())
        state.sig_auto_window_changed.connect(self._on_auto_window_changed)
        state.sig_scan_finished.connect(lambda _r: self._on_auto_window_changed())
        state.sig_view_changed.connect(self.update)
        state.sig_overlays_changed.connect(self.update)

    # -- windows ---------------------------------------------------------------
    def default_window(self) -> Any:
        """The file's own window (VOI LUT, else first header window); without window
        tags the series' automatic window, or the image's own when the user asked for
        a window per image (View menu) or no series window could be computed."""
        if self.ref is None or self.stored is None:
            return None
        meta, session = self.meta, self.state.session
        series = self.state.series
        if not has_own_window(meta) and series is not None:
            win = session.series_window(series.series_uid)
            if win is not None:
                return win
        key = (self.ref, id(meta))
        if key not in self._image_windows:
            if len(self._image_windows) > 256:
                self._image_windows.clear()
            self._image_windows[key] = default_window(meta, self.stored)
        return self._image_windows[key]

    def effective_window(self) -> Any:
        if self.state.window is not None:
            return self.state.window
        return self.default_window()

    def _on_auto_window_changed(self) -> None:
        if self.ref is not None and self.ref == self.state.ref() and self.stored is not None:
            if self.source.needs_series_window(self.meta):
                self.source.compute_series_window()   # the window so far (or per image) until then
            self._render()
        else:
            self.refresh()

    # -- rendering -------------------------------------------------------------
    def loading(self) -> bool:
        """True while the image the state points at is not on screen with its final
        window yet (decoding, or its series' automatic window is being computed)."""
        return self.state.ref() is not None and (self.state.ref() != self.ref
                                                 or self.source.computing_window())

    def refresh(self) -> None:
        """Show the current slice: at once when it is ready, else when `source` has
        made it ready (the previous image stays up meanwhile)."""
        ref = self.state.ref()
        if ref is not None and not self.isVisible() and self.window().isVisible():
            self._deferred = True      # hidden by the layout (e.g. MPR): rendered when shown
            return
        self._deferred = False
        if ref is None or self.state.pixels is None:
            self.ref = self.stored = self.meta = self.rendered = self._qimage = None
            self.error = None
            self.update()
            return
        if ref != self.ref or (self.stored is None and self.error is None):
            ready = self.source.request(ref)
            if ready is None:
                self.update()  # the corner text follows the state at once
                return
            self.ref, (self.stored, self.meta, self.error) = ref, ready
        self._render()

    def _on_ready(self, ref: Any, stored: Any, meta: Any, error: str | None) -> None:
        if ref == self.state.ref():
            self.ref, self.stored, self.meta, self.error = ref, stored, meta, error
            self._render()

    def _render(self) -> None:
        if self.stored is None:
            self.rendered = self._qimage = None
        else:
            try:
                grey = self.renderer.render(self.stored, self.meta, self.effective_window())
                self.rendered = np.ascontiguousarray(grey)
                self._qimage = array_to_qimage(self.rendered)
            except Exception as exc:
                self.rendered = self._qimage = None
                self.error = error_line(exc, "render")
        self._update_cursor_value()
        self.update()
        self.sig_rendered.emit()

    def shutdown(self, msecs: int = 3000) -> None:
        """Wait for a decode in flight (the window is closing)."""
        self.source.shutdown(msecs)

    # -- geometry (viewer.state.ViewGeometry) ------------------------------------------
    def image_size(self) -> tuple[int, int]:
        """(cols, rows) of the displayed image, or (0, 0)."""
        if self.rendered is None:
            return 0, 0
        return int(self.rendered.shape[1]), int(self.rendered.shape[0])

    def aspect(self) -> float:
        """Displayed height of a pixel relative to its width (row / column spacing)."""
        if self.meta is None or self.rendered is None:
            return 1.0
        return pixel_aspect(getattr(self.meta, "pixel_spacing", None))

    def view_geometry(self) -> ViewGeometry:
        cols, rows = self.image_size()
        return ViewGeometry(self.width(), self.height(), cols, rows, self.aspect(),
                            self.state.zoom, self.state.pan)

    def fit_scale(self) -> float:
        return self.view_geometry().fit_scale()

    def scale(self) -> float:
        """Screen pixels per image column (a row is `scale() * aspect()` high)."""
        return self.view_geometry().scale()

    def image_to_screen(self, x: float, y: float) -> QPointF:
        return QPointF(*self.view_geometry().image_to_screen(x, y))

    def screen_to_image(self, pos: QPointF) -> tuple[float, float]:
        return self.view_geometry().screen_to_image(pos.x(), pos.y())

    def image_rect(self) -> QRectF:
        return QRectF(*self.view_geometry().image_rect())

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the image point under `anchor` (default: centre) fixed."""
        if self.rendered is None:
            return
        if anchor is None:
            offset = (0.0, 0.0)
        else:
            offset = (anchor.x() - self.width() / 2, anchor.y() - self.height() / 2)
        self.state.zoom_by(factor, self.scale(), offset)

    def grab_view(self) -> QImage:
        """The view as the user sees it, overlays and text included."""
        return self.grab().toImage()

    def render_view(self, anonymize: bool = False, native: bool = False) -> QImage:
        """The view for export: as on screen, or (`native`) at the image's own
        resolution (one image pixel per output pixel, rows stretched by the pixel
        aspect; the image, overlays and rulers without corner text, which would cover
        a small image); `anonymize` leaves the patient's name, ID and birth date out."""
        if native and self._qimage is not None:
            cols, rows = self.image_size()
            height = max(1, int(round(rows * self.aspect())))
            geo = ViewGeometry(cols, height, cols, rows, self.aspect(), 1.0, (0.0, 0.0))
            img = QImage(cols, height, QImage.Format.Format_RGB32)
        else:
            geo = self.view_geometry()
            ratio = self.devicePixelRatioF()
            img = QImage(int(round(self.width() * ratio)), int(round(self.height() * ratio)),
                         QImage.Format.Format_RGB32)
            img.setDevicePixelRatio(ratio)
        p = QPainter(img)
        self._paint(p, geo, anonymize, text=not (native and self._qimage is not None))
        p.end()
        return img

    # -- orientation ----------------------------------------------------------------
    def edge_labels(self) -> EdgeLabels | None:
        """Orientation letters of the image on screen (viewer.ui.overlays.orientation_labels);
        the display neither rotates nor flips, so they map straight to the view's edges."""
        if self._edge_labels[0] != self.ref or self.ref is None:
            self._edge_labels = (self.ref, orientation_labels(self.state.series, self.ref))
        return self._edge_labels[1]

    # -- layers ------------------------------------------------------------------
    def add_layer(self, layer: Any) -> None:
        """Paint `layer` over the image and offer it mouse gestures.  A layer has
        ``paint(painter, geo, canvas)`` and may have ``press(event, geo) -> bool`` (True:
        it takes this left-button gesture: its ``move(event, geo)`` and
        ``release(event, geo)`` follow), ``hover(event, geo)`` and
        ``double_click(event, geo) -> bool``."""
        self.layers.append(layer)
        self.update()

    def mm_per_px(self, geo: ViewGeometry | None = None) -> float | None:
        """Millimetres per screen pixel down the view (row spacing over the displayed
        row height; None without Pixel Spacing)."""
        spacing = getattr(self.meta, "pixel_spacing", None) if self.meta is not None else None
        if not spacing or self.rendered is None:
            return None
        return float(spacing[0]) / (geo or self.view_geometry()).scales()[1]

    # -- cursor value -------------------------------------------------------------
    def _update_cursor_value(self, pos: QPointF | None = None) -> None:
        if pos is None:
            pos = self._last_pos
        self.cursor_value = None
        if pos is not None and self.stored is not None:
            x, y = self.screen_to_image(pos)
            col, row = int(math.floor(x)), int(math.floor(y))
            rows, cols = self.stored.shape[:2]
            if 0 <= row < rows and 0 <= col < cols:
                try:
                    text = pixel_value_text(self.stored, self.meta, col, row)
                except Exception:
                    text = "?"
                self.cursor_value = CursorValue(col, row, text)
        self.sig_cursor.emit(self.cursor_value)

    # -- painting --------------------------------------------------------------------
    def paintEvent(self, _event: Any) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        self._paint(p, self.view_geometry())
        p.end()

    def _paint(self, p: QPainter, geo: ViewGeometry, anonymize: bool = False, text: bool = True) -> None:
        p.fillRect(QRectF(0, 0, geo.width, geo.height), Qt.GlobalColor.black)
        if self._qimage is not None:
            rect = QRectF(*geo.image_rect())
            # the visible part scaled once per image and view geometry (viewer.ui.qimage):
            # a repaint (every mouse move) is then a plain copy
            key = (self._qimage.cacheKey(), geo.width, geo.height, geo.image_rect())
            if self._scaled_key != key:
                self._scaled, self._scaled_key = screen_image(self.rendered, geo), key
            if self._scaled is not None:
                p.drawImage(QPointF(self._scaled[0], self._scaled[1]), self._scaled[2])
            for name, layer in self._layers.items():
                flags = self.state.viewport.overlay(name)
                if flags.visible and layer.ref == self.ref \
                        and layer.image.width() == self._qimage.width() \
                        and layer.image.height() == self._qimage.height():
                    p.setOpacity(flags.opacity)
                    p.drawImage(rect, layer.image)
            p.setOpacity(1.0)
            for layer in self.layers:
                p.save()
                layer.paint(p, geo, self)
                p.restore()
        elif self.error and self.ref == self.state.ref():
            p.setPen(QColor(255, 120, 120))
            p.drawText(QRectF(0, 0, geo.width, geo.height),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       f"Cannot display this image:\n{self.error}")
        texts: dict[str, list[str]] = {}
        if text and self.state.show_text and self.state.series is not None:
            texts = corner_texts(self.state, self.state.header(), self.effective_window(),
                                 geo.scale(), None if anonymize else self.cursor_value,
                                 meta=self.meta, anonymize=anonymize)
        if text and self.state.show_text and self._qimage is not None:
            labels = self.edge_labels()
            if labels is not None:
                paint_edge_labels(p, geo.edge_anchors(), labels.as_dict(), self.text_opacity,
                                  width=geo.width, height=geo.height, avoid=self.occupied(p, geo, texts))
            paint_scale_bar(p, geo.width, geo.height, self.mm_per_px(geo), self.text_opacity)
        if texts:
            paint_corner_texts(p, int(geo.width), int(geo.height), texts, self.text_opacity)

    def occupied(self, p: QPainter, geo: ViewGeometry, texts: dict[str, list[str]]) -> list[QRectF]:
        """Screen areas the orientation letters keep clear of: the corner text and what
        layers report (`layer.occupied(p, geo, canvas)`, e.g. the badges)."""
        boxes = corner_text_boxes(p, texts, geo.width, geo.height)
        for layer in self.layers:
            occupied = getattr(layer, "occupied", None)
            if occupied is not None:
                try:
                    boxes += occupied(p, geo, self)
                except Exception:   # a layer must never break painting
                    continue
        return boxes

    # -- mouse -------------------------------------------------------------------
    def wheelEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        delta = event.angleDelta().y()
        if not delta:
            return
        if not self.hasFocus():   # scrolling the image gives the keys back to it (viewer.ui.focus)
            self.setFocus(Qt.FocusReason.MouseFocusReason)
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom_by(ZOOM_STEP if delta > 0 else 1 / ZOOM_STEP, event.position())
        else:
            self.state.step(-1 if delta > 0 else 1)
        event.accept()

    def mousePressEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        pos = event.position()
        btn = event.button()
        if btn == Qt.MouseButton.RightButton:
            win = self.effective_window()
            if win is None:
                return
            self._drag = {"mode": "window", "start": pos, "win": win}
        elif btn == Qt.MouseButton.LeftButton and self.rendered is not None and (
                layer := self._layer_taking(event)) is not None:
            self._drag = {"mode": "layer", "layer": layer}
        elif btn in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            if self.state.zoom is None:
                self.state.set_zoom(self.fit_scale())
            self._drag = {"mode": "pan", "start": pos, "pan": self.state.pan}
        event.accept()

    def mouseMoveEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        pos = event.position()
        self._last_pos = pos
        d = self._drag
        if d is None:
            self._update_cursor_value(pos)
            for layer in self.layers:
                if hasattr(layer, "hover"):
                    layer.hover(event, self.view_geometry())
            self.update()
            return
        if d["mode"] == "window":
            self.state.set_window(dragged_window(d["win"], pos.x() - d["start"].x(),
                                                 pos.y() - d["start"].y()))
        elif d["mode"] == "pan":
            px, py = d["pan"]
            self.state.set_pan(px + pos.x() - d["start"].x(), py + pos.y() - d["start"].y())
        elif d["mode"] == "layer":
            d["layer"].move(event, self.view_geometry())
            self.update()

    def mouseReleaseEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        d, self._drag = self._drag, None
        if d and d["mode"] == "layer":
            d["layer"].release(event, self.view_geometry())
        self.update()
        event.accept()

    def mouseDoubleClickEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if event.button() != Qt.MouseButton.LeftButton:
            return
        geo = self.view_geometry()
        if any(hasattr(layer, "double_click") and layer.double_click(event, geo) for layer in self.layers):
            return
        self.state.set_zoom(None)

    def _layer_taking(self, event: Any) -> Any:
        geo = self.view_geometry()
        return next((layer for layer in reversed(self.layers)
                     if hasattr(layer, "press") and layer.press(event, geo)), None)

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if self._deferred:
            self.refresh()

    def keyPressEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if any(hasattr(layer, "key") and layer.key(event) for layer in self.layers):
            event.accept()
            return
        super().keyPressEvent(event)

    def leaveEvent(self, _event: Any) -> None:  # noqa: N802 - Qt override
        self._last_pos = None
        self._update_cursor_value(None)
        self.update()
