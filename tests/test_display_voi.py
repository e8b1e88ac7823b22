"""Tables of expected values for the VOI functions (PS3.3 C.11.2.1.2 / C.11.2.1.3)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_windowing

from medviewer.viewer.display import (
    ImageMeta,
    LutTable,
    Window,
    linear_exact_fraction,
    linear_fraction,
    sigmoid_fraction,
    to_grey,
)
from medviewer.viewer.display.voi import grey_levels, voi_fraction

# Window 40/400.  LINEAR: ramp from c-0.5-(w-1)/2 = -160 (exclusive) to
# c-0.5+(w-1)/2 = 239, value ((x - 39.5) / 399 + 0.5) * 255.
LINEAR_40_400 = [
    (-1000, 0), (-160, 0), (-159, 1), (-100, 38), (39, 127), (40, 128),
    (100, 166), (238, 254), (239, 255), (240, 255), (3000, 255),
]
# LINEAR_EXACT: ramp from c - w/2 = -160 (exclusive) to c + w/2 = 240.
LINEAR_EXACT_40_400 = [
    (-1000, 0), (-160, 0), (-159, 1), (-60, 64), (40, 128), (140, 191),
    (239, 254), (240, 255), (241, 255),
]
# SIGMOID: 255 / (1 + exp(-4 (x - 40) / 400)).
SIGMOID_40_400 = [
    (-2000, 0), (-160, 30), (-60, 69), (40, 128), (140, 186), (240, 225), (4000, 255),
]


def _grey(func, x, c, w):
    return to_grey(func(np.array([x], dtype=np.float64), c, w))[0]


@pytest.mark.parametrize("x, expected", LINEAR_40_400)
def test_linear_table(x: float, expected: int) -> None:
    assert _grey(linear_fraction, x, 40, 400) == expected


@pytest.mark.parametrize("x, expected", LINEAR_EXACT_40_400)
def test_linear_exact_table(x: float, expected: int) -> None:
    assert _grey(linear_exact_fraction, x, 40, 400) == expected


@pytest.mark.parametrize("x, expected", SIGMOID_40_400)
def test_sigmoid_table(x: float, expected: int) -> None:
    assert _grey(sigmoid_fraction, x, 40, 400) == expected


def test_linear_and_linear_exact_differ_at_the_edges() -> None:
    # Same window, one stored value apart at the top: LINEAR saturates at 239,
    # LINEAR_EXACT only at 240 (C.11.2.1.2.1 vs C.11.2.1.3.2).
    x = np.array([239.0, 240.0])
    assert to_grey(linear_fraction(x, 40, 400)).tolist() == [255, 255]
    assert to_grey(linear_exact_fraction(x, 40, 400)).tolist() == [254, 255]
    # Width 1 LINEAR is a threshold at c - 0.5; smaller widths are clamped to 1.
    x = np.array([99.0, 99.5, 100.0])
    assert to_grey(linear_fraction(x, 100, 1)).tolist() == [0, 0, 255]
    assert to_grey(linear_fraction(x, 100, 0)).tolist() == [0, 0, 255]


def test_sigmoid_is_half_at_center_and_symmetric() -> None:
    f = sigmoid_fraction(np.array([-60.0, 40.0, 140.0]), 40, 400)
    assert f[1] == pytest.approx(0.5)
    assert f[0] + f[2] == pytest.approx(1.0)
    assert f[2] == pytest.approx(1 / (1 + math.exp(-1)))
    # No overflow warnings for extreme inputs, saturates cleanly.
    assert sigmoid_fraction(np.array([-1e6, 1e6]), 0, 1).tolist() == [0.0, 1.0]


def test_monochrome1_inverts() -> None:
    frac = np.array([0.0, 0.25, 0.5, 1.0])
    assert to_grey(frac).tolist() == [0, 64, 128, 255]
    assert to_grey(frac, invert=True).tolist() == [255, 191, 127, 0]


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("center, width", [(40, 400), (-600, 1500), (0.5, 1.0), (1000, 3)])
def test_fractions_match_pydicom_apply_windowing(function: str, center: float,
                                                 width: float) -> None:
    if function == "LINEAR" and width < 1:
        pytest.skip("LINEAR needs width >= 1")
    x = np.linspace(center - width, center + width, 401)
    x = np.concatenate([x, np.round(x), [center - width / 2, center + width / 2]])
    ds = Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored, ds.PixelRepresentation = 16, 0
    ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = center, width, function
    ref = apply_windowing(x.copy(), ds) / 65535.0
    func = {"LINEAR": linear_fraction, "LINEAR_EXACT": linear_exact_fraction,
            "SIGMOID": sigmoid_fraction}[function]
    np.testing.assert_allclose(func(x, center, width), ref, atol=1e-9)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT"])
@pytest.mark.parametrize("invert", [False, True])
def test_fused_grey_levels_match_the_plain_chain(function: str, invert: bool) -> None:
    meta = ImageMeta(photometric="MONOCHROME1" if invert else "MONOCHROME2")
    x = np.arange(-2048, 4096, dtype=np.float64)
    for c, w in [(40, 400), (-600, 1500), (1000, 2), (7.25, 33.5)]:
        window = Window(c, w, function)
        plain = to_grey(voi_fraction(x, meta, window), invert)
        fused64 = grey_levels(x, meta, window)
        fused32 = grey_levels(x.astype(np.float32), meta, window)
        # Only exact .5 ties may round the other way.
        exact = voi_fraction(x, meta, window) * 255.0
        exact = 255.0 - exact if invert else exact
        differ = fused64 != plain
        assert np.abs(fused64.astype(int) - plain).max() <= 1
        assert np.allclose(exact[differ] % 1.0, 0.5, atol=1e-6)
        assert np.abs(fused32.astype(int) - plain).max() <= 1


def test_voi_lut_fraction_uses_descriptor_bits_and_clamps() -> None:
    # 4 entries, first mapped 10, 12-bit output: 10->0, 11->1365, 12->2730, 13->4095.
    lut = LutTable.from_values(10, 12, [0, 1365, 2730, 4095], "TEST")
    meta = ImageMeta(voi_luts=(lut,))
    window = Window(12, 4, voi_lut=0)
    x = np.array([-5, 10, 11, 12, 13, 500], dtype=np.float64)
    assert to_grey(voi_fraction(x, meta, window)).tolist() == [0, 0, 85, 170, 255, 255]
    assert grey_levels(x, meta, window).tolist() == [0, 0, 85, 170, 255, 255]
