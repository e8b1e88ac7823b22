"""Modality values, windows, presets and the cached Renderer."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.viewer.display import (
    PRESET_KEYS,
    PRESETS,
    RESET_KEY,
    ImageMeta,
    LutTable,
    Palette,
    Renderer,
    Window,
    auto_window,
    default_window,
    meta_for_plain_image,
    modality_values,
    render,
    value_at,
)

CT = ImageMeta(photometric="MONOCHROME2", bits_stored=12, pixel_representation=1,
               rescale_slope=1.0, rescale_intercept=-1024.0, modality="CT", units="HU",
               rows=2, columns=3)


def test_presets_and_hotkeys() -> None:
    expected = {"lung": (-600, 1500), "mediastinum": (40, 400), "abdomen": (40, 350),
                "bone": (400, 1800), "brain": (40, 80)}
    assert {k: (w.center, w.width) for k, w in PRESETS.items()} == expected
    assert all(w.function == "LINEAR" for w in PRESETS.values())
    assert PRESET_KEYS == {"1": "lung", "2": "mediastinum", "3": "abdomen", "4": "bone",
                           "5": "brain"}
    assert RESET_KEY == "0" and RESET_KEY not in PRESET_KEYS


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32])
def test_modality_values_rescale(dtype) -> None:
    stored = np.array([[0, 1024, 2048], [-1000, 24, 1064]], dtype=dtype)
    meta = ImageMeta(rescale_slope=0.5, rescale_intercept=-1024.0)
    hu = modality_values(stored, meta)
    assert hu.dtype == np.float32
    assert hu.tolist() == [[-1024, -512, 0], [-1524, -1012, -492]]


def test_modality_values_large_int16_frame_uses_table_and_agrees() -> None:
    stored = np.arange(-32768, 32768, dtype=np.int16).reshape(256, 256)
    meta = ImageMeta(rescale_slope=2.0, rescale_intercept=-3.0)
    expected = stored.astype(np.float64) * 2.0 - 3.0
    np.testing.assert_array_equal(modality_values(stored, meta), expected.astype(np.float32))


def test_modality_lut_sequence_clamps_outside_the_table() -> None:
    # C.11.1.1.1: values below the first mapped take the first entry,
    # values past the end the last one.
    meta = ImageMeta(modality_lut=LutTable.from_values(-2, 16, [100, 200, 300, 400]),
                     pixel_representation=1)
    stored = np.array([[-5, -2, -1], [0, 1, 9]], dtype=np.int16)
    assert modality_values(stored, meta).tolist() == [[100, 100, 200], [300, 400, 400]]


def test_value_at() -> None:
    stored = np.array([[0, 1024, 2048], [-1000, 24, 1064]], dtype=np.int16)
    assert value_at(stored, CT, 0, 2) == 1024.0
    assert value_at(stored, CT, 1, 0) == -2024.0
    assert value_at(stored, CT, 2, 0) is None and value_at(stored, CT, 0, -1) is None
    rgb = np.zeros((2, 2, 3), np.uint8)
    rgb[1, 1] = (10, 20, 30)
    assert value_at(rgb, meta_for_plain_image(rgb), 1, 1) == (10, 20, 30)


def test_render_ct_window_table() -> None:
    # stored 0..2048 with intercept -1024; window 40/400: ramp -160..239 HU
    stored = np.array([[0, 864, 865], [1064, 1263, 2048]], dtype=np.int16)
    grey = render(stored, CT, Window(40, 400))
    assert grey.dtype == np.uint8
    assert grey.tolist() == [[0, 0, 1], [128, 255, 255]]


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
def test_lut_path_equals_float_path(function: str, photometric: str) -> None:
    """The 16-bit table, the min..max table (int32) and float math agree."""
    rng = np.random.default_rng(1)
    stored = rng.integers(-2048, 4096, size=(64, 64)).astype(np.int16)
    meta = ImageMeta(photometric=photometric, bits_stored=16, pixel_representation=1,
                     rescale_slope=1.5, rescale_intercept=-1000.0)
    window = Window(37.0, 411.0, function)
    a = render(stored, meta, window)
    b = render(stored.astype(np.int32), meta, window)
    c = render(stored.astype(np.float64), meta, window)
    assert np.abs(a.astype(int) - c).max() <= 1
    assert np.array_equal(b, c)
    assert len(np.unique(a)) > 100


def test_signed_and_unsigned_storage_of_the_same_values() -> None:
    values = np.array([[0, 100, 1000], [2000, 3000, 4095]])
    unsigned = ImageMeta(bits_stored=12, pixel_representation=0, rescale_intercept=-1024.0)
    signed = ImageMeta(bits_stored=12, pixel_representation=1, rescale_intercept=0.0)
    window = Window(500, 2000)
    a = render(values.astype(np.uint16), unsigned, window)
    b = render((values - 1024).astype(np.int16), signed, window)
    assert np.array_equal(a, b)
    # negative stored values must not wrap around in the uint16 view
    neg = render(np.array([[-1024, -1, 0]], np.int16), signed, window)
    assert neg.tolist() == [[0, 64, 64]]


def test_monochrome1_is_inverted() -> None:
    stored = np.array([[0, 2048, 4095]], dtype=np.uint16)
    m2 = ImageMeta(bits_stored=12)
    m1 = ImageMeta(bits_stored=12, photometric="MONOCHROME1")
    window = Window(2048, 4096)
    assert render(stored, m2, window).tolist() == [[0, 128, 255]]
    assert render(stored, m1, window).tolist() == [[255, 127, 0]]


def test_voi_lut_render_and_selection() -> None:
    luts = (LutTable.from_values(0, 8, [0, 10, 20, 255], "A"),
            LutTable.from_values(0, 16, [65535, 0, 0, 0], "B"))
    meta = ImageMeta(voi_luts=luts, windows=(Window(1, 2, "LINEAR_EXACT", "W"),))
    stored = np.array([[0, 1, 2, 3, 7]], dtype=np.uint8)
    assert render(stored, meta).tolist() == [[0, 10, 20, 255, 255]]   # LUT 1 is default
    assert render(stored, meta, voi_lut=1).tolist() == [[255, 0, 0, 0, 0]]
    assert render(stored, meta, meta.windows[0]).tolist() == [[0, 128, 255, 255, 255]]
    with pytest.raises(IndexError):
        render(stored, meta, voi_lut=2)


def test_default_window_preference() -> None:
    stored = np.arange(100, dtype=np.uint16).reshape(10, 10)
    lut = LutTable.from_values(0, 8, [0, 255], "L")
    header = Window(50, 20, "LINEAR", "H")
    assert default_window(ImageMeta(voi_luts=(lut,), windows=(header,)), stored).voi_lut == 0
    assert default_window(ImageMeta(windows=(header,)), stored) == header
    assert default_window(ImageMeta(), stored).name == "Auto"
    assert default_window(ImageMeta(bits_stored=12)) == Window(2048, 4096, "LINEAR", "Full range")


def test_auto_window_uses_robust_percentiles() -> None:
    stored = np.arange(1000, dtype=np.int16).reshape(10, 100)
    stored.flat[0], stored.flat[1] = -30000, 30000          # outliers
    meta = ImageMeta(pixel_representation=1, rescale_intercept=-500.0)
    w = auto_window(stored, meta)
    lo, hi = np.percentile(stored.astype(float) - 500, [0.5, 99.5])
    assert w.function == "LINEAR" and w.name == "Auto"
    # the LINEAR ramp runs exactly from lo to hi
    assert w.center - 0.5 - (w.width - 1) / 2 == pytest.approx(lo)
    assert w.center - 0.5 + (w.width - 1) / 2 == pytest.approx(hi)
    grey = render(stored, meta, w)
    assert grey.min() == 0 and grey.max() == 255 and len(np.unique(grey)) > 200


def test_auto_window_ignores_pixel_padding_and_handles_flat_images() -> None:
    stored = np.full((20, 20), -2000, dtype=np.int16)
    stored[5:15, 5:15] = np.arange(100).reshape(10, 10) + 1000
    padded = ImageMeta(pixel_representation=1, padding=(-2000, -2000))
    w = auto_window(stored, padded)
    assert w.center - 0.5 - (w.width - 1) / 2 == pytest.approx(1000.495)
    flat = np.full((8, 8), 7, dtype=np.uint16)
    grey = render(flat, ImageMeta(), auto_window(flat, ImageMeta()))
    assert grey.min() == grey.max()
    tiny = np.linspace(0, 0.01, 64, dtype=np.float32).reshape(8, 8)
    wt = auto_window(tiny, ImageMeta(float_pixels=True, bits_stored=32))
    assert wt.function == "LINEAR_EXACT"
    assert render(tiny, ImageMeta(float_pixels=True), wt).max() == 255


def test_renderer_caches_tables_per_meta_and_window() -> None:
    # SIGMOID windows go through the table path (LINEAR ones need no table).
    lung, bone = (Window(p.center, p.width, "SIGMOID") for p in (PRESETS["lung"], PRESETS["bone"]))
    renderer = Renderer()
    slices = [np.full((4, 4), i, dtype=np.int16) for i in range(10)]
    for s in slices:   # scrolling a series with one window: one table
        renderer.render(s, CT, lung)
    assert renderer.builds == 1
    same_display = ImageMeta(**{**CT.__dict__, "rows": 99, "pixel_spacing": (1.0, 1.0)})
    renderer.render(slices[0], same_display, lung)
    assert renderer.builds == 1
    renderer.render(slices[0], CT, bone)
    renderer.render(slices[0], CT, lung)            # still cached
    assert renderer.builds == 2
    for i in range(20):                             # dragging: new tables
        renderer.render(slices[0], CT, Window(40 + i, 400, "SIGMOID"))
    assert renderer.builds == 22
    other = ImageMeta(**{**CT.__dict__, "rescale_intercept": 0.0})
    a = renderer.render(slices[5], CT, Window(0, 100))
    b = renderer.render(slices[5], other, Window(0, 100))
    assert a[0, 0] != b[0, 0]


def _assert_ties_only(fast, exact_ref, values, meta, window, context=()) -> None:
    """fast == exact_ref except at exact .5 ties of the float64 grey level,
    where float32 and float64 rounding may differ by one grey level."""
    from medviewer.viewer.display.voi import window_fraction

    diff = np.abs(fast.astype(int) - exact_ref.astype(int))
    assert diff.max() <= 1, context
    if diff.any():
        modality = values[diff > 0].astype(np.float64) * meta.rescale_slope + meta.rescale_intercept
        grey = window_fraction(modality, window) * 255.0
        assert np.all(np.abs(grey - np.floor(grey) - 0.5) < 1e-3), context


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8])
@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT"])
def test_affine_path_matches_table_for_every_stored_value(dtype, photometric, function) -> None:
    """The OpenCV affine path (LINEAR windows, no table) equals the table path
    within one grey level for every stored value, including narrow windows,
    negative slopes and windows entirely outside the stored range."""
    from medviewer.viewer.display.pipeline import _affine_render, _full_grey_table

    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1).astype(dtype).reshape(-1, 256)
    index = values.view(np.dtype(dtype).str.replace("i", "u"))
    rng = np.random.default_rng(7)
    checked = 0
    for slope, intercept in ((1.0, -1024.0), (0.5, -10.0), (-1.0, 50.0), (0.0137, -3.2)):
        for width in (1.0, 2.0, 80.0, 1500.0, float(rng.uniform(0.5, 4000.0))):
            center = float(rng.uniform(-1500.0, 3000.0)) if dtype != np.uint8 else 100.0
            meta = ImageMeta(photometric=photometric, rescale_slope=slope,
                             rescale_intercept=intercept,
                             pixel_representation=int(np.dtype(dtype).kind == "i"),
                             bits_stored=8 * np.dtype(dtype).itemsize)
            window = Window(center, width, function)
            fast = _affine_render(values, meta, window)
            if fast is None:
                continue
            table = np.take(_full_grey_table(meta, window, np.dtype(dtype)), index)
            _assert_ties_only(fast, table, values, meta, window, (slope, intercept, center, width))
            checked += 1
    assert checked >= 15


def test_non_contiguous_input() -> None:
    base = np.arange(-500, 1548, dtype=np.int16).reshape(32, 64)
    view = base[::2, ::-3]
    assert np.array_equal(render(view, CT, Window(0, 500)),
                          render(np.ascontiguousarray(view), CT, Window(0, 500)))


def test_uint32_huge_range_falls_back_to_float_math() -> None:
    stored = np.array([[0, 2**31, 2**32 - 1]], dtype=np.uint32)
    meta = ImageMeta(bits_stored=32, bits_allocated=32)
    grey = render(stored, meta, Window(2**31, 2**32))
    assert grey.tolist() == [[0, 128, 255]]


def test_rgb_rendering() -> None:
    rgb8 = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    meta8 = meta_for_plain_image(rgb8)
    assert np.array_equal(render(rgb8, meta8), rgb8)
    rgb16 = (rgb8.astype(np.uint16) * 257)
    meta16 = ImageMeta(photometric="RGB", samples_per_pixel=3, bits_stored=16)
    assert np.array_equal(render(rgb16, meta16), rgb8)
    # an explicit window is applied to each channel
    windowed = render(rgb8, meta8, Window(24, 24, "LINEAR_EXACT"))
    assert windowed[0, 0].tolist() == [0, 0, 0] and windowed[3, 3].tolist() == [255, 255, 255]
    rgba = np.dstack([rgb8, np.full((4, 4), 255, np.uint8)])
    assert np.array_equal(render(rgba, meta_for_plain_image(rgba)), rgb8)


def test_palette_rendering_clamps_indices() -> None:
    table = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    meta = ImageMeta(photometric="PALETTE COLOR", palette=Palette(10, table.tobytes()))
    stored = np.array([[0, 10, 11], [12, 13, 300]], dtype=np.uint16)
    out = render(stored, meta)
    assert out.shape == (2, 3, 3)
    assert out.reshape(-1, 3).tolist() == [[255, 0, 0], [255, 0, 0], [0, 255, 0],
                                           [0, 0, 255], [0, 0, 255], [0, 0, 255]]


def test_plain_grey_images_show_unchanged() -> None:
    img = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(render(img, meta_for_plain_image(img)), img)
    img16 = np.array([[0, 32768, 65535]], dtype=np.uint16)
    assert render(img16, meta_for_plain_image(img16)).tolist() == [[0, 128, 255]]
    mask = np.array([[False, True]])
    assert render(mask, meta_for_plain_image(mask)).tolist() == [[0, 255]]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16])
@pytest.mark.parametrize("slope, intercept", [(1.0, 0.0), (-2.5, 100.0), (0.001, -3.0)])
@pytest.mark.parametrize("inverted", [False, True])
def test_full_dtype_table_equals_float_math(dtype, slope, intercept, inverted) -> None:
    """Integer pixels (per-dtype table, or the OpenCV affine path for LINEAR
    windows) give what float64 math gives for every possible stored value:
    exactly through a table, within one grey level (float32 rounding of exact
    .5 ties) through the affine path."""
    info = np.iinfo(dtype)
    every = np.arange(info.min, info.max + 1).astype(dtype).reshape(-1, 256)
    meta = ImageMeta(photometric="MONOCHROME1" if inverted else "MONOCHROME2",
                     rescale_slope=slope, rescale_intercept=intercept)
    renderer = Renderer()
    span = abs(slope) * (info.max - info.min)
    for function in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        for center, width in [(intercept, span / 7), (intercept + span, span / 3),
                              (intercept - 5 * span, 1.0), (intercept + 0.3, 0.5),
                              (intercept, 10 * span)]:
            window = Window(center, width, function)
            fast = renderer.render(every, meta, window)
            slow = renderer.render(every.astype(np.float64), meta, window)
            if function == "SIGMOID":
                assert np.array_equal(fast, slow), (function, center, width)
            else:
                _assert_ties_only(fast, slow, every, meta, window, (function, center, width))


@pytest.mark.parametrize("dtype", [">i2", ">u2", ">f4", ">i4"])
def test_big_endian_arrays(dtype) -> None:
    """pydicom returns big-endian dtypes for Explicit VR Big Endian files."""
    values = np.array([[-100, 0, 100, 1000]])
    if dtype.startswith(">u"):
        values = values + 100
    native = values.astype(dtype[1:])
    big = values.astype(dtype)
    window = Window(100, 500)
    assert np.array_equal(render(big, CT, window), render(native, CT, window))
    assert np.array_equal(modality_values(big, CT), modality_values(native, CT))


def test_non_finite_window_falls_back_to_the_file_window() -> None:
    meta = ImageMeta(windows=(Window(100, 50, "LINEAR", "H"),))
    stored = np.arange(0, 200, dtype=np.uint16).reshape(10, 20)
    expected = render(stored, meta, meta.windows[0])
    assert np.array_equal(render(stored, meta, Window(float("nan"), 10)), expected)
    assert np.array_equal(render(stored, meta, Window(0, float("inf"))), expected)


@pytest.mark.parametrize("dtype", [np.int16, np.uint16])
@pytest.mark.parametrize("alpha", [0.3, 0.6, 0.85, 0.9, 0.91, 1.0, 1.5])
def test_affine_two_and_four_pass_paths_agree_with_the_table(dtype, alpha) -> None:
    """Around the switch between the two-pass path (|alpha| <= 0.9: one clamp) and the
    four-pass path, with ramps far from 0 (large |beta|, float32 cancellation in OpenCV)."""
    from medviewer.viewer.display.pipeline import _affine_render, _full_grey_table

    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1).astype(dtype).reshape(-1, 256)
    index = values.view(np.dtype(dtype).str.replace("i", "u"))
    rng = np.random.default_rng(11)
    for photometric in ("MONOCHROME2", "MONOCHROME1"):
        for center in (float(info.min) + 300, -7.3, 1234.5, float(info.max) - 400, float(rng.uniform(-3e4, 6e4))):
            meta = ImageMeta(photometric=photometric, rescale_slope=1.0, rescale_intercept=0.0,
                             pixel_representation=int(np.dtype(dtype).kind == "i"), bits_stored=16)
            window = Window(center, 255.0 / alpha + 1.0)   # LINEAR: w - 1 = 255 / alpha
            fast = _affine_render(values, meta, window)
            table = np.take(_full_grey_table(meta, window, np.dtype(dtype)), index)
            _assert_ties_only(fast, table, values, meta, window, (photometric, center, alpha))


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8])
def test_one_pixel_images_render(dtype) -> None:
    """A 1x1 image (OpenCV's bindings take a 1x1 array for a scalar) renders like any other."""
    one = np.full((1, 1), 100, dtype)
    two = np.full((1, 2), 100, dtype)
    for window in (Window(40, 400), Window(-900, 10), Window(100, 1)):
        assert render(one, CT, window).shape == (1, 1)
        assert render(one, CT, window)[0, 0] == render(two, CT, window)[0, 0]
