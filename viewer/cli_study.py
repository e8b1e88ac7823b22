"""`medviewer info` and `medviewer export`: the study code paths, headless.

    medviewer info PATH [--json]
    medviewer export PATH OUT.png [--series N|UID] [--slice K] [--frame F]
                                  [--window CENTER WIDTH | --preset NAME]

Indices are 0-based, like the "items" and "frame" of `info --json`.  Export
writes the grey levels the canvas shows at 100% zoom (viewer.display.render,
PS3.3 C.11 chain) at the image's own size: 8-bit grey, or RGB for colour.
Exit codes: 0 ok, 1 ok but some files were skipped, 2 nothing usable or bad
arguments (errors are raised as MedviewerError; viewer.cli prints one line).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np

from viewer.errors import MedviewerError, NothingToShowError, UsageError
from viewer.io.model import ImageRef, ScanResult, Series
from viewer.io.scan import open_path

EXIT_OK, EXIT_PARTIAL, EXIT_FAIL = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad arguments as one-line UsageError."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _exit_code(result: ScanResult) -> int:
    if not result.all_series():
        return EXIT_FAIL
    return EXIT_PARTIAL if result.skipped else EXIT_OK


def _listing(result: ScanResult) -> str:
    doc = result.to_json()
    lines = [f"{doc['root']}"]
    for st in doc["studies"]:
        lines.append(f"Study {st['date'] or '-'}  {st['description'] or '(no description)'}"
                     f"  patient id {st['patient_id'] or '-'}  [{st['study_uid']}]")
        for se in st["series"]:
            number = "-" if se["number"] is None else se["number"]
            lines.append(f"  Series {number:>4}  {se['modality']:<6} {se['images']:>5} image(s)"
                         f"  {se['rows']}x{se['columns']}  {se['description'] or '(no description)'}")
    if not doc["studies"]:
        lines.append("No displayable images.")
    if doc["non_image"]:
        lines.append(f"Non-image objects ({len(doc['non_image'])}):")
        lines += [f"  {n['path']}: {n['sop_class']}" for n in doc["non_image"]]
    if doc["skipped"]:
        lines.append(f"Skipped files ({len(doc['skipped'])}):")
        lines += [f"  {s['path']}: {s['reason']}" for s in doc["skipped"]]
    return "\n".join(lines)


def _quiet(func: Callable[[list[str]], int]) -> Callable[[list[str]], int]:
    """Keep pydicom's warnings about odd headers off stderr: problems the user
    must know about are reported as skipped files or as one error line."""

    @functools.wraps(func)
    def wrapper(argv: list[str]) -> int:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return func(argv)

    return wrapper


@_quiet
def main_info(argv: list[str]) -> int:
    """`medviewer info PATH [--json]`: studies, series, non-image and skipped files."""
    p = _Parser(prog="medviewer info", description="List the studies and series under PATH.")
    p.add_argument("path", help="a study folder or a single file")
    p.add_argument("--json", action="store_true", help="print the machine-readable listing")
    args = p.parse_args(argv)
    result = open_path(args.path)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(_listing(result))
    return _exit_code(result)


def _pick_series(result: ScanResult, wanted: str | None) -> Series:
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


def _pick_ref(series: Series, index: int, frame: int | None) -> ImageRef:
    n = len(series.items)
    if not 0 <= index < n:
        raise UsageError(f"--slice {index} is out of range: series has {n} image(s), 0..{n - 1}")
    ref = series.items[index]
    if frame is None:
        return ref
    header = series.headers.get(ref.path)
    try:
        frames = int(header.get("NumberOfFrames", 1) or 1) if header is not None else 1
    except (TypeError, ValueError):
        frames = 1
    if not 0 <= frame < frames:
        raise UsageError(f"--frame {frame} is out of range: {ref.path.name} has {frames} frame(s)")
    return ImageRef(ref.path, frame if frames > 1 else None)


def _window(args: argparse.Namespace):
    from viewer.display import PRESETS, Window

    if args.preset is not None:
        key = args.preset.lower()
        if key not in PRESETS:
            raise UsageError(f"unknown preset {args.preset!r} (choose from: {', '.join(PRESETS)})")
        return PRESETS[key]
    if args.window is not None:
        center, width = args.window
        if not np.isfinite(center) or not np.isfinite(width) or width < 1:
            raise UsageError("--window needs a finite CENTER and a WIDTH >= 1 (PS3.3 C.11.2.1.2)")
        return Window(float(center), float(width), "LINEAR", "custom")
    return None


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


@_quiet
def main_export(argv: list[str]) -> int:
    """`medviewer export PATH OUT.png ...`: the displayed grey levels of one image."""
    from viewer.display import render
    from viewer.io.pixels import PixelStore

    p = _Parser(prog="medviewer export",
                description="Write one image's displayed grey levels (100% zoom, no overlays).")
    p.add_argument("path", help="a study folder or a single file")
    p.add_argument("out", help="output PNG file")
    p.add_argument("--series", metavar="N|UID", help="Series Number or Series Instance UID "
                   "(default: the first series)")
    p.add_argument("--slice", type=int, default=0, metavar="K",
                   help="0-based index in display order (default 0)")
    p.add_argument("--frame", type=int, metavar="F", help="0-based frame of a multi-frame file")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--window", type=float, nargs=2, metavar=("CENTER", "WIDTH"))
    group.add_argument("--preset", metavar="NAME", help="lung, mediastinum, abdomen, bone, brain")
    args = p.parse_args(argv)

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"{out}: the output must be a .png file")
    if not out.parent.exists():
        raise UsageError(f"{out}: folder {out.parent} does not exist")
    window = _window(args)
    result = open_path(args.path)
    if not result.all_series():
        why = f": {result.skipped[0].reason}" if len(result.skipped) == 1 else \
            f" ({len(result.skipped)} file(s) skipped, {len(result.non_image)} non-image)"
        raise NothingToShowError(f"{args.path}: no displayable image{why}")
    series = _pick_series(result, args.series)
    ref = _pick_ref(series, args.slice, args.frame)
    store = PixelStore(workers=1)
    try:
        store.add_headers(series.headers)
        stored = store.get(ref)
        grey = render(stored, store.meta(ref), window)
    finally:
        store.close()
    write_png(out, grey)
    kind = "RGB" if grey.ndim == 3 else "grey"
    print(f"wrote {out} ({grey.shape[1]}x{grey.shape[0]} {kind})", file=sys.stderr)
    return EXIT_PARTIAL if result.skipped else EXIT_OK
