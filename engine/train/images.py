"""Decode training images and run them through ``engine.preprocess`` once.

DICOM files are read with pydicom (first frame of multi-frame objects, PS3.3
C.7.6.6) and described by ``viewer.display.meta_from_dataset`` so that the
model sees the same modality LUT / VOI window / MONOCHROME1 handling as the
viewer (train/serve parity).  PNG/JPEG/TIFF/BMP are read with OpenCV (grey or
RGB, 8 or 16 bit).  Unreadable files are returned in ``skipped`` with a reason,
never raised.  The preprocessed tensors are kept in memory as float16, so an
epoch costs no decoding and data loading is not the bottleneck.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from medviewer.engine.preprocess import PreprocessSpec, preprocess
from medviewer.engine.train.data import IMAGE_EXTS, Sample


#: the largest file read as one training image (a whole-slide or tomosynthesis object is larger)
MAX_FILE_BYTES = 1 << 30


def read_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a REGULAR file of at most ``limit`` bytes; ValueError otherwise.

    Opened non-blocking and checked with fstat on the open descriptor, so a FIFO
    (which would block ``open``/``read`` forever), /dev/zero or another device
    (which reads without end) or a folder is refused without waiting, and a file
    swapped after a check cannot slip in.  Reads at most ``limit`` + 1 bytes.
    """
    import os
    import stat

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device" if stat.S_ISCHR(st.st_mode)
                    or stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                    else "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
            raise ValueError(f"not a regular file ({kind}); only image files are read")
        if st.st_size > limit:
            raise ValueError(f"file of {st.st_size / 2**20:.0f} MiB is over the {limit // 2**20} MiB limit "
                             "for one training image")
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 24, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise ValueError(f"file grew over the {limit // 2**20} MiB limit while being read")
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_stored(path: Path, data: bytes | None = None) -> tuple[np.ndarray, Any]:
    """(stored pixels, ImageMeta or None for plain images); raises ValueError/OSError."""
    if data is None:
        data = read_file(path)
    if path.suffix.lower() in IMAGE_EXTS and data[128:132] != b"DICM":
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is None:
            raise ValueError("not a readable PNG/JPEG/TIFF/BMP image")
        if arr.ndim == 3:
            arr = arr[..., :3]
            arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB) if arr.shape[2] == 3 else arr[..., 0]
        return np.ascontiguousarray(arr), None
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import pixel_array

    from medviewer.viewer.display import meta_from_dataset

    import io

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)   # some files lack the PS3.10 preamble
    except InvalidDicomError:
        raise ValueError("not a DICOM file (no DICM preamble) nor a known image format") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise ValueError("no pixel data (not a DICOM image)")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    frame = 0 if frames > 1 else None
    arr = pixel_array(ds, index=frame) if frame is not None else ds.pixel_array
    return arr, meta_from_dataset(ds, frame)


@dataclass
class ImageSet:
    """Preprocessed images of one dataset, in the order of ``samples``."""

    samples: list[Sample]
    x: torch.Tensor                    # (N, 3, S, S) float16
    y: torch.Tensor                    # (N,) int64 class index
    sizes: list[tuple[int, int]]       # source (rows, cols)
    hashes: list[str]                  # sha256 of the file bytes
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    # (modality, photometric interpretation, body part) per image, "" when unknown
    acquisition: list[tuple[str, str, str]] = field(default_factory=list)

    def split_indices(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.samples) if s.split == split]


def _load_one(sample: Sample, spec: PreprocessSpec):
    try:
        data = read_file(sample.path)
        stored, meta = read_stored(sample.path, data)
        if stored.size == 0 or min(stored.shape[:2]) < 1:
            raise ValueError("empty image")
        tensor, _ = preprocess(stored, meta, spec)
        digest = hashlib.sha256(data).hexdigest()
        return (tensor.to(torch.float16), (int(stored.shape[0]), int(stored.shape[1])), digest,
                acquisition(sample.path, stored, meta))
    except Exception as exc:   # any decoder failure: listed and skipped, never fatal
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"{type(exc).__name__}: {msg}"[:200]


def acquisition(path: Path, stored: np.ndarray, meta: Any) -> tuple[str, str, str]:
    """(Modality, Photometric Interpretation, Body Part Examined) of one training image
    (PS3.3 C.7.3.1, C.7.6.3); plain images: ("", "MONOCHROME2" or "RGB", "")."""
    if meta is None:
        return "", "RGB" if stored.ndim == 3 else "MONOCHROME2", ""
    body = ""
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=["BodyPartExamined"])
        body = str(ds.get("BodyPartExamined", "") or "").strip()
    except Exception:   # the pixels were readable; a missing body part is just unknown
        pass
    return meta.modality or "", meta.photometric or "", body


def load_images(samples: Sequence[Sample], classes: Sequence[str], spec: PreprocessSpec,
                progress: Callable[[int, int], None] | None = None, workers: int = 2) -> ImageSet:
    """Decode + preprocess every sample (threads); unreadable ones go to ``skipped``."""
    index = {c: i for i, c in enumerate(classes)}
    kept: list[Sample] = []
    xs: list[torch.Tensor] = []
    sizes: list[tuple[int, int]] = []
    hashes: list[str] = []
    acq: list[tuple[str, str, str]] = []
    skipped: list[tuple[Path, str]] = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for k, (s, res) in enumerate(zip(samples, pool.map(lambda s: _load_one(s, spec), samples))):
            if isinstance(res, str):
                skipped.append((s.path, res))
            else:
                kept.append(s)
                xs.append(res[0])
                sizes.append(res[1])
                hashes.append(res[2])
                acq.append(res[3])
            if progress:
                progress(k + 1, len(samples))
    size = spec.input_size
    x = torch.stack(xs) if xs else torch.zeros((0, 3, size, size), dtype=torch.float16)
    y = torch.tensor([index[s.label] for s in kept], dtype=torch.long)
    return ImageSet(kept, x, y, sizes, hashes, skipped, acq)


def duplicates_across_splits(images: ImageSet) -> list[dict[str, Any]]:
    """Groups of identical files (same sha256) found in more than one split: leakage."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, h in enumerate(images.hashes):
        groups[h].append(i)
    out = []
    for h, idx in groups.items():
        splits = sorted({images.samples[i].split for i in idx})
        if len(splits) > 1:
            out.append({"sha256": h, "splits": splits,
                        "paths": [str(images.samples[i].path) for i in idx]})
    return out


def summary(images: ImageSet, classes: Sequence[str]) -> dict[str, Any]:
    """Dataset summary: counts per split/class, image sizes, leakage, skipped files."""
    counts = {sp: {c: 0 for c in classes} for sp in ("train", "val", "test")}
    for s in images.samples:
        counts[s.split][s.label] += 1
    rows = [r for r, _ in images.sizes] or [0]
    cols = [c for _, c in images.sizes] or [0]
    return {
        "counts": counts,
        "image_sizes": {"min": [min(rows), min(cols)], "max": [max(rows), max(cols)],
                        "median": [float(np.median(rows)), float(np.median(cols))],
                        "distinct": len(set(images.sizes))},
        "duplicates_across_splits": duplicates_across_splits(images),
        "skipped": [{"path": str(p), "reason": r} for p, r in images.skipped],
    }
