"""How window values and image sizes are written for users (corner text, menus, CLI).

One convention everywhere: an image size is "ROWS x COLS (rows x cols)", in the order of
the DICOM attributes Rows (0028,0010) and Columns (0028,0011) and of the pixel array's
shape.  Window Center/Width (PS3.3 C.11.2.1.2) are rounded to what the data can
resolve: integers for integer modality values (HU, stored integers with an integral
rescale), otherwise three significant digits of the width.
"""

from __future__ import annotations

import math
from typing import Any

SIZE_LABEL = "rows x cols"


def size_text(rows: int, cols: int, label: bool = True) -> str:
    """'1955 x 1841 (rows x cols)'."""
    text = f"{int(rows)} x {int(cols)}"
    return f"{text} ({SIZE_LABEL})" if label else text


def integer_values(meta: Any) -> bool:
    """True when the modality values of the image are integers (PS3.3 C.11.1): integer
    stored pixels with an integral Rescale Slope / Intercept, or a Modality LUT."""
    if meta is None or getattr(meta, "float_pixels", False):
        return False
    if getattr(meta, "modality_lut", None) is not None:
        return True
    slope = float(getattr(meta, "rescale_slope", 1.0))
    intercept = float(getattr(meta, "rescale_intercept", 0.0))
    return slope.is_integer() and intercept.is_integer()


def window_decimals(width: float, integer: bool) -> int:
    """Decimals for a window: none for integer data or widths of 100 and more, else
    enough for three significant digits of the width."""
    if integer or not math.isfinite(width) or width <= 0:
        return 0
    return max(0, 2 - int(math.floor(math.log10(abs(width)))))


def _number(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def window_text(center: float, width: float, meta: Any = None) -> str:
    """'W: 358  L: 183' for window width / level (centre), rounded as the data allows."""
    d = window_decimals(float(width), integer_values(meta))
    return f"W: {_number(float(width), d)}  L: {_number(float(center), d)}"
