"""Open only regular files, read only as much as asked, stay inside a folder (Qt-free).

A study folder (or a label file, or a DICOMDIR record) can name things that are
not files: a named pipe blocks `open()` until a writer appears, a socket cannot be
read, a device such as /dev/zero never ends and opening some devices has side
effects (tape rewind, watchdogs).  Everything medviewer reads from user-supplied
paths goes through this module:

* `check_regular(path)` stats the path (following links) and refuses anything but
  a regular file *without opening it*;
* `open_regular(path, max_bytes)` then opens with O_NONBLOCK (a FIFO swapped in
  after the stat cannot block the open), checks the opened descriptor again with
  fstat, clears O_NONBLOCK and refuses files larger than `max_bytes`;
* `read_regular(path, max_bytes)` / `read_head(path, n)` read with a cap;
* `inside(path, root)` tells whether a path, links resolved, stays under `root`;
* `atomic_output(path)` gives a temporary name beside `path` that replaces it only
  when the writing succeeded, and is removed whatever went wrong (full disk).

The errors are `OSError` subclasses (existing ``except OSError`` handlers keep
working) whose `str()` is a short reason fit for a "skipped" line.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["MAX_DOCUMENT_BYTES", "FileTooLargeError", "NotRegularFileError", "atomic_output", "check_regular",
           "file_kind", "inside", "open_regular", "read_head", "read_regular"]

# Structured Reports, Key Object Selections and other documents without pixel data:
# the largest real ones hold a few thousand content items (a few MB)
MAX_DOCUMENT_BYTES = 64 * 2 ** 20

_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


class NotRegularFileError(OSError):
    """The path is a FIFO, socket, device or folder: not opened."""

    def __init__(self, path: str | os.PathLike, kind: str) -> None:
        super().__init__(errno.EINVAL, f"{kind}, not a regular file (not opened)", os.fspath(path))
        self.kind = kind

    def __str__(self) -> str:
        return str(self.strerror)


class FileTooLargeError(OSError):
    """The file is larger than the caller's cap."""

    def __init__(self, path: str | os.PathLike, size: int, limit: int) -> None:
        super().__init__(errno.EFBIG, f"file of {_human(size)} is larger than the "
                                      f"{_human(limit)} accepted here", os.fspath(path))
        self.size, self.limit = size, limit

    def __str__(self) -> str:
        return str(self.strerror)


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def file_kind(mode: int) -> str:
    """'regular file', 'folder', 'named pipe (FIFO)', 'socket', 'character device'..."""
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISFIFO(mode):
        return "named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode):
        return "character device"
    if stat.S_ISBLK(mode):
        return "block device"
    return "special file"


def check_regular(path: str | os.PathLike) -> os.stat_result:
    """stat() of a regular file (links followed); NotRegularFileError otherwise.

    OSError from stat itself (missing, permission, ELOOP, name too long) passes through.
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(path, file_kind(st.st_mode))
    return st


def open_regular(path: str | os.PathLike, max_bytes: int | None = None) -> BinaryIO:
    """Open a regular file for binary reading, never blocking on a FIFO or touching a device.

    Raises NotRegularFileError, FileTooLargeError (size over `max_bytes`) or the
    OSError of stat/open.
    """
    check_regular(path)  # refuse before open(): opening some devices has side effects
    fd = os.open(path, _FLAGS | _NONBLOCK)
    try:
        st = os.fstat(fd)  # the object really opened (a swap after the stat is caught here)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(path, file_kind(st.st_mode))
        if max_bytes is not None and st.st_size > max_bytes:
            raise FileTooLargeError(path, st.st_size, max_bytes)
        if _NONBLOCK:
            import fcntl

            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The whole content of a regular file of at most `max_bytes` (a file that grows
    past the cap while being read is refused too)."""
    with open_regular(path, max_bytes) as fp:
        data = fp.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooLargeError(path, len(data), max_bytes)
    return data


def read_head(path: str | os.PathLike, n: int) -> tuple[bytes, int]:
    """(first `n` bytes, file size) of a regular file, in one open and one read."""
    with open_regular(path) as fp:
        return fp.read(n), os.fstat(fp.fileno()).st_size


def inside(path: str | os.PathLike, root: str | os.PathLike) -> bool:
    """Whether `path`, with every link and '..' resolved, lies in `root` (also resolved).

    A path that cannot be resolved (a link loop) is not inside.
    """
    try:
        real = Path(os.path.realpath(path, strict=False))
        base = Path(os.path.realpath(root, strict=False))
    except (OSError, ValueError):
        return False
    return real == base or base in real.parents


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Write to the yielded temporary path; on success it replaces `path` atomically.

    The temporary file lies in `path`'s folder (same file system, so `os.replace`
    is atomic) under a hidden name with the process id.  If the block raises
    (ENOSPC, a killed write, any error) the temporary file is removed and the
    exception propagates; an existing `path` is left untouched.  A `path` that is
    a folder or a special file is refused before anything is written.
    """
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(path, file_kind(st.st_mode))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # the data is on disk before the name points at it
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
