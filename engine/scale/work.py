"""The work list: scanned series reduced to what the cluster needs, in chunks.

A `ScanResult` keeps every file's header (about 9 KB per file); an archive's
work list keeps only, per series, its UID, study and the (path, frame) of each
slice in display order (about 250 bytes per file).  `scan_archive` scans ROOT
`PART_FILES` files at a time with the viewer's own scanner, reducing each part
as soon as it is read, and regroups the rare series whose files fall in more
than one part by scanning just their files together, so the result is the
series, slices and order of `scan(ROOT)` with memory bounded by one part.
Slices are packed into chunks of at most `chunk` images (small series share a
chunk), one Ray Data row per chunk, so that a CPU task decodes a bounded amount
whatever the series length.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medviewer.engine.predictdoc import relative
from medviewer.viewer.errors import NothingToShowError, UsageError
from medviewer.viewer.io.group import IMAGE_STUDY_UID
from medviewer.viewer.io.model import Skipped

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.viewer.io.model import ScanResult, Series

CHUNK = 32  # images per CPU task (at 224 px: 19 MB of float32 input)
PART_FILES = 20000  # files per scan part (about 180 MB of headers at a time)


def safe_name(text: str, limit: int = 64) -> str:
    """A file-name-safe form of a UID or label (as `medviewer predict` names CAM folders)."""
    return "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in text)[:limit] or "series"


@dataclass(frozen=True)
class SeriesWork:
    """One series to classify: `index` is its position in the scan's listing."""

    index: int
    series_uid: str
    study_uid: str
    number: int | None
    paths: tuple[str, ...]           # absolute paths, display order
    frames: tuple[int | None, ...]
    rel: tuple[str, ...]             # the same paths relative to the root (JSON "path")
    # what the input check and the audit log need, read from the scan's headers:
    # modality / photometric / body part values (engine.inputcheck) and SOP Instance UIDs
    values: tuple[tuple[str, tuple[str, ...]], ...] = ()
    sop_uids: tuple[str, ...] = field(default=(), compare=False)

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
        out.append(_lean(root, series, study_of.get(id(series), ""), index))
    return out


def _checked_values(series: "Series") -> tuple[tuple[str, tuple[str, ...]], ...]:
    from medviewer.engine.inputcheck import series_values

    return tuple((k, tuple(v)) for k, v in series_values(series).items())


def merged_values(a: SeriesWork, b: SeriesWork) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The input-check values of a series whose files came in two parts."""
    both = {k: list(v) for k, v in a.values}
    for k, v in b.values:
        both.setdefault(k, [])
        both[k] += [x for x in v if x not in both[k]]
    return tuple((k, tuple(v)) for k, v in both.items())


@dataclass
class Archive:
    """A scanned archive reduced to its work list (see `scan_archive`)."""

    root: Path
    series: list[SeriesWork]
    skipped: list[Skipped]
    non_image: int
    studies: int

    def pick(self, wanted: str) -> SeriesWork:
        """The series named by UID or Series Number, as `clikit.pick_series` picks it."""
        for w in self.series:
            if w.series_uid == wanted:
                return w
        try:
            number = int(wanted)
        except ValueError:
            number = None
        for w in self.series:
            if number is not None and w.number == number:
                return w
        known = ", ".join(sorted({str(w.number) for w in self.series if w.number is not None})) or "none numbered"
        raise UsageError(f"no series {wanted!r} under {self.root} (series numbers: {known})")

    def require_images(self, path: str | Path) -> None:
        """NothingToShowError (exit 2) when nothing can be classified, as the local engine says it."""
        from medviewer.viewer.clikit import require_images
        from medviewer.viewer.io.model import NonImage, ScanResult

        if not self.series:
            require_images(ScanResult(self.root, [], [NonImage(self.root, "")] * self.non_image,
                                      list(self.skipped)), path)


def scan_archive(path: str | Path, part_files: int = PART_FILES) -> Archive:
    """Scan a folder, a file or a CSV list of paths into the local engine's series, lean.

    Equal to `work_list(open_root(path), <every series with images>)`, part by part.
    """
    from medviewer.viewer.io.pathlist import is_path_list, read_path_list
    from medviewer.viewer.io.scan import files_to_scan, listed_files, scan_paths

    root = Path(path).expanduser().absolute()
    if not root.exists():
        raise NothingToShowError(f"{root}: no such file or directory")
    files, skipped = listed_files(read_path_list(root), root) if is_path_list(root) else files_to_scan(root)
    studies: dict[str, str] = {}              # study UID -> study date (of its first file)
    found: dict[str, SeriesWork] = {}
    split: set[str] = set()
    non_image = 0

    def take(result: "ScanResult", only: set[str] | None = None) -> None:
        for st in result.studies:
            studies.setdefault(st.study_uid, st.date)
            for se in st.series:
                if not se.items or (only is not None and se.series_uid not in only):
                    continue
                w = _lean(result.root, se, st.study_uid)
                if only is None and se.series_uid in found:  # the same series in two parts
                    split.add(se.series_uid)
                    old = found[se.series_uid]
                    w = SeriesWork(0, w.series_uid, old.study_uid, old.number, old.paths + w.paths,
                                   old.frames + w.frames, old.rel + w.rel, merged_values(old, w),
                                   old.sop_uids + w.sop_uids)
                found[se.series_uid] = w

    for start in range(0, len(files), max(1, part_files)):
        part = scan_paths(files[start:start + part_files], root)
        skipped.extend(part.skipped)
        non_image += len(part.non_image)
        take(part)
        del part
    if split:  # regroup those series from all their files, in scan order
        wanted = {p for uid in split for p in found[uid].paths}
        again = scan_paths([f for f in files if str(f) in wanted], root)
        skipped.extend(again.skipped)
        take(again, split)
    # the scan's order: newest study first, plain-image folders last; series by number, UID
    order = sorted(studies)
    order.sort(key=lambda uid: studies[uid], reverse=True)
    order.sort(key=lambda uid: uid == IMAGE_STUDY_UID)
    rank = {uid: i for i, uid in enumerate(order)}
    series = sorted(found.values(), key=lambda w: (rank[w.study_uid], w.number is None, w.number or 0,
                                                   w.series_uid))
    series = [replace(w, index=i) for i, w in enumerate(series)]
    return Archive(root, series, skipped, non_image, len({w.study_uid for w in series}))


def _lean(root: Path, series: "Series", study_uid: str, index: int = 0) -> SeriesWork:
    from medviewer.engine.audit import sop_uid_per_item

    refs = series.items
    return SeriesWork(index, series.series_uid, study_uid, series.number, tuple(str(r.path) for r in refs),
                      tuple(r.frame for r in refs), tuple(relative(root, r.path) for r in refs),
                      _checked_values(series), tuple(sop_uid_per_item(series, refs)))


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
