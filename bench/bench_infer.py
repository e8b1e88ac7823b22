"""Inference throughput: `LoadedModel.predict` over a 300-slice series vs the bare forward.

Baseline (same run, same model): `module(x)` under inference_mode on ready,
preprocessed tensors in the same batch size (host tensors, copied per batch as
a plain loop does; on CUDA also the stricter forward alone on tensors already
in GPU memory).  predict starts from stored CT
pixels (int16 + ImageMeta with rescale), so it includes the whole shared
preprocessing path (modality LUT, window, resize, normalise) overlapped with
the forward pass.  Target: ratio >= 0.85.

    python bench/bench_infer.py [--arch resnet18] [--size 224] [--n 300] [--batch 16] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from medviewer import engine


def make_series(n: int, rows: int = 512, cols: int = 512, seed: int = 0):
    from medviewer.viewer.display import ImageMeta

    rng = np.random.default_rng(seed)
    r, c = np.mgrid[0:rows, 0:cols]
    body = ((r - rows / 2) ** 2 / (0.42 * rows) ** 2 + (c - cols / 2) ** 2 / (0.45 * cols) ** 2) < 1
    meta = ImageMeta(photometric="MONOCHROME2", bits_stored=16, pixel_representation=1, rescale_slope=1.0,
                     rescale_intercept=-1024.0, modality="CT", rows=rows, columns=cols, bits_allocated=16,
                     units="HU")
    out = []
    for k in range(n):
        img = np.where(body, 1024 + 40, 0).astype(np.int16)
        img = img + rng.normal(0, 20, (rows, cols)).astype(np.int16)
        out.append((img, meta))
    return out


def timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    import torch

    from medviewer.engine.card import ModelCard
    from medviewer.engine.device import prepare_input
    from medviewer.engine.modelfile import load_model, save_model
    from medviewer.engine.registry import build_model

    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1 keeps timings stable on a shared machine)")
    ap.add_argument("--no-pinned", action="store_true",
                    help="CUDA: copy from pageable memory (ablation of the pinned staging buffers)")
    args = ap.parse_args()
    if args.no_pinned:
        from medviewer.engine.preprocess_gpu import STAGING

        STAGING.max_bytes = 0
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.safetensors"
        card = ModelCard(name="bench", architecture=args.arch, classes=["normal", "lesion"],
                         input_size=args.size, window={"center": 40, "width": 400})
        save_model(path, build_model(args.arch, 2), card)
        model = load_model(path, device=args.device)
    series = make_series(args.n)
    ready, _ = model.preprocess_batch([p for p, _ in series], [m for _, m in series])
    dev = model.device

    from medviewer.engine.device import autocast

    def bare() -> None:  # same precision as predict (float16 autocast on CUDA) for a fair ratio
        with torch.inference_mode(), autocast(dev):
            for a in range(0, len(ready), args.batch):
                model.module(prepare_input(ready[a:a + args.batch], dev))
        if dev.type == "cuda":
            torch.cuda.synchronize()

    ready_dev = ready.to(dev) if dev.type == "cuda" else None

    def bare_resident() -> None:  # the forward alone: inputs already in GPU memory
        with torch.inference_mode(), autocast(dev):
            for a in range(0, len(ready_dev), args.batch):
                model.module(prepare_input(ready_dev[a:a + args.batch], dev))
        torch.cuda.synchronize()

    def via_predict() -> None:
        engine.predict(model, series, batch_size=args.batch)

    def via_predict_tensors() -> None:
        engine.predict(model, ready, batch_size=args.batch)

    def prep_only() -> None:
        for a in range(0, len(series), args.batch):
            chunk = series[a:a + args.batch]
            model.preprocess_batch([p for p, _ in chunk], [m for _, m in chunk])

    bare()  # warm-up (allocator, oneDNN / cuDNN primitives)
    via_predict()
    # interleaved repeats, best of each: a shared machine's load hits both sides alike
    t_bare = t_pred = t_tens = t_res = float("inf")
    for _ in range(args.repeats):
        t_bare = min(t_bare, timed(bare, 1))
        if ready_dev is not None:
            t_res = min(t_res, timed(bare_resident, 1))
        t_pred = min(t_pred, timed(via_predict, 1))
        t_tens = min(t_tens, timed(via_predict_tensors, 1))
    t_prep = timed(prep_only, 1)
    n = args.n
    print(f"device {dev} | torch threads {torch.get_num_threads()} | {args.arch} {args.size}px | "
          f"{n} slices 512x512 int16 | batch {args.batch}"
          + (" | pageable copies" if args.no_pinned else ""))
    print(f"bare module(x) on ready tensors : {t_bare:8.3f} s  {n / t_bare:8.1f} img/s")
    if ready_dev is not None:
        print(f"bare module(x), tensors on GPU  : {t_res:8.3f} s  {n / t_res:8.1f} img/s  "
              f"(predict(stored) / this: {t_res / t_pred:.3f})")
    print(f"predict(ready tensors)          : {t_tens:8.3f} s  {n / t_tens:8.1f} img/s  ratio {t_bare / t_tens:.3f}")
    print(f"predict(stored pixels + meta)   : {t_pred:8.3f} s  {n / t_pred:8.1f} img/s  ratio {t_bare / t_pred:.3f}")
    print(f"(preprocessing alone, serial    : {t_prep:8.3f} s  {n / t_prep:8.1f} img/s)")


if __name__ == "__main__":
    main()
