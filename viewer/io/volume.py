"""A series as one volume of stored values, for reformatting (MPR) -- Qt-free.

    check = check_series(series)            # cheap: headers only; check.reason says why not
    volume = build_volume(series, store)    # decodes once, shares the bytes with the store
    volume.close()                          # the store decodes those frames again on demand

The volume keeps the stored values in their stored dtype (no float copy) as one
(slices, rows, columns) array in display order (the stack convention of
viewer.io.sort).  Building it copies each frame into that array and has the
PixelStore serve views of it from then on (`PixelStore.pin`), so the frames are
held once, not twice.

Geometry (PS3.3 C.7.6.2.1.1): Image Position (Patient) of every slice, the row
and column direction cosines of Image Orientation (Patient) and Pixel Spacing.
Slices must be parallel with one size, pixel format, spacing and rescale;
anything else is refused with a one-line reason.  Unequal slice spacing and
gantry tilt (positions stepping along z while the slices are tilted) are kept
exactly: `VolumeGeometry` maps patient points to fractional indices through the
actual slice positions, so reformats are resampled, never distorted.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from medviewer.viewer.display.orientation import plane_kind, stack_sign
from medviewer.viewer.errors import MedviewerError
from medviewer.viewer.io import tags
from medviewer.viewer.io.model import ImageRef, Series

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.viewer.display.meta import ImageMeta
    from medviewer.viewer.io.pixels import PixelStore

__all__ = ["Volume", "VolumeCancelled", "VolumeCheck", "VolumeError", "VolumeGeometry",
           "build_volume", "check_series"]

ORIENTATION_TOLERANCE = 1e-3   # direction cosines that differ less are one orientation
GRID_TOLERANCE = 0.05          # deviations below 5 % of a voxel count as on the grid
MAX_GAP_RATIO = 3.0            # a gap over 3x the usual spacing: slices are missing
MIN_SPACING_MM = 0.01          # two slices closer than this lie at one position


class VolumeError(MedviewerError):
    """A series cannot be shown as a volume; the message says why (one line)."""


class VolumeCancelled(MedviewerError):
    """Building the volume was cancelled (should_stop returned True)."""


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


class VolumeGeometry:
    """Where every voxel of a (slices, rows, columns) array lies in the patient (LPS, mm).

    Voxel (k, r, c) is at P(k) + r * spacing[0] * col_dir + c * spacing[1] * row_dir,
    where P(k) is slice k's Image Position (Patient), linearly interpolated between
    slices for fractional k.  `along` is the slice normal pointing in display order
    and `offsets[k]` the distance of slice k from slice 0 along it (increasing).
    """

    def __init__(self, positions: Sequence[Sequence[float]] | np.ndarray, row_dir: Sequence[float],
                 col_dir: Sequence[float], pixel_spacing: tuple[float, float],
                 shape: tuple[int, int, int]) -> None:
        self.positions = np.array(positions, dtype=np.float64).reshape(-1, 3)
        self.row_dir = _unit(np.asarray(row_dir, dtype=np.float64)[:3])
        self.col_dir = _unit(np.asarray(col_dir, dtype=np.float64)[:3])
        self.pixel_spacing = (float(pixel_spacing[0]), float(pixel_spacing[1]))
        self.shape = (int(shape[0]), int(shape[1]), int(shape[2]))
        n = self.shape[0]
        if self.positions.shape[0] != n or n < 1:
            raise ValueError(f"{self.positions.shape[0]} positions for {n} slices")
        if min(self.pixel_spacing) <= 0 or not all(map(math.isfinite, self.pixel_spacing)):
            raise ValueError(f"pixel spacing {self.pixel_spacing} must be positive")
        self.normal = _unit(np.cross(self.row_dir, self.col_dir))
        rel = self.positions - self.positions[0]
        d = rel @ self.normal
        if n > 1 and d[-1] < 0:
            self.along = -self.normal
            d = -d
        elif n > 1:
            self.along = self.normal
        else:
            self.along = self.normal * stack_sign(self.normal)
        self.offsets = d
        steps = np.diff(d)
        self.slice_spacing = float(np.median(steps)) if n > 1 else min(self.pixel_spacing)
        self.step = rel[-1] / (n - 1) if n > 1 else self.along * self.slice_spacing
        ks = np.arange(n, dtype=np.float64)
        tol = GRID_TOLERANCE * min(self.slice_spacing, *self.pixel_spacing)
        # regular: every slice where P0 + k * step puts it (uniform spacing, on a line)
        self.regular = bool(np.abs(rel - ks[:, None] * self.step).max() <= tol) if n > 1 else True
        in_plane = rel - np.outer(d, self.along)
        self.sheared = bool(np.abs(in_plane).max() > tol) if n > 1 else False
        along_step = float(self.step @ self.along)
        perp = float(np.linalg.norm(self.step - along_step * self.along))
        self.tilt_deg = math.degrees(math.atan2(perp, along_step)) if n > 1 else 0.0
        # in-plane offset of each slice from slice 0, in pixels (shear / tilt)
        self._shift_r = (in_plane @ self.col_dir) / self.pixel_spacing[0]
        self._shift_c = (in_plane @ self.row_dir) / self.pixel_spacing[1]
        self._ks = ks

    # -- description ---------------------------------------------------------
    @property
    def kind(self) -> str:
        """'axial', 'coronal' or 'sagittal': the acquisition plane."""
        return plane_kind(self.normal)

    @property
    def uniform(self) -> bool:
        """Equal slice spacing (within 5 % of a voxel)."""
        n = self.shape[0]
        if n < 3:
            return True
        expected = np.arange(n) * (self.offsets[-1] / (n - 1))
        return bool(np.abs(self.offsets - expected).max()
                    <= GRID_TOLERANCE * min(self.slice_spacing, *self.pixel_spacing))

    def spacing_range(self) -> tuple[float, float]:
        steps = np.diff(self.offsets)
        return (float(steps.min()), float(steps.max())) if steps.size else (0.0, 0.0)

    def axis_vectors(self) -> np.ndarray:
        """(3, 3): patient direction of one index step along k, r, c (mm per index)."""
        return np.stack([self.step, self.col_dir * self.pixel_spacing[0],
                         self.row_dir * self.pixel_spacing[1]])

    def aligned_axes(self) -> tuple[tuple[int, int], ...] | None:
        """((patient axis, sign) for k, r, c) when the voxel grid runs along the patient
        axes (no shear, no obliquity beyond 5 % of a voxel over the whole volume), else None.
        Slice spacing may be unequal: it is resampled along k."""
        if self.sheared:
            return None
        n, rows, cols = self.shape
        dirs = (self.along, self.col_dir, self.row_dir)
        extents = (self.offsets[-1], (rows - 1) * self.pixel_spacing[0],
                   (cols - 1) * self.pixel_spacing[1])
        tol = GRID_TOLERANCE * min(self.slice_spacing, *self.pixel_spacing)
        out = []
        for v, extent in zip(dirs, extents):
            axis = int(np.argmax(np.abs(v)))
            off = math.sqrt(max(0.0, 1.0 - float(v[axis]) ** 2))
            if off * extent > tol:
                return None
            out.append((axis, 1 if v[axis] > 0 else -1))
        if sorted(a for a, _ in out) != [0, 1, 2]:
            return None
        return tuple(out)

    # -- mappings --------------------------------------------------------------
    def offset_to_index(self, d: np.ndarray) -> np.ndarray:
        """Fractional slice index of distances along `along` (linear past the ends)."""
        n = self.shape[0]
        d = np.asarray(d, dtype=np.float64)
        if n == 1:
            return d / self.slice_spacing
        if self.regular:
            return d / (self.offsets[-1] / (n - 1))
        f = np.interp(d, self.offsets, self._ks)
        first, last = self.offsets[1] - self.offsets[0], self.offsets[-1] - self.offsets[-2]
        f = np.where(d < 0, d / first, f)
        return np.where(d > self.offsets[-1], (n - 1) + (d - self.offsets[-1]) / last, f)

    def index_to_offset(self, f: np.ndarray) -> np.ndarray:
        """Distance along `along` of fractional slice indices (inverse of offset_to_index)."""
        n = self.shape[0]
        f = np.asarray(f, dtype=np.float64)
        if n == 1:
            return f * self.slice_spacing
        d = np.interp(f, self._ks, self.offsets)
        first, last = self.offsets[1] - self.offsets[0], self.offsets[-1] - self.offsets[-2]
        d = np.where(f < 0, f * first, d)
        return np.where(f > n - 1, self.offsets[-1] + (f - (n - 1)) * last, d)

    def slice_shift(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """In-plane offset (rows, columns) of the slice at fractional index f from slice 0."""
        if not self.sheared:
            z = np.zeros_like(np.asarray(f, dtype=np.float64))
            return z, z
        if self.regular:
            f = np.asarray(f, dtype=np.float64)
            n = self.shape[0]
            return f * (self._shift_r[-1] / (n - 1)), f * (self._shift_c[-1] / (n - 1))
        fc = np.clip(f, 0, self.shape[0] - 1)
        return np.interp(fc, self._ks, self._shift_r), np.interp(fc, self._ks, self._shift_c)

    def index_to_patient(self, k, r, c) -> np.ndarray:
        """Patient points (..., 3) of fractional indices (broadcast)."""
        k, r, c = (np.asarray(v, dtype=np.float64) for v in (k, r, c))
        d = self.index_to_offset(k)
        sr, sc = self.slice_shift(k)
        p0 = self.positions[0]
        return (p0 + d[..., None] * self.along + (r + sr)[..., None] * self.pixel_spacing[0] * self.col_dir
                + (c + sc)[..., None] * self.pixel_spacing[1] * self.row_dir)

    def patient_to_index(self, points) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fractional (k, r, c) of patient points (..., 3); outside the volume they fall
        outside [0, n-1] x [0, rows-1] x [0, cols-1]."""
        q = np.asarray(points, dtype=np.float64) - self.positions[0]
        k = self.offset_to_index(q @ self.along)
        sr, sc = self.slice_shift(k)
        r = (q @ self.col_dir) / self.pixel_spacing[0] - sr
        c = (q @ self.row_dir) / self.pixel_spacing[1] - sc
        return k, r, c

    def corners(self) -> np.ndarray:
        """(8, 3) patient positions of the centres of the eight corner voxels."""
        n, rows, cols = self.shape
        k, r, c = np.meshgrid([0, n - 1], [0, rows - 1], [0, cols - 1], indexing="ij")
        return self.index_to_patient(k.ravel(), r.ravel(), c.ravel())

    def center(self) -> np.ndarray:
        n, rows, cols = self.shape
        return self.index_to_patient((n - 1) / 2.0, (rows - 1) / 2.0, (cols - 1) / 2.0)


@dataclass(frozen=True)
class VolumeCheck:
    """Whether a series can be shown as a volume: `reason` is '' when it can."""

    reason: str = ""
    geometry: VolumeGeometry | None = None
    refs: tuple[ImageRef, ...] = ()
    notes: tuple[str, ...] = ()      # e.g. "gantry tilt 20.0 deg: resampled"
    nbytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.reason


def _name(ref: ImageRef) -> str:
    return ref.path.name if ref.frame is None else f"{ref.path.name} frame {ref.frame + 1}"


def _pixel_format(series: Series, ref: ImageRef, entries: dict) -> tuple | None:
    """What must agree between slices: size, spacing, pixel format, rescale."""
    header = entries.get(ref.path) if ref.frame is None else None
    if header is not None and not tags.has(header, "ModalityLUTSequence"):
        spacing = tags.floats(header, "PixelSpacing", 2) or tags.floats(header, "ImagerPixelSpacing", 2)
        slope = tags.floats(header, "RescaleSlope", 1)
        intercept = tags.floats(header, "RescaleIntercept", 1)
        return (tags.unsigned(header, "Rows"), tags.unsigned(header, "Columns"),
                None if spacing is None else tuple(round(v, 5) for v in spacing),
                tags.unsigned(header, "SamplesPerPixel") or 1,
                tags.ascii_text(header, "PhotometricInterpretation") or "MONOCHROME2",
                tags.unsigned(header, "BitsAllocated"), tags.unsigned(header, "PixelRepresentation") or 0,
                1.0 if slope is None else slope[0], 0.0 if intercept is None else intercept[0], None)
    from medviewer.viewer.display.meta import meta_from_dataset

    ds = series.header(ref)
    if ds is None:
        return None
    meta = meta_from_dataset(ds, ref.frame)
    spacing = None if meta.pixel_spacing is None else tuple(round(v, 5) for v in meta.pixel_spacing)
    return (meta.rows, meta.columns, spacing, meta.samples_per_pixel, meta.photometric,
            meta.bits_allocated, meta.pixel_representation, meta.rescale_slope,
            meta.rescale_intercept, meta.modality_lut)


_FIELDS = ("Rows", "Columns", "Pixel Spacing", "Samples per Pixel", "Photometric Interpretation",
           "Bits Allocated", "Pixel Representation", "Rescale Slope", "Rescale Intercept",
           "Modality LUT")


def _available_bytes() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return 8 * 2**30


def check_series(series: Series, max_bytes: int | None = None) -> VolumeCheck:
    """Can `series` be shown as a volume?  Reads headers only (no pixel data).

    Refused, with the reason: plain images, fewer than 2 slices, missing or changing
    orientation, slices at one position, slices missing (a gap over 3x the usual
    spacing), sizes / pixel spacing / pixel format / rescale that differ between
    slices, colour images, and volumes larger than `max_bytes` (default: half the
    memory available now).  Unequal spacing and gantry tilt are accepted with a note:
    they are resampled exactly.
    """
    refs = tuple(series.items)
    if series.kind != "dicom":
        return VolumeCheck("plain images carry no patient geometry")
    if len(refs) < 2:
        return VolumeCheck("a single image: a volume needs at least 2 parallel slices")
    geos = []
    for ref in refs:
        geo = series.geometry.get(ref)
        if geo is None:
            return VolumeCheck(f"{_name(ref)}: no Image Position/Orientation (Patient)")
        geos.append(geo)
    ori0 = np.asarray(geos[0].orientation, dtype=np.float64)
    for ref, geo in zip(refs, geos):
        if np.abs(np.asarray(geo.orientation) - ori0).max() > ORIENTATION_TOLERANCE:
            return VolumeCheck(f"{_name(ref)}: Image Orientation (Patient) differs from "
                               f"{_name(refs[0])} (not one stack of parallel slices)")
    entries = series.headers.entries()
    first = _pixel_format(series, refs[0], entries)
    if first is None:
        return VolumeCheck(f"{_name(refs[0])}: no DICOM header")
    if first[3] != 1 or first[4] not in ("MONOCHROME1", "MONOCHROME2"):
        return VolumeCheck(f"{first[4]} images: reformats need a monochrome series")
    if first[2] is None or min(first[2]) <= 0:
        return VolumeCheck(f"{_name(refs[0])}: no valid Pixel Spacing")
    if not first[0] or not first[1]:
        return VolumeCheck(f"{_name(refs[0])}: no Rows/Columns")
    for ref in refs[1:]:
        fmt = _pixel_format(series, ref, entries)
        if fmt != first:
            if fmt is None:
                return VolumeCheck(f"{_name(ref)}: no DICOM header")
            field = next(name for name, a, b in zip(_FIELDS, first, fmt) if a != b)
            return VolumeCheck(f"{_name(ref)}: {field} differs from {_name(refs[0])} "
                               "(one volume needs one size, pixel format and rescale)")
    rows, cols = int(first[0]), int(first[1])
    try:
        geometry = VolumeGeometry([g.position for g in geos], ori0[:3], ori0[3:6], first[2],
                                  (len(refs), rows, cols))
    except ValueError as exc:
        return VolumeCheck(f"{_name(refs[0])}: {exc}")
    steps = np.diff(geometry.offsets)
    if steps.size and steps.min() < MIN_SPACING_MM:
        i = int(np.argmin(steps))
        return VolumeCheck(f"{_name(refs[i])} and {_name(refs[i + 1])} lie at one position "
                           "(more than one acquisition in the series?)")
    if steps.size >= 2 and steps.max() > MAX_GAP_RATIO * geometry.slice_spacing:
        i = int(np.argmax(steps))
        return VolumeCheck(f"slices missing between {_name(refs[i])} and {_name(refs[i + 1])}: "
                           f"gap {steps[i]:.2f} mm, usual spacing {geometry.slice_spacing:.2f} mm")
    itemsize = max(1, (int(first[5] or 8) + 7) // 8)
    nbytes = len(refs) * rows * cols * itemsize
    limit = max_bytes if max_bytes is not None else _available_bytes() // 2
    if nbytes > limit:
        return VolumeCheck(f"the volume needs {nbytes / 2**20:.0f} MiB, more than the "
                           f"{limit / 2**20:.0f} MiB it may use")
    notes = []
    if not geometry.uniform:
        lo, hi = geometry.spacing_range()
        notes.append(f"slice spacing varies {lo:.2f}-{hi:.2f} mm: resampled at the actual positions")
    if geometry.sheared:
        notes.append(f"gantry tilt {geometry.tilt_deg:.1f} deg: resampled to patient axes")
    return VolumeCheck("", geometry, refs, tuple(notes), nbytes)


class Volume:
    """Stored values of a series as one read-only (slices, rows, columns) array in
    display order, with its geometry and display metadata (rescale, windows, units)."""

    def __init__(self, data: np.ndarray, geometry: VolumeGeometry, meta: "ImageMeta",
                 refs: Sequence[ImageRef] = (), *, series_uid: str = "", study_uid: str = "",
                 frame_of_reference_uid: str = "", notes: Sequence[str] = ()) -> None:
        if data.ndim != 3 or tuple(data.shape) != geometry.shape:
            raise ValueError(f"data shape {data.shape} does not match geometry {geometry.shape}")
        if data.flags.writeable:
            data = data.view()
            data.flags.writeable = False
        self.data = data
        self.geometry = geometry
        self.meta = meta
        self.refs = list(refs)
        self.series_uid = series_uid
        self.study_uid = study_uid
        self.frame_of_reference_uid = frame_of_reference_uid
        self.notes = tuple(notes)
        self._store: PixelStore | None = None
        self._token = object()

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def close(self) -> None:
        """Stop sharing the frames with the PixelStore (it decodes them again on demand)."""
        if self._store is not None:
            self._store.unpin(self._token)
            self._store = None

    def __enter__(self) -> Volume:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_volume(series: Series, store: "PixelStore", check: VolumeCheck | None = None,
                 progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, workers: int = 2) -> Volume:
    """Decode `series` once into a Volume whose frames the store then serves as views.

    Frames already cached are copied first (and their separate copies dropped);
    the rest are decoded by `workers` threads, a few at a time, without entering the
    LRU.  VolumeError when the series is refused or a frame does not decode or
    match; VolumeCancelled when `should_stop()` turns True (nothing stays pinned).
    """
    from medviewer.viewer.errors import DecodeError

    check = check or check_series(series)
    if not check.ok:
        raise VolumeError(check.reason)
    assert check.geometry is not None
    refs = list(check.refs)
    n, rows, cols = check.geometry.shape
    try:
        sample = store.cached(refs[0])
        sample = sample if sample is not None else store.decode(refs[0])
    except DecodeError as exc:
        raise VolumeError(str(exc)) from None
    if sample.shape != (rows, cols):
        raise VolumeError(f"{_name(refs[0])}: decoded as {sample.shape}, expected ({rows}, {cols})")
    data = np.empty((n, rows, cols), dtype=sample.dtype)
    volume_token = object()
    done = 0
    lock = threading.Lock()

    def place(i: int, arr: np.ndarray) -> None:
        nonlocal done
        if arr.shape != (rows, cols) or arr.dtype != data.dtype:
            raise VolumeError(f"{_name(refs[i])}: decoded as {arr.shape} {arr.dtype}, expected "
                              f"({rows}, {cols}) {data.dtype}")
        data[i] = arr
        store.pin(refs[i], data[i], volume_token)
        with lock:
            done += 1
        if progress is not None:
            progress(done, n)

    def stop() -> bool:
        return should_stop is not None and should_stop()

    try:
        todo = []
        for i, ref in enumerate(refs):  # cached frames first: their copies are freed at once
            arr = store.cached(ref)
            if arr is not None:
                place(i, arr)
            else:
                todo.append(i)
        if todo and stop():
            raise VolumeCancelled("building the volume was cancelled")
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="volume") as pool:
            window = max(2, 2 * workers)
            pending: list[tuple[int, Future]] = []
            it = iter(todo)
            for i in it:
                pending.append((i, pool.submit(store.decode, refs[i])))
                if len(pending) >= window:
                    j, fut = pending.pop(0)
                    place(j, _result(fut))
                    if stop():
                        raise VolumeCancelled("building the volume was cancelled")
            for j, fut in pending:
                place(j, _result(fut))
    except BaseException:
        store.unpin(volume_token)
        raise
    data.flags.writeable = False
    release_free_memory()
    meta = store.meta(refs[n // 2])
    header = series.headers.entries().get(refs[0].path)
    volume = Volume(data, check.geometry, meta, refs, series_uid=series.series_uid,
                    study_uid=tags.ascii_text(header, "StudyInstanceUID") if header is not None else "",
                    frame_of_reference_uid=(tags.ascii_text(header, "FrameOfReferenceUID")
                                            if header is not None else ""),
                    notes=check.notes)
    volume._store, volume._token = store, volume_token
    return volume


def release_free_memory() -> None:
    """Hand memory freed by the frames now held in the volume back to the OS.

    glibc's malloc serves frame-sized buffers from its heap once a freed mmap chunk
    has raised its mmap threshold, and keeps freed heap pages mapped: without this
    the copies a volume replaced would stay resident.  No-op where malloc_trim(3)
    does not exist (macOS, Windows, musl)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return
    trim.argtypes = [ctypes.c_size_t]
    trim(0)


def _result(fut: Future) -> np.ndarray:
    from medviewer.viewer.errors import DecodeError

    try:
        return fut.result()
    except DecodeError as exc:
        raise VolumeError(str(exc)) from None
