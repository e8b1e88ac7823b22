"""A fast first look at a DICOM header, and the full header parsed on demand.

The scan needs about twenty top-level attributes of each file (grouping,
sorting, classification, the pixel data check).  pydicom builds a complete
`Dataset` for every file, which is most of a warm-cache scan's time.  `walk`
reads the element headers of the file's first bytes directly (PS3.5 7.1:
tag, VR, length; 7.5: sequences and items of defined or undefined length) and
records where each top-level value lies, stopping at the pixel data element as
`dcmread(stop_before_pixels=True)` does.  It handles the File Meta Information
(PS3.10 7.1, always explicit VR little endian) followed by an implicit or
explicit VR little endian data set, which covers every native and
encapsulated transfer syntax in use; anything else (big endian, deflated,
private syntaxes, no preamble, a header longer than the bytes read, any
inconsistency) returns None and the caller uses pydicom.

A `LazyHeader` keeps the header bytes (everything before the pixel data) and
builds the pydicom `Dataset` the first time it is asked for, by parsing those
same bytes with pydicom, so the full header is exactly what
`dcmread(path, stop_before_pixels=True)` gives.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from struct import Struct

import pydicom
from pydicom import Dataset
from pydicom.charset import python_encoding

__all__ = ["LazyHeader", "RawHeader", "walk"]

_TAG = Struct("<HH")
_U16 = Struct("<H")
_U32 = Struct("<I")
_ITEM = Struct("<HHI")
_UNDEFINED = 0xFFFFFFFF
# VRs with a 2-byte reserved field and a 4-byte length in explicit VR (PS3.5 Table 7.1-1)
_LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN",
                       b"UR", b"UT", b"UV"))
_VRS = frozenset(v.encode() for v in (
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    "UN UR US UT UV").split())  # PS3.5 Table 6.2-1
_PIXEL_TAGS = frozenset((0x7FE00008, 0x7FE00009, 0x7FE00010))  # where stop_before_pixels stops
_IMPLICIT_LE = "1.2.840.10008.1.2"
_EXPLICIT_LE = "1.2.840.10008.1.2.1"
_EXPLICIT_BE = "1.2.840.10008.1.2.2"
_DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.4.95")  # data set is a zlib stream
_STANDARD_TS = "1.2.840.10008.1.2."
_MAX_DEPTH = 16  # nested sequences followed before giving up (pydicom takes over)
_CHARSET = 0x00080005
_TRANSFER_SYNTAX = 0x00020010


def _skip_sequence(buf: bytes, pos: int, implicit: bool, depth: int) -> int | None:
    """Offset just past an undefined-length sequence whose first item starts at `pos`."""
    n = len(buf)
    while True:
        if pos + 8 > n:
            return None
        group, elem, length = _ITEM.unpack_from(buf, pos)
        pos += 8
        if group != 0xFFFE:
            return None
        if elem == 0xE0DD:  # Sequence Delimitation Item
            return pos
        if elem != 0xE000:
            return None
        if length != _UNDEFINED:
            pos += length
            continue
        pos = _skip_item(buf, pos, implicit, depth)
        if pos is None:
            return None


def _element(buf: bytes, pos: int, implicit: bool) -> tuple[int, bytes | None, int, int] | None:
    """(tag, VR or None, length, value offset) of the element header at `pos`."""
    n = len(buf)
    if pos + 8 > n:
        return None
    group, elem = _TAG.unpack_from(buf, pos)
    tag = group << 16 | elem
    if implicit or group == 0xFFFE:  # item and delimiter tags carry no VR (PS3.5 7.5)
        return tag, None, _U32.unpack_from(buf, pos + 4)[0], pos + 8
    vr = buf[pos + 4:pos + 6]
    if vr not in _VRS:
        return None  # not explicit VR after all (pydicom detects and reads such files)
    if vr in _LONG_VRS:
        if pos + 12 > n:
            return None
        return tag, vr, _U32.unpack_from(buf, pos + 8)[0], pos + 12
    return tag, vr, _U16.unpack_from(buf, pos + 6)[0], pos + 8


def _skip_item(buf: bytes, pos: int, implicit: bool, depth: int) -> int | None:
    """Offset just past the Item Delimitation Item of an undefined-length item at `pos`."""
    if depth > _MAX_DEPTH:
        return None
    while True:
        head = _element(buf, pos, implicit)
        if head is None:
            return None
        tag, vr, length, value_at = head
        if tag == 0xFFFEE00D:
            return pos + 8
        if length == _UNDEFINED:  # a nested sequence (UN: implicit VR inside, PS3.5 6.2.2)
            pos = _skip_sequence(buf, value_at, implicit or vr == b"UN", depth + 1)
            if pos is None:
                return None
        else:
            pos = value_at + length


@dataclass(frozen=True, eq=False)
class RawHeader:
    """Where each top-level value of one file's header lies in `data`.

    `data` is the file's bytes up to the pixel data element; `values` maps a
    tag to the (start, end) of its value; `pixel_at` is the pixel data
    element's offset in the file and `pixel_head` its first 12 bytes.
    """

    data: bytes
    values: dict[int, tuple[int, int]]
    implicit: bool
    transfer_syntax: str
    pixel_at: int
    pixel_head: bytes

    @property
    def original_encoding(self) -> tuple[bool, bool]:
        """(is implicit VR, is little endian), as pydicom's `Dataset.original_encoding`."""
        return self.implicit, True

    def raw(self, tag: int) -> bytes | None:
        """The raw value bytes of a top-level element, None when absent."""
        span = self.values.get(tag)
        return None if span is None else self.data[span[0]:span[1]]

    def __contains__(self, tag: int) -> bool:
        return tag in self.values

    def text_codec(self) -> str | None:
        """Python codec for text values (PS3.3 C.12.1.1.2), None when pydicom must decode
        (ISO 2022 code extensions, several character sets, unknown terms)."""
        term = self.raw(_CHARSET)
        if term is None:
            return "latin_1"  # pydicom's reading of the default repertoire
        text = term.decode("latin-1").strip("\x00 ")
        if not text:
            return "latin_1"
        if "\\" in text or text.startswith("ISO 2022"):
            return None
        return python_encoding.get(text)


def walk(buf: bytes) -> RawHeader | None:
    """Locate the top-level header values of a Part 10 file from its first bytes, or None.

    None means "let pydicom read this file": not a Part 10 file with a
    preamble, a data set that is not little endian / not inflated, a header
    that does not end (at the pixel data) within `buf`, or malformed lengths.
    """
    n = len(buf)
    if n < 144 or buf[128:132] != b"DICM":
        return None
    values: dict[int, tuple[int, int]] = {}
    pos = 132
    while pos + 8 <= n and _U16.unpack_from(buf, pos)[0] == 0x0002:  # File Meta Information
        head = _element(buf, pos, implicit=False)
        if head is None:
            return None
        tag, _, length, value_at = head
        if length == _UNDEFINED:
            return None
        pos = value_at + length
        values[tag] = (value_at, pos)
    span = values.get(_TRANSFER_SYNTAX)
    if span is None or pos > n:
        return None
    syntax = buf[span[0]:span[1]].decode("latin-1").strip("\x00 ")
    if syntax == _IMPLICIT_LE:
        implicit = True
    elif syntax == _EXPLICIT_LE or (syntax.startswith(_STANDARD_TS) and syntax != _EXPLICIT_BE
                                    and syntax not in _DEFLATED):
        implicit = False  # every other standard syntax: explicit VR little endian (PS3.5 A.4)
    else:
        return None
    if implicit and buf[pos + 4:pos + 6] in _VRS:
        return None  # explicit VR despite the transfer syntax: pydicom detects and reads it
    while True:
        head = _element(buf, pos, implicit)
        if head is None:
            return None  # the header goes on past what was read (or the file ends early)
        tag, vr, length, value_at = head
        if tag in _PIXEL_TAGS:
            break
        if length == _UNDEFINED:
            end = _skip_sequence(buf, value_at, implicit or vr == b"UN", 1)
            if end is None:
                return None
        else:
            end = value_at + length
            if end > n:
                return None
            values[tag] = (value_at, end)
        pos = end
    return RawHeader(buf[:pos], values, implicit, syntax, pos, buf[pos:pos + 12])


class LazyHeader:
    """A scanned file's header: raw values now, the pydicom `Dataset` when first asked.

    `dataset()` parses the kept header bytes once (thread-safe) and returns the
    same object ever after, with `filename` set as if read from the path.
    """

    __slots__ = ("_dataset", "_lock", "path", "raw")

    def __init__(self, path: object, raw: RawHeader) -> None:
        self.path = path
        self.raw = raw
        self._dataset: Dataset | None = None
        self._lock = threading.Lock()

    @property
    def parsed(self) -> bool:
        return self._dataset is not None

    @property
    def original_encoding(self) -> tuple[bool, bool]:
        return self.raw.original_encoding

    def dataset(self) -> Dataset:
        ds = self._dataset
        if ds is not None:
            return ds
        with self._lock:
            if self._dataset is None:
                ds = pydicom.dcmread(io.BytesIO(self.raw.data), stop_before_pixels=True)
                ds.filename, ds.buffer, ds.fileobj_type = str(self.path), None, open
                self._dataset = ds
            return self._dataset
