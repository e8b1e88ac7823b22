"""Decode limits: what an image declares is checked before any decoder allocates it.

Two checks run on every image before it is decoded, at scan time where the
header bytes are at hand (so `info` lists the refusal) and again just before the
decode (display, `predict`, the trainer):

* **the limit**: at most `Limits.max_pixels` pixels and `Limits.max_frame_bytes`
  decoded bytes per frame (defaults 2^28 pixels, 1 GiB; larger than any
  radiograph, mammogram or whole-body CT slice; `$MEDVIEWER_MAX_PIXELS`,
  `$MEDVIEWER_MAX_FRAME_BYTES` or `set_limits()` change them);
* **what the data can hold**: a frame's codestream must declare the size the
  DICOM attributes declare (PS3.5 8.2: Rows/Columns describe the decoded frame),
  and the coded bytes present must be able to hold that many pixels at the most
  favourable compression of that coding (`viewer.io.imagehead`; RLE: PS3.5 G).

A refusal is a `Refused` exception whose text is the one-line reason.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, BinaryIO

from medviewer.viewer.io import imagehead
from medviewer.viewer.io.imagehead import Declared, HeaderError, Read

__all__ = ["CHECKED_SYNTAXES", "DEFAULT_MAX_FRAME_BYTES", "DEFAULT_MAX_PIXELS", "Limits", "Refused",
           "check_attributes", "check_declared", "check_dicom_frame", "check_frame", "check_plain",
           "check_size", "limits", "set_limits"]

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 2 ** 28        # 16384 x 16384
DEFAULT_MAX_FRAME_BYTES = 2 ** 30   # 1 GiB decoded per frame
ENV_PIXELS, ENV_BYTES = "MEDVIEWER_MAX_PIXELS", "MEDVIEWER_MAX_FRAME_BYTES"

JPEG_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                           "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"})
J2K_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
                          "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
                          "1.2.840.10008.1.2.4.203"})
RLE_SYNTAX = "1.2.840.10008.1.2.5"
CHECKED_SYNTAXES = JPEG_SYNTAXES | J2K_SYNTAXES | {RLE_SYNTAX}
MAX_J2K_TILES = 65535  # Isot is 16 bits (ISO/IEC 15444-1 A.4.2)


class Refused(ValueError):
    """An image refused before decoding; `str()` is the reason (no file name)."""


@dataclass(frozen=True)
class Limits:
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES


_override: Limits | None = None
_lock = threading.Lock()


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(float(text))
    except ValueError:
        value = 0
    if value < 1:
        log.warning("ignoring %s=%r (not a positive number)", name, text)
        return default
    return value


def limits() -> Limits:
    """The limits in force: `set_limits()`, else the environment, else the defaults."""
    if _override is not None:
        return _override
    return Limits(_env_int(ENV_PIXELS, DEFAULT_MAX_PIXELS), _env_int(ENV_BYTES, DEFAULT_MAX_FRAME_BYTES))


def set_limits(max_pixels: int | None = None, max_frame_bytes: int | None = None) -> None:
    """Set the limits for this process (None: back to the environment / defaults)."""
    global _override
    with _lock:
        if max_pixels is None and max_frame_bytes is None:
            _override = None
        else:
            env = Limits(_env_int(ENV_PIXELS, DEFAULT_MAX_PIXELS), _env_int(ENV_BYTES, DEFAULT_MAX_FRAME_BYTES))
            _override = Limits(int(max_pixels or env.max_pixels), int(max_frame_bytes or env.max_frame_bytes))


def _mega(n: int) -> str:
    return f"{n / 1e6:.0f} megapixels" if n >= 10**7 else f"{n / 1e6:.1f} megapixels"


def _bytes(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_size(what: str, rows: int, cols: int, samples: int = 1, bits: int = 8) -> None:
    """Refused when rows x cols (x samples x bytes) is over the limits."""
    lim = limits()
    pixels = rows * cols
    nbytes = pixels * max(samples, 1) * max(1, (bits + 7) // 8)
    if pixels > lim.max_pixels:
        raise Refused(f"{what} declares {rows} x {cols} pixels ({_mega(pixels)}), over the limit of "
                      f"{_mega(lim.max_pixels)} per image ({ENV_PIXELS}); not decoded")
    if nbytes > lim.max_frame_bytes:
        raise Refused(f"{what} declares {rows} x {cols} x {samples} samples of {bits} bits "
                      f"({_bytes(nbytes)} decoded), over the limit of {_bytes(lim.max_frame_bytes)} "
                      f"per image ({ENV_BYTES}); not decoded")


def check_declared(d: Declared, available: int, what: str | None = None) -> None:
    """A parsed header against the limits and against `available` coded bytes."""
    what = what or f"{d.format} header"
    check_size(what, d.rows, d.columns, d.samples, d.bits)
    if d.tiles > MAX_J2K_TILES:
        raise Refused(f"{what} declares {d.tiles} tiles (at most {MAX_J2K_TILES} exist); not decoded")
    if d.min_bytes and available < d.min_bytes:
        raise Refused(f"{what} declares {d.rows} x {d.columns} pixels but {available} bytes of "
                      f"{d.format} data cannot hold them (at least {d.min_bytes} needed): corrupt, "
                      "or a decompression bomb; not decoded")


def check_plain(read: Read, size: int) -> Declared:
    """The header of a PNG/JPEG/TIFF/BMP file of `size` bytes, checked; Refused otherwise."""
    try:
        d = imagehead.plain_image(read)
    except HeaderError as exc:
        raise Refused(f"not a valid image ({exc})") from None
    check_declared(d, size)
    return d


def check_attributes(rows: int | None, cols: int | None, samples: int | None, bits: int | None) -> None:
    """DICOM Image Pixel attributes (PS3.3 C.7.6.3) against the limits."""
    if not rows or not cols:
        return  # reported elsewhere ("lacks Rows/Columns")
    check_size("header (Rows/Columns)", rows, cols, samples or 1, bits or 8)


def _rle(read: Read, length: int, rows: int, cols: int, samples: int, bits: int) -> None:
    """RLE header (PS3.5 G.5): segment count and whether the data can hold the frame."""
    head = read(0, 64)
    if len(head) < 64:
        raise Refused("RLE frame is shorter than its 64-byte header")
    count = int.from_bytes(head[:4], "little")
    expected = samples * max(1, (bits + 7) // 8)  # one segment per byte plane (G.2)
    if count != expected:
        raise Refused(f"RLE header lists {count} segments where {expected} are needed (PS3.5 G.2)")
    need = 64 + count * 2 * math.ceil(rows * cols / 128)  # one 2-byte run per 128 bytes at best
    if length < need:
        raise Refused(f"header declares {rows} x {cols} pixels but the {length} bytes of RLE data "
                      f"cannot hold them (at least {need} needed): corrupt, or a decompression bomb; "
                      "not decoded")


def check_frame(syntax: str, read: Read, length: int, rows: int, cols: int, samples: int, bits: int,
                frame: int | None = None) -> None:
    """One encapsulated frame (PS3.5 A.4): its codestream against the attributes and limits."""
    where = "" if frame is None else f"frame {frame}: "
    if syntax == RLE_SYNTAX:
        try:
            _rle(read, length, rows, cols, samples, bits)
        except Refused as exc:
            raise Refused(where + str(exc)) from None
        return
    try:
        if syntax in JPEG_SYNTAXES:
            d = imagehead.jpeg(read)
        elif syntax in J2K_SYNTAXES:
            d = imagehead.j2k(read)
        else:
            return
    except HeaderError as exc:
        raise Refused(f"{where}codestream unreadable ({exc})") from None
    what = f"{where}{d.format} codestream"
    check_declared(d, length, what)
    if (d.rows, d.columns) != (rows, cols):
        raise Refused(f"{what} declares {d.rows} x {d.columns} pixels but Rows/Columns say "
                      f"{rows} x {cols} (PS3.5 8.2); not decoded")


# -- the frame of a DICOM file, read from an open file ----------------------------------
_OFFSETS: OrderedDict[tuple[str, int, int], int] = OrderedDict()
_MAX_OFFSETS = 4096


def _uint(ds: Any, keyword: str, default: int = 0) -> int:
    try:
        value = ds.get(keyword, default)
        return int(value if value not in (None, "") else default)
    except (TypeError, ValueError):
        return default


def _pixel_offset(fp: BinaryIO, pixel_at: int | None) -> int:
    """Offset of the Pixel Data element: given by the scan, cached, or found by pydicom."""
    if pixel_at is not None:
        return pixel_at
    st = os.fstat(fp.fileno())
    key = (getattr(fp, "name", ""), st.st_size, st.st_mtime_ns)
    with _lock:
        if key in _OFFSETS:
            _OFFSETS.move_to_end(key)
            return _OFFSETS[key]
    import pydicom

    fp.seek(0)
    pydicom.dcmread(fp, stop_before_pixels=True, force=True)
    offset = fp.tell()
    with _lock:
        _OFFSETS[key] = offset
        while len(_OFFSETS) > _MAX_OFFSETS:
            _OFFSETS.popitem(last=False)
    return offset


def check_dicom_frame(fp: BinaryIO, header: Any, frame: int | None, pixel_at: int | None = None) -> None:
    """Check the attributes and, for encapsulated data, frame `frame`'s codestream.

    `fp` is the open file (`safefile.open_regular`), `header` its pydicom header,
    `pixel_at` the Pixel Data element's offset when the scan knows it.
    """
    from pydicom.encaps import get_frame

    rows, cols = _uint(header, "Rows"), _uint(header, "Columns")
    samples, bits = _uint(header, "SamplesPerPixel", 1) or 1, _uint(header, "BitsAllocated", 8) or 8
    check_attributes(rows, cols, samples, bits)
    meta = getattr(header, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if syntax not in CHECKED_SYNTAXES or not rows or not cols:
        return
    start = _pixel_offset(fp, pixel_at)
    fp.seek(start)
    head = fp.read(12)
    if len(head) < 12 or head[:4] != b"\xe0\x7f\x10\x00" or head[8:12] != b"\xff\xff\xff\xff":
        return  # not encapsulated after all: pydicom reports it
    frames = _uint(header, "NumberOfFrames", 1) or 1
    offsets = None
    if "ExtendedOffsetTable" in header and "ExtendedOffsetTableLengths" in header:
        offsets = (header.ExtendedOffsetTable, header.ExtendedOffsetTableLengths)
    try:
        data = get_frame(fp, frame or 0, number_of_frames=frames, extended_offsets=offsets)
    except Exception as exc:  # pydicom raises ValueError/KeyError... on broken item tables
        text = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise Refused(f"cannot decode pixel data: encapsulated frame {frame or 0} not found ({text})") from None
    check_frame(syntax, imagehead.from_bytes(data), len(data), rows, cols, samples, bits,
                frame if frames > 1 else None)

