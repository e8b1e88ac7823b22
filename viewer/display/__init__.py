"""Qt-free display pipeline: stored pixel values -> uint8 grey levels / RGB.

See `meta` (what the header says) and `pipeline` (PS3.3 C.11 chain, presets,
auto window, cached `Renderer`).
"""

from medviewer.viewer.display.meta import (
    ImageMeta,
    LutTable,
    Palette,
    Window,
    meta_for_plain_image,
    meta_from_dataset,
)
from medviewer.viewer.display.pipeline import (
    affine_coefficients,
    AUTO_PERCENTILES,
    PRESET_KEYS,
    PRESETS,
    RESET_KEY,
    Renderer,
    auto_sample,
    auto_window,
    available_windows,
    default_window,
    find_window,
    grey_table,
    lut_window,
    modality_values,
    render,
    value_at,
    window_from_values,
)
from medviewer.viewer.display.serieswindow import (
    SERIES_WINDOW_NAME,
    has_own_window,
    series_auto_window,
)
from medviewer.viewer.display.text import integer_values, size_text, window_text
from medviewer.viewer.display.voi import (
    linear_exact_fraction,
    linear_fraction,
    sigmoid_fraction,
    to_grey,
    window_fraction,
)
from medviewer.viewer.display.windowspec import WindowSpec, WindowSpecError

__all__ = [
    "affine_coefficients",
    "AUTO_PERCENTILES", "ImageMeta", "LutTable", "PRESETS", "PRESET_KEYS", "Palette",
    "RESET_KEY", "Renderer", "Window", "auto_window", "available_windows",
    "default_window", "find_window", "grey_table", "linear_exact_fraction",
    "linear_fraction", "lut_window", "meta_for_plain_image", "meta_from_dataset",
    "modality_values", "render", "sigmoid_fraction", "to_grey", "value_at",
    "window_fraction", "WindowSpec", "WindowSpecError",
    "auto_sample", "window_from_values", "SERIES_WINDOW_NAME", "has_own_window", "series_auto_window",
    "integer_values", "size_text", "window_text",
]
