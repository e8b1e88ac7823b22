"""Frozen-backbone training with the feature cache vs the same run without it.

Both runs are engine.train.loop.fit with ``--freeze backbone`` on the same in-memory
tensors, seed, optimiser and batch size, in this process; the only difference is
``--feature-cache`` / ``--no-feature-cache``.  The uncached run computes the
backbone for every training and validation image every epoch; the cached one
computes it once and trains the head on the stored features.  Prints both wall
times (and CPU-seconds of this process, steadier on a shared machine), the ratio
(target >= 5x for 10 epochs of resnet18 at 224 px on 2 CPU cores) and the largest
difference between the two runs' head weights (they should agree to float rounding).

    python bench/bench_feature_cache.py [--arch resnet18] [--size 224] [--n 160] [--val 40] [--epochs 10]
                                        [--batch 32] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medviewer.engine import registry  # noqa: E402
from medviewer.engine.train.cli import parse  # noqa: E402
from medviewer.engine.train.loop import fit  # noqa: E402


def one_run(a: argparse.Namespace, x: torch.Tensor, y: torch.Tensor, cached: bool) -> tuple[float, float, dict]:
    args = parse(["--data", "unused", "--arch", a.arch, "--image-size", str(a.size), "--epochs", str(a.epochs),
                  "--batch-size", str(a.batch), "--device", a.device, "--freeze", "backbone", "--seed", "0",
                  "--feature-cache" if cached else "--no-feature-cache"])
    idx = list(range(len(y)))
    train, val = idx[:a.n], idx[a.n:]
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    res = fit(args, x, y, train, val, int(y.max()) + 1, None, log=lambda m: None)
    if a.device.startswith("cuda"):
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert res.extra.get("feature_cache", "").startswith("on" if cached else "off"), res.extra
    prefix = registry.head_path(a.arch) + "."
    head = {k: v.detach().float().cpu().clone() for k, v in res.model.state_dict().items() if k.startswith(prefix)}
    return wall, cpu, head


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="resnet18")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--n", type=int, default=160, help="training images")
    p.add_argument("--val", type=int, default=40, help="validation images")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    g = torch.Generator().manual_seed(0)
    total = a.n + a.val
    x = torch.randn(total, 3, a.size, a.size, generator=g).half()     # the trainer's in-memory format
    y = torch.randint(0, 4, (total,), generator=g)
    print(f"{a.device}: {a.arch} {a.size}px, {a.n} train + {a.val} val images, {a.epochs} epochs, batch {a.batch}, "
          f"--freeze backbone, torch threads {torch.get_num_threads()}")
    w_off, c_off, h_off = one_run(a, x, y, cached=False)
    w_on, c_on, h_on = one_run(a, x, y, cached=True)
    diff = max(float((h_on[k] - h_off[k]).abs().max()) for k in h_off)
    print(f"  uncached (--no-feature-cache): {w_off:8.1f} s wall  {c_off:8.1f} CPU-s")
    print(f"  feature cache                : {w_on:8.1f} s wall  {c_on:8.1f} CPU-s")
    print(f"  speed-up = {w_off / w_on:.1f}x wall, {c_off / c_on:.1f}x CPU  (target >= 5x)")
    print(f"  max |head weight difference| = {diff:.2e}")


if __name__ == "__main__":
    main()
