"""One automatic window per series (issue 9, section 1), window text and size conventions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import MRImageStorage, generate_uid

import dicomgen as g
from medviewer.viewer.display import (AUTO_PERCENTILES, ImageMeta, auto_window, meta_from_dataset,
                                      series_auto_window, size_text, window_text)
from medviewer.viewer.display.serieswindow import SERIES_WINDOW_NAME, has_own_window, sample_indices
from medviewer.viewer.io.pixels import PixelStore
from medviewer.viewer.io.scan import scan


def mr_series_with_growing_range(folder: Path, n: int = 12, rows: int = 20, cols: int = 24,
                                 slope: float = 1.0) -> Path:
    """MR slices without window tags whose value ranges differ a lot from slice to slice
    (slice k spans 0 .. 100 * (k + 1)), so a window per image changes brightness."""
    study, uid = generate_uid(), generate_uid()
    rng = np.random.default_rng(3)
    for k in range(n):
        ds = g.base_dataset(MRImageStorage, "MR", study_uid=study, series_uid=uid, description="T2 no window")
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0.0, 0.0, 3.0 * k]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [0.9, 0.9]
        px = rng.integers(0, 100 * (k + 1), size=(rows, cols)).astype(np.uint16)
        g.set_pixels(ds, px)
        if slope != 1.0:
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = slope, 0.0, "US"
        g.save(ds, folder / f"mr{k:03d}.dcm")
    return folder


@pytest.fixture
def mr(tmp_path):
    root = mr_series_with_growing_range(tmp_path / "mr")
    series = scan(root).all_series()[0]
    store = PixelStore(workers=1)
    store.add_headers(series.headers)
    yield series, store
    store.close()


def test_series_window_is_one_window_from_a_sample_of_slices(mr):
    series, store = mr
    refs = series.items
    per_image = {auto_window(store.get(r), store.meta(r)) for r in refs}
    assert len(per_image) == len(refs)                       # the jumping brightness of before
    win = series_auto_window(store, refs, samples=5)
    assert win.name == SERIES_WINDOW_NAME and win.function == "LINEAR"
    # the percentiles of the pooled values of 5 evenly spaced slices (0, 3, 6, 8, 11)
    picks = sample_indices(len(refs), 5)
    assert picks == [0, 3, 6, 8, 11]
    pooled = np.concatenate([store.get(refs[i]).ravel() for i in picks]).astype(np.float64)
    lo, hi = np.percentile(pooled, AUTO_PERCENTILES)
    assert (win.center - 0.5 - (win.width - 1) / 2, win.center - 0.5 + (win.width - 1) / 2) == \
        pytest.approx((lo, hi))
    # whichever slice is shown first, the window is the same
    assert series_auto_window(store, list(refs), samples=5) == win


def test_series_window_uses_each_slice_modality_values_and_skips_bad_slices(tmp_path):
    root = mr_series_with_growing_range(tmp_path / "mr", n=4, slope=0.5)
    series = scan(root).all_series()[0]

    class Store:  # slice 1 cannot be decoded
        def __init__(self):
            self.real = PixelStore(workers=1)

        def get(self, ref):
            if ref == series.items[1]:
                raise ValueError("broken")
            return self.real.get(ref)

        def meta(self, ref):
            return self.real.meta(ref)

    store = Store()
    try:
        win = series_auto_window(store, series.items, samples=4)
        values = np.concatenate([store.get(series.items[i]).ravel() * 0.5 for i in (0, 2, 3)])
        lo, hi = np.percentile(values, AUTO_PERCENTILES)
        assert win.center - 0.5 - (win.width - 1) / 2 == pytest.approx(lo)
        assert win.center - 0.5 + (win.width - 1) / 2 == pytest.approx(hi)
        assert series_auto_window(store, [], samples=4) is None
        assert series_auto_window(store, series.items, should_stop=lambda: True) is None
    finally:
        store.real.close()


def test_header_windows_need_no_automatic_window(mr):
    series, store = mr
    meta = store.meta(series.items[0])
    assert not has_own_window(meta)
    ds = g.base_dataset()
    g.set_pixels(ds, np.zeros((4, 4), np.int16))
    ds.WindowCenter, ds.WindowWidth = 40, 400
    assert has_own_window(meta_from_dataset(ds))


def test_window_text_is_rounded_as_the_data_allows():
    ct = ImageMeta(photometric="MONOCHROME2", bits_stored=12, pixel_representation=0, samples_per_pixel=1,
                   rescale_slope=1.0, rescale_intercept=-1024.0)
    assert window_text(182.763, 357.525, ct) == "W: 358  L: 183"
    pet = ImageMeta(photometric="MONOCHROME2", bits_stored=16, pixel_representation=0, samples_per_pixel=1,
                    rescale_slope=0.000123, rescale_intercept=0.0)
    assert window_text(0.5123456, 0.98765, pet) == "W: 0.988  L: 0.512"
    assert window_text(1000.25, 2.5, pet) == "W: 2.5  L: 1000.25"
    assert window_text(6.1234, 12.345, pet) == "W: 12.3  L: 6.1"     # the width's precision for both
    assert window_text(-0.0001, 1000.4, pet) == "W: 1000  L: 0"


def test_size_text_is_rows_by_columns_and_says_so():
    assert size_text(1955, 1841) == "1955 x 1841 (rows x cols)"
    assert size_text(24, 32, label=False) == "24 x 32"
