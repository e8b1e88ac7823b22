"""Is a DICOM file complete?  A structural walk of its elements (PS3.5 7.1, 7.5).

pydicom reads a file cut inside a sequence without complaint (an undefined-length
sequence simply ends at the end of the file), so a truncated SR would show as a
shorter, plausible report.  This walk checks that every element's value fits in
the file and that every undefined-length sequence and item is closed by its
delimiter.  Explicit and implicit VR, little and big endian; deflated files are
not checked (their length says nothing).
"""

from __future__ import annotations

import struct

from pydicom.datadict import dictionary_VR

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
MAX_DEPTH = 400  # nesting levels walked (a deeper file is reported, not recursed into)


class Truncated(Exception):
    pass


def _vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _walk(b: bytes, pos: int, end: int | None, implicit: bool, order: str, depth: int) -> int:
    """Elements from `pos` to `end` (None: up to an Item Delimitation); the position after."""
    if depth > MAX_DEPTH:
        raise Truncated("nested too deep")
    while end is None or pos < end:
        if pos + 8 > len(b):
            raise Truncated("file ends inside an element header")
        group, elem = struct.unpack_from(order + "HH", b, pos)
        tag = (group << 16) | elem
        if tag == ITEM_END:
            if end is not None:
                raise Truncated("unexpected item delimiter")
            return pos + 8
        if implicit or group == 0xFFFE:
            vr, length = _vr(tag) if group != 0xFFFE else "", struct.unpack_from(order + "I", b, pos + 4)[0]
            pos += 8
        else:
            raw = b[pos + 4:pos + 6]
            vr = raw.decode("latin-1")
            if raw in LONG_VRS:
                if pos + 12 > len(b):
                    raise Truncated("file ends inside an element header")
                length, pos = struct.unpack_from(order + "I", b, pos + 8)[0], pos + 12
            else:
                length, pos = struct.unpack_from(order + "H", b, pos + 6)[0], pos + 8
        if vr == "SQ" or length == UNDEFINED:
            pos = _sequence(b, pos, None if length == UNDEFINED else pos + length, implicit, order, depth + 1)
        else:
            if pos + length > len(b):
                raise Truncated("file ends inside an element value")
            pos += length
    if pos != end:
        raise Truncated("element runs past its container")
    return pos


def _sequence(b: bytes, pos: int, end: int | None, implicit: bool, order: str, depth: int) -> int:
    if end is not None and end > len(b):
        raise Truncated("file ends inside a sequence")
    while end is None or pos < end:
        if pos + 8 > len(b):
            raise Truncated("file ends inside a sequence")
        group, elem = struct.unpack_from(order + "HH", b, pos)
        tag, length = (group << 16) | elem, struct.unpack_from(order + "I", b, pos + 4)[0]
        pos += 8
        if tag == SEQ_END:
            if end is not None:
                raise Truncated("unexpected sequence delimiter")
            return pos
        if tag != ITEM:
            raise Truncated(f"expected an item, found ({group:04X},{elem:04X})")
        if length == UNDEFINED:
            pos = _walk(b, pos, None, implicit, order, depth + 1)
        else:
            if pos + length > len(b):
                raise Truncated("file ends inside an item")
            pos = _walk(b, pos, pos + length, implicit, order, depth + 1)
    return pos


def truncation(data: bytes, implicit: bool, little: bool, start: int) -> str | None:
    """Why the data set from `start` is incomplete, or None when it is complete."""
    try:
        _walk(data, start, len(data), implicit, "<" if little else ">", 0)
    except (Truncated, struct.error) as exc:
        return str(exc) or "truncated"
    except RecursionError:
        return None  # not checkable here; the reader cuts deep trees itself
    return None
