"""MPR in the window: ms per plane of the GUI path, and the memory of the volume.

    python bench/bench_mpr_gui.py [--slices 400] [--size 512] [--moves 40] [--keep DIR]

Writes a CT series of `--slices` x `--size`^2 int16 slices (bench_mpr.phantom: body,
lungs, vessels, ribs; 0.7 mm pixels, 1 mm slices) as DICOM files, opens it in the
medviewer window (offscreen Qt), scrolls every slice once (so the slice cache holds
them, as after reading the stack) and switches to the MPR layout:

  memory     RSS growth of building the volume (on the worker) with every slice
             cached, against the raw pixel bytes (target <= 0.1x); before it, the
             RSS the compiled oblique-plane kernels add once per process
  GUI path   the crosshair moved `--moves` times as a drag in the axial view would
             (coronal and sagittal planes change), scrolled in the axial view, and
             moved with the crosshair turned 30 deg (oblique planes) and then 20 deg
             more in the sagittal view (double-oblique planes): the time from
             the state change until every view has repainted (MprView: reformat,
             window, QImage, painting with crosshair, letters, scale bar and text),
             per plane that changed
  baseline   the same planes through the core alone in the same run
             (viewer.display.mpr.reformat + render_plane, no Qt): the ratio is what
             the GUI adds

Medians and minima of the runs are printed, wall time and process CPU time (the shared
machine is noisy; CPU time leaves out the waits for a core).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def write_series(folder: Path, slices: int, size: int) -> None:
    import pydicom

    from bench_mpr import PIXEL_MM, SLICE_MM, phantom
    from medviewer.viewer.io.demo import slice_header

    data = phantom(slices, size)
    uid = pydicom.uid.generate_uid()
    half = PIXEL_MM * (size - 1) / 2
    for k in range(slices):
        ds = slice_header(k, SLICE_MM * (slices / 2 - k))
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
        ds.SeriesInstanceUID = uid
        ds.InstanceNumber = k + 1
        ds.Rows = ds.Columns = size
        ds.PixelSpacing = [PIXEL_MM, PIXEL_MM]
        ds.SliceThickness = SLICE_MM
        ds.ImagePositionPatient = [-half, -half, SLICE_MM * (slices / 2 - k)]
        ds.PixelData = data[k].tobytes()
        ds.save_as(folder / f"IM{k:04d}.dcm", enforce_file_format=True)


def series_dtype(window, series) -> np.dtype:
    """The stored dtype of the series' pixels (as the volume will hold them)."""
    return np.asarray(window.pixels.get(series.items[0])).dtype


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slices", type=int, default=400)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--moves", type=int, default=40)
    ap.add_argument("--keep", help="folder for the series (reused when it holds one)")
    args = ap.parse_args()

    import psutil
    from PySide6.QtWidgets import QApplication

    from medviewer.viewer.display.mpr import reformat, render_plane
    from medviewer.viewer.ui.settings import Settings
    from medviewer.viewer.ui.window import MainWindow

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-mpr-gui-"))
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("IM*.dcm"))) != args.slices:
        t0 = time.perf_counter()
        write_series(folder, args.slices, args.size)
        print(f"wrote {args.slices} slices {args.size}x{args.size} in {time.perf_counter() - t0:.1f} s")
    app = QApplication.instance() or QApplication([])
    proc = psutil.Process()
    w = MainWindow(settings=Settings(tempfile.mkdtemp(prefix="bench-settings-")))
    w.resize(1600, 1000)
    w.show()

    def wait(until, timeout=600.0):
        t0 = time.perf_counter()
        while not until():
            app.processEvents()
            time.sleep(0.002)
            if time.perf_counter() - t0 > timeout:
                raise SystemExit("timed out")

    w.open_path(folder)
    wait(lambda: w.scan_result is not None and w.scan_result.complete and not w.is_scanning())
    series = w.state.series
    for i in range(len(series.items)):          # read the stack once: every slice cached
        w.state.set_slice(i)
        w.pixels.get(series.items[i])
    w.state.set_slice(len(series.items) // 2)
    app.processEvents()
    gc.collect()
    # the compiled oblique kernels (numba + LLVM, loaded once per process whatever the
    # volume) are measured on their own, so that the next figure is the volume's
    from medviewer.viewer.display import jit

    before_kernels = proc.memory_info().rss
    t0 = time.perf_counter()
    jit.warm(series_dtype(w, series))
    kernels_s = time.perf_counter() - t0
    gc.collect()
    cached_rss = proc.memory_info().rss
    print(f"compiled MPR kernels (numba, from its cache when warm): RSS +"
          f"{(cached_rss - before_kernels) / 2**20:.1f} MiB once per process, {kernels_s:.2f} s")
    mpr = w.reading.mpr
    wait(lambda: w.actions_by_name["layout_mpr"].isEnabled())
    t0 = time.perf_counter()
    w.actions_by_name["layout_mpr"].trigger()
    wait(lambda: mpr.state.volume is not None and all(v.plane is not None for v in mpr.views.values()))
    build_s = time.perf_counter() - t0
    app.processEvents()
    gc.collect()
    built_rss = proc.memory_info().rss
    vol = mpr.state.volume
    raw = vol.nbytes
    print(f"volume {vol.data.shape} {vol.data.dtype} {raw / 2**20:.0f} MiB built in {build_s:.2f} s; "
          f"RSS +{(built_rss - cached_rss) / 2**20:.1f} MiB over the cached slices = "
          f"{(built_rss - cached_rss) / raw:.3f}x the raw bytes (target <= 0.1x)")

    views = mpr.views
    state = mpr.state
    geo = vol.geometry
    centre = np.asarray(geo.center())

    def gui_step(change) -> tuple[float, float, list]:
        before = {k: v.plane.grid for k, v in views.items()}
        c, t = time.process_time(), time.perf_counter()
        change()
        for v in views.values():
            v.repaint()
        dt, dc = time.perf_counter() - t, time.process_time() - c
        changed = [k for k, v in views.items() if v.plane.grid != before[k]]
        return dt, dc, [state.grid(k) for k in changed]

    def core(grids) -> tuple[float, float]:
        c, t = time.process_time(), time.perf_counter()
        for g in grids:
            render_plane(reformat(vol, g), views["axial"].window())
        return time.perf_counter() - t, time.process_time() - c

    def run(name: str, changes) -> None:
        gui, base, gui_cpu, base_cpu = [], [], [], []
        for change in changes:
            dt, dc, grids = gui_step(change)
            if not grids:
                continue
            n = len(grids)
            bt, bc = core(grids)
            gui.append(dt * 1e3 / n)
            gui_cpu.append(dc * 1e3 / n)
            base.append(bt * 1e3 / n)
            base_cpu.append(bc * 1e3 / n)
        mg, mb = statistics.median(gui), statistics.median(base)
        print(f"{name:44s} GUI {mg:7.2f} ms/plane (min {min(gui):6.2f}, CPU min {min(gui_cpu):6.2f})   "
              f"core {mb:7.2f} (min {min(base):6.2f}, CPU min {min(base_cpu):6.2f})   "
              f"GUI/core {mg / mb:4.2f} (min {min(gui) / min(base):4.2f})   n={len(gui)}")

    span = 0.25 * np.ptp(np.asarray(geo.corners()), axis=0)
    path = [centre + (t - 0.5) * span * np.array([1.0, 1.0, 0.0]) for t in np.linspace(0, 1, args.moves)]
    run("drag in the axial view (coronal + sagittal)", [lambda p=p: state.move_to(p) for p in path])
    run("scroll the axial view (axial)", [lambda: state.scroll("axial", 1) for _ in range(args.moves)])
    state.rotate("axial", math.radians(30))
    app.processEvents()
    run("drag, crosshair turned 30 deg (oblique)", [lambda p=p: state.move_to(p) for p in path])
    state.rotate("sagittal", math.radians(20))
    app.processEvents()
    run("drag, turned 30 + 20 deg (double oblique)", [lambda p=p: state.move_to(p) for p in path])
    w.shutdown()


if __name__ == "__main__":
    main()
