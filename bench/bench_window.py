"""Re-windowing one 512x512 int16 CT frame: medviewer Renderer vs pydicom.

Run: python bench/bench_window.py [--repeat N]

Each iteration uses a new window, so the Renderer rebuilds its stored-value ->
grey lookup table every time (the worst case for dragging the window).  The
baseline is pydicom's apply_modality_lut + apply_voi_lut followed by the
linear map to 0..255 that a viewer needs, measured in the same run.
Targets (issue 2): <= 2 ms per frame and >= 10x faster than the baseline.
"""

from __future__ import annotations

import argparse
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


def time_interleaved(funcs: dict[str, object], repeat: int) -> dict[str, float]:
    """Median wall time (ms) of each `func(i)`, run in turn in every iteration so
    that load from other processes hits all of them alike."""
    for func in funcs.values():
        func(-1)   # warm-up
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for i in range(repeat):
        for name, func in funcs.items():
            t0 = time.perf_counter()
            func(i)
            times[name].append((time.perf_counter() - t0) * 1000.0)
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
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
    t = time_interleaved({"base": baseline, "ours": ours, "cached": cached}, args.repeat)
    rebuilt = renderer.builds - builds0
    diff = np.abs(ours(3).astype(int) - baseline(3).astype(int)).max()

    print(f"re-window 512x512 int16 CT frame (median of {args.repeat} interleaved runs)")
    print(f"{'method':<48}{'ms':>9}")
    print(f"{'pydicom apply_modality_lut + apply_voi_lut':<48}{t['base']:>9.3f}")
    print(f"{'Renderer, new window each time':<48}{t['ours']:>9.3f}")
    print(f"{'Renderer, same window':<48}{t['cached']:>9.3f}")
    print(f"speed-up vs pydicom: {t['base'] / t['ours']:.1f}x new window, "
          f"{t['base'] / t['cached']:.1f}x same window (targets: >= 10x and <= 2 ms)")
    print(f"tables built while timing: {rebuilt} ({args.repeat} new windows + warm-up); "
          f"max grey difference vs pydicom: {diff}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
