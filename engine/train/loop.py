"""The training loop, shaped like torchvision's references/classification/train.py.

``train_one_epoch`` and ``evaluate`` (under ``torch.inference_mode``) work on
in-memory preprocessed tensors; ``fit`` adds optimisers, schedulers, staged
unfreezing, early stopping with restore-best, AMP on CUDA, DistributedDataParallel
sharding, and atomic per-epoch checkpoints (``torch.save`` to a temporary file,
then ``os.replace``; read back with ``torch.load(weights_only=True)``, so a
checkpoint can never run code).  Every epoch reseeds its own generators from
``--seed`` and the epoch number, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import copy
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from medviewer.engine.train import featcache
from medviewer.engine.train import model as tmodel
from medviewer.engine.train.augment import AugmentSpec, augment_batch
from medviewer.engine.train.ddp import DistInfo, all_reduce_sum
from medviewer.viewer.errors import UsageError

CHECKPOINT = "checkpoint.pt"


class Interrupted(Exception):
    """Training stopped early on request (Ctrl-C or should_stop); checkpoint kept."""


@dataclass
class FitResult:
    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    stopped_early: bool = False
    interrupted: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


# -- optimisers and schedulers ----------------------------------------------------------
def make_optimizer(groups: list[dict], args: Any) -> torch.optim.Optimizer:
    name, lr, wd = args.optimizer, args.lr, args.weight_decay
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=args.momentum, nesterov=args.nesterov,
                               weight_decay=wd)
    if args.nesterov:
        raise UsageError("--nesterov needs --optimizer sgd")
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "adamax": torch.optim.Adamax}.get(name)
    if cls is None:
        raise UsageError(f"--optimizer: unknown {name!r} (adam, adamw, sgd, adamax)")
    return cls(groups, lr=lr, weight_decay=wd)


def make_scheduler(opt: torch.optim.Optimizer, args: Any, steps_per_epoch: int):
    s = args.scheduler
    if s in (None, "none"):
        return None
    if s == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=args.step_size, gamma=args.gamma)
    if s == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=args.gamma,
                                                          patience=args.plateau_patience,
                                                          min_lr=args.min_lr)
    if s == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, args.epochs), eta_min=args.min_lr)
    if s == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], epochs=max(1, args.epochs),
            steps_per_epoch=max(1, steps_per_epoch), pct_start=args.pct_start)
    raise UsageError(f"--scheduler: unknown {s!r} (step, plateau, cosine, onecycle, none)")


def scale_lr(opt: torch.optim.Optimizer, sched: Any, factor: float) -> None:
    """Multiply every learning rate (and the scheduler's bases) by ``factor``."""
    for g in opt.param_groups:
        for key in ("lr", "initial_lr", "max_lr", "min_lr"):
            if key in g:
                g[key] *= factor
    if sched is not None and hasattr(sched, "base_lrs"):
        sched.base_lrs = [b * factor for b in sched.base_lrs]
    if sched is not None and hasattr(sched, "min_lrs"):
        sched.min_lrs = [b * factor for b in sched.min_lrs]


def class_weights(spec: str, y_train: torch.Tensor, k: int) -> torch.Tensor | None:
    """``auto``: n / (k * n_c) on the training split; ``none``; or ``w1,w2,...``."""
    if spec in (None, "", "none"):
        return None
    if spec == "auto":
        counts = torch.bincount(y_train, minlength=k).double()
        w = torch.where(counts > 0, counts.sum() / (k * counts.clamp(min=1)), torch.ones_like(counts))
        return w.float()
    try:
        w = [float(t) for t in spec.split(",")]
    except ValueError:
        raise UsageError(f"--class-weights: expected auto, none or {k} numbers, got {spec!r}") from None
    if len(w) != k or any(v < 0 for v in w):
        raise UsageError(f"--class-weights: give {k} non-negative numbers (one per class)")
    return torch.tensor(w)


# -- one epoch ----------------------------------------------------------------------------
def _progress(done: int, total: int, t0: float, prefix: str) -> None:
    if not sys.stderr.isatty() or total <= 0:
        return
    rate = done / max(time.perf_counter() - t0, 1e-9)
    eta = (total - done) / rate if rate > 0 else 0
    bar = "#" * int(24 * done / total)
    print(f"\r{prefix} [{bar:<24}] {done}/{total} ETA {eta:4.0f}s", end="", file=sys.stderr, flush=True)
    if done >= total:
        print("\r" + " " * 70 + "\r", end="", file=sys.stderr, flush=True)


def train_one_epoch(model: nn.Module, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    x: torch.Tensor, y: torch.Tensor, order: torch.Tensor, batch_size: int,
                    device: torch.device, aug: AugmentSpec, gen: torch.Generator,
                    batch_scheduler: Any = None, scaler: Any = None, frozen_bn: Callable | None = None,
                    should_stop: Callable[[], bool] | None = None, prefix: str = "") -> tuple[float, float, int]:
    """One pass over ``order`` (indices into x/y); returns (loss sum, correct, seen)."""
    model.train()
    if frozen_bn:
        frozen_bn()
    # Sums stay on the device: no host sync per batch (it halves GPU throughput).
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    seen, t0 = 0, time.perf_counter()
    n_batches = math.ceil(len(order) / batch_size)
    amp = device.type == "cuda" and scaler is not None
    for b in range(n_batches):
        idx = order[b * batch_size:(b + 1) * batch_size]
        if len(idx) < 2 and b > 0:          # BatchNorm cannot train on one sample
            continue
        xb = x[idx].to(device, non_blocking=True).float()
        yb = y[idx].to(device, non_blocking=True)
        xb = augment_batch(xb, aug, gen)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            out = model(xb)
            loss = criterion(out.float(), yb)
        optimizer.zero_grad(set_to_none=True)
        if amp:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if batch_scheduler is not None:
            batch_scheduler.step()
        loss_sum += loss.detach().double() * len(idx)
        correct += (out.detach().argmax(1) == yb).sum()
        seen += len(idx)
        _progress(b + 1, n_batches, t0, prefix)
        if should_stop is not None and should_stop():
            raise Interrupted()
    return float(loss_sum), int(correct), seen


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
             device: torch.device, weight: torch.Tensor | None = None) -> tuple[float, float, torch.Tensor]:
    """(mean loss, accuracy, probabilities (N, C) on the CPU) without gradients."""
    model.eval()
    probs = []
    loss_sum = 0.0
    with torch.inference_mode():
        for b in range(0, len(x), batch_size):
            xb = x[b:b + batch_size].to(device).float()
            out = model(xb).float()
            loss_sum += float(F.cross_entropy(out, y[b:b + batch_size].to(device),
                                              weight=None if weight is None else weight.to(device),
                                              reduction="sum"))
            probs.append(torch.softmax(out, 1).cpu())
    if not probs:
        return float("nan"), float("nan"), torch.zeros((0, 0))
    p = torch.cat(probs).double()
    return loss_sum / len(x), float((p.argmax(1) == y).double().mean()), p


# -- checkpoints --------------------------------------------------------------------------
def save_checkpoint(path: Path, state: dict) -> None:
    """Atomic: write next to the target, then rename over it."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    from medviewer.viewer.errors import ModelFileError

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(f"{path}: unreadable checkpoint ({str(exc).splitlines()[0][:120]}); "
                             "delete it to start over") from None


def _resident(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The in-memory training tensor, moved to the GPU once when it fits in a
    quarter of the free memory (batches are then gathered on the device
    instead of copied from pageable host memory every step)."""
    if device.type != "cuda":
        return t
    free, _ = torch.cuda.mem_get_info(device)
    if t.element_size() * t.nelement() > free // 4:
        return t
    return t.to(device)


# -- the whole run --------------------------------------------------------------------------
def fit(args: Any, x: torch.Tensor, y: torch.Tensor, train_idx: Sequence[int], val_idx: Sequence[int],
        num_classes: int, out: Path | None, *, dist: DistInfo | None = None,
        should_stop: Callable[[], bool] | None = None, trial: Any = None,
        log: Callable[[str], None] = print, on_epoch: Callable[[dict], None] | None = None) -> FitResult:
    """Train per ``args`` (see cli.get_args_parser); checkpoint into ``out`` if given.

    ``on_epoch(record)`` sees each epoch's history record (history.csv, TensorBoard)."""
    dist = dist or DistInfo()
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    model = tmodel.build(args.arch, num_classes, args.weights, args.dropout,
                         tmodel.parse_hidden(args.hidden), args.head_batchnorm).to(device)
    backbone, head = tmodel.split_params(model, args.arch)
    opt = make_optimizer([{"params": backbone}, {"params": head}], args)
    train_idx_t = torch.as_tensor(list(train_idx), dtype=torch.long)
    shard = math.ceil(len(train_idx_t) / dist.world)
    steps = math.ceil(shard / args.batch_size)
    sched = make_scheduler(opt, args, steps)
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and args.amp else None
    weight = class_weights(args.class_weights, y[train_idx_t], num_classes)
    criterion = nn.CrossEntropyLoss(weight=None if weight is None else weight.to(device))
    stage_epochs = args.stage_epochs if args.freeze == "staged" else 0
    if args.freeze == "backbone" or (args.freeze == "staged" and stage_epochs > 0):
        tmodel.set_backbone_trainable(model, args.arch, False)
    xv, yv = x[list(val_idx)], y[list(val_idx)]
    x_train, y_train = _resident(x, device), _resident(y, device)
    history: list[dict[str, float]] = []
    best = {"loss": math.inf, "epoch": -1, "state": None}
    start, bad = 0, 0
    ckpt = out / CHECKPOINT if out is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    if ckpt is not None and args.resume and ckpt.is_file():
        st = load_checkpoint(ckpt)
        if st.get("arch") != args.arch or st.get("num_classes") != num_classes:
            raise UsageError(f"{ckpt}: checkpoint is for {st.get('arch')} with {st.get('num_classes')} "
                             "classes; use another --out or delete it")
        start = int(st["epoch"]) + 1
        if args.freeze == "staged" and start > stage_epochs:
            tmodel.set_backbone_trainable(model, args.arch, True)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["optimizer"])
        if sched is not None and st.get("scheduler"):
            sched.load_state_dict(st["scheduler"])
        if scaler is not None and st.get("scaler"):
            scaler.load_state_dict(st["scaler"])
        history = list(st["history"])
        best = {"loss": float(st["best_loss"]), "epoch": int(st["best_epoch"]), "state": st.get("best_state")}
        bad = int(st["bad_epochs"])
        log(f"resumed from {ckpt} after epoch {start}")
    cache, cache_note = featcache.prepare(args, model, x, y, train_idx, val_idx, device, dist.world, log)
    net: nn.Module = model
    if dist.world > 1:
        net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=args.freeze != "none")
    frozen = (lambda: tmodel.freeze_backbone_bn(model, args.arch)) \
        if args.freeze == "backbone" or (args.freeze == "staged") else None
    stopped_early = False
    t_start = time.perf_counter()
    epoch = start
    try:
        for epoch in range(start, args.epochs):
            if args.freeze == "staged" and epoch == stage_epochs and stage_epochs > 0:
                tmodel.set_backbone_trainable(model, args.arch, True)
                scale_lr(opt, sched, args.unfreeze_lr_factor)
                if dist.world > 1:   # DDP registers only parameters that require grad
                    net = nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
                log(f"epoch {epoch + 1}: unfreezing the backbone, lr x {args.unfreeze_lr_factor:g}")
            staged_frozen = args.freeze == "backbone" or (args.freeze == "staged" and epoch < stage_epochs)
            gen = torch.Generator().manual_seed(args.seed * 100003 + epoch)
            torch.manual_seed(args.seed * 7919 + epoch)           # dropout
            order = train_idx_t[torch.randperm(len(train_idx_t), generator=gen)]
            order = dist.shard(order)
            ep_t0 = time.perf_counter()
            if cache is not None:   # the head on cached backbone features (engine.train.featcache)
                ls, cor, seen = train_one_epoch(
                    cache.tail, criterion, opt, cache.train_features(epoch), cache.train_y, cache.remap[order],
                    args.batch_size, device, AugmentSpec(), gen, sched if args.scheduler == "onecycle" else None,
                    scaler, None, should_stop, prefix=f"epoch {epoch + 1}/{args.epochs}")
                v_loss, v_acc, _ = evaluate(cache.tail, cache.val, yv, args.batch_size, device, weight)
            else:
                ls, cor, seen = train_one_epoch(
                    net, criterion, opt, x_train, y_train, order, args.batch_size, device, args.aug, gen,
                    sched if args.scheduler == "onecycle" else None, scaler,
                    frozen if staged_frozen else None, should_stop,
                    prefix=f"epoch {epoch + 1}/{args.epochs}")
                ls, cor, seen = all_reduce_sum(dist, [ls, cor, seen])
                v_loss, v_acc, _ = evaluate(model, xv, yv, args.batch_size, device, weight)
            lr = opt.param_groups[-1]["lr"]
            if sched is not None and args.scheduler == "plateau":
                sched.step(v_loss if not math.isnan(v_loss) else ls / max(seen, 1))
            elif sched is not None and args.scheduler != "onecycle":
                sched.step()
            dt = time.perf_counter() - ep_t0
            rec = {"epoch": epoch + 1, "train_loss": ls / max(seen, 1), "train_accuracy": cor / max(seen, 1),
                   "val_loss": v_loss, "val_accuracy": v_acc, "lr": lr, "seconds": dt}
            history.append(rec)
            if on_epoch is not None and dist.is_main:
                on_epoch(rec)
            monitor = v_loss if not math.isnan(v_loss) else rec["train_loss"]
            if monitor < best["loss"] - 1e-6:
                best = {"loss": monitor, "epoch": epoch + 1,
                        "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
                bad = 0
            else:
                bad += 1
            eta = (time.perf_counter() - t_start) / (epoch + 1 - start) * (args.epochs - epoch - 1)
            log(f"epoch {epoch + 1}/{args.epochs}  train loss {rec['train_loss']:.4f} acc {rec['train_accuracy']:.3f}"
                f"  val loss {v_loss:.4f} acc {v_acc:.3f}  lr {lr:.2e}  {dt:.1f}s  ETA {eta:.0f}s")
            if ckpt is not None and dist.rank == 0:
                save_checkpoint(ckpt, {
                    "epoch": epoch, "arch": args.arch, "num_classes": num_classes,
                    "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict() if sched is not None else None,
                    "scaler": scaler.state_dict() if scaler is not None else None,
                    "history": history, "best_loss": best["loss"], "best_epoch": best["epoch"],
                    "best_state": best["state"], "bad_epochs": bad, "args": args_dict(args)})
            if trial is not None:
                trial.report(monitor, epoch)
                if trial.should_prune():
                    import optuna

                    raise optuna.TrialPruned()
            if args.patience and bad >= args.patience:
                log(f"early stopping: no val loss improvement for {bad} epochs")
                stopped_early = True
                break
            if should_stop is not None and should_stop() and epoch + 1 < args.epochs:
                raise Interrupted()
    except (KeyboardInterrupt, Interrupted):
        done = len(history)
        log(f"interrupted: {done} epoch(s) kept in {ckpt}; rerun with --resume to continue"
            if ckpt else "interrupted")
        return FitResult(model, history, best["epoch"], interrupted=True)
    if best["state"] is not None and args.restore_best:
        model.load_state_dict(best["state"])
    return FitResult(model, history, best["epoch"], stopped_early, extra={"feature_cache": cache_note})


def args_dict(args: Any) -> dict[str, Any]:
    """JSON-safe hyperparameters (for report.json and checkpoints)."""
    out = {}
    for k, v in sorted(vars(args).items()):
        if isinstance(v, AugmentSpec):
            v = {kk: float(vv) for kk, vv in v.__dict__.items()}
        elif isinstance(v, Path):
            v = str(v)
        elif v is not None and not isinstance(v, (str, int, float, bool, list, dict)):
            v = str(v)
        out[k] = copy.deepcopy(v)
    return out
