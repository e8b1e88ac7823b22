"""`medviewer measure`: ROI statistics of one image, headless (the viewer's code).

    medviewer measure PATH [--series N|UID] [--slice K] --roi ellipse|rectangle X0 Y0 X1 Y1 [--json]

The ROI is the ellipse inscribed in (or the rectangle of) the box from (X0, Y0) to
(X1, Y1) in image pixel coordinates, where pixel (column i, row j) covers
[i, i+1) x [j, j+1) and counts when its centre lies inside.  Statistics are on
the stored pixels of that slice through the modality LUT (HU for CT):
{"area_mm2", "mean", "std", "min", "max", "n_pixels", "units"}.  Exit codes and
errors as `medviewer info`.
"""

from __future__ import annotations

import json
import math

from medviewer.viewer.clikit import EXIT_OK, EXIT_PARTIAL, Parser, pick_series, quiet, require_images
from medviewer.viewer.errors import NothingToShowError, UsageError


@quiet
def main_measure(argv: list[str]) -> int:
    from medviewer.viewer.io.pixels import PixelStore
    from medviewer.viewer.io.scan import open_path
    from medviewer.viewer.measure.geometry import Ellipse, Rectangle
    from medviewer.viewer.measure.stats import roi_stats

    p = Parser(prog="medviewer measure",
               description="Area, mean, SD, min and max of an ellipse or rectangle ROI on one image.")
    p.add_argument("path", help="a study folder or a single file")
    p.add_argument("--series", metavar="N|UID", help="Series Number or Series Instance UID "
                   "(default: the first series)")
    p.add_argument("--slice", type=int, default=0, metavar="K",
                   help="0-based index in display order (default 0)")
    p.add_argument("--roi", nargs=5, required=True, metavar=("SHAPE", "X0", "Y0", "X1", "Y1"),
                   help="ellipse|rectangle and the box corners in image pixel coordinates")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON")
    args = p.parse_args(argv)
    kind = args.roi[0].lower()
    if kind not in ("ellipse", "rectangle"):
        raise UsageError(f"--roi {args.roi[0]!r}: choose ellipse or rectangle")
    try:
        x0, y0, x1, y1 = (float(v) for v in args.roi[1:])
    except ValueError:
        raise UsageError(f"--roi {' '.join(args.roi[1:])}: X0 Y0 X1 Y1 must be numbers") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise UsageError("--roi coordinates must be finite numbers")
    shape = (Ellipse if kind == "ellipse" else Rectangle)(x0, y0, x1, y1)

    result = open_path(args.path)
    require_images(result, args.path)
    series = pick_series(result, args.series)
    n = len(series.items)
    if not 0 <= args.slice < n:
        raise UsageError(f"--slice {args.slice} is out of range: series has {n} image(s), 0..{n - 1}")
    ref = series.items[args.slice]
    with PixelStore(workers=1) as store:
        store.add_headers(series.headers)
        stored = store.get(ref)
        meta = store.meta(ref)
    if stored.ndim != 2 or meta.is_color or meta.is_palette:
        raise NothingToShowError(f"{ref.path.name}: ROI statistics need a monochrome image "
                                 f"({meta.photometric})")
    stats = roi_stats(shape, stored, meta)
    if stats.n_pixels == 0:
        raise UsageError(f"the {kind} ({x0:g}, {y0:g})-({x1:g}, {y1:g}) holds no pixel centre of "
                         f"{ref.path.name} ({stored.shape[1]} columns x {stored.shape[0]} rows)")
    doc = stats.to_dict()
    if args.json:
        print(json.dumps(doc))
    else:
        area = "-" if stats.area_mm2 is None else f"{stats.area_mm2:.2f} mm2"
        print(f"{kind} on {ref.path.name}: area {area}, {stats.n_pixels} pixels, mean {stats.mean:.2f}, "
              f"SD {stats.std:.2f}, min {stats.min:g}, max {stats.max:g} {stats.units}")
    return EXIT_PARTIAL if result.skipped else EXIT_OK
