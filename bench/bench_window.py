"""Re-windowing one 512x512 int16 CT frame: medviewer Renderer vs pydicom.

Run: python bench/bench_window.py [--repeat N] [--block B]

Each iteration uses a new window (dragging the window): LINEAR windows over a
linear rescale take the table-free OpenCV path, other VOI functions rebuild the
stored-value -> grey lookup table every time.  The baseline is pydicom's
apply_modality_lut + apply_voi_lut followed by the linear map to 0..255 that a
viewer needs, measured in the same run, interleaved.  Besides wall time the
process CPU time is reported: on a shared machine other processes' load
stretches wall times (the baseline's large temporaries most), CPU time much less.
Targets (issue 2): <= 2 ms per frame and >= 10x faster than the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medviewer.viewer.display import Renderer, Window, meta_from_dataset  # noqa: E402


def ct_frame(size: int = 512, seed: int = 0) -> tuple[np.ndarray, Dataset]:
    """A phantom-like int16 CT slice (air, body, bone) with rescale -1024."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - size / 2, xx - size / 2) / (size / 2)
    hu = np.where(r < 0.85, 40.0, -1000.0)
    hu = np.where((r > 0.7) & (r < 0.85), 700.0, hu)
    hu += rng.normal(0, 15, hu.shape)
    stored = np.clip(np.rint(hu + 1024), -2000, 4095).astype(np.int16)
    ds = Dataset()
    ds.Rows = ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope = 1
    ds.RescaleIntercept = -1024
    ds.Modality = "CT"
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    return stored, ds


def time_interleaved(funcs: dict[str, object], repeat: int, block: int = 20
                     ) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall time and median process CPU time (ms) of each `func(i)`.

    The methods take turns in blocks of `block` calls, so that load from other
    processes hits all of them alike while each runs as it does in use, one
    window after another on a frame in cache (call by call interleaving let
    the baseline's large temporaries evict the frame before every call of ours).
    """
    for func in funcs.values():
        func(-1)   # warm-up
    wall: dict[str, list[float]] = {name: [] for name in funcs}
    cpu: dict[str, list[float]] = {name: [] for name in funcs}
    for start in range(0, repeat, block):
        for name, func in funcs.items():
            for i in range(start, min(start + block, repeat)):
                c0, t0 = time.process_time(), time.perf_counter()
                func(i)
                wall[name].append((time.perf_counter() - t0) * 1000.0)
                cpu[name].append((time.process_time() - c0) * 1000.0)
    return ({name: statistics.median(v) for name, v in wall.items()},
            {name: statistics.median(v) for name, v in cpu.items()})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--block", type=int, default=20,
                        help="calls per turn of each method (1: call by call, cold frame for ours)")
    args = parser.parse_args(argv)

    stored, ds = ct_frame()
    meta = meta_from_dataset(ds)
    renderer = Renderer()

    def windows(i: int) -> tuple[float, float]:
        return 40.0 + (i % 97), 400.0 + 3 * (i % 89)

    def ours(i: int) -> np.ndarray:
        c, w = windows(i)
        return renderer.render(stored, meta, Window(c, w))

    def baseline(i: int) -> np.ndarray:
        c, w = windows(i)
        ds.WindowCenter, ds.WindowWidth = c, w
        out = apply_voi_lut(apply_modality_lut(stored, ds), ds)
        lo, hi = -32768 - 1024, 32767 - 1024   # pydicom's output range here
        return np.rint((out - lo) * (255.0 / (hi - lo))).astype(np.uint8)

    def cached(i: int) -> np.ndarray:
        return renderer.render(stored, meta, Window(40.0, 400.0))

    builds0 = renderer.builds
    t, c = time_interleaved({"base": baseline, "ours": ours, "cached": cached}, args.repeat,
                            max(1, args.block))
    rebuilt = renderer.builds - builds0
    diff = np.abs(ours(3).astype(int) - baseline(3).astype(int)).max()

    print(f"re-window 512x512 int16 CT frame (median of {args.repeat} runs, alternating in blocks of {args.block}; "
          f"load average {os.getloadavg()[0]:.1f})")
    print(f"{'method':<48}{'wall ms':>9}{'CPU ms':>9}")
    print(f"{'pydicom apply_modality_lut + apply_voi_lut':<48}{t['base']:>9.3f}{c['base']:>9.3f}")
    print(f"{'Renderer, new window each time':<48}{t['ours']:>9.3f}{c['ours']:>9.3f}")
    print(f"{'Renderer, same window':<48}{t['cached']:>9.3f}{c['cached']:>9.3f}")
    print(f"speed-up vs pydicom (wall): {t['base'] / t['ours']:.1f}x new window, "
          f"{t['base'] / t['cached']:.1f}x same window (targets: >= 10x and <= 2 ms)")
    print(f"speed-up vs pydicom (CPU):  {c['base'] / max(c['ours'], 1e-9):.1f}x new window, "
          f"{c['base'] / max(c['cached'], 1e-9):.1f}x same window")
    print(f"tables built while timing: {rebuilt} ({args.repeat} new windows + warm-up); "
          f"max grey difference vs pydicom: {diff}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
