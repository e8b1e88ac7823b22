"""`medviewer info` and `medviewer export`: the study code paths, headless.

    medviewer info PATH [--json]
    medviewer export PATH OUT.png [--series N|UID] [--slice K] [--frame F]
                                  [--window CENTER WIDTH | --preset NAME]
                                  [--plane axial|coronal|sagittal [--slab MM --projection P]]

Indices are 0-based, like the "items" and "frame" of `info --json`.  Export
writes the grey levels the canvas shows at 100% zoom (viewer.display.render,
PS3.3 C.11 chain) at the image's own size: 8-bit grey, or RGB for colour.
Exit codes: 0 ok, 1 ok but some files were skipped, 2 nothing usable or bad
arguments (errors are raised as MedviewerError; viewer.cli prints one line).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


from medviewer.viewer.cli_mpr import add_plane_options, export_plane
from medviewer.viewer.clikit import (EXIT_FAIL, EXIT_OK, EXIT_PARTIAL, Parser, pick_series, quiet,
                                     report_skipped, require_images, write_png)
from medviewer.viewer.display.text import size_text
from medviewer.viewer.errors import UsageError
from medviewer.viewer.io.model import ImageRef, ScanResult, Series, printable
from medviewer.viewer.io.scan import open_path


def _exit_code(result: ScanResult) -> int:
    if not result.all_series():
        return EXIT_FAIL
    return EXIT_PARTIAL if result.skipped else EXIT_OK


_STACK_WORDS = {"axial": "head to feet", "coronal": "anterior to posterior",
                "sagittal": "right to left"}


def stack_line(series: Series) -> str | None:
    """'axial, head to feet: z 57.50 mm .. -60.00 mm' -- the display order of a stack and
    where its first and last slices lie (viewer.display.orientation), None without geometry."""
    from medviewer.viewer.display.orientation import plane_kind, slice_normal

    if not series.items:
        return None
    first, last = series.items[0], series.items[-1]
    geo = series.geometry.get(first)
    a, b = series.location(first), series.location(last)
    if geo is None or a is None or b is None or a.axis != b.axis:
        return None
    normal = slice_normal(geo.orientation)
    if normal is None:
        return None
    kind = plane_kind(normal)
    if len(series.items) == 1:
        return f"{kind}: {a.axis_name} {a.text()}"
    return f"{kind}, {_STACK_WORDS[kind]}: {a.axis_name} {a.text()} .. {b.text()}"


def _listing(result: ScanResult) -> str:
    doc = result.to_json()
    lines = [f"{doc['root']}"]
    for st, study in zip(doc["studies"], result.studies):
        lines.append(f"Study {st['date'] or '-'}  {st['description'] or '(no description)'}"
                     f"  patient id {st['patient_id'] or '-'}  [{st['study_uid']}]")
        for se, series in zip(st["series"], study.series):
            number = "-" if se["number"] is None else se["number"]
            lines.append(f"  Series {number:>4}  {se['modality']:<6} {se['images']:>5} image(s)"
                         f"  {size_text(se['rows'], se['columns'])}  {se['description'] or '(no description)'}")
            stack = stack_line(series)
            if stack:
                lines.append(f"               {stack}")
    # to_json made every value printable: one line per item whatever the file names hold
    if not doc["studies"]:
        lines.append("No displayable images.")
    if doc["non_image"]:
        lines.append(f"Non-image objects ({len(doc['non_image'])}):")
        lines += [f"  {n['path']}: {n['sop_class']}" for n in doc["non_image"]]
    if doc["skipped"]:
        lines.append(f"Skipped files ({len(doc['skipped'])}):")
        lines += [f"  {s['path']}: {s['reason']}" for s in doc["skipped"]]
    return "\n".join(lines)


@quiet
def main_info(argv: list[str]) -> int:
    """`medviewer info PATH [--json]`: studies, series, non-image and skipped files."""
    p = Parser(prog="medviewer info", description="List the studies and series under PATH.")
    p.add_argument("path", help="a study folder or a single file")
    p.add_argument("--json", action="store_true", help="print the machine-readable listing")
    args = p.parse_args(argv)
    result = open_path(args.path)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(_listing(result))
    return _exit_code(result)


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
        raise UsageError(f"--frame {frame} is out of range: {printable(ref.path.name)} has {frames} frame(s)")
    return ImageRef(ref.path, frame if frames > 1 else None)


def _window(args: argparse.Namespace):
    from medviewer.viewer.display import PRESETS, WindowSpec, WindowSpecError

    if args.preset is not None:
        key = args.preset.lower()
        if key not in PRESETS:
            raise UsageError(f"unknown preset {args.preset!r} (choose from: {', '.join(PRESETS)})")
        return PRESETS[key]
    if args.window is not None:
        try:
            spec = WindowSpec.parse(" ".join(args.window))
        except WindowSpecError as exc:
            raise UsageError(f"--window: {exc}") from None
        return spec
    return None


@quiet
def main_export(argv: list[str]) -> int:
    """`medviewer export PATH OUT.png ...`: the displayed grey levels of one image."""
    from medviewer.viewer.display import Window, render
    from medviewer.viewer.io.pixels import PixelStore

    p = Parser(prog="medviewer export",
                description="Write one image's displayed grey levels (100% zoom, no overlays).")
    p.add_argument("path", help="a study folder or a single file")
    p.add_argument("out", help="output PNG file")
    p.add_argument("--series", metavar="N|UID", help="Series Number or Series Instance UID "
                   "(default: the first series)")
    p.add_argument("--slice", type=int, default=None, metavar="K",
                   help="0-based index in display order (default 0); with --plane, the plane's "
                        "index along its normal (default the middle plane)")
    p.add_argument("--frame", type=int, metavar="F", help="0-based frame of a multi-frame file")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--window", nargs="+", metavar="SPEC",
                       help="CENTER WIDTH, or auto | header | CENTER,WIDTH (default: the file's own window)")
    group.add_argument("--preset", metavar="NAME", help="lung, mediastinum, abdomen, bone, brain")
    add_plane_options(p)
    args = p.parse_args(argv)
    if args.plane is not None or args.slab is not None or args.projection is not None:
        return export_plane(args)
    if args.slice is None:
        args.slice = 0

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"{out}: the output must be a .png file")
    if not out.parent.exists():
        raise UsageError(f"{out}: folder {out.parent} does not exist")
    window = _window(args)
    result = open_path(args.path)
    if not result.all_series():
        report_skipped("medviewer export", result)  # each file's line before the summary
    require_images(result, args.path)
    series = pick_series(result, args.series)
    ref = _pick_ref(series, args.slice, args.frame)
    store = PixelStore(workers=1)
    try:
        store.add_headers(series.headers)
        stored = store.get(ref)
        meta = store.meta(ref)
        if window is not None and not isinstance(window, Window):
            window = window.resolve(stored, meta)  # a WindowSpec: auto / header / fixed
        grey = render(stored, meta, window)
    finally:
        store.close()
    write_png(out, grey)
    report_skipped("medviewer export", result)
    kind = "RGB" if grey.ndim == 3 else "grey"
    print(f"wrote {out} ({size_text(grey.shape[0], grey.shape[1])} {kind})", file=sys.stderr)
    return EXIT_PARTIAL if result.skipped else EXIT_OK


def main_demo_study(argv: list[str]) -> int:
    """`medviewer demo-study [OUT] [--prior]`: write the generated demo CT phantom (or its
    prior study), print its folder."""
    from medviewer.viewer.io.demo import make_demo_study, make_prior_study

    p = Parser(prog="medviewer demo-study",
               description="Write the generated 48-slice demo CT phantom (the study `--demo` opens) "
                           "and print its folder, e.g. for `medviewer predict $(medviewer demo-study) "
                           "--model demo`.")
    p.add_argument("out", nargs="?", help="parent folder (default: medviewer's cache folder)")
    p.add_argument("--prior", action="store_true",
                   help="write the prior study of the demo patient instead (a year earlier), for "
                        "File > Open prior study and the compare layout")
    args = p.parse_args(argv)
    if args.out is not None and not Path(args.out).is_dir():
        raise UsageError(f"{args.out}: not a folder")
    try:
        print(make_prior_study(args.out) if args.prior else make_demo_study(args.out))
    except OSError as exc:
        raise UsageError(f"{args.out or 'cache folder'}: cannot write the demo study ({exc.strerror})") from None
    return EXIT_OK
