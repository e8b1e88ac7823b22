"""``main(args)``: discover -> decode/preprocess -> (search) -> fit -> test -> outputs.

Outputs in ``--out``: model.safetensors (card filled in), report.json,
predictions.csv, report.html with PNG plots, checkpoint.pt (resumable),
search.db (Optuna, with ``--search``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medviewer.engine import registry
from medviewer.engine.card import ModelCard
from medviewer.engine.preprocess import PreprocessSpec
from medviewer.engine.train import ddp
from medviewer.engine.train.data import counts_table, discover
from medviewer.engine.train.images import ImageSet, load_images, summary
from medviewer.engine.train import calibrate
from medviewer.engine.train.loop import FitResult, evaluate, fit
from medviewer.engine.train.trust import TrustResult, fit_trust, merge_declared, operating_point, score_images
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


class Warnings:
    """Warnings a researcher must not miss: stderr, the log file, report.json and report.html."""

    def __init__(self, dist: ddp.DistInfo) -> None:
        self.items: list[str] = []
        self.main = dist.is_main

    def __call__(self, msg: str) -> None:
        if not self.main:
            return
        self.items.append(msg)
        print(f"medviewer: WARNING: {msg}", file=sys.stderr, flush=True)
        logging.getLogger("medviewer.train").warning(msg)


def prepare(args: Any, log: Callable[[str], None],
            warn: Callable[[str], None] | None = None) -> tuple[Any, ImageSet, ModelCard, dict]:
    """Discovery, decoding and the dataset summary (printed)."""
    index = discover(args.data, label_regex=args.label_from_name, labels_csv=args.labels,
                     val_fraction=args.val_fraction, test_fraction=args.test_fraction, seed=args.seed)
    card = make_card(args, index.classes)
    t0 = time.perf_counter()
    images = load_images(index.samples, index.classes, PreprocessSpec.from_card(card), workers=args.workers)
    summ = summary(images, index.classes)
    warn = warn or log
    for note in index.notes:
        (warn if note.startswith("warning: ") else log)(note.removeprefix("warning: "))
    log(f"{len(images.samples)} images decoded in {time.perf_counter() - t0:.1f}s "
        f"(sizes {summ['image_sizes']['min']}..{summ['image_sizes']['max']})")
    for p, reason in images.skipped:
        log(f"skipped {p}: {reason}")
    for dup in summ["duplicates_across_splits"]:
        log(f"warning: leakage: identical file in {'+'.join(dup['splits'])}: {', '.join(dup['paths'][:3])}")
    index.samples = images.samples
    log(counts_table(index))
    counts = index.counts()
    for c in index.classes:
        decoded = sum(counts[sp][c] for sp in counts)
        if decoded == 0:
            warn(f"class {c!r}: none of its images could be read; the model will still have an output "
                 "for it but cannot learn it")
        elif counts["train"][c] == 0 and not any(f"class {c!r} has no training images" in n
                                                 for n in index.notes):
            warn(f"class {c!r} has no readable training images (its images were skipped)")
    if not images.split_indices("train"):
        raise DatasetError(f"{index.root}: no readable training images "
                           f"({len(images.skipped)} unreadable)")
    return index, images, card, summ


def _trust(args: Any, loaded: Any, model: torch.nn.Module, card: ModelCard, images: ImageSet, tr: list[int],
           va: list[int], te: list[int], device: torch.device, log: Callable[[str], None]) -> TrustResult:
    """Fit the temperature and the OOD model (or, with --test-only, use the saved ones)."""
    if loaded is not None:
        scores = (score_images(loaded.module, loaded.ood, images.x, te, args.batch_size, device)
                  if loaded.ood is not None and len(te) else None)
        return TrustResult(loaded.temperature, loaded.ood, scores, dict(card.trained_on))
    trust = fit_trust(model, args.arch, images, tr, va, te, len(card.classes), args.batch_size, device,
                      PreprocessSpec.from_card(card), log)
    trust.trained_on = merge_declared(trust.trained_on, getattr(args, "modality", ""),
                                      getattr(args, "body_part", ""))
    log("trained on: " + (", ".join(f"{k} {'/'.join(v)}" for k, v in trust.trained_on.items()) or "unknown"))
    return trust


class _Scaled(torch.nn.Module):
    """`model`'s logits divided by a temperature (for TTA's mean of calibrated softmaxes)."""

    def __init__(self, model: torch.nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature


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
    from medviewer.engine.train import outdir, report, sanity

    out = Path(args.out)
    outdir.prepare(out, resume=bool(args.resume), overwrite=bool(getattr(args, "overwrite", False)),
                   test_only=bool(args.test_only), is_main=dist.is_main, log=log)
    warn = Warnings(dist)
    index, images, card, summ = prepare(args, log, warn)
    if args.freeze == "backbone" and str(args.weights).strip().lower() == "none" and not args.test_only:
        warn("--freeze backbone with --weights none: the frozen backbone keeps its random weights and the "
             "BatchNorm statistics of a new model, so the head trains on features that carry almost nothing "
             "of the image; give --weights imagenet or a PATH, or --freeze none")
    classes = index.classes
    tr, va, te = (images.split_indices(s) for s in ("train", "val", "test"))
    search_block = cv_block = None
    loaded = None
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
            from medviewer.engine.train.search import choose, run_search

            search_block = run_search(args, images, tr, va, len(classes), out, log, classes=classes)
            chosen, why = choose(search_block, images.y[tr].tolist(), images.y[va].tolist(), len(classes))
            search_block["used"] = "best trial" if chosen is not None else "command line"
            if chosen is None:
                warn(why)
            else:
                for k, v in chosen.items():
                    setattr(args, k, v)
                if why:
                    warn(why)
                log("final training with the best parameters: " + ", ".join(f"{k}={v}" for k, v in chosen.items()))
                _fresh_final_run_if_params_changed(args, out, chosen, log)
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
    if args.half and not args.test_only:
        # the file keeps float16 weights: measure (test metrics, temperature, OOD model) what it holds
        with torch.no_grad():
            for t in list(model.parameters()) + list(model.buffers()):
                if t.is_floating_point():
                    t.copy_(t.half().float())
    training = _training_block(args, result, log)
    if cv_block:      # the final model trained on train+val: validation images are not held out
        verdict = sanity.judge([], [], images.y[tr].tolist(), classes, split="held-out validation")
        log(verdict.message + " (the final model trains on train+val; see the cross-validation scores)")
    else:
        _, _, val_probs = evaluate(model, images.x[va], images.y[va], args.batch_size, device)
        verdict = sanity.judge(images.y[va].tolist(), val_probs.argmax(1).tolist() if len(va) else [],
                               images.y[tr].tolist(), classes)
        if verdict.better_than_chance is False or (verdict.better_than_chance is None and not args.test_only):
            warn(verdict.message)
        else:
            log(verdict.message)
    training["validation_check"] = verdict.to_json()
    from medviewer.engine.train.folds import tta_spec

    tta = tta_spec(args)
    if tta is not None:
        from medviewer.engine.tta import evaluate as evaluate_tta

        test_loss, test_acc, probs = evaluate_tta(model, images.x[te], images.y[te], args.batch_size, device, tta)
    else:
        test_loss, test_acc, probs = evaluate(model, images.x[te], images.y[te], args.batch_size, device)
    y_test = images.y[te].tolist()
    probs_raw = probs.numpy() if len(te) else None
    trust = _trust(args, loaded if args.test_only else None, model, card, images, tr, va, te, device, log)
    probs_cal = None
    if probs_raw is not None and tta is not None:
        # as predict does with TTA: the mean over the views of each view's calibrated softmax
        probs_cal = evaluate_tta(_Scaled(model, trust.temperature), images.x[te], images.y[te],
                                 args.batch_size, device, tta)[2].numpy()
    elif probs_raw is not None:
        probs_cal = calibrate.rescale(probs_raw, trust.temperature)
    metrics = report.test_metrics(y_test, probs_cal, classes)
    metrics["ece"] = calibrate.ece(probs_cal, np.asarray(y_test)) if probs_cal is not None else None
    metrics["ece_uncalibrated"] = calibrate.ece(probs_raw, np.asarray(y_test)) if probs_raw is not None else None
    metrics["ood_flagged"] = (float(np.mean(trust.test_scores > trust.ood.threshold))
                              if trust.ood is not None and trust.test_scores is not None and len(te) else None)
    if len(te) and getattr(args, "bootstrap", 0) > 0:
        from medviewer.engine.train.bootstrap import bootstrap_ci

        metrics["ci95"] = bootstrap_ci(y_test, probs_cal, classes, args.bootstrap, args.seed)
    if len(te):
        ci = metrics.get("ci95", {}).get("macro_f1")
        log(f"test: accuracy {metrics['accuracy']:.3f}  macro F1 {metrics['macro_f1']:.3f}"
            + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci else "")
            + f"  loss {test_loss:.4f} ({len(te)} images" + (f", TTA {tta.describe()})" if tta else ")"))
        log(f"calibration (test): ECE {metrics['ece_uncalibrated']:.4f} before, {metrics['ece']:.4f} after "
            f"temperature {trust.temperature:.3f}"
            + (f"; {metrics['ood_flagged']:.1%} of test images flagged out-of-distribution"
               if metrics["ood_flagged"] is not None else ""))
    else:
        log("no test images: test metrics are empty")
    if not args.test_only:
        card.metrics = {k: float(v) for k, v in metrics.items()
                        if isinstance(v, float) and not math.isnan(v)}
        card.temperature = trust.temperature
        card.trained_on = trust.trained_on
        card.operating_point = operating_point(y_test, probs_cal, classes, probs_raw, trust.ood, trust.test_scores)
        for note in trust.notes:
            log(f"note: {note}")
        card.tta = tta.to_card() if tta is not None else {}
        card.training_data = {
            "summary": f"{len(images.samples)} images, {len(classes)} classes "
                       f"(train {len(tr)}, val {len(va)}, test {len(te)})"
                       + (f"; {args.folds}-fold cross-validation, final model on train+val" if cv_block else ""),
            "counts": summ["counts"], "sha256": data_digest(images), "best_epoch": result.best_epoch,
            "restored_epoch": result.restored_epoch, "epochs_run": len(result.history),
            "selected_on": training["selected_on"],
            "better_than_chance_on_val": verdict.better_than_chance,
            "warnings": list(warn.items)}
        if cv_block:
            card.training_data["cross_validation"] = {"folds": int(args.folds), "mean": cv_block["mean"],
                                                      "std": cv_block["std"]}
        from medviewer.engine.modelfile import save_model

        to_save = result.model
        if args.half:
            import copy

            to_save = copy.deepcopy(result.model).half()
        save_model(out / MODEL_FILE, to_save.cpu(), card, ood=trust.ood.to("cpu") if trust.ood else None)
        result.model.to(device)
        log(f"wrote {out / MODEL_FILE}")
    report.write_all(out, args=args, index=index, images=images, summ=summ, history=result.history,
                     test_idx=te, probs=probs_cal, metrics=metrics,
                     search=search_block, card=card, model=model, log=log, cv=cv_block,
                     probs_uncalibrated=probs_raw, training=training, warnings=warn.items)
    if epoch_log is not None:
        epoch_log.finish(metrics, classes, len(result.history))
    return 1 if images.skipped else 0


def _training_block(args: Any, result: FitResult, log: Callable[[str], None]) -> dict[str, Any]:
    """report.json "training": which epoch the model comes from and why."""
    h = result.history
    selected_on = "val_loss" if any(not math.isnan(r["val_loss"]) for r in h) else "train_loss"
    block = {"epochs_run": len(h), "restore_best": bool(getattr(args, "restore_best", True)),
             "selected_on": selected_on, "best_epoch": result.best_epoch,
             "restored_epoch": result.restored_epoch, "stopped_early": result.stopped_early}
    if h and result.restored_epoch > 0:
        r = h[result.restored_epoch - 1]
        if result.restored_epoch == len(h):
            log(f"model: the weights of the last epoch ({len(h)})")
        else:
            log(f"model: the weights of epoch {result.restored_epoch} of {len(h)} "
                f"(best {selected_on.replace('_', ' ')} {r[selected_on]:.4f}; --no-restore-best keeps the last)")
    return block


def _fresh_final_run_if_params_changed(args: Any, out: Path, chosen: dict[str, Any],
                                       log: Callable[[str], None]) -> None:
    """With --resume, the final run continues checkpoint.pt only if it was made with the chosen parameters."""
    from medviewer.engine.train.loop import CHECKPOINT, load_checkpoint

    path = out / CHECKPOINT
    if not (args.resume and path.is_file()):
        return
    saved = load_checkpoint(path).get("args")
    if not isinstance(saved, dict) or any(saved.get(k) != v for k, v in chosen.items()):
        args.resume = False
        log(f"the search chose other parameters than {path.name} was trained with: the final run starts over")
