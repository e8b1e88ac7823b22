"""Lazy, per-frame pixel decoding with a byte-bounded LRU cache and prefetch.

Stored values keep their stored dtype (PS3.5 8.1.1; no float64 series).
Colour (RGB, YBR_* converted by pydicom per PS3.3 C.7.6.3.1.2) is returned as
(rows, cols, 3) uint8 RGB; PALETTE COLOR as (rows, cols) indices for the
display's palette LUT (PS3.3 C.7.9).  Plain PNG/JPEG/TIFF/BMP images go
through OpenCV.  Only regular files are opened (viewer.io.safefile), and the
size each image declares is checked against the decode limits and against what
its data can hold before any decoder runs (viewer.io.guard).  Decode failures
raise `DecodeError` naming the file.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom import Dataset

from medviewer.viewer.errors import DecodeError
from medviewer.viewer.io import guard
from medviewer.viewer.io.imagehead import from_bytes
from medviewer.viewer.io.model import HeaderEntry, HeaderMap, ImageRef, printable
from medviewer.viewer.io.rawheader import LazyHeader
from medviewer.viewer.io.safefile import open_regular

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"}
PLAIN_FILE_SLACK = 64 * 2**20  # a plain image file may exceed its decoded size by this much
MAX_HEADERS = 20000  # headers kept for meta(); pixel-free, a few KB each
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"BM")


def is_plain_image(path: Path, head: bytes | None = None) -> bool:
    """A PNG/JPEG/TIFF/BMP by extension AND by its magic bytes (DICOM may hide as .png);
    `head` is the file's first bytes when already read."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return False
    if head is None:
        try:
            with open_regular(path) as fp:
                head = fp.read(8)
        except OSError:
            return False
    return any(head.startswith(m) for m in _IMAGE_MAGIC)


def _reason(exc: BaseException) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = " ".join(lines[:2])[:200]
    return text or type(exc).__name__


def _name(path: Path) -> str:
    return printable(path.name)


def read_plain_image(path: Path) -> np.ndarray:
    """PNG/JPEG/TIFF/BMP via OpenCV (IMREAD_UNCHANGED): grey 2-D, colour RGB uint8.

    The header is checked first (`guard.check_plain`): nothing over the decode
    limits, nothing its data cannot hold, reaches OpenCV.
    """
    import cv2

    cap = guard.limits().max_frame_bytes + PLAIN_FILE_SLACK
    try:
        with open_regular(path, cap) as fp:
            data = fp.read(cap + 1)
    except OSError as exc:
        raise DecodeError(f"{_name(path)}: cannot read file ({exc.strerror or exc})") from None
    try:
        guard.check_plain(from_bytes(data), len(data))
    except guard.Refused as exc:
        raise DecodeError(f"{_name(path)}: {exc}") from None
    try:
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
    except cv2.error as exc:
        raise DecodeError(f"{_name(path)}: cannot decode ({_reason(exc)})") from None
    if arr is None:
        raise DecodeError(f"{_name(path)}: not a readable {path.suffix.lstrip('.').upper()} image")
    if arr.ndim == 3:
        if arr.shape[2] == 1:
            arr = arr[:, :, 0]
        else:
            code = cv2.COLOR_BGRA2RGB if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB
            arr = cv2.cvtColor(arr, code)
            if arr.dtype != np.uint8:
                arr = (arr >> 8).astype(np.uint8) if arr.dtype == np.uint16 else \
                    np.clip(arr, 0, 255).astype(np.uint8)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    return np.ascontiguousarray(arr)


def _to_rgb8(arr: np.ndarray, ds: Dataset) -> np.ndarray:
    """Colour with more than 8 bits stored -> uint8 by dropping low bits."""
    if arr.dtype == np.uint8:
        return arr
    bits = int(ds.get("BitsStored", arr.dtype.itemsize * 8) or 8)
    return (arr.astype(np.uint32) >> max(bits - 8, 0)).clip(0, 255).astype(np.uint8)


def _set_transfer_syntax(ds: Dataset) -> None:
    """Give a data set read without File Meta (PS3.10 7.1) the transfer syntax it was
    read with, so that pydicom can decode it (native syntaxes only: PS3.5 A.1-A.3)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        return
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        return
    syntax = ImplicitVRLittleEndian if implicit else (
        ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax


def decode_dicom(path: Path, frame: int | None, header: Dataset | None = None,
                 pixel_at: int | None = None) -> np.ndarray:
    """One frame of stored values (pydicom.pixels.pixel_array with `index`).

    The file is opened once (a regular file only); the attributes and, for
    encapsulated syntaxes, the frame's codestream header are checked against the
    decode limits first (`guard.check_dicom_frame`; `pixel_at` is the Pixel Data
    element's offset when the scan knows it).
    """
    from pydicom.pixels import pixel_array

    where = "" if frame is None else f" frame {frame}"
    try:
        fp = open_regular(path)
    except OSError as exc:
        raise DecodeError(f"{_name(path)}: cannot read file ({exc.strerror or exc})") from None
    with fp:
        try:
            if header is None:
                header = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            guard.check_dicom_frame(fp, header, frame, pixel_at)
        except guard.Refused as exc:
            raise DecodeError(f"{_name(path)}: {exc}") from None
        except Exception as exc:  # an unreadable header or item table: nothing is decoded
            raise DecodeError(f"{_name(path)}: cannot read the pixel data's header{where}: "
                              f"{_reason(exc)}") from None
        try:
            fp.seek(0)
            arr = pixel_array(fp, index=frame)
        except MemoryError:
            raise DecodeError(f"{_name(path)}: not enough memory to decode the pixel data{where}") from None
        except Exception as first:
            try:  # files without a File Meta header: forced read, syntax from the encoding
                fp.seek(0)
                ds = pydicom.dcmread(fp, force=True)
                _set_transfer_syntax(ds)
                arr = pixel_array(ds, index=frame)
            except MemoryError:
                raise DecodeError(f"{_name(path)}: not enough memory to decode the pixel data{where}") from None
            except Exception:
                raise DecodeError(f"{_name(path)}: cannot decode pixel data{where}: {_reason(first)}") from None
        if header is None:
            fp.seek(0)
            header = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
    try:
        samples = int(header.get("SamplesPerPixel", 1) or 1)
    except (TypeError, ValueError):
        samples = 1
    if arr.ndim == 3 + (samples > 1):
        arr = arr[0]  # frame=None on a multi-frame object: its first frame
    if samples == 3 and arr.ndim == 3:
        arr = _to_rgb8(arr, header)
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    if not arr.dtype.isnative:  # big endian transfer syntax (PS3.5 A.3): native order for LUTs
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if not arr.flags.owndata or not arr.flags.c_contiguous:
        arr = np.array(arr, copy=True, order="C")  # never pin a larger decode buffer
    return arr


def read_image_file(path: str | Path, frame: int | None = None) -> tuple[np.ndarray, Any]:
    """Stored pixels and display metadata of one file, by the viewer's guarded decode.

    A PNG/JPEG/TIFF/BMP (recognised by extension and magic bytes) gives
    ``(pixels, None)``; a DICOM file gives frame `frame` (default: the first frame
    of a multi-frame object, PS3.3 C.7.6.6) and its `viewer.display.ImageMeta`.
    For callers outside the viewer (the trainer): only regular files are opened,
    declared sizes are checked against the decode limits before decoding, and
    every failure is a `DecodeError` naming the file.
    """
    from medviewer.viewer import display

    path = Path(path)
    if is_plain_image(path):
        return read_plain_image(path), None
    try:
        with open_regular(path) as fp:
            header = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
    except OSError as exc:
        raise DecodeError(f"{_name(path)}: cannot read file ({exc.strerror or exc})") from None
    except Exception as exc:
        raise DecodeError(f"{_name(path)}: not a DICOM file nor a PNG/JPEG/TIFF/BMP image "
                          f"({_reason(exc)})") from None
    if "Rows" not in header or "Columns" not in header:
        raise DecodeError(f"{_name(path)}: no image pixel data (not a DICOM image)")
    try:
        frames = int(header.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        frames = 1
    if frame is None and frames > 1:
        frame = 0
    arr = decode_dicom(path, frame, header)
    try:
        meta = display.meta_from_dataset(header, frame)
    except Exception as exc:
        raise DecodeError(f"{_name(path)}: unreadable display attributes ({_reason(exc)})") from None
    return arr, meta


class PixelStore:
    """Decoded frames on demand; LRU bounded by `max_bytes`; background prefetch.

    `get` never waits for queued prefetch work: a pending prefetch of the same
    frame is cancelled and the frame decoded at once; only a decode of that very
    frame already running on a worker is awaited (it finishes sooner).
    """

    def __init__(self, max_bytes: int = 512 * 2**20, headers: Mapping[Path, Dataset] | None = None,
                 workers: int = 2) -> None:
        self.max_bytes = int(max_bytes)
        self.max_headers = MAX_HEADERS
        self._cache: OrderedDict[ImageRef, np.ndarray] = OrderedDict()
        self._bytes = 0
        # frames served from a block shared with a volume (pin/unpin): never evicted,
        # counted once in the budget
        self._pinned: dict[ImageRef, np.ndarray] = {}
        self._pinned_by: dict[int, list[ImageRef]] = {}
        self._pinned_bytes = 0
        self._lock = threading.Lock()
        self._headers: OrderedDict[Path, HeaderEntry] = OrderedDict()
        if headers:
            self.add_headers(headers)
        self._inflight: dict[ImageRef, Future] = {}
        self._plain_cache: dict[Path, bool] = {}
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="prefetch")
        self._closed = False

    # -- headers -----------------------------------------------------------
    def add_headers(self, headers: Mapping[Path, Dataset]) -> None:
        """Register headers from a scan (e.g. `Series.headers`) to avoid re-reading;
        a `HeaderMap`'s unparsed entries stay unparsed until a frame needs them."""
        entries = headers.entries() if isinstance(headers, HeaderMap) else headers
        with self._lock:
            self._headers.update(entries)
            self._trim_headers()

    def _trim_headers(self) -> None:
        while len(self._headers) > self.max_headers:  # oldest first; re-read on demand
            self._headers.popitem(last=False)

    def _plain(self, path: Path) -> bool:
        with self._lock:
            if path in self._headers:
                return False
            known = self._plain_cache.get(path)
        if known is None:
            known = is_plain_image(path)
            with self._lock:
                if len(self._plain_cache) > MAX_HEADERS:
                    self._plain_cache.clear()
                self._plain_cache[path] = known
        return known

    def header(self, ref: ImageRef) -> Dataset | None:
        """The DICOM header of the file holding `ref` (None for plain images)."""
        if self._plain(ref.path):
            return None
        with self._lock:
            ds = self._headers.get(ref.path)
        if isinstance(ds, LazyHeader):
            try:
                ds = ds.dataset()
            except Exception as exc:
                raise DecodeError(f"{_name(ref.path)}: cannot read header: {_reason(exc)}") from None
        if ds is None:
            try:
                with open_regular(ref.path) as fp:
                    ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
                ds.filename = str(ref.path)
            except OSError as exc:
                raise DecodeError(f"{_name(ref.path)}: cannot read file ({exc.strerror or exc})") from None
            except Exception as exc:
                raise DecodeError(f"{_name(ref.path)}: cannot read header: {_reason(exc)}") from None
            with self._lock:
                self._headers[ref.path] = ds
                self._trim_headers()
        return ds

    # -- cache ---------------------------------------------------------------
    @property
    def cached_bytes(self) -> int:
        """Bytes held by cached frames, pinned volume frames included (<= max_bytes
        unless pinned frames alone exceed it)."""
        return self._bytes + self._pinned_bytes

    @property
    def pinned_bytes(self) -> int:
        """Bytes of frames served from blocks shared with a volume (`pin`)."""
        return self._pinned_bytes

    def __contains__(self, ref: ImageRef) -> bool:
        with self._lock:
            return ref in self._cache or ref in self._pinned

    def _put(self, ref: ImageRef, arr: np.ndarray) -> None:
        size = arr.nbytes
        with self._lock:
            budget = self.max_bytes - self._pinned_bytes
            if ref in self._cache or ref in self._pinned or size > budget:
                return
            while self._cache and self._bytes + size > budget:
                _, old = self._cache.popitem(last=False)
                self._bytes -= old.nbytes
            self._cache[ref] = arr
            self._bytes += size

    # -- frames shared with a volume ----------------------------------------------
    def cached(self, ref: ImageRef) -> np.ndarray | None:
        """The frame if it is in memory (cache or pinned block), without decoding."""
        with self._lock:
            arr = self._pinned.get(ref)
            return arr if arr is not None else self._cache.get(ref)

    def decode(self, ref: ImageRef) -> np.ndarray:
        """Decode one frame now, without caching it (read-only array; DecodeError)."""
        return self._decode(ref)

    def pin(self, ref: ImageRef, view: np.ndarray, owner: object) -> None:
        """Serve `view` (a frame of a block such as a volume's array) for `ref` until
        `unpin(owner)`: the frame's separate cached copy is dropped, so its bytes are
        held once.  Pinned frames count against `max_bytes` and are never evicted."""
        if view.flags.writeable:
            view = view.view()
            view.flags.writeable = False
        with self._lock:
            old = self._cache.pop(ref, None)
            if old is not None:
                self._bytes -= old.nbytes
            previous = self._pinned.get(ref)
            if previous is not None:
                self._pinned_bytes -= previous.nbytes
            self._pinned[ref] = view
            self._pinned_bytes += view.nbytes
            self._pinned_by.setdefault(id(owner), []).append(ref)
            while self._cache and self._bytes + self._pinned_bytes > self.max_bytes:
                _, evicted = self._cache.popitem(last=False)
                self._bytes -= evicted.nbytes

    def unpin(self, owner: object) -> None:
        """Stop serving the frames pinned by `owner` (they are decoded again on demand)."""
        with self._lock:
            for ref in self._pinned_by.pop(id(owner), []):
                arr = self._pinned.pop(ref, None)
                if arr is not None:
                    self._pinned_bytes -= arr.nbytes

    def _decode(self, ref: ImageRef) -> np.ndarray:
        if self._plain(ref.path):
            arr = read_plain_image(ref.path)
        else:
            with self._lock:
                entry = self._headers.get(ref.path)
            pixel_at = entry.raw.pixel_at if isinstance(entry, LazyHeader) else None
            arr = decode_dicom(ref.path, ref.frame, self.header(ref), pixel_at)
        arr.setflags(write=False)  # cached arrays are shared: read-only
        return arr

    def get(self, ref: ImageRef) -> np.ndarray:
        """Stored values of one image (read-only array); decodes on a miss."""
        with self._lock:
            arr = self._pinned.get(ref)
            if arr is not None:
                return arr
            arr = self._cache.get(ref)
            if arr is not None:
                self._cache.move_to_end(ref)
                return arr
            fut = self._inflight.get(ref)
        if fut is not None:
            if fut.cancel():  # still queued: drop it, decode here without waiting
                with self._lock:
                    if self._inflight.get(ref) is fut:
                        del self._inflight[ref]
            else:  # running or done: that very decode finishes sooner than a new one
                try:
                    return fut.result()
                except Exception:
                    pass  # decode again below to raise a clean error
        arr = self._decode(ref)
        self._put(ref, arr)
        return arr

    def meta(self, ref: ImageRef) -> Any:
        """`viewer.display.ImageMeta` for that frame (PS3.3 C.7.6.3, C.11)."""
        from medviewer.viewer import display

        header = self.header(ref)
        if header is None:
            return display.meta_for_plain_image(self.get(ref))
        return display.meta_from_dataset(header, ref.frame)

    # -- prefetch ------------------------------------------------------------
    def _prefetch_one(self, ref: ImageRef) -> np.ndarray:
        try:
            with self._lock:
                cached = self._pinned.get(ref)
                if cached is None:
                    cached = self._cache.get(ref)
            if cached is not None:
                return cached
            arr = self._decode(ref)
            self._put(ref, arr)
            return arr
        finally:
            with self._lock:
                self._inflight.pop(ref, None)

    def prefetch(self, refs: Sequence[ImageRef]) -> None:
        """Decode `refs` in the background, nearest first; drops stale queued work."""
        if self._closed:
            return
        wanted = set(refs)
        with self._lock:
            for ref, fut in list(self._inflight.items()):
                if ref not in wanted and fut.cancel():
                    del self._inflight[ref]
            todo = [r for r in refs
                    if r not in self._cache and r not in self._pinned and r not in self._inflight]
            for ref in todo:
                self._inflight[ref] = self._pool.submit(self._prefetch_one, ref)

    def wait_idle(self, timeout: float | None = None) -> None:
        """Block until queued prefetch work is done (tests, benchmarks)."""
        with self._lock:
            futures = list(self._inflight.values())
        for fut in futures:
            try:
                fut.result(timeout=timeout)
            except Exception:
                pass

    def clear(self) -> None:
        """Drop cached and pinned frames."""
        with self._lock:
            self._cache.clear()
            self._bytes = 0
            self._pinned.clear()
            self._pinned_by.clear()
            self._pinned_bytes = 0

    def close(self) -> None:
        """Stop prefetching and drop the cache."""
        self._closed = True
        with self._lock:
            for fut in self._inflight.values():
                fut.cancel()
            self._inflight.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.clear()

    def __enter__(self) -> PixelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
