"""The work list: scanned series reduced to what the cluster needs, in chunks.

A `ScanResult` keeps every file's header; an archive's work list keeps only,
per series, its UID, study and the (path, frame) of each slice in display
order.  Slices are packed into chunks of at most `chunk` images (small series
share a chunk), one Ray Data row per chunk, so that a CPU task decodes a
bounded amount whatever the series length.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medviewer.engine.predictdoc import relative

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.viewer.io.model import ScanResult, Series

CHUNK = 32  # images per CPU task (at 224 px: 19 MB of float32 input)


def safe_name(text: str, limit: int = 64) -> str:
    """A file-name-safe form of a UID or label (as `medviewer predict` names CAM folders)."""
    return "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in text)[:limit] or "series"


@dataclass(frozen=True)
class SeriesWork:
    """One series to classify: `index` is its position in the scan's listing."""

    index: int
    series_uid: str
    study_uid: str
    paths: tuple[str, ...]           # absolute paths, display order
    frames: tuple[int | None, ...]
    rel: tuple[str, ...]             # the same paths relative to the root (JSON "path")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def name(self) -> str:
        """Stable file name for the series' result: readable UID + hash (no collisions)."""
        digest = hashlib.sha1(self.series_uid.encode("utf-8")).hexdigest()[:10]
        return f"{safe_name(self.series_uid, 48)}-{digest}"

    @property
    def cam_prefix(self) -> str:
        """The CAM sub-folder the local engine uses for this series ('NN_<uid>')."""
        return f"{self.index:02d}_{safe_name(self.series_uid)}"

    def items(self) -> list[tuple[str, int | None]]:
        return list(zip(self.rel, self.frames))

    def fingerprint(self, settings: dict[str, Any]) -> str:
        """Hash of the slices (paths, frames, order) and of what was asked for them."""
        h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode("utf-8"))
        for rel, frame in zip(self.rel, self.frames):
            h.update(f"{rel}\0{frame}\n".encode("utf-8", "surrogateescape"))
        return h.hexdigest()[:16]


def work_list(result: "ScanResult", chosen: Sequence["Series"]) -> list[SeriesWork]:
    """Lean descriptions of `chosen` (series of `result`) in listing order."""
    root = Path(result.root)
    study_of = {id(se): st.study_uid for st in result.studies for se in st.series}
    out = []
    for index, series in enumerate(chosen):
        refs = series.items
        out.append(SeriesWork(index, series.series_uid, study_of.get(id(series), ""),
                              tuple(str(r.path) for r in refs), tuple(r.frame for r in refs),
                              tuple(relative(root, r.path) for r in refs)))
    return out


def chunk_rows(series: Sequence[SeriesWork], cams: bool, chunk: int = CHUNK) -> Iterator[dict[str, Any]]:
    """Ray Data input rows: {"items": JSON [[key, index, path, frame, cam name], ...]}.

    `key` is the series' position in `series`; `cam name` is the relative .npy
    path the local engine would write (empty without Grad-CAM).
    """
    batch: list[list[Any]] = []
    for key, work in enumerate(series):
        for i, (path, frame) in enumerate(zip(work.paths, work.frames)):
            cam = f"{work.cam_prefix}/{i:04d}.npy" if cams else ""
            batch.append([key, i, path, -1 if frame is None else frame, cam])
            if len(batch) >= chunk:
                yield {"items": json.dumps(batch)}
                batch = []
    if batch:
        yield {"items": json.dumps(batch)}
