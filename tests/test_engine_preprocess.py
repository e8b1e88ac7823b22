"""engine.preprocess: display pipeline to [0,1], geometry and its exact inverse, normalisation."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from medviewer.engine.preprocess import Geometry, PreprocessSpec, fit, preprocess, preprocess_batch, to_chw, to_unit
from medviewer.viewer.display import meta_for_plain_image, meta_from_dataset, render


def _blob(rows, cols):
    r, c = np.mgrid[0:rows, 0:cols].astype(np.float32)
    return np.exp(-(((r - rows * 0.4) / (rows * 0.2)) ** 2 + ((c - cols * 0.6) / (cols * 0.25)) ** 2)).astype(np.float32)


@pytest.fixture(scope="module")
def ct():
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    return ds.pixel_array, meta_from_dataset(ds)


def test_to_unit_applies_rescale_and_card_window(ct):
    stored, meta = ct
    unit = to_unit(stored, meta, window=(40, 400))
    hu = stored.astype(np.float64) * meta.rescale_slope + meta.rescale_intercept
    # LINEAR window (PS3.3 C.11.2.1.2.1): below c-0.5-(w-1)/2 -> 0, above c-0.5+(w-1)/2 -> 1
    assert np.all(unit[hu <= 40 - 0.5 - 399 / 2] == 0.0)
    assert np.all(unit[hu > 40 - 0.5 + 399 / 2] == 1.0)
    mid = (hu > -100) & (hu < 180)
    expect = ((hu - 39.5) / 399 + 0.5)[mid]
    assert np.abs(unit[mid] - expect).max() <= 0.5 / 255 + 1e-6
    assert unit.dtype == np.float32 and unit.shape == stored.shape


def test_to_unit_auto_and_header_windows_match_viewer_display(ct):
    stored, meta = ct
    from medviewer.viewer.display import auto_window

    assert np.array_equal(to_unit(stored, meta, "auto"), render(stored, meta, auto_window(stored, meta)) / np.float32(255))
    assert np.array_equal(to_unit(stored, meta, "header"), render(stored, meta) / np.float32(255))


def test_monochrome1_invert_and_raw():
    stored = np.arange(64, dtype=np.uint16).reshape(8, 8) * 64
    from dataclasses import replace

    m2 = replace(meta_for_plain_image(stored), photometric="MONOCHROME2", bits_stored=12)
    m1 = replace(m2, photometric="MONOCHROME1")
    w = (2048, 4096)
    shown = to_unit(stored, m1, w, "invert")
    assert shown[0, 0] == 1.0 and shown[-1, -1] < 0.05           # low stored values shown white
    np.testing.assert_allclose(to_unit(stored, m1, w, "raw"), to_unit(stored, m2, w, "raw"), atol=1e-6)


def test_colour_rule_grey_and_rgb():
    ds = pydicom.dcmread(get_testdata_file("SC_rgb.dcm"))
    meta = meta_from_dataset(ds)
    unit = to_unit(ds.pixel_array, meta)
    assert unit.shape == (100, 100, 3)
    grey = to_chw(unit, "grey_to_rgb", (0, 0, 0), (1, 1, 1))
    assert np.array_equal(grey[0], grey[1]) and np.array_equal(grey[1], grey[2])
    np.testing.assert_allclose(grey[0], unit @ np.array([0.299, 0.587, 0.114], np.float32), atol=1e-6)
    rgb = to_chw(unit, "rgb", (0, 0, 0), (1, 1, 1))
    np.testing.assert_array_equal(rgb, np.transpose(unit, (2, 0, 1)))


@pytest.mark.parametrize("mode", ["letterbox", "stretch", "center_crop"])
@pytest.mark.parametrize("shape", [(48, 80), (80, 48), (61, 61), (200, 130)])
def test_geometry_round_trip(mode, shape):
    src = _blob(*shape)
    fitted, geom = fit(src, 64, mode)
    assert fitted.shape == (64, 64)
    back = geom.to_source(fitted)
    assert back.shape == shape and back.dtype == np.float32
    if mode == "center_crop":
        inside = back > 0
        rows, cols = np.nonzero(inside)
        assert inside.mean() > 0.5
        np.testing.assert_allclose(back[inside], src[inside], atol=0.06)
    else:
        np.testing.assert_allclose(back, src, atol=0.06)
        # the peak returns to the same source pixel (within one input-grid cell)
        pr, pc = np.unravel_index(np.argmax(back), shape)
        sr, sc = np.unravel_index(np.argmax(src), shape)
        assert abs(pr - sr) <= 1 / geom.scale_y + 1 and abs(pc - sc) <= 1 / geom.scale_x + 1


def test_geometry_exact_when_no_scaling():
    src = np.random.default_rng(0).random((32, 64), dtype=np.float32)
    fitted, geom = fit(src, 64, "letterbox")
    assert geom == Geometry(32, 64, 64, 1.0, 1.0, 16, 0)
    assert np.all(fitted[:16] == 0) and np.all(fitted[48:] == 0)
    assert np.array_equal(geom.to_source(fitted), src)


def test_geometry_from_feature_resolution_map():
    # a 2x2 feature map (left column hot) must come back hot on the source's left half
    fitted, geom = fit(np.zeros((40, 100), np.float32), 64, "letterbox")
    cam = geom.to_source(np.array([[1, 0], [1, 0]], np.float32))
    assert cam.shape == (40, 100)
    assert cam[:, :30].mean() > 0.8 and cam[:, 70:].mean() < 0.2
    np.testing.assert_allclose(cam[0], cam[-1])  # letterbox padding rows do not leak in


def test_preprocess_normalises_and_batches(ct):
    stored, meta = ct
    spec = PreprocessSpec(input_size=32, window=(40, 400))
    x, geom = preprocess(stored, meta, spec)
    assert tuple(x.shape) == (3, 32, 32) and geom.scale_y == 0.25
    unit = fit(to_unit(stored, meta, (40, 400)), 32)[0]
    np.testing.assert_allclose(x[1].numpy(), (unit - 0.456) / 0.224, rtol=1e-5, atol=1e-5)
    xb, geoms = preprocess_batch([stored, stored[:64]], [meta, meta], spec)
    assert tuple(xb.shape) == (2, 3, 32, 32) and geoms[1].src_rows == 64
    assert np.array_equal(xb[0].numpy(), x.numpy())


def test_plain_uint8_image_without_meta():
    img = (np.arange(256, dtype=np.uint8).reshape(16, 16))
    unit = to_unit(img, None, "auto")
    assert unit.shape == (16, 16) and unit.min() == 0.0 and unit.max() == 1.0
