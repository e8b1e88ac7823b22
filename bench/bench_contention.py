"""torch under CPU contention: medviewer's thread policy (engine.threads) vs torch's defaults.

Run: python bench/bench_contention.py [--repeat N] [--cases quiet,outside,app,gui]

Four cases; every configuration runs in a fresh process, since OpenMP reads its
wait policy when torch is first imported:

* quiet: the demo model's forward pass over 16 images at 96 px, no load of ours
  (what passive waiting costs when nothing competes);
* outside: the demo model's forward pass over 16 images at 96 px while CPU
  burners (one per CPU this process may use) spin in other processes, as on a
  busy desktop or a shared server;
* app: `predict_series` over the demo CT phantom's 48 slices stored as JPEG 2000
  (cold cache) through one shared PixelStore whose two prefetch threads decode
  the same series at the same time, as when the viewer analyzes a series while
  its slices load;
* gui: the viewer itself (offscreen): the same series opened in the main
  window, the demo model loaded by the AI panel, "Analyze series" timed from the
  click to the panel's result while the canvas steps through the slices every
  20 ms (decoding on the GUI's worker, prefetching neighbours on the store's two
  threads), cold cache.

Configurations: `default` = torch's defaults (MEDVIEWER_THREAD_POLICY=off:
OpenMP threads spin while idle, one per core); `policy` = passive OpenMP waits
and one thread per CPU of the budget (the CLI); `viewer` = the policy with one
CPU left to the GUI thread (viewer.ui.ai; in the gui case `policy` forces the
full budget with MEDVIEWER_TORCH_THREADS).  Prints median times and the ratio
default / policy (higher: the policy is faster).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CONFIGS = ("default", "policy", "viewer")


def _burn(stop: "mp.synchronize.Event") -> None:
    x = 0
    while not stop.is_set():
        for _ in range(100000):
            x += 1


def _series_folder(folder: Path) -> Path:
    """The demo CT phantom with its pixel data compressed to JPEG 2000 lossless."""
    import pydicom
    from pydicom.uid import JPEG2000Lossless

    from medviewer.viewer.io.demo import make_demo_study

    src = make_demo_study(folder / "src")
    out = folder / "j2k"
    out.mkdir()
    for path in sorted(src.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        if "PixelData" not in ds:
            continue
        ds.compress(JPEG2000Lossless)
        ds.save_as(out / path.name, enforce_file_format=True)
    return out


def _gui_child(repeat: int, folder: str) -> dict:
    """Analyze series in the real main window (offscreen) while the canvas scrolls."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from medviewer.viewer.resources import resource
    from medviewer.viewer.ui.ai import install
    from medviewer.viewer.ui.settings import Settings
    from medviewer.viewer.ui.window import MainWindow

    def wait(cond, timeout: float = 600.0) -> None:
        end = time.monotonic() + timeout
        while not cond():
            if time.monotonic() > end:
                raise TimeoutError("the viewer did not finish in time")
            app.processEvents()
            time.sleep(0.002)

    with tempfile.TemporaryDirectory() as settings_dir:
        w = MainWindow(settings=Settings(settings_dir))
        w.resize(1000, 700)
        w.show()
        ai = install(w)
        w.open_path(folder)
        wait(lambda: w.scan_result is not None and w.scan_result.complete and not w.is_scanning())
        ai.load_model(str(resource("models", "demo.safetensors")))
        wait(lambda: ai.model is not None)
        import torch

        done: list[float] = []
        ai.signals.sig_finished.connect(lambda gen, kind, error, secs: done.append(secs)
                                        if kind == "series" and error is None else None)
        scroll = QTimer()
        scroll.setInterval(20)
        scroll.timeout.connect(lambda: w.state.set_slice((w.state.index + 1) % w.state.count()))
        times = []
        for _ in range(repeat + 1):
            w.pixels.clear()
            w.state.set_slice(0)
            done.clear()
            scroll.start()
            t0 = time.perf_counter()
            ai.analyze_series()
            wait(lambda: bool(done))
            times.append((time.perf_counter() - t0) * 1000)
            scroll.stop()
        info = {"threads": torch.get_num_threads(), "wait": os.environ.get("OMP_WAIT_POLICY", "(spin)")}
        ai.shutdown()
        w.shutdown()
    times = times[1:]  # the first run warms up
    info.update(median=statistics.median(times), best=min(times), worst=max(times))
    return info


def child(case: str, config: str, repeat: int, folder: str) -> dict:
    """One configuration in this (fresh) process; returns timings in ms."""
    if case == "gui":
        return _gui_child(repeat, folder)
    from medviewer import engine
    from medviewer.engine import threads

    import torch

    if config != "default":
        threads.apply(reserve=1 if config == "viewer" else 0)
    model = engine.load_model("demo", device="cpu")
    info = {"threads": torch.get_num_threads(), "wait": os.environ.get("OMP_WAIT_POLICY", "(spin)")}
    times: list[float] = []
    if case in ("quiet", "outside"):
        x = torch.randn(16, 3, 96, 96)
        with torch.inference_mode():
            for _ in range(3):
                model.module(x)
            for _ in range(repeat):
                t0 = time.perf_counter()
                model.module(x)
                times.append((time.perf_counter() - t0) * 1000)
    else:
        from medviewer.engine.series import predict_series
        from medviewer.viewer.io.pixels import PixelStore
        from medviewer.viewer.io.scan import scan

        series = scan(folder).all_series()[0]
        store = PixelStore(workers=2)
        store.add_headers(series.headers)
        shape = (series.rows, series.columns)
        predict_series(model, store, series.items[:4], shape)  # warm-up
        for _ in range(repeat):
            store.clear()
            t0 = time.perf_counter()
            store.prefetch(series.items)   # the viewer loading the series...
            pred = predict_series(model, store, series.items, shape)  # ...while it is analyzed
            times.append((time.perf_counter() - t0) * 1000)
            assert not pred.failed, pred.failed
            store.wait_idle()
        store.close()
    info.update(median=statistics.median(times), best=min(times), worst=max(times))
    return info


def run_config(case: str, config: str, repeat: int, folder: str, burners: int) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop("OMP_WAIT_POLICY", None)
    env.pop("OMP_NUM_THREADS", None)
    env.pop("MEDVIEWER_TORCH_THREADS", None)
    if config == "default":
        env["MEDVIEWER_THREAD_POLICY"] = "off"
    elif config == "policy" and case == "gui":
        from medviewer.engine.threads import cpu_budget

        env["MEDVIEWER_TORCH_THREADS"] = str(cpu_budget())
    stop = mp.Event()
    procs = [mp.Process(target=_burn, args=(stop,), daemon=True) for _ in range(burners)]
    for p in procs:
        p.start()
    try:
        out = subprocess.run([sys.executable, __file__, "--child", case, config, "--repeat", str(repeat),
                              "--folder", folder], env=env, capture_output=True, text=True, timeout=1800)
    finally:
        stop.set()
        for p in procs:
            p.join(5)
    if out.returncode != 0:
        raise SystemExit(f"{case}/{config} failed:\n{out.stderr[-20000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--cases", default="quiet,outside,app")
    ap.add_argument("--child", nargs=2, metavar=("CASE", "CONFIG"), help=argparse.SUPPRESS)
    ap.add_argument("--folder", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child, args.repeat, args.folder)))
        return 0

    from medviewer.engine.threads import cpu_budget

    budget = cpu_budget()
    print(f"CPU budget {budget} | load average before: {os.getloadavg()[0]:.1f} | repeat {args.repeat}")
    with tempfile.TemporaryDirectory(prefix="bench-contention-") as tmp:
        folder = str(_series_folder(Path(tmp))) if {"app", "gui"} & set(args.cases.split(",")) else ""
        for case in args.cases.split(","):
            burners = budget if case == "outside" else 0
            what = {"quiet": "demo model forward, 16 x 96 px, no CPU burner",
                    "outside": f"demo model forward, 16 x 96 px, {burners} CPU burner(s) outside",
                    "app": "predict_series, 48 JPEG 2000 slices, 2 prefetch threads decoding",
                    "gui": "viewer: Analyze series, 48 JPEG 2000 slices, canvas scrolling"}[case]
            print(f"\n{what}")
            print(f"{'config':<10}{'threads':>8}{'wait':>10}{'median ms':>12}{'best':>9}{'worst':>9}")
            res = {}
            for config in CONFIGS:
                r = res[config] = run_config(case, config, args.repeat, folder, burners)
                print(f"{config:<10}{r['threads']:>8}{r['wait']:>10}{r['median']:>12.1f}{r['best']:>9.1f}"
                      f"{r['worst']:>9.1f}")
            print(f"ratio default / policy: {res['default']['median'] / res['policy']['median']:.1f}x, "
                  f"default / viewer: {res['default']['median'] / res['viewer']['median']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
