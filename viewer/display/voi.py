"""VOI transformations as pure numpy functions (PS3.3 C.11.2).

Each function maps modality values to the *fraction* of the VOI output range,
0.0 (output minimum) .. 1.0 (output maximum); `to_grey` turns that fraction
into 8-bit grey levels (linear map to 0..255, rounded to nearest, inverted for
MONOCHROME1).  Mapping to a fraction makes the result independent of the
output bit depth, exactly as a linear map of [y_min, y_max] to 0..255 would.
"""

from __future__ import annotations

import numpy as np

from medviewer.viewer.display.meta import ImageMeta, LutTable, Window

# Smallest width used when a width is out of range (a dragged window can
# shrink to zero; the header parser already drops invalid header windows).
_MIN_WIDTH = 1e-6


def ramp(center: float, width: float, function: str = "LINEAR") -> tuple[float, float]:
    """Centre and width of the window's ramp, the one place the LINEAR edge rule lives.

    LINEAR (PS3.3 C.11.2.1.2.1) ramps from c - 0.5 - (w-1)/2 to c - 0.5 + (w-1)/2, so
    its ramp is (c - 0.5, w - 1) (width clamped to >= 1; a ramp of width 0 is a hard
    threshold at c - 0.5); LINEAR_EXACT (C.11.2.1.3.2) ramps over (c, w), w > 0.
    """
    if function.upper() == "LINEAR":
        return float(center) - 0.5, max(float(width), 1.0) - 1.0
    return float(center), max(float(width), _MIN_WIDTH)


def linear_fraction(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """LINEAR function of PS3.3 C.11.2.1.2.1.

    if x <= c - 0.5 - (w-1)/2: 0;  elif x > c - 0.5 + (w-1)/2: 1;
    else ((x - (c - 0.5)) / (w - 1) + 0.5).  Width must be >= 1; smaller
    widths are treated as 1, a hard threshold at c - 0.5.
    """
    x = np.asarray(x, dtype=np.float64)
    c, w = ramp(center, width, "LINEAR")
    if w <= 0.0:
        return (x > c).astype(np.float64)
    out = (x - c) * (1.0 / w)
    out += 0.5
    np.clip(out, 0.0, 1.0, out=out)
    return out


def linear_exact_fraction(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """LINEAR_EXACT function of PS3.3 C.11.2.1.3.2.

    if x <= c - w/2: 0;  elif x > c + w/2: 1;  else (x - c) / w + 0.5.
    """
    x = np.asarray(x, dtype=np.float64)
    c, w = ramp(center, width, "LINEAR_EXACT")
    out = (x - c) * (1.0 / w)
    out += 0.5
    np.clip(out, 0.0, 1.0, out=out)
    return out


def sigmoid_fraction(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """SIGMOID function of PS3.3 C.11.2.1.3.1: 1 / (1 + exp(-4 (x - c) / w))."""
    x = np.asarray(x, dtype=np.float64)
    w = max(float(width), _MIN_WIDTH)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-4.0 * (x - center) / w))


def lut_fraction(x: np.ndarray, lut: LutTable) -> np.ndarray:
    """VOI LUT Sequence item (PS3.3 C.11.2.1.1), output range 0 .. 2**bits - 1."""
    return lut.lookup(x).astype(np.float64) * (1.0 / max(lut.max_output, 1))


_FUNCTIONS = {
    "LINEAR": linear_fraction,
    "LINEAR_EXACT": linear_exact_fraction,
    "SIGMOID": sigmoid_fraction,
}


def window_fraction(x: np.ndarray, window: Window) -> np.ndarray:
    """Apply a Window Center/Width with its VOI LUT Function (LINEAR if unknown)."""
    func = _FUNCTIONS.get(window.function.upper(), linear_fraction)
    return func(x, window.center, window.width)


def voi_fraction(x: np.ndarray, meta: ImageMeta, window: Window) -> np.ndarray:
    """The VOI stage: the VOI LUT the window points to, else the window itself."""
    if window.voi_lut is not None and 0 <= window.voi_lut < len(meta.voi_luts):
        return lut_fraction(x, meta.voi_luts[window.voi_lut])
    return window_fraction(x, window)


def to_grey(fraction: np.ndarray, invert: bool = False) -> np.ndarray:
    """Fraction of the output range -> uint8, rounded to nearest.

    `invert` applies the MONOCHROME1 inversion (PS3.3 C.7.6.3.1.2): the
    minimum VOI output is shown white.
    """
    grey = np.asarray(fraction, dtype=np.float64) * 255.0
    np.rint(grey, out=grey)
    np.clip(grey, 0.0, 255.0, out=grey)
    out = grey.astype(np.uint8)
    if invert:
        np.subtract(255, out, out=out)
    return out


def grey_levels(x: np.ndarray, meta: ImageMeta, window: Window) -> np.ndarray:
    """Modality values -> uint8 grey levels: VOI, linear map to 0..255, MONOCHROME1.

    LINEAR and LINEAR_EXACT windows are evaluated as one fused affine map
    (same result as `to_grey(window_fraction(...))`, fewer passes); the
    computation keeps the float precision of `x` (float32 tables are fast).
    """
    function = window.function.upper()
    if window.voi_lut is not None or function not in ("LINEAR", "LINEAR_EXACT"):
        return to_grey(voi_fraction(x, meta, window), meta.inverted)
    c, w = ramp(window.center, window.width, function)
    if w <= 0.0:  # LINEAR of width 1: a hard threshold
        return to_grey(linear_fraction(x, window.center, window.width), meta.inverted)
    x = np.asarray(x)
    if x.dtype != np.float32:
        x = x.astype(np.float64)
    scale = 255.0 / w
    buf = x * x.dtype.type(scale)
    buf += x.dtype.type(255.0 * 0.5 - c * scale)
    np.clip(buf, 0.0, 255.0, out=buf)
    np.rint(buf, out=buf)
    out = buf.astype(np.uint8)
    if meta.inverted:
        np.subtract(255, out, out=out)
    return out
