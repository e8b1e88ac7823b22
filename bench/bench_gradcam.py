"""Grad-CAM over a series: engine.gradcam (batched, activation-only gradients) vs the
`grad-cam` package (pytorch-grad-cam) on the same model and the same input tensors.

Prints times, the speed-up and the largest difference between the maps
(target: >= 1.5x faster, maps equal within 1e-4).

    python bench/bench_gradcam.py [--arch resnet18] [--size 224] [--n 300] [--batch 16]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from medviewer.engine.cam import CAM_METHODS


def main() -> None:
    import torch
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus

    from medviewer.engine.cam import cam_batch
    from medviewer.engine.registry import build_model, default_cam_layer

    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--method", choices=tuple(CAM_METHODS), default="gradcam")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--single-n", type=int, default=48, help="slices for the package's one-by-one run")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1 keeps timings stable on a shared machine)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    dev = torch.device(args.device)
    model = build_model(args.arch, 2).eval().to(dev)
    layer = default_cam_layer(args.arch)
    x = torch.randn(args.n, 3, args.size, args.size).to(dev)
    spans = [(a, min(a + args.batch, args.n)) for a in range(0, args.n, args.batch)]
    ref_cls = GradCAM if args.method == "gradcam" else GradCAMPlusPlus

    def mine() -> np.ndarray:
        return np.concatenate([cam_batch(model, layer, x[a:b], None, args.method)[0] for a, b in spans])

    def package(batch_spans) -> np.ndarray:
        with ref_cls(model=model, target_layers=[model.get_submodule(layer)]) as cam:
            return np.concatenate([cam(input_tensor=x[a:b], targets=None) for a, b in batch_spans])

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    mine()  # warm-up
    package(spans[:2])
    sync()
    t0 = time.perf_counter()
    m = mine()
    sync()
    t_mine = time.perf_counter() - t0
    t0 = time.perf_counter()
    p = package(spans)
    sync()
    t_pkg = time.perf_counter() - t0
    k = min(args.single_n, args.n)
    t0 = time.perf_counter()
    p1 = package([(i, i + 1) for i in range(k)])
    t_pkg1 = (time.perf_counter() - t0) * args.n / k
    diff = float(np.abs(m - p).max())
    diff1 = float(np.abs(m[:k] - p1).max())
    print(f"device {dev} | torch threads {torch.get_num_threads()} | {args.arch} {args.size}px | {args.n} slices | "
          f"{args.method} | batch {args.batch} | layer {layer}")
    print(f"engine.gradcam batched          : {t_mine:8.3f} s  {args.n / t_mine:7.1f} img/s")
    print(f"grad-cam package, same batches  : {t_pkg:8.3f} s  {args.n / t_pkg:7.1f} img/s  "
          f"speed-up {t_pkg / t_mine:.2f}x  max |diff| {diff:.2e}")
    print(f"grad-cam package, one by one    : {t_pkg1:8.3f} s  (extrapolated from {k})  "
          f"speed-up {t_pkg1 / t_mine:.2f}x  max |diff| {diff1:.2e}")


if __name__ == "__main__":
    main()
