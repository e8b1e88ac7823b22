"""``main(args)``: discover -> decode/preprocess -> (search) -> fit -> test -> outputs.

Outputs in ``--out``: model.safetensors (card filled in), report.json,
predictions.csv, report.html with PNG plots, checkpoint.pt (resumable),
search.db (Optuna, with ``--search``).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from medviewer.engine import registry
from medviewer.engine.card import ModelCard
from medviewer.engine.preprocess import PreprocessSpec
from medviewer.engine.train import ddp
from medviewer.engine.train.data import counts_table, discover
from medviewer.engine.train.images import ImageSet, load_images, summary
from medviewer.engine.train.loop import FitResult, evaluate, fit
from medviewer.viewer.errors import DatasetError, UsageError

MODEL_FILE = "model.safetensors"


def make_card(args: Any, classes: list[str]) -> ModelCard:
    from medviewer.engine.train.model import parse_hidden

    card = ModelCard(
        name=args.name or f"{args.arch}-{len(classes)}cls",
        architecture=args.arch, classes=list(classes),
        head=registry.head_spec(parse_hidden(args.hidden), args.dropout, args.head_batchnorm),
        input_size=int(args.image_size), resize=args.resize, window=args.window,
        cam_layer=args.cam_layer or registry.default_cam_layer(args.arch),
        intended_use=args.intended_use,
        description=f"trained by medviewer --train ({args.arch}, weights {args.weights})")
    card.validate("--train")
    if args.cam_layer:   # must exist, or the saved model could not be loaded
        with torch.device("meta"):
            module = registry.build_model(args.arch, len(classes))
        try:
            module.get_submodule(args.cam_layer)
        except AttributeError:
            raise UsageError(f"--cam-layer: {args.arch} has no layer {args.cam_layer!r} "
                             f"(default {registry.default_cam_layer(args.arch)!r})") from None
    return card


def _log(dist: ddp.DistInfo) -> Callable[[str], None]:
    return (lambda msg: print(msg, flush=True)) if dist.is_main else (lambda msg: None)


def prepare(args: Any, log: Callable[[str], None]) -> tuple[Any, ImageSet, ModelCard, dict]:
    """Discovery, decoding and the dataset summary (printed)."""
    index = discover(args.data, label_regex=args.label_from_name, labels_csv=args.labels,
                     val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed)
    card = make_card(args, index.classes)
    t0 = time.perf_counter()
    images = load_images(index.samples, index.classes, PreprocessSpec.from_card(card), workers=args.workers)
    summ = summary(images, index.classes)
    for note in index.notes:
        log(note)
    log(f"{len(images.samples)} images decoded in {time.perf_counter() - t0:.1f}s "
        f"(sizes {summ['image_sizes']['min']}..{summ['image_sizes']['max']})")
    for p, reason in images.skipped:
        log(f"skipped {p}: {reason}")
    for dup in summ["duplicates_across_splits"]:
        log(f"warning: leakage: identical file in {'+'.join(dup['splits'])}: {', '.join(dup['paths'][:3])}")
    index.samples = images.samples
    log(counts_table(index))
    if not images.split_indices("train"):
        raise DatasetError(f"{index.root}: no readable training images "
                           f"({len(images.skipped)} unreadable)")
    return index, images, card, summ


def data_digest(images: ImageSet) -> str:
    h = hashlib.sha256()
    for digest, s in sorted(zip(images.hashes, (s.label + s.split for s in images.samples))):
        h.update(digest.encode() + s.encode())
    return h.hexdigest()


def main(args: Any, should_stop: Callable[[], bool] | None = None) -> int:
    dist = ddp.init_from_env(args.device)
    args.device = ddp.device_for(dist, args.device)
    log = _log(dist)
    if dist.world > 1:
        import torch.distributed as tdist

        log(f"distributed: {dist.world} processes, backend {tdist.get_backend()}")
    try:
        return _main(args, dist, log, should_stop)
    finally:
        ddp.cleanup(dist)


def _main(args: Any, dist: ddp.DistInfo, log: Callable[[str], None],
          should_stop: Callable[[], bool] | None) -> int:
    from medviewer.engine.train import report

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index, images, card, summ = prepare(args, log)
    classes = index.classes
    tr, va, te = (images.split_indices(s) for s in ("train", "val", "test"))
    search_block = cv_block = None
    if getattr(args, "lr_find", False):
        if dist.world > 1:
            raise UsageError("--lr-find runs in one process; start it without torchrun")
        from medviewer.engine.train import lrfind

        lrfind.run(args, images, tr, len(classes), out, log, should_stop)
        return 0
    epoch_log = None
    if args.test_only:
        from medviewer.engine.modelfile import load_model

        loaded = load_model(out / MODEL_FILE, device=args.device, cache=False)
        if loaded.classes != classes:
            raise DatasetError(f"{out / MODEL_FILE}: model classes {loaded.classes} differ from the data's {classes}")
        result = FitResult(loaded.module, [], -1)
        card = loaded.card
    else:
        if args.search and args.search > 0 and dist.world > 1:
            raise UsageError("--search runs in one process; start it without torchrun")
        if args.search and args.search > 0:
            from medviewer.engine.train.search import run_search

            search_block = run_search(args, images, tr, va, len(classes), out, log, classes=classes)
            for k, v in search_block["best_params"].items():
                setattr(args, k, v)
            log("final training with the best parameters: " +
                ", ".join(f"{k}={v}" for k, v in search_block["best_params"].items()))
            card = make_card(args, classes)
        from medviewer.engine.train.runlog import EpochLog

        # opened first: a missing TensorBoard is reported before any training
        epoch_log = EpochLog(out, getattr(args, "tensorboard", False), args.resume) if dist.is_main else None
        fit_args, fit_tr, fit_va = args, tr, va
        if getattr(args, "folds", 0):
            if dist.world > 1:
                raise UsageError("--folds runs in one process; start it without torchrun")
            from medviewer.engine.train import folds

            cv_block = folds.run_cv(args, images, tr + va, classes, out, log, should_stop, root=index.root)
            if cv_block is None:
                return 130
            fit_args, fit_tr, fit_va = folds.final_recipe(args, cv_block, log), tr + va, []
            log(f"final model on all {len(fit_tr)} train+val images")
        log(f"training {args.arch} on {args.device} for {fit_args.epochs} epoch(s)")
        result = fit(fit_args, images.x, images.y, fit_tr, fit_va, len(classes), out, dist=dist,
                     should_stop=should_stop, log=log, on_epoch=epoch_log)
        if result.interrupted:
            return 130
        args.feature_cache_used = result.extra.get("feature_cache", "")
    if not dist.is_main:
        return 0
    device = torch.device(args.device)
    model = result.model.to(device)
    from medviewer.engine.train.folds import tta_spec

    tta = tta_spec(args)
    if tta is not None:
        from medviewer.engine.tta import evaluate as evaluate_tta

        test_loss, test_acc, probs = evaluate_tta(model, images.x[te], images.y[te], args.batch_size, device, tta)
    else:
        test_loss, test_acc, probs = evaluate(model, images.x[te], images.y[te], args.batch_size, device)
    y_test = images.y[te].tolist()
    metrics = report.test_metrics(y_test, probs.numpy() if len(te) else None, classes)
    if len(te) and getattr(args, "bootstrap", 0) > 0:
        from medviewer.engine.train.bootstrap import bootstrap_ci

        metrics["ci95"] = bootstrap_ci(y_test, probs.numpy(), classes, args.bootstrap, args.seed)
    if len(te):
        ci = metrics.get("ci95", {}).get("macro_f1")
        log(f"test: accuracy {metrics['accuracy']:.3f}  macro F1 {metrics['macro_f1']:.3f}"
            + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
            + f"  loss {test_loss:.4f} ({len(te)} images" + (f", TTA {tta.describe()})" if tta else ")"))
    else:
        log("no test images: test metrics are empty")
    if not args.test_only:
        card.metrics = {k: float(v) for k, v in metrics.items()
                        if isinstance(v, float) and not math.isnan(v)}
        card.tta = tta.to_card() if tta is not None else {}
        card.training_data = {
            "summary": f"{len(images.samples)} images, {len(classes)} classes "
                       f"(train {len(tr)}, val {len(va)}, test {len(te)})"
                       + (f"; {args.folds}-fold cross-validation, final model on train+val" if cv_block else ""),
            "counts": summ["counts"], "sha256": data_digest(images), "best_epoch": result.best_epoch}
        if cv_block:
            card.training_data["cross_validation"] = {"folds": int(args.folds), "mean": cv_block["mean"],
                                                      "std": cv_block["std"]}
        from medviewer.engine.modelfile import save_model

        to_save = result.model
        if args.half:
            import copy

            to_save = copy.deepcopy(result.model).half()
        save_model(out / MODEL_FILE, to_save.cpu(), card)
        result.model.to(device)
        log(f"wrote {out / MODEL_FILE}")
    report.write_all(out, args=args, index=index, images=images, summ=summ, history=result.history,
                     test_idx=te, probs=probs.numpy() if len(te) else None, metrics=metrics,
                     search=search_block, card=card, model=model, log=log, cv=cv_block)
    if epoch_log is not None:
        epoch_log.finish(metrics, classes, len(result.history))
    return 1 if images.skipped else 0
