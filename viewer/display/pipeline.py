"""Stored values -> grey levels: Modality LUT, VOI, MONOCHROME1, colour.

The chain follows PS3.3 C.11 (Modality LUT C.11.1, VOI LUT C.11.2) and
C.7.6.3.1.2 (MONOCHROME1 inversion); the result is uint8 for the screen.

The common case, a LINEAR / LINEAR_EXACT window over a linear rescale, is one
affine map with saturation, evaluated by OpenCV without any table
(`_affine_render`, about 0.07 ms for 512x512).  Otherwise, for 8- and 16-bit
integer pixels the whole chain is evaluated once over every
possible stored value and kept as one lookup table (65,536 entries at most);
rendering a frame is then a single `np.take`.  Other integer data get a table
over the frame's own min..max when that range is small; float data (Float
Pixel Data, or huge ranges) fall back to vectorised float math.

Pixel input convention (viewer.io.pixels.PixelStore.get): stored values in
the stored dtype, (rows, cols) for monochrome and palette indices,
(rows, cols, 3) RGB for colour (YBR is converted to RGB by the decoder).
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from functools import lru_cache

import cv2
import numpy as np

from medviewer.viewer.display.meta import ImageMeta, LutTable, Window
from medviewer.viewer.display.voi import grey_levels, ramp, to_grey, voi_fraction

# CT presets (center/width in HU).
PRESETS: dict[str, Window] = {
    "lung": Window(-600.0, 1500.0, "LINEAR", "Lung"),
    "mediastinum": Window(40.0, 400.0, "LINEAR", "Mediastinum"),
    "abdomen": Window(40.0, 350.0, "LINEAR", "Abdomen"),
    "bone": Window(400.0, 1800.0, "LINEAR", "Bone"),
    "brain": Window(40.0, 80.0, "LINEAR", "Brain"),
}
# Hotkeys '1'..'5' select a preset.  RESET_KEY '0' means "back to the file's
# own window" (`default_window(meta, stored)`); the UI handles that key.
PRESET_KEYS: dict[str, str] = {
    "1": "lung", "2": "mediastinum", "3": "abdomen", "4": "bone", "5": "brain",
}
RESET_KEY = "0"

AUTO_PERCENTILES = (0.5, 99.5)
_AUTO_SAMPLES = 1 << 16      # pixels looked at by auto_window (regular sub-grid)
_MAX_RANGE_LUT = 1 << 20     # largest min..max span given a table (non 8/16-bit)


# --------------------------------------------------------------------------
# modality LUT (PS3.3 C.11.1)

def _modality(values: np.ndarray, meta: ImageMeta) -> np.ndarray:
    """Modality values (float64) of stored values: Modality LUT or rescale."""
    if meta.modality_lut is not None:
        return meta.modality_lut.lookup(values).astype(np.float64)
    out = np.asarray(values, dtype=np.float64)
    if meta.rescale_slope != 1.0 or meta.rescale_intercept != 0.0:
        out = out * meta.rescale_slope + meta.rescale_intercept
    return out


@lru_cache(maxsize=4)
def _domain(dtype_str: str) -> np.ndarray:
    """Every value of an 8/16-bit integer dtype, ordered by its unsigned view."""
    dtype = np.dtype(dtype_str)
    unsigned = np.dtype(f"u{dtype.itemsize}")
    domain = np.arange(2 ** (8 * dtype.itemsize), dtype=unsigned).view(dtype)
    domain.flags.writeable = False
    return domain


@lru_cache(maxsize=16)
def _modality_table(modality_lut: LutTable | None, slope: float, intercept: float,
                    dtype_str: str) -> np.ndarray:
    """Modality value of every possible stored value (window independent)."""
    meta = ImageMeta(rescale_slope=slope, rescale_intercept=intercept,
                     modality_lut=modality_lut)
    table = _modality(_domain(dtype_str), meta)
    table.flags.writeable = False
    return table


def _native(stored: np.ndarray) -> np.ndarray:
    """The array in native byte order (pydicom keeps big-endian dtypes)."""
    stored = np.asarray(stored)
    if stored.dtype.byteorder not in ("=", "|") and not stored.dtype.isnative:
        return stored.astype(stored.dtype.newbyteorder("="))
    return stored


def _lut_dtype(stored: np.ndarray) -> np.dtype | None:
    """The dtype to index a full-domain table with, if the data allow one."""
    if stored.dtype.kind == "b":
        return np.dtype(np.uint8)
    if stored.dtype.kind in "ui" and stored.dtype.itemsize <= 2:
        return stored.dtype
    return None


def _as_index(stored: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if stored.dtype.kind == "b":
        return stored.view(np.uint8)
    return stored.view(f"u{dtype.itemsize}")


def modality_values(stored: np.ndarray, meta: ImageMeta) -> np.ndarray:
    """Modality values (e.g. HU for CT) as float32 (PS3.3 C.11.1).

    Colour and palette images return their stored values as float32.
    """
    stored = _native(stored)
    if meta.is_color or meta.is_palette:
        return stored.astype(np.float32)
    dtype = _lut_dtype(stored)
    if dtype is not None and stored.size > 4096:
        table = _modality_table32(meta.modality_lut, meta.rescale_slope,
                                  meta.rescale_intercept, dtype.str)
        return np.take(table, _as_index(stored, dtype))
    return _modality(stored, meta).astype(np.float32)


def value_at(stored: np.ndarray, meta: ImageMeta, row: int,
             col: int) -> float | tuple[int, ...] | None:
    """The pixel value under the cursor: modality value (HU for CT), the RGB
    triple for colour, the palette index for PALETTE COLOR; None outside."""
    if not (0 <= row < stored.shape[0] and 0 <= col < stored.shape[1]):
        return None
    value = stored[row, col]
    if np.ndim(value) > 0:
        return tuple(int(v) for v in np.ravel(value))
    if meta.is_palette:
        return float(value)
    return float(_modality(np.asarray([value]), meta)[0])


# --------------------------------------------------------------------------
# windows

def _full_range_window(meta: ImageMeta) -> Window:
    bits = min(max(meta.bits_stored, 1), 32)
    return Window(2.0 ** (bits - 1), 2.0 ** bits, "LINEAR", "Full range")


def lut_window(meta: ImageMeta, index: int) -> Window:
    """The Window standing for VOI LUT Sequence item `index` (its input range)."""
    lut = meta.voi_luts[index]
    n = lut.entries.size
    return Window(lut.first_mapped + n / 2.0, float(n), "LINEAR",
                  lut.explanation or f"VOI LUT {index + 1}", voi_lut=index)


def available_windows(meta: ImageMeta) -> tuple[Window, ...]:
    """Every window the header offers: VOI LUTs first, then Center/Width pairs."""
    return tuple(lut_window(meta, i) for i in range(len(meta.voi_luts))) + meta.windows


def find_window(meta: ImageMeta, name: str) -> Window | None:
    """A header window or VOI LUT by its explanation (case-insensitive)."""
    wanted = name.strip().lower()
    for window in available_windows(meta):
        if window.name.lower() == wanted:
            return window
    return None


def auto_sample(stored: np.ndarray, meta: ImageMeta, max_samples: int = _AUTO_SAMPLES) -> np.ndarray:
    """Finite modality values (float64) of a regular sub-grid of at most about
    `max_samples` pixels of a monochrome frame, Pixel Padding (C.7.5.1.1.2) left out."""
    stored = np.asarray(stored)
    if stored.size == 0:
        return np.zeros(0, np.float64)
    step = max(1, int(math.ceil(math.sqrt(stored.size / max(1, max_samples)))))
    sample = stored[::step, ::step] if stored.ndim >= 2 else stored[::step]
    sample = sample.ravel()
    if meta.padding is not None:
        keep = (sample < meta.padding[0]) | (sample > meta.padding[1])
        if keep.any():
            sample = sample[keep]
    values = _modality(sample, meta)
    return values[np.isfinite(values)]


def window_from_values(values: np.ndarray, integer: bool, name: str = "Auto") -> Window | None:
    """The window over robust percentiles (AUTO_PERCENTILES) of modality values.

    Integer data (or ranges of at least 1) give a LINEAR window whose ramp runs
    exactly from the low to the high percentile (c - 0.5 -/+ (w - 1)/2 == lo / hi);
    tiny float ranges a LINEAR_EXACT one.  None for no values."""
    if values.size == 0:
        return None
    lo, hi = (float(v) for v in np.percentile(values, AUTO_PERCENTILES))
    if hi - lo >= 1.0 or integer:
        return Window((lo + hi + 1.0) / 2.0, hi - lo + 1.0, "LINEAR", name)
    return Window((lo + hi) / 2.0, max(hi - lo, 1e-6), "LINEAR_EXACT", name)


def auto_window(stored: np.ndarray, meta: ImageMeta) -> Window:
    """Window over robust percentiles (0.5 .. 99.5) of the modality values of one image.

    Pixel padding (C.7.5.1.1.2) is left out.  Integer-valued ranges give a
    LINEAR window whose ramp runs exactly from the low to the high percentile;
    tiny float ranges a LINEAR_EXACT one.  Colour images get the full range.
    For a whole series see `viewer.display.serieswindow.series_auto_window`.
    """
    stored = np.asarray(stored)
    if meta.is_color or meta.is_palette or stored.size == 0:
        return _full_range_window(meta)
    window = window_from_values(auto_sample(stored, meta), stored.dtype.kind in "uib")
    return window if window is not None else _full_range_window(meta)


def default_window(meta: ImageMeta, stored: np.ndarray | None = None) -> Window:
    """The file's own window: the first VOI LUT (preferred, as pydicom's
    apply_voi_lut does), else the first Window Center/Width, else auto."""
    if meta.voi_luts and not meta.is_color:
        return lut_window(meta, 0)
    if meta.windows:
        return meta.windows[0]
    if stored is None or meta.is_color or meta.is_palette:
        return _full_range_window(meta)
    return auto_window(stored, meta)


# --------------------------------------------------------------------------
# rendering

def _resolve(meta: ImageMeta, stored: np.ndarray, window: Window | None,
             voi_lut: int | None) -> Window:
    if window is not None and math.isfinite(window.center) and math.isfinite(window.width):
        return window
    if voi_lut is not None:
        if not 0 <= voi_lut < len(meta.voi_luts):
            raise IndexError(f"VOI LUT {voi_lut} does not exist "
                             f"({len(meta.voi_luts)} in the header)")
        return lut_window(meta, voi_lut)
    return default_window(meta, stored)


def grey_table(meta: ImageMeta, window: Window, domain_values: np.ndarray) -> np.ndarray:
    """uint8 grey level of each stored value in `domain_values` (any shape)."""
    return grey_levels(_modality(domain_values, meta), meta, window)


def _full_grey_table(meta: ImageMeta, window: Window, dtype: np.dtype) -> np.ndarray:
    """Grey level of every value of an 8/16-bit dtype, in unsigned-view order."""
    linear = window.voi_lut is None and window.function.upper() in ("LINEAR", "LINEAR_EXACT")
    if linear and meta.modality_lut is None:
        return _linear_band_table(meta, window, dtype)
    table = _modality_table(meta.modality_lut, meta.rescale_slope,
                            meta.rescale_intercept, dtype.str)
    return grey_levels(table, meta, window)


def _linear_band_table(meta: ImageMeta, window: Window, dtype: np.dtype) -> np.ndarray:
    """`_full_grey_table` for rescale + LINEAR / LINEAR_EXACT, cheaply.

    Outside the window's ramp the output is constant (C.11.2.1.2.1: 0 at or
    below the lower edge, 1 above the upper edge), so only the stored values
    whose modality value falls on the ramp (plus one value of margin on each
    side) are computed; the rest of the table is filled.
    """
    bits = 8 * dtype.itemsize
    vmin = -(2 ** (bits - 1)) if dtype.kind == "i" else 0
    size = 2 ** bits
    c, w = ramp(window.center, window.width, window.function)
    lo, hi = c - w / 2.0, c + w / 2.0
    slope, intercept = meta.rescale_slope, meta.rescale_intercept
    edges = sorted(((lo - intercept) / slope, (hi - intercept) / slope))
    k0 = int(min(max(math.floor(edges[0]) - 1 - vmin, 0), size))
    k1 = int(min(max(math.ceil(edges[1]) + 2 - vmin, k0), size))
    black, white = (255, 0) if meta.inverted else (0, 255)
    below, above = (black, white) if slope > 0 else (white, black)
    table = np.empty(size, dtype=np.uint8)
    table[:k0] = below
    table[k1:] = above
    band = np.arange(vmin + k0, vmin + k1, dtype=np.float64)
    table[k0:k1] = grey_levels(band * slope + intercept, meta, window)
    if vmin < 0:   # natural order -> order of the unsigned view
        table = np.concatenate((table[-vmin:], table[:-vmin]))
    return table


@lru_cache(maxsize=16)
def _modality_table32(modality_lut: LutTable | None, slope: float, intercept: float,
                      dtype_str: str) -> np.ndarray:
    """float32 copy of `_modality_table` (half the memory traffic)."""
    table = _modality_table(modality_lut, slope, intercept, dtype_str).astype(np.float32)
    table.flags.writeable = False
    return table


def _colour_table(meta: ImageMeta, window: Window | None, values: np.ndarray) -> np.ndarray:
    """RGB channel values -> 8 bit: the window if given, else scaled by bits stored."""
    if window is not None:
        return to_grey(voi_fraction(values.astype(np.float64), meta, window))
    top = 2.0 ** min(max(meta.bits_stored, 1), 32) - 1.0
    return to_grey(values.astype(np.float64) / top)


def _palette_table(meta: ImageMeta, values: np.ndarray) -> np.ndarray:
    """Palette index -> (..., 3) uint8 RGB, clipped to the table (C.7.6.3.1.5)."""
    assert meta.palette is not None
    table = meta.palette.table
    idx = np.asarray(values, dtype=np.int64) - meta.palette.first_mapped
    np.clip(idx, 0, table.shape[0] - 1, out=idx)
    return table[idx]


class Renderer:
    """Turns stored pixels into uint8 images, caching lookup tables.

    Tables are keyed by the display-relevant part of the meta, the window and
    the stored dtype, so scrolling through a series that shares one window
    reuses the same table; `builds` counts the tables built (for tests).
    Safe to share between threads (the module-level `render` does).
    """

    def __init__(self, max_tables: int = 8) -> None:
        self._tables: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._max_tables = max_tables
        self._lock = threading.Lock()
        self.builds = 0

    def _table(self, key: tuple, build) -> np.ndarray:
        with self._lock:
            table = self._tables.get(key)
            if table is not None:
                self._tables.move_to_end(key)
                return table
        table = build()
        table.flags.writeable = False
        with self._lock:
            self.builds += 1
            self._tables[key] = table
            while len(self._tables) > self._max_tables:
                self._tables.popitem(last=False)
        return table

    def render(self, stored: np.ndarray, meta: ImageMeta, window: Window | None = None,
               voi_lut: int | None = None) -> np.ndarray:
        """uint8 (rows, cols) grey, or (rows, cols, 3) RGB for colour and palette.

        `window` None (or not finite) means the file's own window
        (`default_window`); `voi_lut` picks a VOI LUT Sequence item instead.
        RGB images are passed through (16-bit scaled to 8) unless a window is
        given, which is then applied to each channel; palette images ignore it.
        """
        stored = _native(stored)
        if meta.is_color:
            return self._render_colour(stored[..., :3], meta, window)
        if meta.is_palette:
            return self._render_lookup(stored, meta, ("palette",),
                                       lambda v: _palette_table(meta, v))
        window = _resolve(meta, stored, window, voi_lut)
        fast = _affine_render(stored, meta, window)
        if fast is not None:
            return fast
        dtype = _lut_dtype(stored)
        if dtype is not None:   # table path: one table over the whole dtype
            key = (meta.display_key(), "grey", window, dtype.str)
            table = self._table(key, lambda: _full_grey_table(meta, window, dtype))
            return np.take(table, _as_index(stored, dtype))
        return self._render_lookup(stored, meta, ("grey", window),
                                   lambda v: grey_table(meta, window, v))

    def _render_colour(self, stored: np.ndarray, meta: ImageMeta,
                       window: Window | None) -> np.ndarray:
        if stored.dtype == np.uint8 and window is None:
            return np.array(stored, order="C")   # a copy: never hand out the cache
        return self._render_lookup(stored, meta, ("colour", window),
                                   lambda v: _colour_table(meta, window, v))

    def _render_lookup(self, stored: np.ndarray, meta: ImageMeta, what: tuple,
                       build) -> np.ndarray:
        """Index a table over all stored values; float math where none fits."""
        dtype = _lut_dtype(stored)
        if dtype is not None:
            key = (meta.display_key(), what, dtype.str)
            table = self._table(key, lambda: build(_domain(dtype.str)))
            return np.take(table, _as_index(stored, dtype), axis=0)
        if stored.dtype.kind in "ui" and stored.size:
            lo, hi = int(stored.min()), int(stored.max())
            if hi - lo < _MAX_RANGE_LUT:
                key = (meta.display_key(), what, stored.dtype.str, lo, hi)
                table = self._table(key, lambda: build(np.arange(lo, hi + 1, dtype=np.int64)))
                return np.take(table, (stored.astype(np.int64) - lo), axis=0)
        values = np.nan_to_num(stored.astype(np.float64), nan=0.0)
        return build(values)


_CV_DTYPES = (np.dtype(np.uint8), np.dtype(np.int16), np.dtype(np.uint16))


def affine_coefficients(dtype: np.dtype, meta: ImageMeta, window: Window) -> tuple[float, float] | None:
    """(alpha, beta) with grey = clip(rint(alpha * stored + beta), 0, 255), or None.

    With a rescale (no Modality LUT) and a LINEAR or LINEAR_EXACT window the
    whole chain is one affine map with saturation (PS3.3 C.11.2.1.2.1 /
    C.11.2.1.3.2: the ramp meets 0 and 1 exactly at its edges); MONOCHROME1
    (C.7.6.3.1.2) negates it.  None when the image does not qualify.
    """
    function = window.function.upper()
    if (window.voi_lut is not None or function not in ("LINEAR", "LINEAR_EXACT")
            or meta.modality_lut is not None or np.dtype(dtype) not in _CV_DTYPES):
        return None
    c, w = ramp(window.center, window.width, function)
    if w <= 0.0 or meta.rescale_slope == 0.0:
        return None
    alpha = 255.0 / w * meta.rescale_slope
    beta = 255.0 * ((meta.rescale_intercept - c) / w + 0.5)
    if meta.inverted:                       # MONOCHROME1: 255 - grey, exactly
        alpha, beta = -alpha, 255.0 - beta
    return alpha, beta


# |alpha| up to which one clamp makes `convertScaleAbs` exact (see `_affine_render`)
_TWO_PASS_ALPHA = 0.9


def _affine_render(stored: np.ndarray, meta: ImageMeta, window: Window) -> np.ndarray | None:
    """`affine_coefficients` evaluated by OpenCV without a table, in two or four passes.

    `convertScaleAbs` saturates at 255 but folds negatives back with its
    absolute value.  Values beyond the ramp's zero are clamped to the stored
    value x0 nearest to it, where |alpha*x0 + beta| <= |alpha|/2: when |alpha| is
    at most `_TWO_PASS_ALPHA` (a window wider than ~283 stored values at slope
    1) that is within 0.5 of 0, so every clamped value, and every value between
    x0 and the zero, rounds to grey 0: two passes.  Narrower windows clamp at
    the first value on the ramp and force the values beyond it to 0 with a mask:
    four passes.  None when the image does not qualify (the table path serves it).
    """
    if stored.ndim != 2 or stored.size < 2:
        return None  # OpenCV's bindings read a 1x1 array as a scalar (the table path serves it)
    coeffs = affine_coefficients(stored.dtype, meta, window)
    if coeffs is None:
        return None
    alpha, beta = coeffs
    info = np.iinfo(stored.dtype)
    zero = -beta / alpha                    # stored value where the ramp is 0
    if abs(alpha) <= _TWO_PASS_ALPHA:
        x0 = round(zero)
        if (x0 > info.max) if alpha > 0 else (x0 < info.min):
            return np.zeros(stored.shape, np.uint8)   # every value is below the ramp
        if info.min <= x0 <= info.max:
            stored = cv2.max(stored, x0) if alpha > 0 else cv2.min(stored, x0)
        return cv2.convertScaleAbs(stored, alpha=alpha, beta=beta)
    if alpha > 0:
        edge = math.ceil(zero)              # first value with alpha*x+beta >= 0
        if edge > info.max:
            return np.zeros(stored.shape, np.uint8)
        edge = max(edge, info.min)
        clamped, outside = cv2.max(stored, edge), cv2.compare(stored, edge, cv2.CMP_LT)
    else:
        edge = math.floor(zero)
        if edge < info.min:
            return np.zeros(stored.shape, np.uint8)
        edge = min(edge, info.max)
        clamped, outside = cv2.min(stored, edge), cv2.compare(stored, edge, cv2.CMP_GT)
    grey = cv2.convertScaleAbs(clamped, alpha=alpha, beta=beta)
    return cv2.subtract(grey, outside)


_DEFAULT_RENDERER = Renderer()


def render(stored: np.ndarray, meta: ImageMeta, window: Window | None = None,
           voi_lut: int | None = None) -> np.ndarray:
    """Grey levels of one frame (see `Renderer.render`); `window` None means
    the file's own window, `voi_lut` picks a VOI LUT Sequence item."""
    return _DEFAULT_RENDERER.render(stored, meta, window, voi_lut)
