"""Recursive, headers-only scan of a study folder (Qt-free).

Every file under the root is looked at by content (viewer.io.header): DICOM
with or without extension or preamble, or PNG/JPEG/TIFF/BMP images (one "OT"
series per folder).  A DICOMDIR (PS3.10 7.2, PS3.3 F.5) contributes the files
its directory records reference; it is not listed itself.  Only regular files
inside the opened folder are read: FIFOs, sockets and devices are listed as
skipped without being opened (viewer.io.safefile), and neither a DICOMDIR
record nor a link may lead outside the folder.  Plain images and DICOM pixel
data whose declared size is over the decode limits or more than their data can
hold are skipped with the reason (viewer.io.guard).  The first bytes of
upcoming files are read ahead by a few threads (file reads release the GIL,
so waiting on the disk overlaps with parsing); parsing, grouping and sorting
stay on the calling thread, which also reports progress, polls cancellation
and hands out throttled snapshots.
"""

from __future__ import annotations

import os
import stat
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pydicom

from medviewer.viewer.errors import NothingToShowError
from medviewer.viewer.io import guard
from medviewer.viewer.io.group import Collector
from medviewer.viewer.io.header import HEAD_CHUNK, Chunk, read_chunk, read_header, sop_class_name
from medviewer.viewer.io.imagehead import Read
from medviewer.viewer.io.model import NonImage, ScanResult, Skipped, printable
from medviewer.viewer.io.pixels import IMAGE_SUFFIXES, is_plain_image
from medviewer.viewer.io.safefile import NotRegularFileError, check_regular, file_kind, inside, open_regular
from medviewer.viewer.io.sort import natural_key

__all__ = ["HEAD_CHUNK", "SNAPSHOT_INTERVAL", "files_to_scan", "listed_files", "open_path", "read_header",
           "scan", "scan_paths", "sop_class_name"]

_IGNORED = {"thumbs.db", "desktop.ini"}
SNAPSHOT_INTERVAL = 0.25  # seconds between partial snapshots
# Read-ahead: measured on 400 512x512 slices, neutral with a warm page cache and
# about 2x faster wall time with a cold one (bench/bench_scan.py --cold).
READERS = 4  # read-ahead threads (0: read on the calling thread)
READ_BATCH = 1  # files per read-ahead task
READ_AHEAD = 32  # tasks in flight: at most READ_AHEAD * READ_BATCH * HEAD_CHUNK bytes
MAX_DICOMDIR_BYTES = 256 * 2**20  # a DICOMDIR of a million records is ~200 MB

Progress = Callable[[int, int], None]
StopFlag = Callable[[], bool]
Snapshot = Callable[[ScanResult], None]


def _find_ci(folder: Path, parts: list[str]) -> Path | None:
    """Resolve a Referenced File ID (PS3.3 F.5, upper-case on media) case-insensitively."""
    current = folder
    for part in parts:
        direct = current / part
        try:
            if direct.exists():
                current = direct
                continue
            match = next((c for c in current.iterdir() if c.name.casefold() == part.casefold()), None)
        except OSError:  # name too long, permission, not a folder
            return None
        if match is None:
            return None
        current = match
    return current


def _safe_parts(parts: list[str]) -> bool:
    """File ID components are names in the file-set (PS3.10 8.2: [A-Z0-9_], up to 8):
    never empty, '.', '..', absolute, or holding a separator."""
    for part in parts:
        if part in ("", ".", "..") or "/" in part or "\\" in part or "\x00" in part:
            return False
        if os.path.isabs(part) or os.path.splitdrive(part)[0]:
            return False
    return True


def dicomdir_files(path: Path, root: Path | None = None) -> tuple[list[Path], list[Skipped]]:
    """Files referenced by a DICOMDIR's directory records (PS3.3 F.3.2.2).

    References that would leave `root` (default: the DICOMDIR's folder), through
    '..', an absolute path or a link, are refused; so are FIFOs, devices and the like.
    """
    root = root or path.parent
    try:
        with open_regular(path, MAX_DICOMDIR_BYTES) as fp:
            ds = pydicom.dcmread(fp, force=True)
        records = ds.DirectoryRecordSequence
    except OSError as exc:
        return [], [Skipped(path, f"unreadable DICOMDIR ({exc.strerror or type(exc).__name__})")]
    except Exception as exc:
        return [], [Skipped(path, f"unreadable DICOMDIR ({type(exc).__name__})")]
    files: list[Path] = []
    missing: list[Skipped] = []
    for rec in records:
        try:
            ref = rec.get("ReferencedFileID")
        except Exception:
            continue
        if not ref:
            continue
        parts = [str(ref)] if isinstance(ref, str) else [str(p) for p in ref]
        shown = printable("\\".join(parts), 120)
        if not _safe_parts(parts):
            missing.append(Skipped(path, f"record references '{shown}', outside the opened folder: not read"))
            continue
        found = _find_ci(path.parent, parts)
        if found is None:
            missing.append(Skipped(path.parent.joinpath(*parts), "listed in DICOMDIR but missing"))
        elif not inside(found, root):
            missing.append(Skipped(path, f"record references '{shown}', a link outside the opened "
                                         "folder: not read"))
        else:
            try:
                check_regular(found)
            except NotRegularFileError as exc:
                missing.append(Skipped(found, f"listed in DICOMDIR: {exc}"))
                continue
            except OSError as exc:
                missing.append(Skipped(found, f"listed in DICOMDIR but unreadable ({exc.strerror})"))
                continue
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
            if name.startswith(".") or name.casefold() in _IGNORED:
                continue
            path = base / name
            if os.path.islink(path) and not inside(path, root):
                unreadable.append(Skipped(path, "link to a file outside the opened folder: not read"))
                continue
            yield path


def _candidates(root: Path) -> tuple[list[Path], list[Skipped]]:
    """Every file to look at, DICOMDIR references first; DICOMDIRs themselves dropped."""
    missing: list[Skipped] = []
    walked = list(_walk(root, missing))
    ordered: dict[Path, None] = {}
    for path in walked:
        if path.name.upper() == "DICOMDIR":
            files, miss = dicomdir_files(path, root if root.is_dir() else root.parent)
            ordered.update(dict.fromkeys(files))
            missing.extend(miss)
    reported = {s.path for s in missing}  # refused records: one line, not a second from the walk
    for path in walked:
        if path.name.upper() != "DICOMDIR" and path not in reported:
            ordered.setdefault(path, None)
    return list(ordered), missing


def _read_batch(paths: Sequence[Path]) -> list[Chunk | OSError]:
    out: list[Chunk | OSError] = []
    for path in paths:
        try:
            out.append(read_chunk(path))
        except OSError as exc:  # handed over as a value, reported as skipped
            out.append(exc)
    return out


def _read_ahead(files: list[Path], pool: ThreadPoolExecutor) -> Iterator[Chunk | OSError]:
    """Chunks of `files` in order, read by `pool` up to READ_AHEAD batches ahead."""
    batches = [files[i:i + READ_BATCH] for i in range(0, len(files), READ_BATCH)]
    pending: deque[Future] = deque(pool.submit(_read_batch, b) for b in batches[:READ_AHEAD])
    following = READ_AHEAD
    while pending:
        chunks = pending.popleft().result()
        if following < len(batches):
            pending.append(pool.submit(_read_batch, batches[following]))
            following += 1
        yield from chunks


class _ChunkReader:
    """`imagehead.Read` over a file's first bytes, reading further from the file if a
    header goes on past them (a JPEG with large APP segments, a TIFF's IFD at the end)."""

    def __init__(self, path: Path, buf: bytes, size: int) -> None:
        self.path, self.buf, self.size = path, buf, size
        self._read: Read | None = None
        self._fp = None

    def __call__(self, offset: int, n: int) -> bytes:
        if offset + n <= len(self.buf) or len(self.buf) >= self.size:
            return self.buf[offset:offset + n]
        if self._read is None:
            from medviewer.viewer.io.imagehead import from_file

            self._fp = open_regular(self.path)
            self._read = from_file(self._fp)
        return self._read(offset, n)

    def close(self) -> None:
        if self._fp is not None:
            self._fp.close()


def _add_plain(col: Collector, path: Path, buf: bytes, size: int) -> None:
    """A PNG/JPEG/TIFF/BMP file: its header read and checked, nothing decoded."""
    reader = _ChunkReader(path, buf, size)
    try:
        declared = guard.check_plain(reader, size)
    except guard.Refused as exc:
        col.skipped.append(Skipped(path, str(exc)))
        col.changed = True
        return
    except OSError as exc:
        col.skipped.append(Skipped(path, f"cannot read file ({exc.strerror or type(exc).__name__})"))
        col.changed = True
        return
    finally:
        reader.close()
    col.add_image(path, declared.rows, declared.columns)


def _add(col: Collector, path: Path, chunk: Chunk | OSError) -> None:
    """Classify one file and add it to the collector."""
    if isinstance(chunk, tuple) and is_plain_image(path, chunk[0][:8]):
        _add_plain(col, path, *chunk)
        return
    kind, value = read_header(path, chunk)  # DICOM by content, whatever the name
    if kind == "dicom":
        ds, frames = value  # type: ignore[misc]
        col.add_dicom(path, ds, frames)
    elif kind == "non_image":
        col.non_image.append(NonImage(path, str(value)))
    elif path.suffix.lower() in IMAGE_SUFFIXES and not isinstance(chunk, OSError):
        col.skipped.append(Skipped(path, f"not a valid {path.suffix.lower()[1:].upper()} image"))
    else:
        col.skipped.append(Skipped(path, str(value)))


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
    try:
        st = os.stat(root)
    except FileNotFoundError:
        raise NothingToShowError(f"{printable(root)}: no such file or directory") from None
    except OSError as exc:  # name too long, permission, link loop
        raise NothingToShowError(f"{printable(root)}: {exc.strerror or 'cannot be read'}") from None
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise NothingToShowError(f"{printable(root)}: {NotRegularFileError(root, file_kind(st.st_mode))}")
    files, missing = _candidates(root)
    return _collect(root, files, missing, progress, should_stop, on_snapshot)


def scan_paths(paths: Sequence[str | Path], root: str | Path, progress: Progress | None = None,
               should_stop: StopFlag | None = None) -> ScanResult:
    """Scan a list of files and folders as one collection (e.g. the rows of a CSV).

    Folders are walked as `scan` walks them; every file is then grouped with all
    the others, so a series listed file by file is one series.  Relative paths
    are taken from `root`'s folder (`root` may be the list file itself), and
    paths that do not exist are reported as skipped.
    """
    root = Path(root).expanduser().absolute()
    files, missing = listed_files(paths, root)
    return _collect(root, files, missing, progress, should_stop, None)


def files_to_scan(root: str | Path) -> tuple[list[Path], list[Skipped]]:
    """The files `scan(root)` reads, in its order (DICOMDIR references first), and the
    DICOMDIR entries that are missing; paths only, nothing is read but directories."""
    return _candidates(Path(root).expanduser().absolute())


def listed_files(paths: Sequence[str | Path], root: str | Path) -> tuple[list[Path], list[Skipped]]:
    """The files `scan_paths(paths, root)` reads, in its order, and what is missing."""
    root = Path(root).expanduser().absolute()
    base = root if root.is_dir() else root.parent
    ordered: dict[Path, None] = {}
    missing: list[Skipped] = []
    for entry in paths:
        path = Path(entry).expanduser()
        path = (path if path.is_absolute() else base / path).absolute()
        if path.is_dir():
            files, miss = _candidates(path)
            ordered.update(dict.fromkeys(files))
            missing.extend(miss)
        elif path.is_file():
            if path.name.upper() == "DICOMDIR":
                files, miss = dicomdir_files(path)
                ordered.update(dict.fromkeys(files))
                missing.extend(miss)
            else:
                ordered.setdefault(path, None)
        else:
            missing.append(Skipped(path, "listed but not found"))
    return list(ordered), missing


def _collect(root: Path, files: list[Path], missing: list[Skipped], progress: Progress | None,
             should_stop: StopFlag | None, on_snapshot: Snapshot | None) -> ScanResult:
    """Read, classify and group `files` (the loop shared by `scan` and `scan_paths`)."""
    total = len(files)
    col = Collector(root)
    col.skipped.extend(missing)
    if progress:
        progress(0, total)
    last_snap: float | None = None
    started = time.monotonic()
    pool = ThreadPoolExecutor(max_workers=max(READERS, 1), thread_name_prefix="scan-read")
    chunks = _read_ahead(files, pool) if READERS > 0 else (_read_batch([f])[0] for f in files)
    try:
        for done, (path, chunk) in enumerate(zip(files, chunks), 1):
            if should_stop is not None and should_stop():
                return col.result(complete=False)
            _add(col, path, chunk)
            if progress:
                progress(done, total)
            if on_snapshot is not None and col.changed and done < total:
                now = time.monotonic()
                if (now - (last_snap or started) >= SNAPSHOT_INTERVAL
                        or (last_snap is None and col.images)):
                    last_snap = now
                    col.changed = False
                    on_snapshot(col.result(complete=False))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return col.result(complete=True)


def open_path(path: str | Path, **kwargs) -> ScanResult:
    """Scan a single file or a folder (same as `scan`)."""
    return scan(path, **kwargs)
