"""Building blocks shared by the headless commands (viewer and engine alike), Qt-free.

Exit codes for every command: 0 done, 1 done but some items were skipped, 2 nothing
usable or bad arguments.  Errors are raised as `MedviewerError`; the dispatcher
(`medviewer.viewer.errors.run_command`) prints them as one line.
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np

from medviewer.viewer.errors import EXIT_FAIL, EXIT_OK, EXIT_PARTIAL, MedviewerError, NothingToShowError, UsageError
from medviewer.viewer.io.model import ScanResult, Series, printable

__all__ = ["EXIT_FAIL", "EXIT_OK", "EXIT_PARTIAL", "Parser", "pick_series", "quiet", "relative",
           "report_skipped", "require_images", "say", "write_png"]


class Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as a one-line UsageError and shows defaults."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")


def quiet(func: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    """Keep library warnings about odd headers off stderr: problems the user must
    know about are reported as skipped items or as one error line."""

    @functools.wraps(func)
    def wrapper(argv: list[str]) -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return func(argv)

    return wrapper


def require_images(result: ScanResult, path: str | Path) -> None:
    """NothingToShowError (exit 2) when a scan found no displayable image, with the reason."""
    if result.all_series():
        return
    why = f": {result.skipped[0].reason}" if len(result.skipped) == 1 else \
        f" ({len(result.skipped)} file(s) skipped, {len(result.non_image)} non-image)"
    raise NothingToShowError(f"{path}: no displayable image{why}")


def relative(result: ScanResult, path: Path) -> str:
    """`path` relative to the scanned folder, printable (as `info --json` shows it)."""
    base = result.root if result.root.is_dir() else result.root.parent
    try:
        return printable(path.relative_to(base).as_posix())
    except ValueError:
        return printable(path.as_posix())


def item_reason(name: str, reason: str) -> str:
    """A decode error's text without the file name it starts with (the line names the file)."""
    prefix = f"{printable(name)}: "
    reason = printable(reason)
    return reason[len(prefix):] if reason.startswith(prefix) else reason


def report_skipped(prog: str, result: ScanResult) -> None:
    """One stderr line per skipped file (the reason exit code 1 is given).

    Nothing when the only problem is a single skipped file and no image: the
    `require_images` error line names that file and reason already.
    """
    if not result.all_series() and len(result.skipped) <= 1:
        return
    for item in result.skipped:
        say(prog, f"skipped {relative(result, item.path)}: {printable(item.reason)}")


def pick_series(result: ScanResult, wanted: str | None) -> Series:
    """The series named by Series Number or Series Instance UID (default: the first)."""
    series = [s for s in result.all_series() if s.items]
    if wanted is None:
        return series[0]
    for s in series:
        if s.series_uid == wanted:
            return s
    try:
        number = int(wanted)
    except ValueError:
        number = None
    for s in series:
        if number is not None and s.number == number:
            return s
    known = ", ".join(sorted({str(s.number) for s in series if s.number is not None})) or "none numbered"
    raise UsageError(f"no series {wanted!r} under {result.root} (series numbers: {known})")


def write_png(out: Path, grey: np.ndarray) -> None:
    """Write 8-bit grey or RGB pixels as PNG (lossless)."""
    import cv2

    img = cv2.cvtColor(grey, cv2.COLOR_RGB2BGR) if grey.ndim == 3 else grey
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img))
    if not ok:
        raise MedviewerError(f"{out}: cannot encode the image as PNG")
    try:
        out.write_bytes(buf.tobytes())
    except OSError as exc:
        raise MedviewerError(f"{out}: cannot write ({exc.strerror or type(exc).__name__})") from None


def say(prog: str, text: str) -> None:
    """One line on stderr for the user (skipped items, notices)."""
    print(f"{prog}: {text}", file=sys.stderr)
