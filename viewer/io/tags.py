"""Fast reads of a few header values, without pydicom's conversion.

The scan touches ~15 attributes per file; pydicom converts a raw element on
first access (validation, character sets), which costs more than parsing it.
The value representations read here are ASCII by definition (UI, CS, IS, DS,
DA: PS3.5 6.2) or binary US, so decoding the raw bytes is exact.  Text that
depends on Specific Character Set (PN, LO, SH) is decoded by `text` with the
file's single-byte or UTF-8 codec, or by pydicom when ISO 2022 escapes are in use.
Every function takes a pydicom `Dataset` or a scan's `LazyHeader` (raw values,
viewer.io.rawheader).
"""

from __future__ import annotations

import math
from functools import lru_cache

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.uid import UID

from medviewer.viewer.io.rawheader import LazyHeader

Header = Dataset | LazyHeader  # a parsed header, or a scanned one not parsed yet


@lru_cache(maxsize=None)
def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return tag


def _raw(ds: Header, keyword: str) -> object:
    if isinstance(ds, LazyHeader):
        return ds.raw.raw(_tag(keyword))
    try:
        elem = ds.get_item(_tag(keyword))
    except (KeyError, TypeError, ValueError):
        return None
    return None if elem is None else elem.value


def ascii_text(ds: Header, keyword: str) -> str:
    """Value of a UI/CS/IS/DS/DA element as text ('' when absent); multi-values joined by '\\'."""
    value = _raw(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)  # type: ignore[union-attr]
    return str(value).strip()


def integer(ds: Header, keyword: str) -> int | None:
    """An IS value (e.g. Instance Number), None when absent or malformed."""
    text = ascii_text(ds, keyword).split("\\")[0].strip()
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def floats(ds: Header, keyword: str, n: int) -> tuple[float, ...] | None:
    """A DS multi-value of exactly n finite numbers (IPP: 3, IOP: 6), else None."""
    text = ascii_text(ds, keyword)
    if not text:
        return None
    try:
        vals = tuple(float(v) for v in text.split("\\"))
    except ValueError:
        return None
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        return None
    return vals


def unsigned(ds: Header, keyword: str) -> int | None:
    """A US value (Rows, Columns, Bits Allocated...), honouring the data set's byte order."""
    value = _raw(ds, keyword)
    if value is None:
        return None
    if isinstance(value, bytes):
        if len(value) < 2:
            return None
        _, little = getattr(ds, "original_encoding", (None, True))
        return int.from_bytes(value[:2], "big" if little is False else "little")
    try:
        return int(value if not isinstance(value, (list, tuple)) else value[0])  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def has(ds: Header, keyword: str) -> bool:
    """True when the top-level element is present (either kind of header)."""
    if isinstance(ds, LazyHeader):
        return _tag(keyword) in ds.raw
    return keyword in ds


def text_value(ds: Header, keyword: str) -> str:
    """A character-set aware text value (PN, LO, SH: PS3.5 6.1), stripped; multi-values
    joined by '\\'; '' when absent or malformed."""
    if isinstance(ds, LazyHeader):
        codec = ds.raw.text_codec()
        if codec is not None:
            value = ds.raw.raw(_tag(keyword))
            if value is None:
                return ""
            try:
                decoded = value.decode(codec, errors="replace")
            except LookupError:
                decoded = None
            if decoded is not None:
                return "\\".join(v.strip("\x00 ") for v in decoded.split("\\")).strip()
        ds = ds.dataset()  # ISO 2022 escapes or several character sets: pydicom decodes
    try:
        value = ds.get(keyword, "")
    except Exception:  # a malformed value must not stop the scan
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v).strip() for v in value).strip()
    return str(value).strip()


@lru_cache(maxsize=4096)
def uid_name(uid: str) -> str:
    """Registered name of a UID (PS3.6 Annex A), '' when unknown."""
    return UID(uid).name if uid else ""
