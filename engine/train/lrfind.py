"""``--lr-find``: the learning-rate range test (Smith 2017, section 3.3), as fastai runs it.

The run's model, freeze mode, optimiser, class weights and augmentation are set up
as for training; then, over ``--lr-find-iters`` mini-batches of the training split,
the learning rate of every parameter group grows exponentially from LO to HI
(``--lr-find-range``, default 1e-7..10) while the loss is recorded, smoothed by an
exponential moving average with bias correction (beta 0.98, fastai's
``AvgSmoothLoss``).  The test stops early when the smoothed loss exceeds four
times its minimum.  Suggestions, on the curve without its first 10 % and last 5
points (fastai ``Learner.lr_find``):

* ``valley`` (fastai's default): the point half way (a third plus a sixth) along
  the longest stretch of decreasing loss - the suggested ``--lr``;
* ``steep``: where the loss falls fastest (most negative slope against log LR);
* ``minimum/10``: a tenth of the LR with the lowest loss.

Writes ``OUT/lr_find.png`` (loss against LR, log axis, suggestions marked) and
``OUT/lr_find.json``; no model file, no report.  Nothing is trained beyond the test.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from medviewer.engine.train import model as tmodel
from medviewer.engine.train.augment import augment_batch
from medviewer.engine.train.loop import class_weights, make_optimizer

BETA = 0.98
DIVERGE = 4.0


def valley(lrs: Sequence[float], losses: Sequence[float]) -> int:
    """Index half way into the longest run of decreasing loss (fastai ``valley``)."""
    n = len(losses)
    if n == 0:
        raise ValueError("no losses")
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return int(max_start + int(sections) + int(sections / 2))


def steep(lrs: Sequence[float], losses: Sequence[float]) -> int:
    """Index of the most negative slope of loss against log10(LR)."""
    if len(losses) < 2:
        return 0
    grads = np.gradient(np.asarray(losses, float), np.log10(np.asarray(lrs, float)))
    return int(np.argmin(grads))


def suggestions(lrs: Sequence[float], losses: Sequence[float]) -> dict[str, float]:
    num = len(lrs)
    lo, hi = num // 10, num - 5
    if hi - lo < 3:      # a very short test: use all of it
        lo, hi = 0, num
    lr_c, loss_c = list(lrs[lo:hi]), list(losses[lo:hi])
    return {"valley": float(lr_c[valley(lr_c, loss_c)]),
            "steep": float(lr_c[steep(lr_c, loss_c)]),
            "minimum/10": float(lr_c[int(np.argmin(loss_c))] / 10)}


def range_test(args: Any, x: torch.Tensor, y: torch.Tensor, train_idx: Sequence[int], num_classes: int,
               log: Callable[[str], None] = print, should_stop: Callable[[], bool] | None = None
               ) -> dict[str, Any]:
    """Run the test; {"lrs", "losses" (smoothed), "raw_losses", "suggestions", "suggested_lr", "stopped"}."""
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = tmodel.build(args.arch, num_classes, args.weights, args.dropout,
                         tmodel.parse_hidden(args.hidden), args.head_batchnorm).to(device)
    frozen = args.freeze in ("backbone", "staged")
    if frozen:   # the test covers the first phase of the recipe: the head alone
        tmodel.set_backbone_trainable(model, args.arch, False)
    backbone, head = tmodel.split_params(model, args.arch)
    opt = make_optimizer([{"params": backbone}, {"params": head}], args)
    tr = torch.as_tensor(list(train_idx), dtype=torch.long)
    w = class_weights(args.class_weights, y[tr], num_classes)
    criterion = nn.CrossEntropyLoss(weight=None if w is None else w.to(device))
    lo, hi = args.lr_find_range
    n_it = int(args.lr_find_iters)
    gen = torch.Generator().manual_seed(args.seed * 100003 + 99991)
    order = tr[torch.randperm(len(tr), generator=gen)]
    pos = 0
    lrs: list[float] = []
    raw: list[float] = []
    smooth: list[float] = []
    avg, best, stopped = 0.0, math.inf, "completed"
    bs = max(2, min(args.batch_size, len(tr)))
    model.train()
    for i in range(n_it):
        lr = lo * (hi / lo) ** (i / max(n_it - 1, 1))
        for g in opt.param_groups:
            g["lr"] = lr
        if pos + bs > len(order):
            order = tr[torch.randperm(len(tr), generator=gen)]
            pos = 0
        idx = order[pos:pos + bs]
        pos += bs
        if frozen:
            tmodel.freeze_backbone_bn(model, args.arch)
        xb = augment_batch(x[idx].to(device).float(), args.aug, gen)
        loss = criterion(model(xb).float(), y[idx].to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            stopped = f"loss not finite at lr {lr:.2e}"
            break
        avg = BETA * avg + (1 - BETA) * value
        s = avg / (1 - BETA ** (i + 1))
        lrs.append(lr)
        raw.append(value)
        smooth.append(s)
        best = min(best, s)
        if i > 0 and s > DIVERGE * best:
            stopped = f"loss diverged (over {DIVERGE:g}x its minimum) at lr {lr:.2e}"
            break
        if should_stop is not None and should_stop():
            stopped = "interrupted"
            break
    if len(lrs) < 2:
        raise ValueError(f"the range test ended after {len(lrs)} step(s) ({stopped}); "
                         "lower the start of --lr-find-range")
    sug = suggestions(lrs, smooth)
    return {"lrs": lrs, "losses": smooth, "raw_losses": raw, "suggestions": sug,
            "suggested_lr": sug["valley"], "stopped": stopped, "iterations": len(lrs),
            "range": [lo, hi], "arch": args.arch, "freeze": args.freeze, "optimizer": args.optimizer}


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(result["lrs"], result["losses"], "-", label="loss (smoothed)")
    ax.plot(result["lrs"], result["raw_losses"], ".", ms=3, alpha=.35, label="loss per batch")
    ylo = min(result["losses"])
    yhi = max(result["losses"][: max(2, len(result["losses"]) * 9 // 10)])
    ax.set_ylim(ylo - 0.05 * (yhi - ylo + 1e-9), yhi + 0.15 * (yhi - ylo + 1e-9))
    for (name, lr), mark in zip(result["suggestions"].items(), ("o", "^", "s")):
        k = int(np.argmin(np.abs(np.log(result["lrs"]) - math.log(lr))))
        ax.plot([lr], [result["losses"][k]], mark, ms=9, label=f"{name}: {lr:.2e}")
    ax.set_xscale("log")
    ax.set(xlabel="learning rate", ylabel="training loss",
           title=f"LR range test ({result['arch']}, {result['optimizer']})\n"
                 f"suggested --lr {result['suggested_lr']:.1e} (valley)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def run(args: Any, images: Any, train_idx: Sequence[int], num_classes: int, out: Path,
        log: Callable[[str], None] = print, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """The range test on the training split; writes lr_find.png / lr_find.json."""
    from medviewer.viewer.errors import DatasetError

    if len(train_idx) < 2:
        raise DatasetError("--lr-find needs at least two training images")
    try:
        result = range_test(args, images.x, images.y, train_idx, num_classes, log, should_stop)
    except ValueError as exc:
        raise DatasetError(f"--lr-find: {exc}") from None
    (out / "lr_find.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    plot(result, out / "lr_find.png")
    s = result["suggestions"]
    log(f"LR range test: {result['iterations']} steps, {result['stopped']}; suggested --lr {s['valley']:.2e} "
        f"(valley; steepest {s['steep']:.2e}, minimum/10 {s['minimum/10']:.2e}); "
        f"wrote {out / 'lr_find.png'}, {out / 'lr_find.json'}")
    return result
