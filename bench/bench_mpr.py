"""MPR benchmark: reformats of a 400x512x512 int16 CT volume, windowed to grey levels.

    python bench/bench_mpr.py [--slices 400] [--size 512] [--repeat 25] [--no-memory]

Every figure is the median wall time of `--repeat` interleaved runs (minimum in
brackets; baselines that take seconds run in fewer rounds spread over the same run),
each ending in uint8 grey levels through the same display pipeline (CT lung
window), against baselines measured in the same run, with the minimum process CPU
time (all threads) and the load averages of the machine:

  coronal / sagittal   medviewer.viewer.display.mpr.reformat + render_plane vs numpy
                       slicing + cv2.resize to square pixels (+ the same windowing)
  oblique              the coronal plane turned 30 deg in the axial view (the crosshair
                       rotated), and a double oblique (turned again 20 deg in the
                       sagittal view), vs SimpleITK's ResampleImageFilter (linear; when
                       SimpleITK is installed: pip install ".[bench]") and
                       scipy.ndimage.map_coordinates (order 1) on precomputed coordinates
  20 mm MIP            axial, coronal, sagittal slabs vs numpy max over the slab
                       (+ cv2.resize)
  oblique slabs        20 mm MIP / MinIP / mean on single-oblique planes (the crosshair
                       turned in the axial or sagittal view) and double-oblique MIPs
                       (full and draft; one whose normal crosses columns most often) vs medviewer's previous method (a trilinear
                       plane every 0.7 mm), SimpleITK (resample of the slab block + max),
                       scipy map_coordinates and numpy trilinear on the same sample
                       points (bench/slab_baselines.py); the agreement with
                       map_coordinates is printed first
  memory               in a child process: a series of DICOM files is scanned, every
                       slice decoded into a PixelStore (as a user scrolling it), then the
                       volume is built; the RSS growth of that build vs the raw bytes

Targets (issue 11): coronal / sagittal <= 5 ms, oblique <= 16 ms, 20 mm MIP <= 30 ms,
volume memory <= 0.1x the raw pixel bytes on top of the slice cache.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from medviewer.viewer.display import PRESETS, Renderer  # noqa: E402
from medviewer.viewer.display.meta import ImageMeta  # noqa: E402
from medviewer.viewer.display import mpr, slab  # noqa: E402
from medviewer.viewer.io.volume import Volume, VolumeGeometry  # noqa: E402

PIXEL_MM, SLICE_MM = 0.7, 1.0
LOAD0 = (0.0, 0.0, 0.0)


def phantom(slices: int, size: int, seed: int = 0) -> np.ndarray:
    """Stored CT values (HU + 1024, >= 0): a body with lungs, vessels and bone, plus noise."""
    rng = np.random.default_rng(seed)
    vol = np.empty((slices, size, size), np.int16)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    tubes = [(rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15), rng.uniform(-0.3, 0.3),
              rng.uniform(-0.3, 0.3)) for _ in range(12)]
    for k in range(slices):
        z = k / slices - 0.5
        hu = np.full((size, size), -1000.0, np.float32)
        body = (xx / 0.42) ** 2 + (yy / 0.32) ** 2 < 1 - 0.5 * z * z
        hu[body] = 40.0
        for sx in (-0.18, 0.18):
            lung = ((xx - sx) / 0.13) ** 2 + (yy / 0.2) ** 2 < 1 - 2 * z * z
            hu[lung] = -850.0
        for x0, y0, dx, dy in tubes:
            d2 = (xx - x0 - dx * z) ** 2 + (yy - y0 - dy * z) ** 2
            hu[d2 < 0.0004] = 300.0
        hu[np.abs(((xx / 0.44) ** 2 + (yy / 0.34) ** 2) - 1.02) < 0.03] = 1200.0
        hu += rng.normal(0, 12, hu.shape).astype(np.float32)
        vol[k] = np.clip(hu + 1024, 0, 32767).astype(np.int16)  # scanners clip air at -1024 HU
    return vol


def as_stored(values: np.ndarray) -> np.ndarray:
    """A baseline's projection as int16 stored values (what the display pipeline gets)."""
    return np.rint(values).astype(np.int16)


def timed(fn, repeat: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3, min(times) * 1e3


CPU: dict[str, float] = {}


def interleaved(contestants: dict, repeat: int, slow: tuple[str, ...] = (),
                slow_repeat: int = 3) -> dict[str, tuple[float, float]]:
    """Median / min wall ms of each contestant, run in interleaved rounds (those in
    `slow` only in `slow_repeat` rounds spread over the run); the min process CPU ms
    (all threads) goes to CPU[key] (less sensitive to other load)."""
    for key, fn in contestants.items():
        if key not in slow:
            fn()
    times: dict[str, list[float]] = {k: [] for k in contestants}
    cpu: dict[str, list[float]] = {k: [] for k in contestants}
    every = max(1, repeat // max(1, slow_repeat))
    for round_ in range(repeat):
        for key, fn in contestants.items():
            if key in slow and (round_ % every or len(times[key]) >= slow_repeat):
                continue
            c0 = time.process_time()
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
    CPU.clear()
    CPU.update({k: min(v) * 1e3 for k, v in cpu.items()})
    return {k: (statistics.median(v) * 1e3, min(v) * 1e3) for k, v in times.items()}


def memory_child(folder: str) -> None:
    """Fresh process: RSS after every slice is cached, then after the volume is built."""
    import psutil

    from medviewer.viewer.io.pixels import PixelStore
    from medviewer.viewer.io.scan import scan
    from medviewer.viewer.io.volume import build_volume

    proc = psutil.Process()
    (series,) = scan(folder).all_series()
    store = PixelStore(max_bytes=2**31, headers=series.headers)
    for ref in series.items:
        store.get(ref)
    gc.collect()
    cached = proc.memory_info().rss
    t0 = time.perf_counter()
    volume = build_volume(series, store)
    build_s = time.perf_counter() - t0
    gc.collect()
    built = proc.memory_info().rss
    views = all(np.shares_memory(store.get(r), volume.data) for r in series.items)
    cold_store = PixelStore(max_bytes=2**31, headers=series.headers)
    t0 = time.perf_counter()
    volume2 = build_volume(series, cold_store)
    cold_s = time.perf_counter() - t0
    print(json.dumps({"cached_rss": cached, "built_rss": built, "raw": volume.nbytes,
                      "views": views, "build_s": build_s, "cold_build_s": cold_s,
                      "store_bytes": store.cached_bytes, "n": len(series.items)}))
    volume2.close()


def write_series(folder: Path, slices: int, size: int) -> None:
    import pydicom

    from medviewer.viewer.io.demo import slice_header

    uid = pydicom.uid.generate_uid()
    base = np.random.default_rng(0).integers(0, 2000, (size, size), dtype=np.int16)
    for k in range(slices):
        ds = slice_header(k, 0.5 * slices - k * 1.0)
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesInstanceUID = uid
        ds.InstanceNumber = k + 1
        ds.Rows = ds.Columns = size
        ds.PixelData = np.roll(base, k, axis=0).tobytes()
        ds.save_as(folder / f"IM{k:04d}.dcm", enforce_file_format=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=400)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child:
        memory_child(args.memory_child)
        return
    n, size = args.slices, args.size
    global LOAD0
    LOAD0 = os.getloadavg()
    t = time.perf_counter()
    data = phantom(n, size)
    print(f"phantom {n}x{size}x{size} int16 ({data.nbytes / 2**20:.0f} MiB) in "
          f"{time.perf_counter() - t:.1f} s; pixels {PIXEL_MM} mm, slices {SLICE_MM} mm; "
          f"cv2 threads {cv2.getNumThreads()}")
    half = PIXEL_MM * (size - 1) / 2
    positions = [(-half, -half, SLICE_MM * (n / 2 - k)) for k in range(n)]  # head to feet
    geometry = VolumeGeometry(positions, (1, 0, 0), (0, 1, 0), (PIXEL_MM, PIXEL_MM), (n, size, size))
    meta = ImageMeta(photometric="MONOCHROME2", bits_stored=16, bits_allocated=16,
                     pixel_representation=1, rescale_intercept=-1024.0, modality="CT", units="HU")
    volume = Volume(data, geometry, meta)
    window = PRESETS["lung"]
    renderer = Renderer()
    cross = mpr.Crosshair.at_center(geometry)
    rows_out = int(math.floor((n - 1) * SLICE_MM / PIXEL_MM + 1e-6)) + 1
    r_mid, c_mid = size // 2, size // 2

    def ours(grid, slab=0.0, projection="thin"):
        return lambda: mpr.render_plane(mpr.reformat(volume, grid, slab, projection), window, renderer)

    def base_cor():
        plane = cv2.resize(np.ascontiguousarray(data[:, r_mid, :]), (size, rows_out),
                           interpolation=cv2.INTER_LINEAR)
        return renderer.render(plane, meta, window)

    def base_sag():
        plane = cv2.resize(np.ascontiguousarray(data[:, :, c_mid]), (size, rows_out),
                           interpolation=cv2.INTER_LINEAR)
        return renderer.render(plane, meta, window)

    grids = {k: cross.grid(geometry, k) for k in mpr.PLANES}
    obl = cross.rotated("axial", math.radians(30))
    g_obl = obl.grid(geometry, "coronal")
    dbl = obl.rotated("sagittal", math.radians(20))
    g_dbl = dbl.grid(geometry, "coronal")
    print(f"planes: coronal {grids['coronal'].width}x{grids['coronal'].height}, sagittal "
          f"{grids['sagittal'].width}x{grids['sagittal'].height}, oblique {g_obl.width}x{g_obl.height}, "
          f"double oblique {g_dbl.width}x{g_dbl.height} (width x height)")

    results: list[tuple[str, tuple[float, float], str, tuple[float, float] | None, str]] = []
    cpu_rows: list[tuple[str, float, float | None]] = []
    r = interleaved({"ours": ours(grids["coronal"]), "base": base_cor}, args.repeat)
    results.append(("coronal plane", r["ours"], "numpy slice + cv2.resize", r["base"], "<= 5"))
    cpu_rows.append(("coronal plane", CPU["ours"], CPU["base"]))
    r = interleaved({"ours": ours(grids["sagittal"]), "base": base_sag}, args.repeat)
    results.append(("sagittal plane", r["ours"], "numpy slice + cv2.resize", r["base"], "<= 5"))
    cpu_rows.append(("sagittal plane", CPU["ours"], CPU["base"]))

    # oblique: baselines on the same output points
    from scipy import ndimage

    try:
        import SimpleITK as sitk
    except ImportError:
        sitk = None
    for label, grid in (("oblique (30 deg)", g_obl), ("double oblique (30+20 deg)", g_dbl)):
        f, rr, cc = (np.asarray(m, dtype=np.float64) for m in mpr._index_maps(geometry, grid))
        coords = np.stack([f, rr, cc])

        def scipy_base(coords=coords):
            plane = ndimage.map_coordinates(data, coords, order=1, mode="constant", cval=-1024)
            return renderer.render(plane, meta, window)

        contestants = {"ours": ours(grid), "scipy": scipy_base}
        if sitk is not None:
            img = sitk.GetImageFromArray(data)   # (z, y, x) -> index (x=c, y=r, z=k)
            img.SetSpacing((PIXEL_MM, PIXEL_MM, SLICE_MM))
            img.SetOrigin(tuple(geometry.positions[0]))
            img.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
            res = sitk.ResampleImageFilter()
            res.SetInterpolator(sitk.sitkLinear)
            res.SetOutputSpacing((grid.spacing, grid.spacing, 1.0))
            res.SetSize((grid.width, grid.height, 1))
            res.SetOutputOrigin(grid.origin)
            rgt, dwn, nrm = (np.asarray(v) for v in (grid.right, grid.down, grid.normal))
            res.SetOutputDirection(tuple(np.stack([rgt, dwn, np.cross(rgt, dwn)]).T.ravel()))
            res.SetDefaultPixelValue(0)
            res.SetOutputPixelType(sitk.sitkInt16)

            def sitk_base(res=res, img=img):
                resampled = res.Execute(img)   # the array view needs the image alive
                plane = np.array(sitk.GetArrayViewFromImage(resampled)[0])
                return renderer.render(plane, meta, window)

            contestants["sitk"] = sitk_base
            plane = mpr.reformat(volume, grid)
            inside = np.ones(plane.pixels.shape, bool) if plane.valid is None else plane.valid
            diff = np.abs(mpr.render_plane(plane, window, renderer).astype(int)
                          - sitk_base().astype(int))[inside]
            resampled = res.Execute(img)
            stored = np.abs(plane.pixels.astype(int) - np.asarray(
                sitk.GetArrayViewFromImage(resampled)[0], dtype=int))[inside]
            print(f"{label}: inside the volume vs SimpleITK: grey levels differ by <= "
                  f"{diff.max()} (99.9th percentile {np.percentile(diff, 99.9):.0f}); stored values "
                  f"median |diff| {np.median(stored):.0f}, 99th percentile {np.percentile(stored, 99):.0f}")
        r = interleaved(contestants, args.repeat)
        cpu_rows.append((label, CPU["ours"], CPU.get("sitk", CPU["scipy"])))
        if "sitk" in r:
            results.append((label, r["ours"], "SimpleITK ResampleImageFilter", r["sitk"], "<= 16"))
        results.append((label, r["ours"], "scipy map_coordinates order 1", r["scipy"], "<= 16"))
    if sitk is None:
        print("SimpleITK is not installed (pip install '.[bench]'): its baseline is skipped")

    # 20 mm MIP slabs
    k_mid = n // 2
    ks = int(round(10 / SLICE_MM))
    ps = int(round(10 / PIXEL_MM))

    def base_mip_axial():
        return renderer.render(data[k_mid - ks:k_mid + ks + 1].max(axis=0), meta, window)

    def base_mip_cor():
        plane = cv2.resize(data[:, r_mid - ps:r_mid + ps + 1, :].max(axis=1), (size, rows_out))
        return renderer.render(plane, meta, window)

    def base_mip_sag():
        plane = cv2.resize(data[:, :, c_mid - ps:c_mid + ps + 1].max(axis=2), (size, rows_out))
        return renderer.render(plane, meta, window)

    for label, grid, base in (("20 mm MIP axial", grids["axial"], base_mip_axial),
                              ("20 mm MIP coronal", grids["coronal"], base_mip_cor),
                              ("20 mm MIP sagittal", grids["sagittal"], base_mip_sag)):
        r = interleaved({"ours": ours(grid, 20.0, "mip"), "base": base}, args.repeat)
        results.append((label, r["ours"], "numpy max over the slab (+ cv2.resize)", r["base"], "<= 30"))
        cpu_rows.append((label, CPU["ours"], CPU["base"]))

    # oblique slabs: medviewer's kernels against the usual tools on the same samples
    from slab_baselines import SlabPoints, numpy_slab, previous_slab, scipy_slab, sitk_image, sitk_slab

    g_sag = obl.grid(geometry, "sagittal")
    g_strip = cross.rotated("sagittal", math.radians(30)).grid(geometry, "axial")
    g_cols = cross.rotated("axial", math.radians(25)).rotated("coronal", math.radians(-30)).grid(geometry, "axial")
    image = sitk_image(sitk, data, geometry) if sitk is not None else None
    slow = ("previous", "scipy", "numpy", "sitk")
    slab_cases = [("20 mm MIP, coronal turned 30 deg", g_obl, "mip", False),
                  ("20 mm MinIP, same plane", g_obl, "minip", False),
                  ("20 mm mean, same plane", g_obl, "mean", False),
                  ("20 mm MIP, sagittal turned 30 deg", g_sag, "mip", False),
                  ("20 mm MIP, axial turned 30 deg (sag. view)", g_strip, "mip", False),
                  ("20 mm MIP, double oblique 30+20 deg", g_dbl, "mip", False),
                  ("20 mm MIP, double oblique, draft", g_dbl, "mip", True),
                  ("20 mm MIP, double oblique, columns dominant", g_cols, "mip", False)]
    points_of: dict[int, SlabPoints] = {}
    for label, grid, how, draft in slab_cases:
        points = points_of.setdefault(id(grid), SlabPoints(geometry, grid, 20.0))
        plane = mpr.reformat(volume, grid, 20.0, how, draft=draft)
        if draft:
            full = mpr.reformat(volume, grid, 20.0, how)
            both = plane.valid & full.valid
            err = np.abs(plane.pixels.astype(np.float64) - full.pixels)[both]
            print(f"{label}: half resolution (Plane.draft {plane.draft}); vs the full slab: |stored "
                  f"diff| median {np.median(err):.0f}, 99th percentile {np.percentile(err, 99):.0f}; "
                  f"pixels inside {both.sum() / full.valid.sum():.3f} of the full slab's")
        else:
            ref = scipy_slab(data, points, how)
            inside = points.any & (plane.valid if plane.valid is not None else True)
            err = np.abs(plane.pixels.astype(np.float64) - ref)[inside]
            print(f"{label}: kernel {slab.kernel(data, slab.lattice(geometry, grid), 20.0)}, "
                  f"{points.count} samples per pixel at most ({points.spacing_mm:.2f} mm apart); vs "
                  f"map_coordinates on the same points: |stored diff| 99.9th percentile "
                  f"{np.percentile(err, 99.9):.2f}, max {err.max():.2f}")

        def mine(grid=grid, how=how, draft=draft):
            return mpr.render_plane(mpr.reformat(volume, grid, 20.0, how, draft=draft), window, renderer)

        contestants = {"ours": mine}
        contestants["previous"] = lambda grid=grid, how=how: renderer.render(
            previous_slab(volume, grid, 20.0, how), meta, window)
        contestants["scipy"] = lambda p=points, how=how: renderer.render(
            as_stored(scipy_slab(data, p, how)), meta, window)
        if how == "mip" and not draft and grid is g_obl:
            contestants["numpy"] = lambda p=points: renderer.render(
                as_stored(numpy_slab(data, p, "mip")), meta, window)
        if image is not None:
            contestants["sitk"] = lambda grid=grid, p=points, how=how: renderer.render(
                as_stored(sitk_slab(sitk, image, grid, p, how)), meta, window)
        r = interleaved(contestants, args.repeat, slow, max(3, args.repeat // 8))
        cpu = dict(CPU)
        names = {"previous": "medviewer before (trilinear plane / 0.7 mm)",
                 "sitk": "SimpleITK resample of the slab + max",
                 "scipy": "scipy map_coordinates, same points",
                 "numpy": "numpy trilinear, same points"}
        for key in ("previous", "sitk", "scipy", "numpy"):
            if key in r:
                results.append((label, r["ours"], names[key], r[key], "<= 30"))
        cpu_rows.append((label, cpu["ours"], cpu.get("sitk", cpu["scipy"])))

    print(f"\n{'measure':<44}{'medviewer ms':>16}   {'baseline':<44}{'ms':>18}{'ratio':>8}  target ms")
    for label, (med, lo), base_label, base, target in results:
        if base is None:
            print(f"{label:<44}{med:>8.2f} ({lo:.2f})   {base_label:<44}{'':>18}{'':>8}  {target}")
            continue
        print(f"{label:<44}{med:>8.2f} ({lo:.2f})   {base_label:<44}{base[0]:>9.2f} ({base[1]:.2f})"
              f"{med / base[0]:>8.3f}  {target}")
    print("(median (min) of interleaved runs; ratio = medviewer / baseline median, < 1 is faster)")
    print(f"\n{'process CPU ms, min (all threads)':<44}{'medviewer':>10}{'baseline':>10}")
    for label, ours_cpu, base_cpu in cpu_rows:
        print(f"{label:<44}{ours_cpu:>10.2f}{base_cpu:>10.2f}")
    print(f"load average (1 / 5 / 15 min): at the start {LOAD0[0]:.1f} / {LOAD0[1]:.1f} / {LOAD0[2]:.1f}, "
          f"at the end {os.getloadavg()[0]:.1f} / {os.getloadavg()[1]:.1f} / {os.getloadavg()[2]:.1f} "
          f"on {os.cpu_count()} cores")

    if not args.no_memory:
        with tempfile.TemporaryDirectory(prefix="bench-mpr-") as tmp:
            write_series(Path(tmp), n, size)
            child = subprocess.run([sys.executable, __file__, "--memory-child", tmp],
                                   capture_output=True, text=True, check=True)
        mem = json.loads(child.stdout.strip().splitlines()[-1])
        delta = mem["built_rss"] - mem["cached_rss"]
        print(f"\nmemory: {mem['n']} cached slices, RSS {mem['cached_rss'] / 2**20:.0f} MiB; after "
              f"building the volume {mem['built_rss'] / 2**20:.0f} MiB: +{delta / 2**20:.1f} MiB = "
              f"{delta / mem['raw']:.3f}x the raw {mem['raw'] / 2**20:.0f} MiB (target <= 0.1x); "
              f"store serves views of the volume: {mem['views']}; store holds "
              f"{mem['store_bytes'] / 2**20:.0f} MiB; build from cache {mem['build_s']:.2f} s, "
              f"from files {mem['cold_build_s']:.2f} s")


if __name__ == "__main__":
    main()
