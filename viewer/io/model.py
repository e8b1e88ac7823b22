"""Study model: Patient > Study > Series > ImageRef, plus what could not be shown.

The hierarchy follows the DICOM Information Model (PS3.3 A.1.2): a Study groups
Series (grouped by Series Instance UID, 0020,000E), a Series holds images.  A
multi-frame instance contributes one `ImageRef` per frame (PS3.3 C.7.6.6).
`ScanResult.to_json()` is the exact schema printed by `medviewer info --json`.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom import Dataset

from medviewer.viewer.display.orientation import SliceLocation, slice_location
from medviewer.viewer.io.rawheader import LazyHeader

HeaderEntry = Dataset | LazyHeader


def printable(text: str | os.PathLike, limit: int | None = None) -> str:
    """A file name or text as one printable line of valid Unicode.

    Bytes of a file name that are not valid UTF-8 (kept by Python as lone
    surrogates, PEP 383) are shown as `\\xff`; control characters (a newline in
    a file name) as `\\n`, `\\x1b`...; `limit` shortens the middle with '...'.
    """
    text = os.fspath(text)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() or ch == " " else _escape(ch) for ch in text)
    if limit is not None and len(text) > limit:
        keep = max(limit - 3, 2)
        text = text[:keep - keep // 2] + "..." + text[len(text) - keep // 2:]
    return text


def _escape(ch: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if ch in named:
        return named[ch]
    if unicodedata.category(ch) == "Cs":  # a lone surrogate that is not an escaped byte
        return f"\\u{ord(ch):04x}"
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


class HeaderMap(Mapping[Path, Dataset]):
    """Path -> header (no pixel data) of a series' files, parsed on first access.

    The scan stores a `LazyHeader` for most files; indexing returns the pydicom
    `Dataset` (parsed then, once, and shared by every copy of the map).
    `entries()` hands the unparsed entries on (to a PixelStore) without
    parsing them; iterating keys never parses.
    """

    __slots__ = ("_entries",)

    def __init__(self, entries: Mapping[Path, HeaderEntry] | None = None) -> None:
        self._entries: dict[Path, HeaderEntry] = dict(entries or {})

    def __getitem__(self, path: Path) -> Dataset:
        entry = self._entries[path]
        return entry.dataset() if isinstance(entry, LazyHeader) else entry

    def __iter__(self) -> Iterator[Path]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def __repr__(self) -> str:
        parsed = sum(not isinstance(e, LazyHeader) or e.parsed for e in self._entries.values())
        return f"HeaderMap({len(self)} files, {parsed} parsed)"

    def put(self, path: Path, header: HeaderEntry) -> None:
        self._entries[path] = header

    def entries(self) -> dict[Path, HeaderEntry]:
        """A copy of the path -> Dataset-or-LazyHeader entries, nothing parsed."""
        return dict(self._entries)

    def copy(self) -> HeaderMap:
        return HeaderMap(self._entries)


@dataclass(frozen=True)
class ImageRef:
    """One displayable image: a single-frame file, or one frame of a multi-frame file."""

    path: Path
    frame: int | None = None  # 0-based frame for multi-frame files, else None


@dataclass(frozen=True)
class SliceGeometry:
    """Image Plane attributes of one image (PS3.3 C.7.6.2): where it lies in the patient."""

    position: tuple[float, float, float]   # Image Position (Patient), mm (LPS)
    orientation: tuple[float, ...]         # Image Orientation (Patient): row then column cosines


@dataclass
class Series:
    """One series in display order: the stack convention (axial head to feet, coronal
    anterior to posterior, sagittal right to left; viewer.io.sort), then
    InstanceNumber, then natural name."""

    series_uid: str
    number: int | None
    modality: str
    description: str
    rows: int
    columns: int
    items: list[ImageRef] = field(default_factory=list)
    kind: str = "dicom"  # "dicom" or "image" (PNG/JPEG/TIFF/BMP, modality OT)
    headers: HeaderMap = field(default_factory=HeaderMap, repr=False)
    # position and orientation of each image that has both (read by the scan; never
    # mutated once built, so snapshots share it)
    geometry: Mapping[ImageRef, SliceGeometry] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.headers, HeaderMap):
            self.headers = HeaderMap(self.headers)

    def header(self, ref: ImageRef) -> Dataset | None:
        """The header (no pixel data) of the file holding `ref`, if DICOM."""
        return self.headers.get(ref.path)

    def location(self, ref: ImageRef) -> SliceLocation | None:
        """The slice's position along the patient axis closest to its normal (z for
        axial; viewer.display.orientation.slice_location), None without geometry."""
        geo = self.geometry.get(ref)
        if geo is None:
            return None
        return slice_location(geo.position, geo.orientation)


@dataclass
class Study:
    study_uid: str
    patient_id: str
    patient_name: str
    description: str
    date: str
    series: list[Series] = field(default_factory=list)


@dataclass(frozen=True)
class NonImage:
    """A DICOM object without pixels (SR, RT Structure Set, presentation state...)."""

    path: Path
    sop_class: str


@dataclass(frozen=True)
class Skipped:
    """A file that could not be used, with a short reason (no patient data)."""

    path: Path
    reason: str


@dataclass
class ScanResult:
    root: Path
    studies: list[Study] = field(default_factory=list)
    non_image: list[NonImage] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    complete: bool = True  # False for partial snapshots and cancelled scans

    def all_series(self) -> list[Series]:
        """Every series of every study, in listing order."""
        return [s for st in self.studies for s in st.series]

    def first_image(self) -> tuple[Series, ImageRef] | None:
        """The first image of the first series, or None when nothing is displayable."""
        for series in self.all_series():
            if series.items:
                return series, series.items[0]
        return None

    def to_json(self) -> dict[str, Any]:
        """The `medviewer info --json` document; paths are relative to `root`
        (to its folder when `root` is a single file), with '/' separators."""
        base = self.root if self.root.is_dir() else self.root.parent

        def rel(path: Path) -> str:
            try:
                return printable(path.relative_to(base).as_posix())
            except ValueError:
                return printable(path.as_posix())

        return _clean({
            "root": printable(self.root),
            "studies": [
                {
                    "study_uid": st.study_uid,
                    "patient_id": st.patient_id,
                    "description": st.description,
                    "date": st.date,
                    "series": [
                        {
                            "series_uid": se.series_uid,
                            "number": se.number,
                            "modality": se.modality,
                            "description": se.description,
                            "rows": se.rows,
                            "columns": se.columns,
                            "images": len(se.items),
                            "items": [
                                {"path": rel(r.path), "frame": r.frame} for r in se.items
                            ],
                        }
                        for se in st.series
                    ],
                }
                for st in self.studies
            ],
            "non_image": [
                {"path": rel(n.path), "sop_class": n.sop_class} for n in self.non_image
            ],
            "skipped": [{"path": rel(s.path), "reason": printable(s.reason)} for s in self.skipped],
        })


def _clean(value: Any) -> Any:
    """Every string of a JSON document as valid, printable Unicode (header text too)."""
    if isinstance(value, str):
        return value if value.isprintable() else printable(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value
