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
