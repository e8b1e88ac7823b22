"""engine.preprocess_gpu: the matrix form of the shared preprocessing equals the CPU path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medviewer.engine.preprocess import PreprocessSpec, fit, preprocess_batch
from medviewer.engine.preprocess_gpu import fit_matrices, preprocess_batch_device


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

    from medviewer.viewer.display import meta_for_plain_image

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
    from medviewer.viewer.display import ImageMeta

    from medviewer.engine.preprocess_gpu import affine_grey

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
    from medviewer.viewer.display import ImageMeta, Window, render

    from medviewer.engine.preprocess_gpu import _stored_to_unit

    every = np.arange(-32768, 32768).astype(np.int16).reshape(256, 256)
    meta = ImageMeta(bits_stored=16, pixel_representation=1, rescale_intercept=-1024.0)
    from medviewer.viewer.display import affine_coefficients

    for window in (Window(40, 400), Window(-600, 1500), Window(40, 80, "LINEAR_EXACT"), Window(0.5, 2)):
        alpha, beta = affine_coefficients(every.dtype, meta, window)
        unit = _stored_to_unit(torch.from_numpy(every[None]), False, torch.tensor([alpha]),
                               torch.tensor([beta]))
        got = np.rint(unit[0].numpy() * 255).astype(int)
        diff = np.abs(got - render(every, meta, window).astype(int))
        assert diff.max() <= 1 and (diff > 0).sum() <= 2, window   # float32 rounding of exact ties only


def test_pinned_staging_reuses_buffers_within_its_limit():
    from medviewer.engine.preprocess_gpu import PinnedStaging

    made: list[int] = []

    def alloc(n: int) -> torch.Tensor:
        made.append(n)
        return torch.empty(n, dtype=torch.uint8)

    st = PinnedStaging(max_bytes=1000, alloc=alloc)
    a = st.take(400)
    b = st.take(500)
    assert st.take(200) is None and st.pinned_bytes == 900  # over the limit: pageable copy
    st.give(a)
    assert st.take(300) is a  # the smallest idle buffer that fits is reused
    st.give(a)
    st.give(b)
    c = st.take(450)
    assert c is b and made == [400, 500]
    assert st.take(600) is None and st.pinned_bytes == 500  # idle 400 dropped, still no room
    st.give(c)
    d = st.take(900)  # the idle 500 is dropped to make room for a larger buffer
    assert d is not None and made == [400, 500, 900] and st.pinned_bytes == 900
    st.give(d)
    assert st.take(2000) is None  # larger than the limit however much is idle


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_batches_prepared_on_side_streams_are_complete_and_not_recycled():
    """Many batches prepared by concurrent threads through pinned buffers and side
    streams, consumed on the default stream with slow work queued in between: each
    equals the CPU path (no buffer refilled or freed block reused too early)."""
    from concurrent.futures import ThreadPoolExecutor

    from medviewer.viewer.display import ImageMeta

    ct = ImageMeta(photometric="MONOCHROME2", bits_stored=16, pixel_representation=1,
                   rescale_slope=1.0, rescale_intercept=-1024.0, modality="CT")
    spec = PreprocessSpec(input_size=96, window={"center": 40, "width": 400})
    rng = np.random.default_rng(5)
    batches = [[rng.integers(0, 3000, (256, 256)).astype(np.int16) for _ in range(8)] for _ in range(24)]
    dev = torch.device("cuda")
    big = torch.randn(4096, 4096, device=dev)
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(preprocess_batch_device, b, [ct] * len(b), spec, dev) for b in batches]
        for batch, fut in zip(batches, futures):
            x, _ = fut.result()
            x.record_stream(torch.cuda.current_stream(dev))
            for _ in range(3):
                big = big @ big / 4096.0  # keep the default stream busy
            ref, _ = preprocess_batch(batch, [ct] * len(batch), spec)
            np.testing.assert_allclose(x.cpu().numpy(), ref.numpy(), atol=1e-4)
