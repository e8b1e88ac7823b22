"""numpy uint8 arrays -> QImage without copies, with the right bytes per line."""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage


def array_to_qimage(arr: np.ndarray) -> QImage:
    """uint8 (rows, cols) grey, (rows, cols, 3) RGB or (rows, cols, 4) RGBA -> QImage.

    bytesPerLine comes from the array's row stride; the QImage keeps a Python
    reference to the buffer (`img._buf`) so the memory outlives the call.
    """
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    rows, cols = arr.shape[:2]
    if arr.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
    elif arr.shape[2] == 3:
        fmt = QImage.Format.Format_RGB888
    elif arr.shape[2] == 4:
        fmt = QImage.Format.Format_RGBA8888
    else:
        raise ValueError(f"cannot display an array of shape {arr.shape}")
    img = QImage(arr.data, cols, rows, arr.strides[0], fmt)
    img._buf = arr  # type: ignore[attr-defined]  # keep the buffer alive
    return img


def screen_image(grey: np.ndarray, geo) -> tuple[float, float, QImage] | None:
    """The part of a uint8 grey (or RGB / RGBA) image a view shows, already scaled to the screen
    (nearest neighbour when enlarged, area averaging when shrunk) as a 32-bit QImage,
    with its top-left screen position: drawing it is a plain copy, where a scaled
    draw of the whole image costs several ms on every repaint.  `geo` is a
    viewer.state.ViewGeometry; None when the image is off screen."""
    import math

    import cv2

    left, top, width, height = geo.image_rect()
    x0, y0 = max(0.0, left), max(0.0, top)
    x1, y1 = min(float(geo.width), left + width), min(float(geo.height), top + height)
    if x1 <= x0 or y1 <= y0 or grey.size == 0:
        return None
    sx, sy = geo.scales()
    rows, cols = grey.shape[:2]
    c0, c1 = max(0, math.floor((x0 - left) / sx)), min(cols, math.ceil((x1 - left) / sx))
    r0, r1 = max(0, math.floor((y0 - top) / sy)), min(rows, math.ceil((y1 - top) / sy))
    tw, th = max(1, round((c1 - c0) * sx)), max(1, round((r1 - r0) * sy))
    src = np.ascontiguousarray(grey[r0:r1, c0:c1])
    interp = cv2.INTER_NEAREST if sx >= 1 and sy >= 1 else cv2.INTER_AREA
    scaled = cv2.resize(src, (tw, th), interpolation=interp)
    code = (cv2.COLOR_GRAY2BGRA if scaled.ndim == 2
            else cv2.COLOR_RGBA2BGRA if scaled.shape[2] == 4 else cv2.COLOR_RGB2BGRA)
    bgra = cv2.cvtColor(scaled, code)                   # = QImage RGB32 in memory
    img = QImage(bgra.data, tw, th, bgra.strides[0], QImage.Format.Format_RGB32)
    img._buf = bgra  # type: ignore[attr-defined]
    return left + c0 * sx, top + r0 * sy, img
