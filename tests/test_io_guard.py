"""Header parsers (viewer.io.imagehead), decode limits (viewer.io.guard), safe file access
(viewer.io.safefile) and printable names, on real encoded files and generated hostile ones."""

from __future__ import annotations

import os
import threading
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_files
from pydicom.encaps import get_frame

import hostilegen as h
from medviewer.viewer.errors import DecodeError
from medviewer.viewer.io import guard, imagehead
from medviewer.viewer.io.model import printable
from medviewer.viewer.io.pixels import read_image_file, read_plain_image
from medviewer.viewer.io.safefile import (FileTooLargeError, NotRegularFileError, atomic_output, inside,
                                          open_regular, read_regular)


def _declared(path: Path) -> imagehead.Declared:
    return imagehead.plain_image(imagehead.from_bytes(path.read_bytes()))


# -- plain image headers: what the header says is what OpenCV decodes --------------------------

def _pil(path: Path, mode: str, **save) -> Path:
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 255, (37, 53, 3) if mode in ("RGB", "RGBA") else (37, 53)).astype(np.uint8)
    img = Image.fromarray(arr[..., :3] if mode == "RGB" else arr).convert(mode)
    img.save(path, **save)
    return path


@pytest.mark.parametrize("name,make", [
    ("grey.png", lambda p: cv2.imwrite(str(p), np.zeros((37, 53), np.uint8))),
    ("grey16.png", lambda p: cv2.imwrite(str(p), np.zeros((37, 53), np.uint16))),
    ("rgb.png", lambda p: cv2.imwrite(str(p), np.zeros((37, 53, 3), np.uint8))),
    ("rgba.png", lambda p: cv2.imwrite(str(p), np.zeros((37, 53, 4), np.uint8))),
    ("palette.png", lambda p: _pil(p, "P")),
    ("interlaced.png", lambda p: h.png_interlaced(p)),
    ("grey.jpg", lambda p: cv2.imwrite(str(p), np.zeros((37, 53), np.uint8))),
    ("colour.jpg", lambda p: cv2.imwrite(str(p), np.full((37, 53, 3), 90, np.uint8))),
    ("progressive.jpg", lambda p: cv2.imwrite(str(p), np.full((37, 53, 3), 90, np.uint8),
                                              [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])),
    ("grey.tif", lambda p: cv2.imwrite(str(p), np.zeros((37, 53), np.uint8))),
    ("grey16.tif", lambda p: cv2.imwrite(str(p), np.zeros((37, 53), np.uint16))),
    ("rgb.tif", lambda p: cv2.imwrite(str(p), np.zeros((37, 53, 3), np.uint8))),
    ("lzw.tif", lambda p: _pil(p, "L", compression="tiff_lzw")),
    ("deflate.tif", lambda p: _pil(p, "RGB", compression="tiff_adobe_deflate")),
    ("packbits.tif", lambda p: _pil(p, "L", compression="packbits")),
    ("bigendian.tif", lambda p: h.tiff_bomb(p, 37, 53, strip=bytes(37 * 53), order=">")),
    ("grey.bmp", lambda p: cv2.imwrite(str(p), np.zeros((37, 53), np.uint8))),
    ("rgb.bmp", lambda p: cv2.imwrite(str(p), np.zeros((37, 53, 3), np.uint8))),
    ("one_bit.bmp", lambda p: _pil(p, "1")),
])
def test_plain_headers_match_decoded_images(tmp_path: Path, name: str, make) -> None:
    path = tmp_path / name
    make(path)
    d = _declared(path)
    arr = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_UNCHANGED)
    assert (d.rows, d.columns) == arr.shape[:2] == (37, 53)
    assert d.min_bytes <= path.stat().st_size  # a real image always fits its own bound
    guard.check_plain(imagehead.from_bytes(path.read_bytes()), path.stat().st_size)


def test_jpeg_frame_header_found_after_large_app_segments(tmp_path: Path) -> None:
    """EXIF/ICC data can push the frame header far beyond the first kilobytes."""
    data = h.jpeg_bytes(40, 24)
    app = b"\xff\xe1" + (65533).to_bytes(2, "big") + bytes(65531)  # two maximal APP1 segments
    big = data[:2] + app + app + data[2:]
    d = imagehead.jpeg(imagehead.from_bytes(big))
    assert (d.rows, d.columns, d.samples) == (40, 24, 1)
    path = tmp_path / "exif.jpg"
    path.write_bytes(big)
    assert read_plain_image(path).shape == (40, 24)


def test_jpeg_with_stray_bytes_between_segments_is_read(tmp_path: Path) -> None:
    """libjpeg skips 'extraneous bytes before marker' (with a warning); so does the parser."""
    data = h.jpeg_bytes(30, 20)
    at = data.find(b"\xff\xdb")  # before the quantisation tables
    odd = data[:at] + b"\x00\x17junk" + data[at:]
    assert imagehead.jpeg(imagehead.from_bytes(odd)).rows == 30
    path = tmp_path / "odd.jpg"
    path.write_bytes(odd)
    assert read_plain_image(path).shape == (30, 20)
    with pytest.raises(imagehead.HeaderError, match="truncated"):
        imagehead.jpeg(imagehead.from_bytes(data[:at]))


@pytest.mark.parametrize("make,claim", [
    (lambda p: h.jpeg_bomb(p, 65500, 65500), "65500 x 65500"),
    (lambda p: h.jpeg_bomb(p, 16000, 16000), "16000 x 16000"),   # under the limit, but not in 3 kB
    (lambda p: h.png_bomb(p, 100000, 100000), "100000 x 100000"),
    (lambda p: h.png_bomb(p, 12000, 12000), "12000 x 12000"),    # deflate cannot hold it
    (lambda p: h.tiff_bomb(p, 50000, 50000), "50000 x 50000"),
    (lambda p: h.tiff_bomb(p, 9000, 9000), "9000 x 9000"),       # uncompressed: 81 MB missing
    (lambda p: h.tiff_bomb(p, 9000, 9000, compression=8), "9000 x 9000"),
    (lambda p: h.bmp_bomb(p, 30000, 30000), "30000 x 30000"),
    (lambda p: h.bmp_bomb(p, 5000, 5000, bpp=8), "5000 x 5000"),
])
def test_plain_bombs_refused_before_decoding(tmp_path: Path, make, claim: str) -> None:
    path = make(tmp_path / "bomb.img")
    with pytest.raises(guard.Refused, match=claim) as err:
        guard.check_plain(imagehead.from_bytes(path.read_bytes()), path.stat().st_size)
    assert "not decoded" in str(err.value)
    final = tmp_path / ("bomb" + {b"\xff\xd8": ".jpg", b"\x89P": ".png", b"II": ".tif", b"BM": ".bmp"}[
        path.read_bytes()[:2]])
    path.rename(final)
    with pytest.raises(DecodeError, match=f"^{final.name}: .*{claim}"):
        read_plain_image(final)


# -- DICOM codestreams ----------------------------------------------------------------------------

def _encapsulated_testfiles() -> list[Path]:
    out = []
    for name in get_testdata_files():
        p = Path(name)
        if p.is_file() and p.stat().st_size < 3 * 2**20:
            out.append(p)
    return sorted(out)


def test_no_real_codestream_is_refused() -> None:
    """Every JPEG / JPEG-LS / JPEG 2000 / RLE frame of pydicom's test files that pydicom
    decodes passes the guard: the checks are exact, never a guess."""
    import pydicom
    from pydicom.pixels import pixel_array

    checked = 0
    for path in _encapsulated_testfiles():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = pydicom.dcmread(path)
                syntax = str(ds.file_meta.TransferSyntaxUID)
            except Exception:
                continue
            if syntax not in guard.CHECKED_SYNTAXES or "PixelData" not in ds:
                continue
            try:
                pixel_array(ds, index=0)
            except Exception:
                continue  # not decodable by pydicom either: nothing to protect
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            frame = get_frame(ds.PixelData, 0, number_of_frames=frames)
        guard.check_frame(syntax, imagehead.from_bytes(frame), len(frame), int(ds.Rows), int(ds.Columns),
                          int(ds.SamplesPerPixel), int(ds.BitsAllocated))
        checked += 1
    assert checked >= 40, checked


@pytest.mark.parametrize("make,reason", [
    (lambda p: h.dicom_jpeg_bomb(p), "JPEG codestream declares 65500 x 65500"),
    (lambda p: h.dicom_jpeg_bomb(p, claim=128), "declares 128 x 128 pixels but Rows/Columns say 64 x 64"),
    (lambda p: h.dicom_j2k_bomb(p), "JPEG 2000 codestream declares 60000 x 60000"),
    (lambda p: h.dicom_j2k_bomb(p, claim=2000), "declares 2000 x 2000 pixels but Rows/Columns say 64 x 64"),
    (lambda p: h.dicom_jls_bomb(p), "JPEG-LS codestream declares 65500 x 65500"),
    (lambda p: h.dicom_rle_bomb(p), "declares 65535 x 65535"),
    (lambda p: h.dicom_rle_bomb(p, side=4000), "RLE data cannot hold them"),
    (lambda p: h.dicom_native_claim(p), "declares 65535 x 65535"),
])
def test_dicom_bombs_refused_at_scan_and_at_decode(tmp_path: Path, make, reason: str) -> None:
    from medviewer.viewer.io.pixels import decode_dicom
    from medviewer.viewer.io.scan import scan

    path = make(tmp_path / "bomb.dcm")
    res = scan(tmp_path)
    assert not res.all_series()
    assert len(res.skipped) == 1 and reason in res.skipped[0].reason, res.skipped
    with pytest.raises(DecodeError, match=f"^bomb.dcm: .*{reason}"):
        decode_dicom(path, None)


def test_valid_compressed_dicom_still_decodes(tmp_path: Path) -> None:
    path = h.dicom_jpeg(tmp_path / "ok.dcm", 48, 40)
    arr, meta = read_image_file(path)
    assert arr.shape == (48, 40) and meta.rows == 48


def test_limits_are_configurable(tmp_path: Path, monkeypatch) -> None:
    from medviewer.viewer.io.scan import scan

    h.good_series(tmp_path / "s", 2)  # 16 x 16
    monkeypatch.setenv(guard.ENV_PIXELS, "255")
    res = scan(tmp_path)
    assert not res.all_series() and all("over the limit of" in s.reason for s in res.skipped)
    monkeypatch.setenv(guard.ENV_PIXELS, "256")
    assert scan(tmp_path).all_series()
    guard.set_limits(max_frame_bytes=100)   # 16 x 16 x 2 bytes = 512
    try:
        assert "per image (MEDVIEWER_MAX_FRAME_BYTES)" in scan(tmp_path).skipped[0].reason
    finally:
        guard.set_limits()
    monkeypatch.setenv(guard.ENV_PIXELS, "lots")   # nonsense: the default, not a crash
    assert guard.limits().max_pixels == guard.DEFAULT_MAX_PIXELS


def test_trainer_reader_matches_the_trainer_on_real_files(tmp_path: Path) -> None:
    """`read_image_file` is a drop-in for engine.train.images.read_stored (same pixels and
    metadata) that also refuses bombs."""
    from pydicom.data import get_testdata_file

    from medviewer.engine.train.images import read_stored

    files = [Path(get_testdata_file(n)) for n in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm",
                                                   "emri_small.dcm", "MR_small_RLE.dcm")]
    files.append(h.good_png(tmp_path / "a.png"))
    cv2.imwrite(str(tmp_path / "c.jpg"), np.full((9, 7, 3), (10, 200, 90), np.uint8))
    files.append(tmp_path / "c.jpg")
    for path in files:
        ours, meta = read_image_file(path)
        theirs, their_meta = read_stored(path)
        np.testing.assert_array_equal(ours, theirs, err_msg=path.name)
        assert (meta is None) == (their_meta is None)
        if meta is not None:
            assert meta.display_key() == their_meta.display_key()
    with pytest.raises(DecodeError, match="65500 x 65500"):
        read_image_file(h.dicom_jpeg_bomb(tmp_path / "b.dcm"))


# -- safe file access ----------------------------------------------------------------------------

def _returns_within(func, seconds: float = 5.0):
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = func()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "blocked"
    return box


def test_special_files_are_refused_without_blocking(tmp_path: Path) -> None:
    pipe = h.fifo(tmp_path / "pipe")
    sock_path, sock = h.unix_socket(tmp_path / "sock")
    try:
        for path, kind in ((pipe, "named pipe"), (sock_path, "socket"), (Path("/dev/zero"), "character device"),
                           (tmp_path, "folder")):
            box = _returns_within(lambda p=path: open_regular(p))
            assert isinstance(box.get("error"), NotRegularFileError), (path, box)
            assert kind in str(box["error"]) and "not opened" in str(box["error"])
    finally:
        sock.close()


def test_read_regular_caps_the_size(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(bytes(1000))
    assert len(read_regular(path, 1000)) == 1000
    with pytest.raises(FileTooLargeError, match="larger than"):
        read_regular(path, 999)


def test_inside_resolves_links_and_dot_dot(tmp_path: Path) -> None:
    root = tmp_path / "study"
    (root / "a").mkdir(parents=True)
    (tmp_path / "secret").write_text("x")
    os.symlink(tmp_path / "secret", root / "out")
    os.symlink(root / "a", root / "in")
    assert inside(root / "a" / "f", root) and inside(root / "in", root)
    assert not inside(root / "out", root)
    assert not inside(root / ".." / "secret", root)
    a, _ = h.symlink_loop(root)
    assert inside(a, root) is not None  # a loop is not an error here; opening it fails later


def test_atomic_output_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(OSError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(28, "No space left on device")
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new" and list(tmp_path.iterdir()) == [target]
    with pytest.raises(NotRegularFileError, match="folder"):
        with atomic_output(tmp_path):
            pass


@pytest.mark.parametrize("raw,shown", [
    (os.fsdecode(b"IM\xff\xfe.dcm"), "IM\\xff\\xfe.dcm"),
    ("two\nlines.png", "two\\nlines.png"),
    ("\x1b[31mred", "\\x1b[31mred"),
    ("Überweisung 漢字.dcm", "Überweisung 漢字.dcm"),
])
def test_printable_names(raw: str, shown: str) -> None:
    out = printable(raw)
    assert out == shown and out.isprintable()
    out.encode("utf-8")  # strict: valid Unicode
