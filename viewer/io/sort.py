"""Display order of the images of a series.

Slices are ordered by Image Position (Patient) (0020,0032) projected on the
normal of Image Orientation (Patient) (0020,0037), PS3.3 C.7.6.2.1.1 -- the
model is highdicom's `spatial.sort_datasets` -- and the stack is then turned
to the one display convention of every stack (viewer.display.orientation):
axial from head to feet (superior first), coronal from anterior to
posterior, sagittal from patient right to left, chosen by the patient axis
the slice normal is closest to.  A CT and an MR of one study therefore
scroll the same way whatever their row/column directions or file and
instance order.  Enhanced multi-frame objects
carry the same attributes per frame in the Plane Position / Plane Orientation
functional groups (PS3.3 C.7.6.16.2.3-4).  When geometry is missing or the
slices are not parallel, the order falls back to Instance Number (0020,0013),
then to natural file-name order ("IM2" before "IM10"), then frame number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset

from medviewer.viewer.display.orientation import stack_sign
from medviewer.viewer.io import tags
from medviewer.viewer.io.model import ImageRef

Vec = tuple[float, float, float]
_DIGITS = re.compile(r"(\d+)")
_PARALLEL = 0.999  # |cos| between slice normals still counted as parallel


@dataclass(frozen=True)
class SliceInfo:
    """What sorting needs to know about one image."""

    ref: ImageRef
    position: Vec | None = None
    orientation: tuple[float, ...] | None = None  # 6 direction cosines
    instance: int | None = None


def natural_key(path: str | Path) -> tuple:
    """Case-insensitive key in which digit runs compare as numbers."""
    parts = _DIGITS.split(str(path).casefold())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p)


def _floats(value: object, n: int) -> tuple[float, ...] | None:
    try:
        vals = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None
    if len(vals) != n or not all(math.isfinite(v) for v in vals):
        return None
    return vals


def normal(orientation: Sequence[float]) -> Vec | None:
    """Unit slice normal = row cosine x column cosine (PS3.3 C.7.6.2.1.1)."""
    r, c = orientation[:3], orientation[3:6]
    n = (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])
    length = math.sqrt(sum(v * v for v in n))
    if length < 1e-6:
        return None
    return (n[0] / length, n[1] / length, n[2] / length)


def _plane(item: Dataset | None, keyword: str, attr: str, n: int) -> tuple[float, ...] | None:
    seq = item.get(keyword) if item is not None else None
    if not seq:
        return None
    return _floats(seq[0].get(attr), n)


def frame_geometry(ds: Dataset, frames: int) -> list[tuple[Vec | None, tuple[float, ...] | None]]:
    """(position, orientation) per frame of a multi-frame header.

    Enhanced objects: per-frame functional groups first, then the shared group
    (PS3.3 C.7.6.16).  Classic multi-frame objects have no per-frame position.
    """
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared_pos = _plane(shared, "PlanePositionSequence", "ImagePositionPatient", 3)
    shared_ori = _plane(shared, "PlaneOrientationSequence", "ImageOrientationPatient", 6)
    if shared_ori is None:
        shared_ori = _floats(ds.get("ImageOrientationPatient"), 6)
    out: list[tuple[Vec | None, tuple[float, ...] | None]] = []
    for i in range(frames):
        item = per_frame[i] if i < len(per_frame) else None
        pos = _plane(item, "PlanePositionSequence", "ImagePositionPatient", 3) or shared_pos
        ori = _plane(item, "PlaneOrientationSequence", "ImageOrientationPatient", 6) or shared_ori
        out.append((pos, ori))  # type: ignore[arg-type]
    return out


def slice_infos(ds: "tags.Header", path: Path, frames: int | None) -> list[SliceInfo]:
    """One SliceInfo per image held by the file `path` with header `ds`."""
    inst = tags.integer(ds, "InstanceNumber")
    if frames is None:
        pos = tags.floats(ds, "ImagePositionPatient", 3)
        ori = tags.floats(ds, "ImageOrientationPatient", 6)
        return [SliceInfo(ImageRef(path, None), pos, ori, inst)]  # type: ignore[arg-type]
    geo = frame_geometry(ds, frames)
    return [SliceInfo(ImageRef(path, i), p, o, inst) for i, (p, o) in enumerate(geo)]


def _geometric(infos: Sequence[SliceInfo]) -> Vec | None:
    """The common normal when every image has a position and parallel orientation."""
    first = None
    for info in infos:
        if info.position is None or info.orientation is None:
            return None
        n = normal(info.orientation)
        if n is None:
            return None
        if first is None:
            first = n
        elif abs(sum(a * b for a, b in zip(first, n))) < _PARALLEL:
            return None
    return first


def sort_slices(infos: Sequence[SliceInfo]) -> list[ImageRef]:
    """Display order: position along the slice normal in the stack convention
    (head to feet, anterior to posterior, right to left), else the fallbacks.
    Slices at one position keep Instance Number, then name, then frame order."""
    names = {info.ref.path: natural_key(info.ref.path) for info in infos}

    def fallback(info: SliceInfo) -> tuple:
        inst = info.instance
        frame = -1 if info.ref.frame is None else info.ref.frame
        return (inst is None, inst or 0, names[info.ref.path], frame)

    n = _geometric(infos) if len(infos) > 1 else None
    if n is None:
        return [i.ref for i in sorted(infos, key=fallback)]

    sign = stack_sign(n)

    def along(info: SliceInfo) -> tuple:
        p = info.position
        assert p is not None
        return (round(sign * (p[0] * n[0] + p[1] * n[1] + p[2] * n[2]), 4), *fallback(info))

    return [i.ref for i in sorted(infos, key=along)]
