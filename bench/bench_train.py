"""Training throughput: the trainer (engine.train.loop.fit) vs a bare PyTorch loop.

Both train the same architecture on the same in-memory tensors with the same
optimiser and batch size; rounds are interleaved and the median images/s of
each (and the best round of each, the usual estimator under interference) is compared in the same run (target: trainer >= 0.8 x bare, i.e. data
handling is not the bottleneck).  CPU always; CUDA too when available.  On a
shared machine wall-clock rates swing with other load, so images per CPU-second
of this process (time.process_time) are reported as well.

    python bench/bench_train.py [--arch mobilenet_v3_small] [--size 64] [--n 256] [--epochs 2] [--rounds 3] [--device all|cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from medviewer.engine.train.cli import parse
from medviewer.engine.train.loop import fit
from medviewer.engine.train.model import build


def bare_loop(arch: str, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, device: torch.device,
              seed: int) -> tuple[float, float]:
    """(images/s, images/CPU-s) of the simplest loop: shuffle, slice, forward, backward, step."""
    torch.manual_seed(seed)
    model = build(arch, int(y.max()) + 1).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    xd, yd = x.float().to(device), y.to(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(xd), device=device)
        for b in range(0, len(xd), batch):
            idx = perm[b:b + batch]
            loss = F.cross_entropy(model(xd[idx]), yd[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    n = epochs * len(xd)
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def trainer(arch: str, x: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, device: torch.device,
            seed: int) -> tuple[float, float]:
    """(images/s, images/CPU-s) of engine.train.loop.fit (no validation split, no checkpoint folder)."""
    args = parse(["--data", "unused", "--arch", arch, "--image-size", str(x.shape[-1]), "--epochs", str(epochs),
                  "--batch-size", str(batch), "--device", str(device), "--seed", str(seed), "--no-amp"])
    t0, c0 = time.perf_counter(), time.process_time()
    fit(args, x, y, list(range(len(y))), [], int(y.max()) + 1, None, log=lambda m: None)
    if device.type == "cuda":
        torch.cuda.synchronize()
    n = epochs * len(y)
    return n / (time.perf_counter() - t0), n / (time.process_time() - c0)


def run(device: torch.device, a: argparse.Namespace) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(a.n, 3, a.size, a.size, generator=g).half()     # the trainer's in-memory format
    y = torch.randint(0, 4, (a.n,), generator=g)
    trainer(a.arch, x[:a.batch * 2], y[:a.batch * 2], 1, a.batch, device, 0)   # warm-up
    t_rates, b_rates = [], []
    for r in range(a.rounds):
        b_rates.append(bare_loop(a.arch, x, y, a.epochs, a.batch, device, r))
        t_rates.append(trainer(a.arch, x, y, a.epochs, a.batch, device, r))
    print(f"{device}: {a.arch} {a.size}px n={a.n} batch={a.batch} epochs={a.epochs} rounds={a.rounds} "
          f"threads={torch.get_num_threads()}")
    for k, unit in ((0, "images/s"), (1, "images/CPU-s")):
        bb = statistics.median(v[k] for v in b_rates)
        tb = statistics.median(v[k] for v in t_rates)
        print(f"  bare loop : {bb:8.1f} {unit:<12} (rounds: {', '.join(f'{v[k]:.1f}' for v in b_rates)})")
        print(f"  trainer   : {tb:8.1f} {unit:<12} (rounds: {', '.join(f'{v[k]:.1f}' for v in t_rates)})")
        print(f"  ratio trainer/bare ({unit}) = {tb / bb:.3f} median, "
              f"{max(v[k] for v in t_rates) / max(v[k] for v in b_rates):.3f} best-of-rounds  (target >= 0.8)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="mobilenet_v3_small")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--device", choices=("all", "cpu", "cuda"), default="all",
                   help="all: CPU, then CUDA when available")
    a = p.parse_args()
    if a.device in ("all", "cpu"):
        run(torch.device("cpu"), a)
    if a.device == "cuda" or (a.device == "all" and torch.cuda.is_available()):
        run(torch.device("cuda"), a)


if __name__ == "__main__":
    main()
