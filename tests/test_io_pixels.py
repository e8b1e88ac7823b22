"""PixelStore on real pydicom / pydicom-data files and generated data."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import dicomgen as g
from medviewer.viewer.errors import DecodeError
from medviewer.viewer.io.model import ImageRef
from medviewer.viewer.io.pixels import PixelStore


def real(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not installed (pydicom-data)")
    return Path(path)


def reference(name: str, frame: int | None = None) -> np.ndarray:
    arr = pydicom.dcmread(real(name)).pixel_array
    return arr if frame is None else arr[frame]


@pytest.fixture()
def store():
    with PixelStore() as s:
        yield s


MR_SYNTAXES = ["MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
               "MR_small_expb.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm",
               "MR_small_jpeg_ls_lossless.dcm", "MR_small_padded.dcm"]


@pytest.mark.parametrize("name", MR_SYNTAXES)
def test_mr_small_every_transfer_syntax_decodes_identically(store: PixelStore, name: str) -> None:
    arr = store.get(ImageRef(real(name)))
    assert arr.dtype == np.int16 and arr.shape == (64, 64)
    np.testing.assert_array_equal(arr, reference("MR_small.dcm"))


@pytest.mark.parametrize("name, dtype, shape", [
    ("CT_small.dcm", np.int16, (128, 128)),
    ("693_J2KR.dcm", np.int16, (512, 512)),
    ("RG1_UNCR.dcm", np.uint16, (1955, 1841)),
    ("RG1_J2KR.dcm", np.uint16, (1955, 1841)),
    ("RG3_UNCR.dcm", np.uint16, (1760, 1760)),
])
def test_monochrome_real_files_keep_stored_dtype(store: PixelStore, name, dtype, shape) -> None:
    arr = store.get(ImageRef(real(name)))
    assert arr.dtype == dtype and arr.shape == shape
    np.testing.assert_array_equal(arr, reference(name))
    assert not arr.flags.writeable


def test_j2k_lossless_matches_uncompressed(store: PixelStore) -> None:
    np.testing.assert_array_equal(store.get(ImageRef(real("693_J2KR.dcm"))), reference("693_UNCR.dcm"))


def test_monochrome1_meta(store: PixelStore) -> None:
    ref = ImageRef(real("RG1_UNCR.dcm"))
    assert store.meta(ref).photometric == "MONOCHROME1"


@pytest.mark.parametrize("name", ["emri_small.dcm", "emri_small_RLE.dcm",
                                  "emri_small_jpeg_ls_lossless.dcm", "emri_small_big_endian.dcm"])
def test_multiframe_decodes_one_frame_at_a_time(store: PixelStore, name: str) -> None:
    full = reference("emri_small.dcm")
    assert full.shape == (10, 64, 64)
    for frame in (0, 3, 9):
        arr = store.get(ImageRef(real(name), frame))
        assert arr.shape == (64, 64) and arr.dtype == full.dtype
        np.testing.assert_array_equal(arr, full[frame])


@pytest.mark.parametrize("name", ["SC_rgb.dcm", "SC_rgb_rle.dcm", "SC_ybr_full_uncompressed.dcm",
                                  "SC_ybr_full_422_uncompressed.dcm", "SC_rgb_jpeg_gdcm.dcm",
                                  "US1_UNCR.dcm"])
def test_colour_is_rgb_uint8(store: PixelStore, name: str) -> None:
    arr = store.get(ImageRef(real(name)))
    assert arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, reference(name))  # pydicom's YBR->RGB


def test_colour_16bit_reduced_to_uint8(store: PixelStore) -> None:
    arr = store.get(ImageRef(real("SC_rgb_16bit.dcm")))
    assert arr.dtype == np.uint8
    np.testing.assert_array_equal(arr, (reference("SC_rgb_16bit.dcm") >> 8).astype(np.uint8))


def test_palette_returns_indices_and_palette_meta(store: PixelStore) -> None:
    ref = ImageRef(real("examples_palette.dcm"))
    arr = store.get(ref)
    assert arr.ndim == 2
    np.testing.assert_array_equal(arr, reference("examples_palette.dcm"))
    assert store.meta(ref).is_palette


def test_palette_file_without_file_meta_decodes(store: PixelStore) -> None:
    ref = ImageRef(real("OT-PAL-8-face.dcm"))  # no preamble, no File Meta, implicit VR
    arr = store.get(ref)
    assert arr.shape == (480, 640) and arr.dtype == np.uint8
    ds = pydicom.dcmread(ref.path, force=True)
    assert ds.original_encoding == (True, True)  # implicit VR little endian
    expected = np.frombuffer(ds.PixelData, np.uint8).reshape(480, 640)  # 8-bit native
    np.testing.assert_array_equal(arr, expected)
    assert store.meta(ref).is_palette


def test_overlay_example_meta_has_several_windows(store: PixelStore) -> None:
    meta = store.meta(ImageRef(real("examples_overlay.dcm")))
    assert len(meta.windows) >= 2


def test_lru_stays_under_byte_bound(tmp_path: Path) -> None:
    paths, _ = g.ct_series(tmp_path, 10, rows=32, cols=32)  # 2 KiB per slice
    refs = [ImageRef(p) for p in paths]
    with PixelStore(max_bytes=3 * 2048 + 100) as store:
        for r in refs:
            store.get(r)
            assert store.cached_bytes <= store.max_bytes
        assert [r in store for r in refs] == [False] * 7 + [True] * 3
        store.get(refs[7])  # touch: now most recent
        store.get(refs[0])  # evicts refs[8], the least recently used
        assert refs[7] in store and refs[8] not in store and refs[0] in store
        assert store.get(refs[0])[1, 1] == g.slice_value(0)


def test_frame_larger_than_cache_is_returned_not_cached(tmp_path: Path) -> None:
    (path,), _ = g.ct_series(tmp_path, 1, rows=64, cols=64)
    with PixelStore(max_bytes=1000) as store:
        assert store.get(ImageRef(path)).shape == (64, 64)
        assert store.cached_bytes == 0


def test_prefetch_fills_cache_in_background(tmp_path: Path) -> None:
    paths, _ = g.ct_series(tmp_path, 6)
    refs = [ImageRef(p) for p in paths]
    with PixelStore() as store:
        store.prefetch(refs)
        store.wait_idle(timeout=30)
        assert all(r in store for r in refs)
        calls = []
        store._decode = lambda ref: calls.append(ref)  # a hit must not decode again
        assert [int(store.get(r)[1, 1]) for r in refs] == [g.slice_value(k) for k in range(6)]
        assert calls == []


def test_get_never_waits_for_queued_prefetch(tmp_path: Path) -> None:
    paths, _ = g.ct_series(tmp_path, 4)
    refs = [ImageRef(p) for p in paths]
    release = threading.Event()
    with PixelStore(workers=1) as store:
        real_decode = store._decode

        def decode(ref: ImageRef) -> np.ndarray:
            if threading.current_thread().name.startswith("prefetch"):
                assert release.wait(30)
            return real_decode(ref)

        store._decode = decode
        store.prefetch(refs)  # worker blocks on refs[0]; refs[1:] stay queued
        arr = store.get(refs[3])  # decoded here although the prefetch queue is stuck
        assert arr[1, 1] == g.slice_value(3)
        release.set()
        store.wait_idle(timeout=30)
        assert refs[0] in store


def test_truncated_file_raises_decode_error_naming_file(tmp_path: Path) -> None:
    (path,), _ = g.ct_series(tmp_path, 1, rows=64, cols=64)
    bad = g.truncated(tmp_path / "cut.dcm", path, keep=0.8)
    with PixelStore() as store, pytest.raises(DecodeError, match=r"^cut\.dcm: cannot decode"):
        store.get(ImageRef(bad))


def test_unknown_transfer_syntax_raises_decode_error(tmp_path: Path) -> None:
    ds = pydicom.dcmread(real("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.826.0.1.3680043.8.498.999"  # no decoder exists
    ds.save_as(tmp_path / "odd.dcm")
    with PixelStore() as store, pytest.raises(DecodeError) as err:
        store.get(ImageRef(tmp_path / "odd.dcm"))
    assert str(err.value).startswith("odd.dcm:") and "\n" not in str(err.value)


def test_plain_image_unreadable_raises_decode_error(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with PixelStore() as store, pytest.raises(DecodeError, match="broken.png"):
        store.get(ImageRef(bad))


def test_plain_16bit_png_kept_and_meta(tmp_path: Path) -> None:
    import cv2

    img = (np.arange(12 * 8, dtype=np.uint16).reshape(12, 8) * 600)
    cv2.imwrite(str(tmp_path / "deep.png"), img)
    ref = ImageRef(tmp_path / "deep.png")
    with PixelStore() as store:
        arr = store.get(ref)
        np.testing.assert_array_equal(arr, img)
        meta = store.meta(ref)
    assert meta.photometric == "MONOCHROME2" and (meta.rows, meta.columns) == (12, 8)


def test_headers_from_scan_avoid_rereading(tmp_path: Path) -> None:
    shutil.copy(real("CT_small.dcm"), tmp_path / "ct")
    from medviewer.viewer.io.scan import scan

    (series,) = scan(tmp_path).all_series()
    with PixelStore(headers=series.headers) as store:
        assert store.header(series.items[0]) is series.headers[series.items[0].path]
        assert store.meta(series.items[0]).rescale_intercept == -1024.0
