"""The image canvas: paints the rendered slice, plug-in overlays, rulers and text.

It renders the view state (STYLE.md pattern 3) through viewer.display and maps
mouse gestures to state changes: wheel = slice, Ctrl+wheel = zoom, left or
middle drag = pan, right drag = window/level (PS3.3 C.11.2.1.2), ruler tool =
distance in mm from Pixel Spacing (PS3.3 10.7.1.3: row spacing, column spacing).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QThreadPool, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QWidget

from medviewer.viewer.ui.overlays import CursorValue, corner_texts, paint_corner_texts, pixel_value_text
from medviewer.viewer.ui.qimage import array_to_qimage
from medviewer.viewer.ui.state import ViewState, dragged_window
from medviewer.viewer.ui.workers import DecodeJob, DecodeSignals

log = logging.getLogger("medviewer.ui")

ZOOM_STEP = 1.25


@dataclass
class _Overlay:
    rgba: np.ndarray
    image: QImage
    opacity: float
    ref: Any
    visible: bool = True


class ImageCanvas(QWidget):
    """Displays `state`'s current image; see ARCHITECTURE.md 'UI extension points'."""

    sig_cursor = Signal(object)  # CursorValue | None
    sig_rendered = Signal()
    sig_overlay_opacity = Signal(float)  # last opacity a plug-in chose (saved in settings)

    def __init__(self, state: ViewState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        from medviewer.viewer.display import Renderer

        self.state = state
        self.renderer = Renderer()
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(200, 200)
        self.setAcceptDrops(False)  # the main window handles drops
        self.text_opacity = 1.0
        self.default_overlay_opacity = 0.5
        self.rendered: np.ndarray | None = None  # uint8 grey levels on screen
        self.stored: np.ndarray | None = None
        self.meta: Any = None
        self.ref: Any = None
        self.error: str | None = None
        self.cursor_value: CursorValue | None = None
        self._qimage: QImage | None = None
        self._scaled: QImage | None = None  # smooth-downscaled copy for zoom < 1
        self._scaled_key: tuple | None = None
        self._default_windows: dict[Any, Any] = {}
        self._overlays: dict[str, _Overlay] = {}
        self._rulers: dict[Any, list[tuple[QPointF, QPointF]]] = {}
        self._drag: dict[str, Any] | None = None
        self._pending: set[Any] = set()
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1)
        self._decoded = DecodeSignals(self)
        self._decoded.sig_done.connect(self._on_decoded)
        state.sig_series_changed.connect(lambda _s: self.refresh())
        state.sig_slice_changed.connect(lambda _i: self.refresh())
        state.sig_window_changed.connect(lambda _w: self.refresh())
        state.sig_view_changed.connect(self.update)
        state.sig_overlays_changed.connect(self.update)

    # -- rendering -------------------------------------------------------------
    def default_window(self) -> Any:
        """The file's own window (first header window, else automatic)."""
        from medviewer.viewer.display import default_window

        if self.ref is None or self.stored is None:
            return None
        key = (self.ref, id(self.meta))
        if key not in self._default_windows:
            if len(self._default_windows) > 256:
                self._default_windows.clear()
            self._default_windows[key] = default_window(self.meta, self.stored)
        return self._default_windows[key]

    def effective_window(self) -> Any:
        if self.state.window is not None:
            return self.state.window
        return self.default_window()

    def loading(self) -> bool:
        """True while the image the state points at is still being decoded."""
        return self.state.ref() is not None and self.state.ref() != self.ref

    def refresh(self) -> None:
        """Show the current slice: render at once when decoded, else decode it
        in the background (the previous image stays up meanwhile)."""
        ref = self.state.ref()
        pixels = self.state.pixels
        if ref is None or pixels is None:
            self.ref = self.stored = self.meta = self.rendered = self._qimage = None
            self.error = None
            self.update()
            return
        if ref != self.ref or (self.stored is None and self.error is None):
            try:
                cached = ref in pixels
            except TypeError:
                cached = False
            if not cached:
                if ref not in self._pending:
                    self._pending.add(ref)
                    self._pool.start(DecodeJob(self._decoded, pixels, ref))
                self.update()  # the corner text follows the state at once
                return
            try:
                self._set_image(ref, pixels.get(ref), pixels.meta(ref), None)
            except Exception as exc:
                self._set_image(ref, None, None, exc)
        self._render()

    def _on_decoded(self, ref: Any, stored: Any, meta: Any, error: Any) -> None:
        self._pending.discard(ref)
        if ref != self.state.ref():
            return  # stale: the user moved on (STYLE.md pattern 5)
        self._set_image(ref, stored, meta, error)
        self._render()

    def _set_image(self, ref: Any, stored: Any, meta: Any, error: Any) -> None:
        self.ref, self.stored, self.meta = ref, stored, meta
        self.error = None
        if error is not None:
            from medviewer.viewer.errors import MedviewerError

            if not isinstance(error, MedviewerError):
                log.error("decode failed: %s: %s", type(error).__name__, error)
            self.error = str(error) or type(error).__name__

    def _render(self) -> None:
        if self.stored is None:
            self.rendered = self._qimage = None
        else:
            try:
                grey = self.renderer.render(self.stored, self.meta, self.effective_window())
                self.rendered = np.ascontiguousarray(grey)
                self._qimage = array_to_qimage(self.rendered)
            except Exception as exc:
                from medviewer.viewer.errors import MedviewerError

                if not isinstance(exc, MedviewerError):
                    log.exception("render failed")
                self.rendered = self._qimage = None
                self.error = str(exc) or type(exc).__name__
        self._update_cursor_value()
        self.update()
        self.sig_rendered.emit()

    def shutdown(self, msecs: int = 3000) -> None:
        """Wait for a decode in flight (the window is closing)."""
        self._pool.waitForDone(msecs)

    # -- geometry ----------------------------------------------------------------
    def image_size(self) -> tuple[int, int]:
        """(cols, rows) of the displayed image, or (0, 0)."""
        if self.rendered is None:
            return 0, 0
        return int(self.rendered.shape[1]), int(self.rendered.shape[0])

    def aspect(self) -> float:
        """Displayed height of a pixel relative to its width: row spacing / column
        spacing (PS3.3 C.7.6.2.1.1 Pixel Spacing; 1.0 when unknown or implausible),
        so that anisotropic pixels are shown with their true shape."""
        spacing = getattr(self.meta, "pixel_spacing", None) if self.meta is not None else None
        if not spacing or self.rendered is None:
            return 1.0
        ratio = float(spacing[0]) / float(spacing[1]) if spacing[1] else 1.0
        return ratio if 0.1 <= ratio <= 10.0 else 1.0

    def fit_scale(self) -> float:
        cols, rows = self.image_size()
        if not cols or not rows:
            return 1.0
        return max(1e-3, min(self.width() / cols, self.height() / (rows * self.aspect())))

    def scale(self) -> float:
        """Screen pixels per image column (a row is `scale() * aspect()` high)."""
        return self.state.zoom if self.state.zoom is not None else self.fit_scale()

    def _scales(self) -> tuple[float, float]:
        s = self.scale()
        return s, s * self.aspect()

    def _origin(self) -> QPointF:
        cols, rows = self.image_size()
        sx, sy = self._scales()
        px, py = self.state.pan
        return QPointF(self.width() / 2 + px - sx * cols / 2, self.height() / 2 + py - sy * rows / 2)

    def image_to_screen(self, x: float, y: float) -> QPointF:
        o, (sx, sy) = self._origin(), self._scales()
        return QPointF(o.x() + x * sx, o.y() + y * sy)

    def screen_to_image(self, pos: QPointF) -> tuple[float, float]:
        o, (sx, sy) = self._origin(), self._scales()
        return (pos.x() - o.x()) / sx, (pos.y() - o.y()) / sy

    def image_rect(self) -> QRectF:
        cols, rows = self.image_size()
        o, (sx, sy) = self._origin(), self._scales()
        return QRectF(o.x(), o.y(), cols * sx, rows * sy)

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        """Zoom keeping the image point under `anchor` (default: centre) fixed."""
        if self.rendered is None:
            return
        anchor = anchor or QPointF(self.width() / 2, self.height() / 2)
        ix, iy = self.screen_to_image(anchor)
        self.state.zoom = max(0.05, min(32.0, self.scale() * factor))
        cols, rows = self.image_size()
        sx, sy = self._scales()
        px = anchor.x() - self.width() / 2 - sx * (ix - cols / 2)
        py = anchor.y() - self.height() / 2 - sy * (iy - rows / 2)
        self.state.set_pan(px, py)

    # -- overlays (extension point) ------------------------------------------
    def set_overlay(self, name: str, rgba: np.ndarray | None, opacity: float | None = None,
                    ref: Any = None) -> None:
        """Register an RGBA image on the pixel grid of `ref` (default: current).

        `opacity` None uses `default_overlay_opacity` (the saved setting)."""
        if rgba is None:
            self._overlays.pop(name, None)
            self.update()
            return
        rgba = np.asarray(rgba)
        cols, rows = self.image_size()
        if rgba.ndim != 3 or rgba.shape[2] != 4:
            raise ValueError(f"overlay {name!r}: expected (rows, cols, 4) RGBA, got {rgba.shape}")
        target = ref if ref is not None else self.ref
        if target == self.ref and (rgba.shape[0], rgba.shape[1]) != (rows, cols):
            raise ValueError(
                f"overlay {name!r}: shape {rgba.shape[:2]} does not match image {(rows, cols)}")
        if rgba.dtype != np.uint8:
            rgba = np.clip(rgba, 0, 255).astype(np.uint8)
        visible = self._overlays[name].visible if name in self._overlays else True
        if opacity is None:
            opacity = self.default_overlay_opacity
        elif opacity != self.default_overlay_opacity:
            self.default_overlay_opacity = float(min(1.0, max(0.0, opacity)))
            self.sig_overlay_opacity.emit(self.default_overlay_opacity)
        self._overlays[name] = _Overlay(rgba, array_to_qimage(rgba),
                                        float(min(1.0, max(0.0, opacity))), target, visible)
        self.update()

    def clear_overlays(self) -> None:
        self._overlays.clear()
        self.update()

    def overlay_names(self) -> list[str]:
        return list(self._overlays)

    def set_overlay_visible(self, name: str, visible: bool) -> None:
        if name in self._overlays:
            self._overlays[name].visible = bool(visible)
            self.update()

    def set_overlay_opacity(self, name: str, opacity: float) -> None:
        if name in self._overlays:
            self._overlays[name].opacity = float(min(1.0, max(0.0, opacity)))
            self.update()

    def grab_view(self) -> QImage:
        """The view as the user sees it, overlays and text included."""
        return self.grab().toImage()

    # -- rulers ------------------------------------------------------------------
    def rulers(self) -> list[tuple[QPointF, QPointF]]:
        return self._rulers.get(self.ref, [])

    def ruler_length(self, a: QPointF, b: QPointF) -> tuple[float, str]:
        """Length between image points; mm when Pixel Spacing is known, else px."""
        dx, dy = b.x() - a.x(), b.y() - a.y()
        spacing = getattr(self.meta, "pixel_spacing", None)
        if spacing:
            row_mm, col_mm = float(spacing[0]), float(spacing[1])
            return math.hypot(dx * col_mm, dy * row_mm), "mm"
        return math.hypot(dx, dy), "px"

    def clear_rulers(self) -> None:
        self._rulers.clear()
        self.update()

    # -- cursor value -------------------------------------------------------------
    def _update_cursor_value(self, pos: QPointF | None = None) -> None:
        if pos is None:
            pos = getattr(self, "_last_pos", None)
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
        p.fillRect(self.rect(), Qt.GlobalColor.black)
        if self._qimage is not None:
            rect = self.image_rect()
            shrink = min(self._scales()) < 1.0
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, shrink)
            if shrink:  # smooth downscale once per image/size, not per repaint
                size = (round(rect.width()), round(rect.height()))
                key = (self._qimage.cacheKey(), size)
                if self._scaled_key != key:
                    self._scaled = self._qimage.scaled(
                        size[0], size[1], Qt.AspectRatioMode.IgnoreAspectRatio,
                        Qt.TransformationMode.SmoothTransformation)
                    self._scaled_key = key
                p.drawImage(QRectF(rect.topLeft(), self._scaled.size().toSizeF()), self._scaled)
            else:
                p.drawImage(rect, self._qimage)
            for ov in self._overlays.values():
                if ov.visible and ov.ref == self.ref and ov.image.width() == self._qimage.width() \
                        and ov.image.height() == self._qimage.height():
                    p.setOpacity(ov.opacity)
                    p.drawImage(rect, ov.image)
            p.setOpacity(1.0)
            self._paint_rulers(p)
        elif self.error and self.ref == self.state.ref():
            p.setPen(QColor(255, 120, 120))
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       f"Cannot display this image:\n{self.error}")
        if self.state.show_text and self.state.series is not None:
            texts = corner_texts(self.state, self.state.header(), self.effective_window(),
                                 self.scale(), self.cursor_value)
            paint_corner_texts(p, self.width(), self.height(), texts, self.text_opacity)
        p.end()

    def _paint_rulers(self, p: QPainter) -> None:
        lines = list(self.rulers())
        if self._drag and self._drag.get("mode") == "ruler" and self._drag.get("b") is not None:
            lines.append((self._drag["a"], self._drag["b"]))
        pen = QPen(QColor(255, 220, 0), 1.5)
        for a, b in lines:
            sa, sb = self.image_to_screen(a.x(), a.y()), self.image_to_screen(b.x(), b.y())
            p.setPen(pen)
            p.drawLine(sa, sb)
            for pt in (sa, sb):
                p.drawEllipse(pt, 3, 3)
            length, unit = self.ruler_length(a, b)
            p.drawText(sb + QPointF(6, -6), f"{length:.1f} {unit}")

    # -- mouse -------------------------------------------------------------------
    def wheelEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        delta = event.angleDelta().y()
        if not delta:
            return
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
        elif btn == Qt.MouseButton.LeftButton and self.state.ruler_mode and self.rendered is not None:
            x, y = self.screen_to_image(pos)
            self._drag = {"mode": "ruler", "a": QPointF(x, y), "b": None}
        elif btn in (Qt.MouseButton.LeftButton, Qt.MouseButton.MiddleButton):
            if self.state.zoom is None:
                self.state.zoom = self.fit_scale()
            self._drag = {"mode": "pan", "start": pos, "pan": self.state.pan}
        event.accept()

    def mouseMoveEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        pos = event.position()
        self._last_pos = pos
        d = self._drag
        if d is None:
            self._update_cursor_value(pos)
            self.update()
            return
        if d["mode"] == "window":
            self.state.set_window(dragged_window(d["win"], pos.x() - d["start"].x(),
                                                 pos.y() - d["start"].y()))
        elif d["mode"] == "pan":
            px, py = d["pan"]
            self.state.set_pan(px + pos.x() - d["start"].x(), py + pos.y() - d["start"].y())
        elif d["mode"] == "ruler":
            x, y = self.screen_to_image(pos)
            d["b"] = QPointF(x, y)
            self.update()

    def mouseReleaseEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        d, self._drag = self._drag, None
        if d and d["mode"] == "ruler" and d.get("b") is not None and self.ref is not None:
            if (d["b"] - d["a"]).manhattanLength() > 0.5:
                self._rulers.setdefault(self.ref, []).append((d["a"], d["b"]))
        self.update()
        event.accept()

    def mouseDoubleClickEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton and not self.state.ruler_mode:
            self.state.set_zoom(None)

    def leaveEvent(self, _event: Any) -> None:  # noqa: N802 - Qt override
        self._last_pos = None
        self._update_cursor_value(None)
        self.update()
