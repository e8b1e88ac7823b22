"""engine.preprocess_gpu: the matrix form of the shared preprocessing equals the CPU path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.preprocess import PreprocessSpec, fit, preprocess_batch
from engine.preprocess_gpu import fit_matrices, preprocess_batch_device


@pytest.mark.parametrize("mode", ["letterbox", "stretch", "center_crop"])
@pytest.mark.parametrize("shape, size", [((512, 512), 224), ((100, 300), 64), ((40, 24), 64),
                                         ((61, 61), 64), ((200, 130), 96), ((64, 64), 64), ((30, 200), 48)])
def test_fit_matrices_reproduce_cv2(mode, shape, size):
    img = np.random.default_rng(0).random(shape, dtype=np.float32)
    ref, geom = fit(img, size, mode)
    wy, wx, g2 = fit_matrices(*shape, size, mode)
    assert g2 == geom
    np.testing.assert_allclose(wy @ img @ wx.T, ref, atol=2e-5)


def test_device_batch_equals_cpu_batch():
    from dataclasses import replace

    from viewer.display import meta_for_plain_image

    rng = np.random.default_rng(1)
    imgs = [rng.integers(0, 4096, s, dtype=np.uint16) for s in [(80, 80), (80, 80), (50, 120)]]
    imgs.append(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8))  # colour: CPU fallback
    m1 = replace(meta_for_plain_image(imgs[0]), photometric="MONOCHROME1", bits_stored=12)
    metas = [m1, None, None, None]
    spec = PreprocessSpec(input_size=48, window="auto", monochrome1="raw", channels="rgb")
    ref, g_ref = preprocess_batch(imgs, metas, spec)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    got, g_got = preprocess_batch_device(imgs, metas, spec, dev)
    assert g_got == g_ref
    np.testing.assert_allclose(got.cpu().numpy(), ref.numpy(), atol=1e-4)


def test_device_windowing_of_raw_ct_equals_cpu_batch():
    """Rescaled CT with a LINEAR window crosses the bus as raw int16 and is windowed
    on the device; the tensor equals the CPU path's (display.render) one."""
    from viewer.display import ImageMeta

    from engine.preprocess_gpu import affine_grey

    rng = np.random.default_rng(3)
    ct = ImageMeta(photometric="MONOCHROME2", bits_stored=16, pixel_representation=1,
                   rescale_slope=1.0, rescale_intercept=-1024.0, modality="CT")
    cr1 = ImageMeta(photometric="MONOCHROME1", bits_stored=12, rescale_slope=0.5)
    imgs = [rng.integers(-1024, 3000, (64, 64)).astype(np.int16) + 1024 for _ in range(3)]
    imgs.append(rng.integers(0, 4096, (50, 70), dtype=np.uint16))
    metas = [ct, ct, ct, cr1]
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for window, mono1 in (({"center": 40, "width": 400}, "invert"), ({"center": -600, "width": 1500}, "raw"),
                          ("auto", "invert"), ("auto", "raw")):
        spec = PreprocessSpec(input_size=32, window=window, monochrome1=mono1, channels="rgb")
        assert all(affine_grey(i, m, spec) is not None for i, m in zip(imgs, metas))
        ref, g_ref = preprocess_batch(imgs, metas, spec)
        got, g_got = preprocess_batch_device(imgs, metas, spec, dev)
        assert g_got == g_ref
        np.testing.assert_allclose(got.cpu().numpy(), ref.numpy(), atol=1e-4)


def test_device_grey_levels_equal_display_render_for_every_int16_value():
    from viewer.display import ImageMeta, Window, render

    from engine.preprocess_gpu import _stored_to_unit

    every = np.arange(-32768, 32768).astype(np.int16).reshape(256, 256)
    meta = ImageMeta(bits_stored=16, pixel_representation=1, rescale_intercept=-1024.0)
    from viewer.display import affine_coefficients

    for window in (Window(40, 400), Window(-600, 1500), Window(40, 80, "LINEAR_EXACT"), Window(0.5, 2)):
        alpha, beta = affine_coefficients(every.dtype, meta, window)
        unit = _stored_to_unit(every[None], torch.tensor([alpha]), torch.tensor([beta]), torch.device("cpu"))
        got = np.rint(unit[0].numpy() * 255).astype(int)
        diff = np.abs(got - render(every, meta, window).astype(int))
        assert diff.max() <= 1 and (diff > 0).sum() <= 2, window   # float32 rounding of exact ties only
