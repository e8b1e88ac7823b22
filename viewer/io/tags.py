"""Fast reads of a few ASCII-only header values, without pydicom's conversion.

The scan touches ~15 attributes per file; pydicom converts a raw element on
first access (validation, character sets), which costs more than parsing it.
The value representations read here are ASCII by definition (UI, CS, IS, DS,
DA: PS3.5 6.2) or binary US, so decoding the raw bytes is exact.  Text that
depends on Specific Character Set (PN, LO, SH) must go through pydicom.
"""

from __future__ import annotations

import math
from functools import lru_cache

from pydicom import Dataset
from pydicom.datadict import tag_for_keyword
from pydicom.uid import UID


@lru_cache(maxsize=None)
def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return tag


def _raw(ds: Dataset, keyword: str) -> object:
    try:
        elem = ds.get_item(_tag(keyword))
    except (KeyError, TypeError, ValueError):
        return None
    return None if elem is None else elem.value


def ascii_text(ds: Dataset, keyword: str) -> str:
    """Value of a UI/CS/IS/DS/DA element as text ('' when absent); multi-values joined by '\\'."""
    value = _raw(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").strip("\x00 ")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)  # type: ignore[union-attr]
    return str(value).strip()


def integer(ds: Dataset, keyword: str) -> int | None:
    """An IS value (e.g. Instance Number), None when absent or malformed."""
    text = ascii_text(ds, keyword).split("\\")[0].strip()
    try:
        return int(float(text)) if text else None
    except ValueError:
        return None


def floats(ds: Dataset, keyword: str, n: int) -> tuple[float, ...] | None:
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


def unsigned(ds: Dataset, keyword: str) -> int | None:
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


@lru_cache(maxsize=4096)
def uid_name(uid: str) -> str:
    """Registered name of a UID (PS3.6 Annex A), '' when unknown."""
    return UID(uid).name if uid else ""
