"""Repaint stress: the reading layouts painted many times in one process (offscreen).

    python bench/stress_repaint.py [--repaints 3000] [--no-reserve]

Opens the demo study and its prior (medviewer demo-study [--prior]) in the 2x2 layout
(corner text, orientation letters, badges, scale bars), repaints the four viewports
`--repaints` times (a slice step every 16), then the three MPR views `--repaints / 2`
times, synchronously (QWidget.repaint).  Prints "ok N repaints" and exits 0, or dies.
`--no-reserve` skips viewer.ui.qtcompat.protect_none: with shiboken6 6.12 on Python
3.11 the process then aborts with "Fatal Python error: none_dealloc" after a few
thousand void Qt calls.  Run it in a loop to count crashes:

    for i in $(seq 20); do python bench/stress_repaint.py; echo rc=$?; done
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYDICOM_DATA_OFFLINE", "1")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repaints", type=int, default=3000)
    ap.add_argument("--no-reserve", action="store_true", help="leave None's reference count alone")
    ap.add_argument("--data", help="folder for the demo studies (default: a temporary folder)")
    args = ap.parse_args()
    if args.no_reserve:
        import medviewer.viewer.ui.qtcompat as qtcompat
        qtcompat._state["checked"] = True            # the probe (and the reserve) skipped
    from PySide6.QtWidgets import QApplication

    app = QApplication(["stress_repaint"])
    from medviewer.viewer.io import demo
    from medviewer.viewer.ui.app import install_plugins
    from medviewer.viewer.ui.settings import Settings
    from medviewer.viewer.ui.window import MainWindow

    tmp = Path(tempfile.mkdtemp(prefix="medviewer-stress-"))
    data = Path(args.data) if args.data else tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    root, prior = demo.demo_root(data), demo.make_prior_study(data)
    w = MainWindow(settings=Settings(tmp / "settings"))
    install_plugins(w)
    w.resize(1400, 900)
    w.show()

    def wait(cond, timeout: float = 60.0) -> bool:
        t0 = time.time()
        while time.time() - t0 < timeout:
            app.processEvents()
            if cond():
                return True
            time.sleep(0.01)
        return False

    w.open_path(root)
    wait(lambda: not w.is_scanning() and w.scan_result is not None and w.scan_result.complete)
    wait(lambda: w.canvas.rendered is not None and not w.canvas.loading())
    w.reading.priors.open_prior(prior)
    wait(lambda: bool(w.session.priors))
    w.reading.layouts.set_layout("2x2")
    canvases = w.canvases()[:4]
    wait(lambda: all(c.rendered is not None for c in canvases), 20)
    t0, done = time.time(), 0
    for i in range(args.repaints):
        c = canvases[i % 4]
        if i % 16 == 0 and c.state.series is not None:
            c.state.set_slice((c.state.index + 1) % len(c.state.series.items))
        c.repaint()
        done += 1
        if i % 50 == 0:
            app.processEvents()
    ct = max(w.scan_result.all_series(), key=lambda s: len(s.items))
    w.reading.layouts.set_layout("1x1")
    w.session.viewports[0].set_series(ct)
    wait(lambda: w.actions_by_name["layout_mpr"].isEnabled(), 30)
    w.actions_by_name["layout_mpr"].trigger()
    mpr = w.reading.mpr
    wait(lambda: mpr.state.volume is not None and all(v.plane is not None for v in mpr.views.values()))
    views = list(mpr.views.values())
    for i in range(args.repaints // 2):
        views[i % 3].repaint()
        done += 1
        if i % 50 == 0:
            app.processEvents()
    print(f"ok {done} repaints in {time.time() - t0:.1f} s", flush=True)
    w.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
