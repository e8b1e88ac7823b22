"""`medviewer export ... --plane`: a reformatted plane or slab, headless (the viewer's code).

    medviewer export PATH OUT.png --plane axial|coronal|sagittal [--slice K]
                     [--slab MM [--projection mip|minip|mean]] [--series N|UID]
                     [--window CENTER WIDTH | --preset NAME]

The series is checked and built into a volume (viewer.io.volume), the plane cut
by viewer.display.mpr in the radiological convention (axial: patient right on the
left, anterior at the top; coronal: right on the left, head at the top; sagittal:
anterior on the left, head at the top) with square pixels at the in-plane
spacing, and windowed by the display pipeline.  `--slice K` indexes the planes
along the plane's normal in the stack convention (0-based: head to feet,
anterior to posterior, right to left); without it the middle plane.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medviewer.viewer.clikit import EXIT_OK, EXIT_PARTIAL, pick_series, require_images, write_png
from medviewer.viewer.errors import NothingToShowError, UsageError

PLANES = ("axial", "coronal", "sagittal")
PROJECTIONS = ("mip", "minip", "mean")


def add_plane_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plane", choices=PLANES, help="reformat the series' volume in this plane")
    p.add_argument("--slab", type=float, metavar="MM", help="thick slab of MM millimetres (with --plane)")
    p.add_argument("--projection", choices=PROJECTIONS,
                   help="how the slab is projected (default mip when --slab is given)")


def export_plane(args: argparse.Namespace) -> int:
    """Write one reformatted plane (or slab projection) of the chosen series as PNG."""
    import numpy as np

    from medviewer.viewer.cli_study import _window
    from medviewer.viewer.display import Window, mpr
    from medviewer.viewer.io.pixels import PixelStore
    from medviewer.viewer.io.scan import open_path
    from medviewer.viewer.io.volume import VolumeError, build_volume, check_series

    if args.plane is None:
        raise UsageError("--slab and --projection need --plane axial|coronal|sagittal")
    if args.frame is not None:
        raise UsageError("--frame does not apply to --plane (planes are indexed with --slice)")
    if args.slab is not None and not (args.slab > 0 and args.slab < 1e4):
        raise UsageError("--slab needs a thickness in millimetres > 0")
    if args.projection is not None and args.slab is None:
        raise UsageError(f"--projection {args.projection} needs --slab MM")
    projection = (args.projection or "mip") if args.slab is not None else "thin"
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"{out}: the output must be a .png file")
    if not out.parent.exists():
        raise UsageError(f"{out}: folder {out.parent} does not exist")
    window = _window(args)
    result = open_path(args.path)
    require_images(result, args.path)
    series = pick_series(result, args.series)
    check = check_series(series)
    label = f"series {series.number}" if series.number is not None else "the series"
    if not check.ok:
        raise NothingToShowError(f"{label} cannot be reformatted: {check.reason}")
    store = PixelStore(workers=2)
    try:
        store.add_headers(series.headers)
        try:
            volume = build_volume(series, store, check)
        except VolumeError as exc:
            raise NothingToShowError(f"{label} cannot be reformatted: {exc}") from None
        geometry = volume.geometry
        count = len(mpr.plane_offsets(geometry, args.plane))
        index = count // 2 if args.slice is None else args.slice
        if not 0 <= index < count:
            raise UsageError(f"--slice {index} is out of range: {count} {args.plane} plane(s), "
                             f"0..{count - 1}")
        grid = mpr.grid_at(geometry, args.plane, index)
        plane = mpr.reformat(volume, grid, args.slab or 0.0, projection)
        if window is not None and not isinstance(window, Window):   # a WindowSpec
            sample = np.ascontiguousarray(volume.data[::max(1, len(volume.data) // 16)])
            window = window.resolve(sample.reshape(-1, sample.shape[-1]), volume.meta)
        grey = mpr.render_plane(plane, window if window is not None else mpr.volume_window(volume))
        volume.close()
    finally:
        store.close()
    write_png(out, grey)
    labels = plane.labels()
    what = f"{args.plane} plane {index}/{count - 1}"
    if projection != "thin":
        what += f", {args.slab:g} mm {projection.upper()}"
    notes = "".join(f"; {n}" for n in volume.notes)
    print(f"wrote {out} ({grey.shape[1]}x{grey.shape[0]} grey, {what}, {grid.spacing:.3g} mm pixels; "
          f"left {labels.left}, right {labels.right}, top {labels.top}, bottom {labels.bottom}{notes})",
          file=sys.stderr)
    return EXIT_PARTIAL if result.skipped else EXIT_OK
