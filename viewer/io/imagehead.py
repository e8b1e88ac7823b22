"""What an image's own header declares, read without decoding anything (Qt-free).

Decoders allocate the image their header declares before they find out that the
data is short: a 4 kB JPEG whose frame header claims 65500 x 65500 pixels makes
libjpeg allocate gigabytes.  These parsers read only the headers:

* JPEG (ISO/IEC 10918-1 B.2.2 frame header, any SOFn) and JPEG-LS (14495-1 C.2.2,
  SOF55), JPEG 2000 (15444-1 A.5.1 SIZ, raw codestream or JP2 file),
* PNG (IHDR), TIFF (first IFD, classic and BigTIFF), BMP (BITMAPCOREHEADER /
  BITMAPINFOHEADER and later).

Each returns a `Declared` with the size, and `min_bytes`: the fewest bytes of coded
data that could possibly hold an image of that size (0 when no bound is known).
The bounds are exact lower bounds of each coding, so a real image always passes:
Huffman-coded JPEG spends at least one bit per 8x8 block of its least-sampled
component, deflate (PNG, TIFF) expands at most 1032:1, PackBits 64:1, and
uncompressed TIFF/BMP data is the image itself.

`Read` is ``read(offset, n) -> bytes`` (fewer bytes at the end of the file), so the
same parser works on bytes in memory and on an open file.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["Declared", "HeaderError", "Read", "from_bytes", "from_file", "jpeg", "j2k", "plain_image", "png",
           "tiff", "bmp"]

Read = Callable[[int, int], bytes]
MAX_SEGMENTS = 4096  # JPEG marker segments / TIFF entries / JP2 boxes followed at most
DEFLATE_RATIO = 1032  # the largest expansion of a deflate stream (RFC 1951: 258 bytes per 2 bits)
PACKBITS_RATIO = 64   # 2 bytes -> 128 (TIFF 6.0 section 9; DICOM RLE, PS3.5 G.3.1)
MAX_GARBAGE = 65536   # stray bytes skipped between JPEG marker segments


class HeaderError(ValueError):
    """The header is missing, truncated or inconsistent."""


@dataclass(frozen=True)
class Declared:
    """Image size a header declares; `min_bytes` = least coded bytes able to hold it."""

    format: str
    rows: int
    columns: int
    samples: int = 1
    bits: int = 8
    min_bytes: int = 0
    tiles: int = 1

    @property
    def pixels(self) -> int:
        return self.rows * self.columns

    @property
    def decoded_bytes(self) -> int:
        """Bytes of the decoded image (8-bit samples below 8 bits, as decoders return)."""
        return self.pixels * self.samples * max(1, (self.bits + 7) // 8)


def from_bytes(data: bytes | memoryview) -> Read:
    """A `Read` over bytes in memory."""
    view = memoryview(data)
    return lambda offset, n: bytes(view[max(offset, 0):max(offset, 0) + max(n, 0)])


def from_file(fp: BinaryIO) -> Read:
    """A `Read` over an open binary file (positioned reads)."""
    def read(offset: int, n: int) -> bytes:
        fp.seek(max(offset, 0))
        return fp.read(max(n, 0))

    return read


def _need(buf: bytes, n: int, what: str) -> bytes:
    if len(buf) < n:
        raise HeaderError(f"{what} is truncated")
    return buf


# -- JPEG / JPEG-LS -----------------------------------------------------------------------
_STANDALONE = {0x01, 0xD8, *range(0xD0, 0xD8)}  # TEM, SOI, RSTn: no length field (B.1.1.4)
_HUFFMAN_SOF = {0xC0, 0xC1, 0xC2}               # baseline, extended, progressive (Huffman)
_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}  # SOFn, JPEG-LS SOF55


def jpeg(read: Read, start: int = 0) -> Declared:
    """The frame header of a JPEG or JPEG-LS codestream starting at `start` (SOI)."""
    if read(start, 2) != b"\xff\xd8":
        raise HeaderError("no JPEG start-of-image marker")
    pos = start + 2
    for _ in range(MAX_SEGMENTS):
        head = read(pos, 4)
        if head[:1] not in (b"\xff", b""):  # stray bytes before a marker: skipped, as libjpeg does
            gap = read(pos, MAX_GARBAGE)
            skip = gap.find(b"\xff")
            if skip < 0:
                raise HeaderError("JPEG marker expected, found none (corrupt)")
            pos += skip
            head = read(pos, 4)
        if len(head) < 2:
            raise HeaderError("JPEG data ends before its frame header (truncated)")
        marker = head[1]
        if marker == 0xFF:  # fill byte (B.1.1.2)
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker in (0xD9, 0xDA):  # EOI / SOS before any frame header
            raise HeaderError("JPEG data has no frame header")
        _need(head, 4, "JPEG marker segment")
        length = struct.unpack(">H", head[2:4])[0]
        if length < 2:
            raise HeaderError("JPEG marker segment with a bad length")
        if marker in _SOF:
            return _jpeg_frame(marker, _need(read(pos + 4, length - 2), length - 2, "JPEG frame header"))
        pos += 2 + length
    raise HeaderError("JPEG frame header not found")


def _jpeg_frame(marker: int, seg: bytes) -> Declared:
    _need(seg, 6, "JPEG frame header")
    precision, rows, cols, ncomp = seg[0], *struct.unpack(">HH", seg[1:5]), seg[5]
    _need(seg, 6 + 3 * ncomp, "JPEG frame header")
    if ncomp == 0 or cols == 0:
        raise HeaderError("JPEG frame header declares no components or no width")
    if rows == 0:
        raise HeaderError("JPEG frame header declares its height later (DNL marker): not supported")
    fmt = "JPEG-LS" if marker == 0xF7 else "JPEG"
    min_bytes = 0
    if marker in _HUFFMAN_SOF or marker == 0xC3:
        factors = [(seg[7 + 3 * i] >> 4, seg[7 + 3 * i] & 15) for i in range(ncomp)]
        hmax = max(h for h, _ in factors) or 1
        vmax = max(v for _, v in factors) or 1
        units = []
        for h, v in factors:  # sample counts per component (A.1.1)
            c, r = math.ceil(cols * max(h, 1) / hmax), math.ceil(rows * max(v, 1) / vmax)
            # DCT: at least one Huffman code bit per 8x8 block; lossless: per sample
            units.append(math.ceil(c / 8) * math.ceil(r / 8) if marker != 0xC3 else c * r)
        min_bytes = min(units) // 8
    return Declared(fmt, rows, cols, ncomp, precision, min_bytes)


# -- JPEG 2000 ------------------------------------------------------------------------------

def j2k(read: Read, start: int = 0) -> Declared:
    """The SIZ marker of a JPEG 2000 codestream, or of the 'jp2c' box of a JP2 file."""
    pos = start
    if read(pos, 12) == b"\x00\x00\x00\x0cjP  \r\n\x87\n":  # JP2 signature box (15444-1 I.5.1)
        pos += 12
        for _ in range(MAX_SEGMENTS):
            box = _need(read(pos, 16), 8, "JP2 box")
            length, kind = struct.unpack(">I4s", box[:8])
            header = 8
            if length == 1:
                length, header = struct.unpack(">Q", _need(box, 16, "JP2 box")[8:16])[0], 16
            if kind == b"jp2c":
                pos += header
                break
            if length < header:
                raise HeaderError("JP2 file without a codestream box")
            pos += length
        else:
            raise HeaderError("JP2 codestream box not found")
    seg = read(pos, 4 + 38)
    if seg[:4] != b"\xff\x4f\xff\x51":
        raise HeaderError("no JPEG 2000 SOC + SIZ markers")
    _need(seg, 42, "JPEG 2000 SIZ marker")
    xsiz, ysiz, xo, yo, xt, yt, xto, yto = struct.unpack(">8I", seg[8:40])
    csiz = struct.unpack(">H", seg[40:42])[0]
    comps = _need(read(pos + 42, 3 * csiz), 3 * csiz, "JPEG 2000 SIZ marker")
    if csiz == 0 or xsiz <= xo or ysiz <= yo or xt == 0 or yt == 0 or xto > xo or yto > yo:
        raise HeaderError("JPEG 2000 SIZ marker is inconsistent")
    tiles = math.ceil((xsiz - xto) / xt) * math.ceil((ysiz - yto) / yt)
    bits = max((comps[3 * i] & 0x7F) + 1 for i in range(csiz))
    return Declared("JPEG 2000", ysiz - yo, xsiz - xo, csiz, bits, 0, tiles)


# -- PNG ---------------------------------------------------------------------------------------
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples in the data stream
_PNG_DECODED = {0: 1, 2: 3, 3: 3, 4: 4, 6: 4}   # what OpenCV returns (palette -> BGR)


def png(read: Read) -> Declared:
    head = read(0, 33)
    if not head.startswith(_PNG_SIG) or head[12:16] != b"IHDR":
        raise HeaderError("PNG without an IHDR chunk")
    _need(head, 29, "PNG IHDR chunk")
    cols, rows, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", head[16:29])
    if ctype not in _PNG_CHANNELS or depth not in (1, 2, 4, 8, 16) or not rows or not cols:
        raise HeaderError("PNG IHDR chunk is invalid")
    raw = rows * math.ceil(cols * _PNG_CHANNELS[ctype] * depth / 8)  # filter bytes not counted
    return Declared("PNG", rows, cols, _PNG_DECODED[ctype], max(depth, 8), raw // DEFLATE_RATIO)


# -- TIFF ---------------------------------------------------------------------------------------
_TIFF_TYPES = {1: ("B", 1), 3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}  # BYTE SHORT LONG LONG8


def tiff(read: Read) -> Declared:
    """The first IFD (what OpenCV decodes): ImageWidth/Length, samples, bits, compression."""
    head = read(0, 16)
    order = {b"II": "<", b"MM": ">"}.get(head[:2])
    if order is None:
        raise HeaderError("not a TIFF file")
    _need(head, 8, "TIFF header")
    version = struct.unpack(order + "H", head[2:4])[0]
    if version == 42:
        ifd, count_fmt, entry_size, inline = struct.unpack(order + "I", head[4:8])[0], "H", 12, 4
    elif version == 43:  # BigTIFF
        _need(head, 16, "BigTIFF header")
        ifd, count_fmt, entry_size, inline = struct.unpack(order + "Q", head[8:16])[0], "Q", 20, 8
    else:
        raise HeaderError("not a TIFF file")
    csize = struct.calcsize(count_fmt)
    count = struct.unpack(order + count_fmt, _need(read(ifd, csize), csize, "TIFF IFD"))[0]
    if not 0 < count <= MAX_SEGMENTS:
        raise HeaderError("TIFF IFD is empty or corrupt")
    table = _need(read(ifd + csize, count * entry_size), count * entry_size, "TIFF IFD")
    tags: dict[int, int] = {}
    for i in range(count):
        entry = table[i * entry_size:(i + 1) * entry_size]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if kind not in _TIFF_TYPES or tag not in (256, 257, 258, 259, 277):
            continue
        code, size = _TIFF_TYPES[kind]
        n = struct.unpack(order + ("I" if inline == 4 else "Q"), entry[4:4 + inline])[0]
        value_at = entry[4 + inline:]
        if n * size > inline:  # the value lives elsewhere: read its first item
            offset = struct.unpack(order + ("I" if inline == 4 else "Q"), value_at[:inline])[0]
            value_at = read(offset, size)
        tags[tag] = struct.unpack(order + code, _need(value_at[:size], size, "TIFF entry"))[0]
    rows, cols = tags.get(257, 0), tags.get(256, 0)
    if not rows or not cols:
        raise HeaderError("TIFF IFD lacks ImageWidth/ImageLength")
    samples, bits, compression = tags.get(277, 1) or 1, tags.get(258, 1) or 1, tags.get(259, 1)
    raw = rows * math.ceil(cols * samples * bits / 8)
    ratio = {1: 1, 32773: PACKBITS_RATIO, 8: DEFLATE_RATIO, 32946: DEFLATE_RATIO}.get(compression)
    return Declared("TIFF", rows, cols, samples, max(bits, 8), raw // ratio if ratio else 0)


# -- BMP ------------------------------------------------------------------------------------------

def bmp(read: Read) -> Declared:
    head = read(0, 34)
    if head[:2] != b"BM":
        raise HeaderError("not a BMP file")
    _need(head, 26, "BMP header")
    offset, dib = struct.unpack("<II", head[10:18])
    if dib == 12:  # BITMAPCOREHEADER
        cols, rows, _, bpp = struct.unpack("<HHHH", head[18:26])
        compression = 0
    elif dib >= 40:
        _need(head, 34, "BMP header")
        cols, rows, _, bpp, compression = struct.unpack("<iiHHI", head[18:34])
        rows = abs(rows)  # negative: top-down rows
    else:
        raise HeaderError("BMP header of unknown size")
    if cols <= 0 or rows <= 0 or bpp not in (1, 2, 4, 8, 16, 24, 32):
        raise HeaderError("BMP header is invalid")
    stride = (cols * bpp + 31) // 32 * 4
    data = rows * stride + offset if compression in (0, 3, 6) else 0  # uncompressed / bit fields
    return Declared("BMP", rows, cols, 4 if bpp == 32 else 3, 8, data)


_PLAIN = ((b"\x89PNG", png), (b"\xff\xd8\xff", jpeg), (b"II*\x00", tiff), (b"MM\x00*", tiff),
          (b"II+\x00", tiff), (b"MM\x00+", tiff), (b"BM", bmp))


def plain_image(read: Read) -> Declared:
    """The header of a PNG/JPEG/TIFF/BMP file, recognised by its magic bytes."""
    head = read(0, 8)
    for magic, parse in _PLAIN:
        if head.startswith(magic):
            return parse(read)
    raise HeaderError("not a PNG, JPEG, TIFF or BMP file")
