"""One file's header: read it, classify it, check its pixel data is all there.

DICOM files are recognised by the 'DICM' prefix after the 128-byte preamble
(PS3.10 7.1) whatever their name; files without a preamble get a forced read
when they start like a data set (group 0002 or 0008).  The header is read
from the first HEAD_CHUNK bytes, read in one call (by the scan's read-ahead
threads): by the fast walker of viewer.io.rawheader when it can (the full
pydicom Dataset is then parsed only when something asks for it), else by
pydicom with `stop_before_pixels`.  The pixel data element's own header is
then checked so that truncated files are reported at scan time.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pydicom
from pydicom import Dataset
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian

from medviewer.viewer.io import guard, tags
from medviewer.viewer.io.rawheader import LazyHeader, walk
from medviewer.viewer.io.safefile import NotRegularFileError, open_regular, read_head
from medviewer.viewer.io.tags import Header

FAST_HEADERS = True  # False: every header through pydicom (tests compare the two)
HEAD_CHUNK = 64 * 1024  # first read of each file; holds nearly every header
# SOP classes without displayable pixels even when Rows/Columns might be present
_NON_IMAGE_WORDS = ("SR Storage", "Presentation State", "Key Object Selection",
                    "Structure Set", "RT Plan", "Waveform", "Encapsulated", "Raw Data",
                    "Registration", "Spectroscopy", "Treatment Record")

Chunk = tuple[bytes, int]  # (first HEAD_CHUNK bytes, file size)


def read_chunk(path: Path) -> Chunk:
    """The first HEAD_CHUNK bytes of a regular file and its size (one open, one read);
    a FIFO, socket or device raises NotRegularFileError without being opened."""
    return read_head(path, HEAD_CHUNK)


def _file_meta(ds: Header) -> Header | None:
    return ds if isinstance(ds, LazyHeader) else getattr(ds, "file_meta", None)


def sop_class_name(ds: Header) -> str:
    """Human name of the SOP Class UID (PS3.6 Annex A), or the UID itself."""
    uid = tags.ascii_text(ds, "SOPClassUID")
    meta = _file_meta(ds)
    if not uid and meta is not None:
        uid = tags.ascii_text(meta, "MediaStorageSOPClassUID")
    if not uid:
        return "unknown SOP class"
    return tags.uid_name(uid) or uid


def _classify(ds: Header) -> str:
    """"image", "non_image", or a reason to skip, from SOP Class and Rows/Columns."""
    name = sop_class_name(ds)
    if any(word in name for word in _NON_IMAGE_WORDS):
        return "non_image"
    if tags.has(ds, "Rows") and tags.has(ds, "Columns"):
        return "image"
    if name.endswith("Image Storage"):  # an image object without its Image Pixel module
        return "no pixel data in an image object (file truncated?)"
    if name == "unknown SOP class":
        return "unreadable DICOM (no SOP Class UID)"
    return "non_image"


def _frames(ds: Header) -> int | None:
    """Number of Frames (0028,0008) when > 1, else None (single frame)."""
    n = tags.integer(ds, "NumberOfFrames")
    return n if n is not None and n > 1 else None


def _pixel_check(ds: Header, start: int, head: bytes, size: int, frames: int | None,
                 buf: bytes = b"") -> str | None:
    """Reason why the pixel data element is missing, short or refused, else None.

    `start` is where `stop_before_pixels` stopped: the pixel data element
    (7FE0,0010 / 0008 / 0009), whose first 12 bytes are `head`; `buf` holds the
    file's first bytes.  Native data must hold Rows*Columns*Samples*BitsAllocated/8
    bytes per frame (PS3.5 8.1.1); encapsulated data must be present (PS3.5 A.4)
    and its first frame's codestream, when it lies in `buf`, must declare the
    frame the attributes declare (viewer.io.guard).  Declared sizes over the
    decode limits are refused either way.
    """
    meta = _file_meta(ds)
    tsyntax = UID(tags.ascii_text(meta, "TransferSyntaxUID") if meta is not None else "")
    rows, cols = tags.unsigned(ds, "Rows"), tags.unsigned(ds, "Columns")
    bits = tags.unsigned(ds, "BitsAllocated")
    samples = tags.unsigned(ds, "SamplesPerPixel") or 1
    try:
        guard.check_attributes(rows, cols, samples, bits)
    except guard.Refused as exc:
        return str(exc)
    if tsyntax == DeflatedExplicitVRLittleEndian:
        return None  # the data set is a deflated stream (PS3.5 A.5): no raw offsets
    if size - start < 8:
        return "no pixel data (file truncated?)"
    implicit, little = getattr(ds, "original_encoding", (None, None))
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
        if size - data_at <= 8:
            return "encapsulated pixel data is empty (file truncated?)"
        return _first_frame_check(str(tsyntax), buf, data_at, size, rows, cols, samples, bits)
    if not rows or not cols or not bits:
        return "image header lacks Rows/Columns/Bits Allocated"
    if tags.ascii_text(ds, "PhotometricInterpretation") == "YBR_FULL_422":
        samples = 2  # two chroma samples shared by each pair of pixels (PS3.3 C.7.6.3.1.2)
    expected = (rows * cols * samples * (frames or 1) * bits + 7) // 8
    have = min(length, size - data_at)
    if have < expected:
        return f"truncated pixel data ({have} of {expected} bytes)"
    return None


def _first_frame_check(syntax: str, buf: bytes, data_at: int, size: int, rows: int | None,
                       cols: int | None, samples: int, bits: int | None) -> str | None:
    """The first fragment's codestream (PS3.5 A.4: Basic Offset Table item, then the
    fragments) checked against the attributes, when it lies in the bytes read."""
    if syntax not in guard.CHECKED_SYNTAXES or not rows or not cols or len(buf) < data_at + 16:
        return None
    item, bot = struct.unpack_from("<II", buf, data_at)
    frag = data_at + 8 + bot
    if item != 0xE000FFFE or len(buf) < frag + 8 or struct.unpack_from("<I", buf, frag)[0] != 0xE000FFFE:
        return None  # not the item layout expected: left to the decoder's checks
    begin = frag + 8
    wanted: list[int] = []

    def read(offset: int, n: int) -> bytes:
        wanted.append(begin + offset + n)
        return buf[begin + offset:begin + offset + n]

    try:
        guard.check_frame(syntax, read, size - begin, rows, cols, samples, bits or 8)
    except guard.Refused as exc:
        if max(wanted, default=0) > len(buf) and "unreadable" in str(exc):
            return None  # the header goes on past the bytes read: checked at decode time
        return str(exc)
    return None


def _looks_like_dataset(head: bytes) -> bool:
    """A preamble-less file starting with group 0002 or 0008 (either byte order)."""
    if len(head) < 8:
        return False
    return head[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x08", b"\x00\x02")


def _parse(path: Path, buf: bytes, size: int, force: bool) -> tuple[Dataset, int, bytes]:
    """dcmread(stop_before_pixels) from the chunk in memory, or from the file when the
    header is longer than the chunk; returns (header, stop offset, next 12 bytes)."""
    bio = io.BytesIO(buf)
    if len(buf) >= size:  # the whole file is in memory: errors are the file's own
        ds = pydicom.dcmread(bio, stop_before_pixels=True, force=force)
        return ds, bio.tell(), bio.read(12)
    try:
        ds = pydicom.dcmread(bio, stop_before_pixels=True, force=force)
        if bio.tell() + 12 <= len(buf):  # stopped at pixel data inside the chunk
            return ds, bio.tell(), bio.read(12)
    except Exception:
        pass  # header longer than the chunk (or deflated): read it from the file
    with open_regular(path) as fp:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=force)
        return ds, fp.tell(), fp.read(12)


def read_header(path: Path, chunk: Chunk | OSError | None = None) -> tuple[str, object]:
    """Classify one file: ("dicom", (header, frames)) / ("non_image", name) / ("skip", reason).

    `chunk` is `read_chunk(path)` when already read (or the OSError it raised).
    The header is a `LazyHeader` when the fast walker could read the file
    (single-frame, little endian), else a pydicom `Dataset`.
    """
    try:
        if isinstance(chunk, OSError):
            raise chunk
        buf, size = chunk if chunk is not None else read_chunk(path)
        raw = walk(buf) if FAST_HEADERS else None
        ds: Header
        if raw is not None:
            ds, start, head = LazyHeader(path, raw), raw.pixel_at, raw.pixel_head
            if _frames(ds) is not None:  # per-frame geometry lives in sequences: pydicom
                ds = ds.dataset()
        elif buf[128:132] == b"DICM":
            ds, start, head = _parse(path, buf, size, force=False)
        elif _looks_like_dataset(buf):
            ds, start, head = _parse(path, buf, size, force=True)
            if not any(k in ds for k in ("SOPClassUID", "Rows", "SeriesInstanceUID")):
                return "skip", "not a DICOM file"
        else:
            return "skip", "not a DICOM or image file" if size else "empty file"
        if isinstance(ds, Dataset):
            ds.filename, ds.buffer, ds.fileobj_type = str(path), None, open  # as if read by path
        kind = _classify(ds)
        if kind == "non_image":
            return "non_image", sop_class_name(ds)
        if kind != "image":
            return "skip", kind
        frames = _frames(ds)
        reason = _pixel_check(ds, start, head, size, frames, buf)
    except NotRegularFileError as exc:
        return "skip", str(exc)
    except OSError as exc:
        return "skip", f"cannot read file ({exc.strerror or type(exc).__name__})"
    except Exception as exc:  # pydicom raises many types on corrupt input
        text = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        return "skip", f"unreadable DICOM ({text})"
    if reason:
        return "skip", reason
    return "dicom", (ds, frames)


