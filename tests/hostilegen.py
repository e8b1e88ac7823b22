"""Hostile and faulty study inputs, generated on the fly (no network, a few kB each).

Each function writes into a folder the caller owns and returns the path it made.
The classes follow what a battery of hostile inputs found (issue 9, section 3):

* decompression bombs: plain images and DICOM codestreams whose headers claim far
  more pixels than their data holds (JPEG SOF, PNG IHDR, TIFF IFD, BMP header,
  JPEG 2000 SIZ, JPEG-LS SOF55, RLE with Rows = Columns = 65535);
* hangs: a FIFO, a socket and a device node in a study folder;
* outside the folder: a DICOMDIR whose records point above the folder or at an
  absolute path, a link that leaves the folder;
* odd names: a file name that is not valid UTF-8, a name with a newline, a
  path longer than PATH_MAX;
* data lost: a 1x1 DICOM beside a good series.
"""

from __future__ import annotations

import os
import socket
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from pydicom.encaps import encapsulate, get_frame
from pydicom.uid import (
    UID,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from dicomgen import SC_IMAGE, base_dataset, ct_series, save, set_pixels

BOMB_SIDE = 65500  # the largest side a JPEG SOF / 16-bit field can claim


# -- plain images ---------------------------------------------------------------------

def _noise(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (rows, cols)).astype(np.uint8)


def jpeg_bytes(rows: int = 64, cols: int = 64, quality: int = 90, seed: int = 0) -> bytes:
    """A real baseline JPEG (grey, noise so that it is a few kB)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", _noise(rows, cols, seed), [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def patch_sof(data: bytes, rows: int, cols: int, marker: bytes = b"\xff\xc0") -> bytes:
    """Rewrite the frame header's height and width (ISO/IEC 10918-1 B.2.2; 14495-1 C.2.2)."""
    buf = bytearray(data)
    at = buf.find(marker)
    assert at > 0, "no frame header"
    buf[at + 5:at + 9] = struct.pack(">HH", rows, cols)
    return bytes(buf)


def jpeg_bomb(path: Path, rows: int = BOMB_SIDE, cols: int = BOMB_SIDE) -> Path:
    """A ~4 kB JPEG whose SOF0 claims rows x cols."""
    path.write_bytes(patch_sof(jpeg_bytes(), rows, cols))
    return path


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(path: Path, rows: int = 100000, cols: int = 100000, data_rows: int = 2) -> Path:
    """A valid PNG signature and IHDR (correct CRC) claiming rows x cols 8-bit grey,
    with compressed data for only `data_rows` rows."""
    ihdr = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0)
    raw = (b"\x00" + bytes(cols)) * data_rows
    body = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw, 9)) + _png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def tiff_bomb(path: Path, rows: int = 50000, cols: int = 50000, compression: int = 1,
              strip: bytes | None = None, order: str = "<") -> Path:
    """A TIFF (little endian, or big endian with order '>') whose first IFD claims
    rows x cols 8-bit grey in one strip of a few bytes (compression 1: none,
    8: deflate), or of `strip`."""
    if strip is None:
        strip = zlib.compress(bytes(4096)) if compression == 8 else bytes(64)
    entries = [  # (tag, type, count, value); type 3 SHORT, 4 LONG (TIFF 6.0 section 2)
        (256, 4, 1, cols), (257, 4, 1, rows), (258, 3, 1, 8), (259, 3, 1, compression),
        (262, 3, 1, 1), (273, 4, 1, 0), (277, 3, 1, 1), (278, 4, 1, rows), (279, 4, 1, len(strip)),
    ]
    ifd_at = 8
    data_at = ifd_at + 2 + 12 * len(entries) + 4
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    out = bytearray(magic + struct.pack(order + "I", ifd_at) + struct.pack(order + "H", len(entries)))
    for tag, kind, count, value in entries:
        if tag == 273:
            value = data_at
        packed = struct.pack(order + "HH", value, 0) if kind == 3 else struct.pack(order + "I", value)
        out += struct.pack(order + "HHI", tag, kind, count) + packed
    out += struct.pack(order + "I", 0) + strip
    path.write_bytes(bytes(out))
    return path


def bmp_bomb(path: Path, rows: int = 30000, cols: int = 30000, bpp: int = 24) -> Path:
    """A BMP (BITMAPINFOHEADER) claiming rows x cols with 64 bytes of pixel data."""
    palette = b"".join(bytes((i, i, i, 0)) for i in range(256)) if bpp == 8 else b""
    offset = 14 + 40 + len(palette)
    data = bytes(64)
    header = b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset)
    info = struct.pack("<IiiHHIIiiII", 40, cols, rows, 1, bpp, 0, 0, 2835, 2835, 0, 0)
    path.write_bytes(header + info + palette + data)
    return path


def png_interlaced(path: Path, rows: int = 37, cols: int = 53) -> tuple[Path, np.ndarray]:
    """A valid Adam7-interlaced 8-bit grey PNG (PNG spec 8.2); returns (path, pixels)."""
    arr = _noise(rows, cols, seed=5)
    raw = b""
    for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4),
                           (1, 0, 2, 2), (0, 1, 1, 2)):
        sub = arr[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)
    ihdr = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 1)
    body = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path, arr


def good_png(path: Path, rows: int = 12, cols: int = 10, value: int = 80) -> Path:
    import cv2

    arr = np.full((rows, cols), value, np.uint8)
    arr[0, 0] = 255
    assert cv2.imwrite(str(path), arr)
    return path


# -- DICOM ------------------------------------------------------------------------------

def _dicom(pixels: np.ndarray, series_uid: str | None = None, study_uid: str | None = None):
    ds = base_dataset(SC_IMAGE, "OT", series_uid=series_uid, study_uid=study_uid,
                      description="hostile", patient="HOSTILE^INPUT", patient_id="HOSTILE1")
    ds.ConversionType = "WSD"
    return set_pixels(ds, pixels)


def _encapsulated(ds, syntax: UID, frames: list[bytes]) -> None:
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate(frames)
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True


def dicom_jpeg_bomb(path: Path, rows: int = 64, cols: int = 64, claim: int = BOMB_SIDE) -> Path:
    """JPEG Baseline DICOM: Rows/Columns say rows x cols, the codestream claims claim x claim."""
    ds = _dicom(_noise(rows, cols))
    _encapsulated(ds, JPEGBaseline8Bit, [patch_sof(jpeg_bytes(rows, cols), claim, claim)])
    return save(ds, path)


def dicom_jpeg(path: Path, rows: int = 64, cols: int = 64) -> Path:
    """A valid JPEG Baseline DICOM (the control for the bombs)."""
    ds = _dicom(_noise(rows, cols))
    _encapsulated(ds, JPEGBaseline8Bit, [jpeg_bytes(rows, cols)])
    return save(ds, path)


def _compressed_frame(syntax: UID, rows: int = 64, cols: int = 64) -> tuple[object, bytes]:
    ds = _dicom(_noise(rows, cols))
    ds.compress(syntax)
    return ds, get_frame(ds.PixelData, 0, number_of_frames=1)


def dicom_multiframe_jpeg_bomb(path: Path, frames: int = 3, bomb: int = 1, rows: int = 64,
                               cols: int = 64) -> Path:
    """A multi-frame JPEG Baseline DICOM whose frame `bomb` (not the first) claims 65500 x 65500:
    the scan sees a valid first frame; only the decode of that frame must refuse it."""
    ds = _dicom(np.stack([_noise(rows, cols, k) for k in range(frames)]))
    encoded = [jpeg_bytes(rows, cols, seed=k) for k in range(frames)]
    encoded[bomb] = patch_sof(encoded[bomb], BOMB_SIDE, BOMB_SIDE)
    _encapsulated(ds, JPEGBaseline8Bit, encoded)
    return save(ds, path)


def dicom_j2k_bomb(path: Path, claim: int = 60000) -> Path:
    """JPEG 2000 DICOM (64x64 attributes) whose SIZ marker (15444-1 A.5.1) claims
    claim x claim in one tile of that size."""
    ds, frame = _compressed_frame(JPEG2000Lossless)
    buf = bytearray(frame)
    assert buf[:4] == b"\xff\x4f\xff\x51"
    struct.pack_into(">IIIIII", buf, 8, claim, claim, 0, 0, claim, claim)  # X/Ysiz, X/YOsiz, X/YTsiz
    _encapsulated(ds, JPEG2000Lossless, [bytes(buf)])
    return save(ds, path)


def dicom_jls_bomb(path: Path, claim: int = BOMB_SIDE) -> Path:
    """JPEG-LS DICOM (64x64 attributes) whose SOF55 claims claim x claim."""
    ds, frame = _compressed_frame(JPEGLSLossless)
    _encapsulated(ds, JPEGLSLossless, [patch_sof(frame, claim, claim, marker=b"\xff\xf7")])
    return save(ds, path)


def dicom_rle_bomb(path: Path, side: int = 65535) -> Path:
    """RLE Lossless DICOM: 64x64 RLE segments, Rows = Columns = `side` (PS3.5 G)."""
    ds = _dicom(np.zeros((64, 64), np.uint16))
    ds.compress(RLELossless)
    ds.Rows = ds.Columns = side
    return save(ds, path)


def dicom_native_claim(path: Path, side: int = 65535, frames: int = 1) -> Path:
    """Native (uncompressed) DICOM claiming side x side x frames 16-bit with 64x64 of data."""
    ds = _dicom(np.zeros((64, 64), np.uint16))
    ds.Rows = ds.Columns = side
    if frames > 1:
        ds.NumberOfFrames = frames
    return save(ds, path)


def dicom_huge_native(path: Path, rows: int, cols: int) -> Path:
    """A native 8-bit DICOM whose pixel data really holds rows x cols (for limits)."""
    ds = _dicom(np.zeros((rows, cols), np.uint8))
    return save(ds, path)


def tiny_dicom(path: Path, series_uid: str | None = None) -> Path:
    """A valid 1x1 CT image."""
    ds = base_dataset(series_uid=series_uid, description="one pixel")
    set_pixels(ds, np.full((1, 1), 40, np.int16))
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    return save(ds, path)


def good_series(folder: Path, n: int = 4) -> list[Path]:
    """A small valid CT series (16x16) to sit beside the hostile files."""
    paths, _ = ct_series(folder, n)
    return paths


# -- special files ------------------------------------------------------------------------

def fifo(path: Path) -> Path:
    os.mkfifo(path)
    return path


def unix_socket(path: Path) -> tuple[Path, socket.socket]:
    """A bound Unix socket (the caller closes it)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return path, sock


def zero_device(path: Path) -> Path:
    """A character device node equal to /dev/zero (needs root), else a link to /dev/zero."""
    try:
        os.mknod(path, 0o666 | 0o020000, os.makedev(1, 5))
    except (PermissionError, OSError):
        os.symlink("/dev/zero", path)
    return path


def symlink_loop(folder: Path) -> tuple[Path, Path]:
    a, b = folder / "loop_a.dcm", folder / "loop_b.dcm"
    os.symlink(b.name, a)
    os.symlink(a.name, b)
    return a, b


# -- names and references -------------------------------------------------------------------

def non_utf8_name(folder: Path, data: bytes) -> Path:
    """A file holding `data` under a name that is not valid UTF-8 (bytes 0xff 0xfe, Latin-1 é)."""
    raw = os.path.join(os.fsencode(folder), b"IM\xff\xfe_latin1_\xe9.dcm")
    with open(raw, "wb") as fp:
        fp.write(data)
    return Path(os.fsdecode(raw))


def newline_name(folder: Path, data: bytes = b"not an image") -> Path:
    path = folder / "two\nlines.png"
    path.write_bytes(data)
    return path


def deep_path(folder: Path, source: Path, total: int = 4300) -> Path:
    """A copy of `source` whose absolute path is longer than PATH_MAX (4096): nested
    200-character folders, created relative to each other."""
    comp = "d" * 200
    fd = os.open(folder, os.O_RDONLY)
    depth = 0
    try:
        while len(str(folder)) + depth * (len(comp) + 1) < total:
            os.mkdir(comp, dir_fd=fd)
            nxt = os.open(comp, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
            depth += 1
        out = os.open("IM_DEEP.dcm", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, source.read_bytes())
        os.close(out)
    finally:
        os.close(fd)
    return folder.joinpath(*([comp] * depth), "IM_DEEP.dcm")


def escaping_dicomdir(folder: Path, outside: Path) -> tuple[Path, list[Path]]:
    """A File-set whose DICOMDIR also references `outside` through '..' components, an
    absolute path, a 300-character component and a FIFO; returns (DICOMDIR, the set's files)."""
    import pydicom

    from dicomgen import with_dicomdir

    dicomdir, files = with_dicomdir(folder, 6)
    ds = pydicom.dcmread(dicomdir)
    images = [r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r]
    rel = os.path.relpath(outside, folder).split(os.sep)
    fifo(folder / "PIPE")
    refs = [rel, [str(outside)], ["A" * 300, "B"], ["PIPE"]]
    with warnings.catch_warnings():  # pydicom rightly warns: these are not valid File IDs
        warnings.simplefilter("ignore")
        for rec, ref in zip(images, refs):
            rec.ReferencedFileID = ref
        ds.save_as(dicomdir, enforce_file_format=True)
    # the set's own files stay in the folder, found by the walk; two records still point at them
    return dicomdir, files


def write_all(folder: Path) -> dict[str, Path]:
    """One of each hostile plain-image and DICOM file in `folder` (a battery in one go)."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "jpeg_bomb": jpeg_bomb(folder / "bomb.jpg"),
        "png_bomb": png_bomb(folder / "bomb.png"),
        "tiff_bomb": tiff_bomb(folder / "bomb.tif"),
        "bmp_bomb": bmp_bomb(folder / "bomb.bmp"),
        "dicom_jpeg_bomb": dicom_jpeg_bomb(folder / "jpeg_bomb.dcm"),
        "dicom_j2k_bomb": dicom_j2k_bomb(folder / "j2k_bomb.dcm"),
        "dicom_jls_bomb": dicom_jls_bomb(folder / "jls_bomb.dcm"),
        "dicom_rle_bomb": dicom_rle_bomb(folder / "rle_bomb.dcm"),
        "dicom_native_claim": dicom_native_claim(folder / "native_claim.dcm"),
    }



# -- files that make decoders talk on stderr (C libraries writing to fd 2) -------------------

def noisy_truncated_jpeg(path: Path, rows: int = 256, cols: int = 256) -> Path:
    """A real JPEG cut after 60% of its data: libjpeg warns 'Corrupt JPEG data' and
    decodes the rest as grey."""
    data = jpeg_bytes(rows, cols)
    path.write_bytes(data[:int(len(data) * 0.6)])
    return path


def noisy_png_crc(path: Path) -> Path:
    """A PNG whose IDAT CRC is wrong: libpng reports a CRC error."""
    import cv2

    ok, buf = cv2.imencode(".png", _noise(32, 32))
    data = bytearray(buf.tobytes())
    at = data.find(b"IDAT")
    length = struct.unpack(">I", data[at - 4:at])[0]
    data[at + 4 + length] ^= 0xFF  # first CRC byte
    path.write_bytes(bytes(data))
    return path


def noisy_tiff(path: Path) -> Path:
    """A 64x64 TIFF whose StripByteCounts is 0: libtiff warns and recomputes it."""
    out = tiff_bomb(path, 64, 64, strip=_noise(64, 64).tobytes())
    data = bytearray(out.read_bytes())
    entry = data.find(struct.pack("<HH", 279, 4))
    data[entry + 8:entry + 12] = struct.pack("<I", 0)
    path.write_bytes(bytes(data))
    return path
