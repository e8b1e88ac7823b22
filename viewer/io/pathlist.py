"""An archive given as a CSV list of paths (files or study folders), Qt-free.

A research archive is often described by a table rather than by one folder:
one row per study folder or per file.  `read_path_list` reads the paths from
such a CSV; `open_root` opens either kind of root (a folder or file as
`viewer.io.scan.scan` does, or a `.csv` through `scan_paths`), so that the
listed files are grouped into series exactly as a folder scan groups them.

CSV format: UTF-8, a header row with a column named `path` (any case; other
columns are ignored), or a single column without a header.  Relative paths are
taken from the CSV's folder; empty rows and rows starting with `#` are skipped.
"""

from __future__ import annotations

import csv
from pathlib import Path

from medviewer.viewer.errors import NothingToShowError, UsageError
from medviewer.viewer.io.model import ScanResult

__all__ = ["is_path_list", "open_root", "read_path_list"]

_PATH_COLUMNS = ("path", "file", "folder", "filename")


def is_path_list(path: str | Path) -> bool:
    """True for a `.csv` file (the only list format)."""
    p = Path(path)
    return p.suffix.lower() == ".csv" and p.is_file()


def read_path_list(csv_path: str | Path) -> list[Path]:
    """The paths listed in a CSV, relative ones resolved against the CSV's folder."""
    csv_path = Path(csv_path).expanduser().absolute()
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"{csv_path.name}: not a UTF-8 CSV file") from None
    except OSError as exc:
        raise UsageError(f"{csv_path}: cannot read ({exc.strerror})") from None
    rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
    rows = [r for r in rows if not r[0].lstrip().startswith("#")]
    if not rows:
        raise NothingToShowError(f"{csv_path.name}: the list of paths is empty")
    header = [c.strip().lower() for c in rows[0]]
    column = next((header.index(name) for name in _PATH_COLUMNS if name in header), None)
    if column is not None:
        rows = rows[1:]
    elif len(header) == 1:
        column = 0
    else:
        raise UsageError(f"{csv_path.name}: no 'path' column (header: {', '.join(rows[0])[:120]})")
    base = csv_path.parent
    out: list[Path] = []
    for r in rows:
        value = r[column].strip() if column < len(r) else ""
        if value:
            p = Path(value).expanduser()
            out.append(p if p.is_absolute() else base / p)
    if not out:
        raise NothingToShowError(f"{csv_path.name}: the list of paths is empty")
    return out


def open_root(path: str | Path) -> ScanResult:
    """Scan a study folder, one file, or every path listed in a `.csv` (as one collection)."""
    from medviewer.viewer.io.scan import open_path, scan_paths

    if is_path_list(path):
        return scan_paths(read_path_list(path), Path(path))
    return open_path(path)
