"""Recursive, headers-only scan of a study folder (Qt-free).

DICOM files are recognised by the 'DICM' prefix after the 128-byte preamble
(PS3.10 7.1) whatever their name; files without a preamble get a forced read
when they start like a data set (group 0002 or 0008).  A DICOMDIR (PS3.10 7.2,
PS3.3 F.5) contributes the files its directory records reference; it is not
listed itself.  PNG/JPEG/TIFF/BMP images form one "OT" series per folder.
Headers are read with `stop_before_pixels`; the pixel data element header is
checked so that truncated files are reported at scan time.
"""

from __future__ import annotations

import io
import os
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom import Dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from viewer.errors import NothingToShowError
from viewer.io import tags
from viewer.io.group import Collector
from viewer.io.model import NonImage, ScanResult, Skipped
from viewer.io.pixels import IMAGE_SUFFIXES, is_plain_image
from viewer.io.sort import natural_key

_IGNORED = {"thumbs.db", "desktop.ini"}
SNAPSHOT_INTERVAL = 0.25  # seconds between partial snapshots
HEAD_CHUNK = 64 * 1024  # first read of each file; holds nearly every header
# SOP classes without displayable pixels even when Rows/Columns might be present
_NON_IMAGE_WORDS = ("SR Storage", "Presentation State", "Key Object Selection",
                    "Structure Set", "RT Plan", "Waveform", "Encapsulated", "Raw Data",
                    "Registration", "Spectroscopy", "Treatment Record")

Progress = Callable[[int, int], None]
StopFlag = Callable[[], bool]
Snapshot = Callable[[ScanResult], None]


def sop_class_name(ds: Dataset) -> str:
    """Human name of the SOP Class UID (PS3.6 Annex A), or the UID itself."""
    uid = tags.ascii_text(ds, "SOPClassUID")
    meta = getattr(ds, "file_meta", None)
    if not uid and meta is not None:
        uid = tags.ascii_text(meta, "MediaStorageSOPClassUID")
    if not uid:
        return "unknown SOP class"
    return tags.uid_name(uid) or uid


def _classify(ds: Dataset) -> str:
    """"image", "non_image", or a reason to skip, from SOP Class and Rows/Columns."""
    name = sop_class_name(ds)
    if any(word in name for word in _NON_IMAGE_WORDS):
        return "non_image"
    if "Rows" in ds and "Columns" in ds:
        return "image"
    if name.endswith("Image Storage"):  # an image object without its Image Pixel module
        return "no pixel data in an image object (file truncated?)"
    if name == "unknown SOP class":
        return "unreadable DICOM (no SOP Class UID)"
    return "non_image"


def _frames(ds: Dataset) -> int | None:
    """Number of Frames (0028,0008) when > 1, else None (single frame)."""
    n = tags.integer(ds, "NumberOfFrames")
    return n if n is not None and n > 1 else None


def _pixel_check(ds: Dataset, fp: BinaryIO, size: int, frames: int | None) -> str | None:
    """Reason why the pixel data element is missing or short, else None.

    After `stop_before_pixels` the file position is at the pixel data element
    (7FE0,0010 / 0008 / 0009).  Native data must hold Rows*Columns*Samples*
    BitsAllocated/8 bytes per frame (PS3.5 8.1.1); encapsulated data only needs
    to be present (PS3.5 A.4).
    """
    meta = getattr(ds, "file_meta", None)
    tsyntax = UID(tags.ascii_text(meta, "TransferSyntaxUID") if meta is not None else "")
    if tsyntax == DeflatedExplicitVRLittleEndian:
        return None  # the data set is a deflated stream (PS3.5 A.5): no raw offsets
    start = fp.tell()
    if size - start < 8:
        return "no pixel data (file truncated?)"
    implicit, little = getattr(ds, "original_encoding", (None, None))
    head = fp.read(12)
    if implicit is None or len(head) < 8:
        return None
    order = "<" if little else ">"
    if implicit:
        length, data_at = struct.unpack(order + "I", head[4:8])[0], start + 8
    elif head[4:6] in (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"):
        if len(head) < 12:
            return "no pixel data (file truncated?)"
        length, data_at = struct.unpack(order + "I", head[8:12])[0], start + 12
    else:
        length, data_at = struct.unpack(order + "H", head[6:8])[0], start + 8
    if length == 0xFFFFFFFF or (tsyntax and tsyntax.is_compressed):  # encapsulated (PS3.5 A.4)
        return None if size - data_at > 8 else "encapsulated pixel data is empty (file truncated?)"
    rows, cols = tags.unsigned(ds, "Rows"), tags.unsigned(ds, "Columns")
    bits = tags.unsigned(ds, "BitsAllocated")
    if not rows or not cols or not bits:
        return "image header lacks Rows/Columns/Bits Allocated"
    samples = tags.unsigned(ds, "SamplesPerPixel") or 1
    if tags.ascii_text(ds, "PhotometricInterpretation") == "YBR_FULL_422":
        samples = 2  # two chroma samples shared by each pair of pixels (PS3.3 C.7.6.3.1.2)
    expected = (rows * cols * samples * (frames or 1) * bits + 7) // 8
    have = min(length, size - data_at)
    if have < expected:
        return f"truncated pixel data ({have} of {expected} bytes)"
    return None


def _looks_like_dataset(head: bytes) -> bool:
    """A preamble-less file starting with group 0002 or 0008 (either byte order)."""
    if len(head) < 8:
        return False
    return head[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x08", b"\x00\x02")


def _parse(path: Path, fp: BinaryIO, buf: bytes, size: int, force: bool) -> tuple[Dataset, BinaryIO]:
    """dcmread(stop_before_pixels) from the first HEAD_CHUNK bytes already in memory
    (one read call, cheaper parsing); from the file when the header is longer."""
    bio = io.BytesIO(buf)
    if len(buf) >= size:  # the whole file is in memory: errors are the file's own
        return pydicom.dcmread(bio, stop_before_pixels=True, force=force), bio
    try:
        ds = pydicom.dcmread(bio, stop_before_pixels=True, force=force)
        if bio.tell() + 12 <= len(buf):  # stopped at pixel data inside the chunk
            return ds, bio
    except Exception:
        pass  # header longer than the chunk (or deflated): read it from the file
    fp.seek(0)
    return pydicom.dcmread(fp, stop_before_pixels=True, force=force), fp


def read_header(path: Path) -> tuple[str, object]:
    """Classify one file: ("dicom", (ds, frames)) / ("non_image", name) / ("skip", reason)."""
    try:
        with open(path, "rb") as fp:
            size = os.fstat(fp.fileno()).st_size
            buf = fp.read(HEAD_CHUNK)
            if buf[128:132] == b"DICM":
                ds, src = _parse(path, fp, buf, size, force=False)
            elif _looks_like_dataset(buf):
                ds, src = _parse(path, fp, buf, size, force=True)
                if not any(k in ds for k in ("SOPClassUID", "Rows", "SeriesInstanceUID")):
                    return "skip", "not a DICOM file"
            else:
                return "skip", "not a DICOM or image file" if size else "empty file"
            ds.filename, ds.buffer, ds.fileobj_type = str(path), None, open  # as if read by path
            kind = _classify(ds)
            if kind == "non_image":
                return "non_image", sop_class_name(ds)
            if kind != "image":
                return "skip", kind
            frames = _frames(ds)
            reason = _pixel_check(ds, src, size, frames)
    except OSError as exc:
        return "skip", f"cannot read file ({exc.strerror or type(exc).__name__})"
    except Exception as exc:  # pydicom raises many types on corrupt input
        text = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        return "skip", f"unreadable DICOM ({text})"
    if reason:
        return "skip", reason
    return "dicom", (ds, frames)


def _find_ci(folder: Path, parts: list[str]) -> Path | None:
    """Resolve a Referenced File ID (PS3.3 F.5, upper-case on media) case-insensitively."""
    current = folder
    for part in parts:
        direct = current / part
        if direct.exists():
            current = direct
            continue
        try:
            match = next((c for c in current.iterdir() if c.name.casefold() == part.casefold()), None)
        except OSError:
            return None
        if match is None:
            return None
        current = match
    return current


def dicomdir_files(path: Path) -> tuple[list[Path], list[Skipped]]:
    """Files referenced by a DICOMDIR's directory records (PS3.3 F.3.2.2)."""
    try:
        ds = pydicom.dcmread(path, force=True)
        records = ds.DirectoryRecordSequence
    except Exception as exc:
        return [], [Skipped(path, f"unreadable DICOMDIR ({type(exc).__name__})")]
    files: list[Path] = []
    missing: list[Skipped] = []
    for rec in records:
        ref = rec.get("ReferencedFileID")
        if not ref:
            continue
        parts = [str(ref)] if isinstance(ref, str) else [str(p) for p in ref]
        found = _find_ci(path.parent, parts)
        if found is None or not found.is_file():
            missing.append(Skipped(path.parent.joinpath(*parts), "listed in DICOMDIR but missing"))
        else:
            files.append(found)
    return files, missing


def _walk(root: Path, unreadable: list[Skipped]) -> Iterator[Path]:
    if root.is_file():
        yield root
        return

    def report(err: OSError) -> None:
        where = Path(err.filename) if err.filename else root
        unreadable.append(Skipped(where, f"cannot read folder ({err.strerror or type(err).__name__})"))

    for folder, dirs, files in os.walk(root, onerror=report):
        dirs[:] = sorted((d for d in dirs if not d.startswith(".")), key=natural_key)
        base = Path(folder)
        for name in sorted(files, key=natural_key):
            if not name.startswith(".") and name.casefold() not in _IGNORED:
                yield base / name


def _candidates(root: Path) -> tuple[list[Path], list[Skipped]]:
    """Every file to look at, DICOMDIR references first; DICOMDIRs themselves dropped."""
    missing: list[Skipped] = []
    walked = list(_walk(root, missing))
    ordered: dict[Path, None] = {}
    for path in walked:
        if path.name.upper() == "DICOMDIR":
            files, miss = dicomdir_files(path)
            ordered.update(dict.fromkeys(files))
            missing.extend(miss)
    for path in walked:
        if path.name.upper() != "DICOMDIR":
            ordered.setdefault(path, None)
    return list(ordered), missing


def scan(root: str | Path, progress: Progress | None = None, should_stop: StopFlag | None = None,
         on_snapshot: Snapshot | None = None) -> ScanResult:
    """Scan `root` (a folder or one file) into studies, non-image objects and skipped files.

    `progress(done, total)` is called per file, `should_stop()` is polled per file
    (a cancelled scan returns what it has, with `complete=False`), and
    `on_snapshot(partial)` receives partial results: at once when the first
    image is found, then at most every SNAPSHOT_INTERVAL seconds.  pydicom's
    warnings about odd headers are left to the caller's warning filters (the
    process-global filters are not thread-safe to change from a worker).
    """
    root = Path(root).expanduser().absolute()
    if not root.exists():
        raise NothingToShowError(f"{root}: no such file or directory")
    files, missing = _candidates(root)
    total = len(files)
    col = Collector(root)
    col.skipped.extend(missing)
    if progress:
        progress(0, total)
    last_snap: float | None = None
    started = time.monotonic()
    for done, path in enumerate(files, 1):
        if should_stop is not None and should_stop():
            return col.result(complete=False)
        if is_plain_image(path):
            col.add_image(path)
        else:  # DICOM by content, whatever the name ("x.png" holding DICOM included)
            kind, value = read_header(path)
            if kind == "dicom":
                ds, frames = value  # type: ignore[misc]
                col.add_dicom(path, ds, frames)
            elif kind == "non_image":
                col.non_image.append(NonImage(path, str(value)))
            elif path.suffix.lower() in IMAGE_SUFFIXES:
                col.skipped.append(Skipped(path, f"not a valid {path.suffix.lower()[1:].upper()} image"))
            else:
                col.skipped.append(Skipped(path, str(value)))
        if progress:
            progress(done, total)
        if on_snapshot is not None and col.changed and done < total:
            now = time.monotonic()
            if (now - (last_snap or started) >= SNAPSHOT_INTERVAL
                    or (last_snap is None and col.images)):
                last_snap = now
                col.changed = False
                on_snapshot(col.result(complete=False))
    return col.result(complete=True)


def open_path(path: str | Path, **kwargs) -> ScanResult:
    """Scan a single file or a folder (same as `scan`)."""
    return scan(path, **kwargs)
