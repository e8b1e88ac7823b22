"""Study I/O benchmark: scan and open a 400-slice 512x512 int16 CT series.

    python bench/bench_scan.py [--slices 400] [--size 512] [--repeat 3] [--keep DIR]

Generates the series (shuffled file names) in a temporary folder, then
measures, in interleaved rounds against the same files (page cache warm for
all), the minimum and median wall time and the minimum process-CPU time:

  naive        dcmread every file with pixels (+ .pixel_array), then sort by geometry
  naive-read   the same without decoding (dcmread only), shown for reference
  first image  viewer.io.scan until its first snapshot, then PixelStore.get +
               viewer.display.render of the first slice of the first series
  full scan    viewer.io.scan to completion (headers only, grouped and sorted)
  memory       RSS growth of a fresh process that scans and decodes every slice
               into a PixelStore, vs the raw pixel bytes (measured in a child
               process so the naive loop's freed memory does not hide anything)

Targets (issue 2, section 7): first image <= 1/5 of naive, full scan <= 1/2,
memory <= 1.3x the raw pixel bytes.  Ratios are to the naive loop's figure of
the same kind (minimum: least disturbed by other load on a shared machine);
`--cold` evicts the files from the page cache before every run, as on the
first open of a study.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medviewer.viewer.display import render  # noqa: E402
from medviewer.viewer.io.demo import slice_header  # noqa: E402
from medviewer.viewer.io.pixels import PixelStore  # noqa: E402
from medviewer.viewer.io.scan import scan  # noqa: E402
from medviewer.viewer.io.sort import normal  # noqa: E402


def generate(folder: Path, slices: int, size: int, seed: int = 0) -> int:
    """Write the series with random file names; returns the raw pixel bytes."""
    rng = random.Random(seed)
    uid = pydicom.uid.generate_uid()
    base = np.random.default_rng(seed).integers(0, 2000, (size, size), dtype=np.int16)
    for k in range(slices):
        ds = slice_header(k, -0.5 * slices + k * 1.0)  # the demo's CT header
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesInstanceUID = uid
        ds.InstanceNumber = rng.randint(1, 10 * slices)
        ds.Rows = ds.Columns = size
        ds.PixelData = np.roll(base, k, axis=0).tobytes()
        ds.save_as(folder / f"{rng.getrandbits(64):016x}", enforce_file_format=True)
    return slices * size * size * 2


def naive(folder: Path, decode: bool = True) -> tuple[float, list]:
    """What a hobby viewer does: read everything with pixels, then sort."""
    t0 = time.perf_counter()
    items = []
    for path in folder.iterdir():
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array if decode else ds.PixelData
        n = normal([float(v) for v in ds.ImageOrientationPatient])
        z = sum(float(p) * c for p, c in zip(ds.ImagePositionPatient, n))
        items.append((z, path, arr))
    items.sort(key=lambda t: t[0])
    return time.perf_counter() - t0, items


def drop_cache(folder: Path) -> None:
    """Ask the kernel to forget these files' cached pages (first open of a study)."""
    for path in folder.iterdir():
        with open(path, "rb") as fp:
            os.posix_fadvise(fp.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def first_image(folder: Path) -> tuple[float, tuple]:
    """Scan until the first snapshot, then decode and render its first image."""
    t0 = time.perf_counter()
    shown: list = []
    store = PixelStore()

    def on_snapshot(snap) -> None:
        if shown:
            return
        found = snap.first_image()
        if found is None:
            return
        _, ref = found
        grey = render(store.get(ref), store.meta(ref))
        shown.append((time.perf_counter() - t0, grey.shape))

    scan(folder, on_snapshot=on_snapshot, should_stop=lambda: bool(shown))
    store.close()
    return shown[0]


def full_scan(folder: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    res = scan(folder)
    return time.perf_counter() - t0, len(res.all_series()[0].items)


def memory_child(folder: str) -> None:
    """Run in a fresh process: RSS growth of scan + every slice decoded."""
    import psutil

    proc = psutil.Process()
    gc.collect()
    before = proc.memory_info().rss
    res = scan(folder)
    (series,) = res.all_series()
    store = PixelStore(max_bytes=2**31, headers=series.headers)
    for ref in series.items:
        store.get(ref)
    gc.collect()
    after = proc.memory_info().rss
    print(json.dumps({"rss_delta": after - before, "cached": store.cached_bytes,
                      "images": len(series.items)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=400)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--keep", type=Path, help="generate into (or reuse) this folder")
    ap.add_argument("--cold", action="store_true",
                    help="evict the files from the page cache before every run (Linux)")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return

    tmp = None
    if args.keep:
        folder = args.keep
        folder.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-scan-")
        folder = Path(tmp.name)
    raw = args.slices * args.size * args.size * 2
    if len(list(folder.iterdir())) != args.slices:
        t = time.perf_counter()
        raw = generate(folder, args.slices, args.size)
        print(f"generated {args.slices} slices {args.size}x{args.size} int16 in "
              f"{time.perf_counter() - t:.1f} s ({raw / 2**20:.0f} MiB of pixels)")

    contestants = {
        "naive": (naive, (folder,)),
        "read": (naive, (folder, False)),
        "first": (first_image, (folder,)),
        "scan": (full_scan, (folder,)),
    }
    walls: dict[str, list[float]] = {k: [] for k in contestants}
    cpus: dict[str, list[float]] = {k: [] for k in contestants}
    last: dict[str, tuple] = {}
    naive(folder)  # warm the page cache for every contestant
    # interleaved rounds: load changes on a shared machine hit every contestant alike
    for _ in range(args.repeat):
        for key, (fn, fargs) in contestants.items():
            gc.collect()
            if args.cold:
                drop_cache(folder)
            c0 = time.process_time()
            out = fn(*fargs)
            cpus[key].append(time.process_time() - c0)
            walls[key].append(out[0])
            last[key] = out[1] if key != "naive" else len(out[1])
    shape, n = last["first"], last["scan"]
    assert n == args.slices and last["naive"] == args.slices
    child = subprocess.run([sys.executable, __file__, "--memory-child", str(folder)],
                           capture_output=True, text=True, check=True)
    mem = json.loads(child.stdout.strip().splitlines()[-1])

    labels = {
        "naive": "naive: dcmread + pixel_array + sort",
        "read": "naive-read: dcmread only + sort (ref)",
        "first": "first displayed image (<= 0.20)",
        "scan": "full scan, grouped + sorted (<= 0.50)",
    }
    base = {"min": min(walls["naive"]), "med": statistics.median(walls["naive"]),
            "cpu": min(cpus["naive"])}
    cache = "cold (posix_fadvise DONTNEED before each run)" if args.cold else "warm"
    print(f"\n{args.slices} slices {args.size}x{args.size} int16, {args.repeat} interleaved rounds, "
          f"page cache {cache}, first image shape {shape}")
    print(f"{'measure':<40}{'min s':>8}{'x naive':>8}{'median s':>9}{'x naive':>8}"
          f"{'cpu s':>8}{'x naive':>8}")
    for key, name in labels.items():
        w_min, w_med, c_min = min(walls[key]), statistics.median(walls[key]), min(cpus[key])
        print(f"{name:<40}{w_min:>8.3f}{w_min / base['min']:>8.3f}{w_med:>9.3f}"
              f"{w_med / base['med']:>8.3f}{c_min:>8.3f}{c_min / base['cpu']:>8.3f}")
    print(f"{'full scan vs naive-read':<40}{'':>8}{min(walls['scan']) / min(walls['read']):>8.3f}"
          f"{'':>9}{statistics.median(walls['scan']) / statistics.median(walls['read']):>8.3f}"
          f"{'':>8}{min(cpus['scan']) / min(cpus['read']):>8.3f}")
    ratio = mem["rss_delta"] / raw
    print(f"\nmemory: RSS +{mem['rss_delta'] / 2**20:.1f} MiB for {mem['images']} decoded slices, "
          f"raw pixels {raw / 2**20:.1f} MiB, ratio {ratio:.3f} (target <= 1.30); "
          f"PixelStore holds {mem['cached'] / 2**20:.1f} MiB")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
