"""Plug-in overlays of the image canvas (the extension point of ARCHITECTURE.md).

A plug-in (e.g. the AI panels' Grad-CAM) registers an RGBA image on the pixel grid of
one image (`set_overlay(name, rgba, opacity, ref)`); the canvas draws it only while
that image is displayed, under every zoom and pan, so stale results never paint over
another slice or series (STYLE.md pattern 5).  Visibility and opacity are view state
(ViewportState.overlays).  `PluginOverlays` is mixed into viewer.ui.canvas.ImageCanvas,
which holds `_layers` and `state` and draws the layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtGui import QImage

from medviewer.viewer.ui.qimage import array_to_qimage


@dataclass
class _Layer:
    """A plug-in overlay: RGBA on the pixel grid of the image `ref`."""

    rgba: np.ndarray
    image: QImage
    ref: Any


class PluginOverlays:
    """The canvas' plug-in overlay API (see ImageCanvas)."""

    @property
    def default_overlay_opacity(self) -> float:
        return self.state.viewport.default_overlay_opacity

    @default_overlay_opacity.setter
    def default_overlay_opacity(self, value: float) -> None:
        self.state.viewport.default_overlay_opacity = float(min(1.0, max(0.0, value)))

    # -- overlays (extension point) ------------------------------------------
    def set_overlay(self, name: str, rgba: np.ndarray | None, opacity: float | None = None,
                    ref: Any = None) -> None:
        """Register an RGBA image on the pixel grid of `ref` (default: current).

        `opacity` None uses `default_overlay_opacity` (the saved setting); an explicit
        opacity becomes the new default.  Visibility and opacity live in the view state."""
        if rgba is None:
            self._layers.pop(name, None)
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
        if opacity is None:
            opacity = self.default_overlay_opacity
        elif opacity != self.default_overlay_opacity:
            self.default_overlay_opacity = opacity
            self.sig_overlay_opacity.emit(self.default_overlay_opacity)
        self._layers[name] = _Layer(rgba, array_to_qimage(rgba), target)
        self.state.viewport.set_overlay(name, opacity=opacity)

    def clear_overlays(self) -> None:
        self._layers.clear()
        self.update()

    def overlay_names(self) -> list[str]:
        return list(self._layers)

    def overlay_opacity(self, name: str) -> float:
        return self.state.viewport.overlay(name).opacity

    def set_overlay_visible(self, name: str, visible: bool) -> None:
        self.state.viewport.set_overlay(name, visible=visible)

    def set_overlay_opacity(self, name: str, opacity: float) -> None:
        self.state.viewport.set_overlay(name, opacity=opacity)
