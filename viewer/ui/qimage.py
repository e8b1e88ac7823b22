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


def display_qimage(arr: np.ndarray) -> QImage:
    """Like `array_to_qimage`, converted once to the painter's native 32-bit format: a
    grey QImage is converted on every draw otherwise (3x slower repaints of a view)."""
    img = array_to_qimage(arr)
    if img.format() == QImage.Format.Format_RGBA8888:
        return img.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    return img.convertToFormat(QImage.Format.Format_RGB32)
