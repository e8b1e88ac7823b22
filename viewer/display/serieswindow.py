"""One automatic VOI window per series, so brightness does not jump while scrolling.

A series without window tags (no VOI LUT Sequence, no Window Center/Width, PS3.3
C.11.2) gets its window from robust percentiles of the modality values of an evenly
spaced sample of its slices, pooled, instead of a new window per image.  The sample
does not depend on the slice shown first, so the window is the same whichever
slice the user opens.  Pure numpy over any store with ``get(ref)`` / ``meta(ref)``
(viewer.io.pixels.PixelStore).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from medviewer.viewer.display.meta import ImageMeta, Window
from medviewer.viewer.display.pipeline import _AUTO_SAMPLES, auto_sample, window_from_values

DEFAULT_SAMPLES = 9
SERIES_WINDOW_NAME = "Auto (series)"


def has_own_window(meta: ImageMeta) -> bool:
    """True when the image needs no automatic window: the header brings a VOI LUT or
    Window Center/Width, or the image is colour / palette colour (shown as stored)."""
    return bool(meta.voi_luts) or bool(meta.windows) or meta.is_color or meta.is_palette


def sample_indices(n: int, samples: int = DEFAULT_SAMPLES) -> list[int]:
    """`samples` evenly spaced slice indices of 0..n-1 (first and last included)."""
    if n <= 0:
        return []
    k = max(1, min(int(samples), n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, k)})


def series_auto_window(store: Any, refs: Sequence[Any], samples: int = DEFAULT_SAMPLES,
                       should_stop: Callable[[], bool] | None = None) -> Window | None:
    """The automatic window of a series: percentiles (0.5 .. 99.5) of the pooled modality
    values of `samples` evenly spaced slices (each with its own Modality LUT / rescale,
    C.11.1, and pixel padding left out).

    Slices that cannot be decoded or are colour are left out; None when no slice is
    usable (or `should_stop()` turned true), so the caller can fall back to a window
    per image.  Integer stored data give a LINEAR window whose ramp spans the
    percentiles exactly, as `auto_window` does for one image.
    """
    picks = sample_indices(len(refs), samples)
    if not picks:
        return None
    per_slice = max(1024, _AUTO_SAMPLES // len(picks))
    pooled: list[np.ndarray] = []
    integer = True
    for i in picks:
        if should_stop is not None and should_stop():
            return None
        try:
            stored = store.get(refs[i])
            meta = store.meta(refs[i])
        except Exception:  # a bad slice: the others decide; its own error shows when displayed
            continue
        if meta.is_color or meta.is_palette:
            continue
        values = auto_sample(stored, meta, per_slice)
        if values.size:
            pooled.append(values)
            integer = integer and np.asarray(stored).dtype.kind in "uib"
    if not pooled:
        return None
    return window_from_values(np.concatenate(pooled), integer, SERIES_WINDOW_NAME)
