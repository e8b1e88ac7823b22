"""report.html and its PNG plots (matplotlib, Agg backend, no display needed).

Plots: loss/accuracy curves, confusion matrix (counts and row-normalised),
one-vs-rest ROC and precision-recall curves with AUC (scikit-learn), a
reliability diagram of the top-class confidence, class distribution per split,
source image sizes, and a gallery of misclassified test images with their
Grad-CAM (medviewer.engine.cam, the viewer's implementation).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn import metrics as skm  # noqa: E402


def _save(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def curves(history: list[dict], path: Path) -> str:
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    ep = [h["epoch"] for h in history]
    for key, ax in (("loss", a), ("accuracy", b)):
        ax.plot(ep, [h[f"train_{key}"] for h in history], "o-", label="train")
        ax.plot(ep, [np.nan if h[f"val_{key}"] is None else h[f"val_{key}"] for h in history], "s-", label="val")
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    return _save(fig, path)


def confusion(cm: list[list[int]], classes: Sequence[str], path: Path) -> str:
    cm_a = np.asarray(cm, float)
    norm = cm_a / np.maximum(cm_a.sum(1, keepdims=True), 1)
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.6 * len(classes), 2 + 0.8 * len(classes)))
    for ax, data, title, fmt in ((axes[0], cm_a, "counts", "{:.0f}"), (axes[1], norm, "normalised", "{:.2f}")):
        ax.imshow(data, cmap="Blues", vmin=0)
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(title)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, fmt.format(data[i, j]), ha="center", va="center",
                        color="white" if data[i, j] > data.max() / 2 else "black")
    return _save(fig, path)


def roc_pr(y: np.ndarray, probs: np.ndarray, classes: Sequence[str], out: Path) -> list[str]:
    names = []
    for kind in ("roc", "pr"):
        fig, ax = plt.subplots(figsize=(5, 4.2))
        for i, c in enumerate(classes):
            pos = y == i
            if not 0 < pos.sum() < len(y):
                continue
            if kind == "roc":
                fpr, tpr, _ = skm.roc_curve(pos, probs[:, i])
                ax.plot(fpr, tpr, label=f"{c} (AUC {skm.auc(fpr, tpr):.3f})")
            else:
                prec, rec, _ = skm.precision_recall_curve(pos, probs[:, i])
                ax.plot(rec, prec, label=f"{c} (AP {skm.average_precision_score(pos, probs[:, i]):.3f})")
        if kind == "roc":
            ax.plot([0, 1], [0, 1], "k:", lw=1)
            ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC (one vs rest)")
        else:
            ax.set(xlabel="recall", ylabel="precision", title="precision-recall (one vs rest)")
        ax.legend(fontsize=8)
        names.append(_save(fig, out / f"{kind}.png"))
    return names


def reliability(y: np.ndarray, probs: np.ndarray, path: Path, probs_uncalibrated: np.ndarray | None = None,
                bins: int | None = None) -> str:
    """Reliability diagram of the top-class confidence (15 equal-width bins, the bins of
    the report's ECE): accuracy per bin after calibration and, when given, before."""
    from medviewer.engine.train.calibrate import ECE_BINS, ece
    from medviewer.engine.train.calibrate import reliability as table

    bins = bins or ECE_BINS
    fig, ax = plt.subplots(figsize=(5, 4.2))
    edges = np.linspace(0, 1, bins + 1)
    mid, width = (edges[:-1] + edges[1:]) / 2, 1 / bins
    series = [("calibrated", probs, "#0a6ebd")]
    if probs_uncalibrated is not None:
        series.insert(0, ("uncalibrated", probs_uncalibrated, "#d9822b"))
    shift = width / (2 * len(series))
    for k, (label, p, colour) in enumerate(series):
        t = table(p, y, bins)
        x = mid + (k - (len(series) - 1) / 2) * 2 * shift
        ax.bar(x, np.nan_to_num(t["accuracy"]), width=2 * shift, color=colour, edgecolor="k", alpha=.75,
               label=f"{label} (ECE {ece(p, y):.3f})")
    ax.plot([0, 1], [0, 1], "k:", label="perfect calibration")
    ax.set(xlabel="confidence (top class)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02),
           title=f"reliability, {bins} bins")
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


def class_distribution(counts: dict, classes: Sequence[str], path: Path) -> str:
    fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(classes)), 3.5))
    w = 0.27
    for k, split in enumerate(("train", "val", "test")):
        ax.bar(np.arange(len(classes)) + (k - 1) * w, [counts[split][c] for c in classes], w, label=split)
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set(ylabel="images", title="class distribution per split")
    ax.legend()
    return _save(fig, path)


def sizes_scatter(sizes: Sequence[tuple[int, int]], path: Path) -> str:
    fig, ax = plt.subplots(figsize=(4.5, 4))
    arr = np.asarray(sizes, float).reshape(-1, 2)
    ax.scatter(arr[:, 1], arr[:, 0], s=8, alpha=.5)
    ax.set(xlabel="columns", ylabel="rows", title="image sizes")
    return _save(fig, path)


def gallery(images: Any, test_idx: Sequence[int], probs: np.ndarray, classes: Sequence[str],
            card: Any, model: Any, path: Path, n: int = 12) -> str | None:
    """Misclassified test images (most confident first) with their Grad-CAM overlay."""
    from medviewer.engine.cam import cam_batch

    y = np.asarray([int(images.y[i]) for i in test_idx])
    pred = probs.argmax(1)
    wrong = [k for k in np.argsort(-probs.max(1)) if pred[k] != y[k]][:n]
    if not wrong:
        return None
    x = images.x[[test_idx[k] for k in wrong]].float()
    device = next(model.parameters()).device
    model.eval()
    cams, _ = cam_batch(model, card.cam_layer, x.to(device), [int(pred[k]) for k in wrong])
    cols = min(4, len(wrong))
    rows = -(-len(wrong) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
    mean, std = np.asarray(card.mean)[:, None, None], np.asarray(card.std)[:, None, None]
    for ax in axes.flat:
        ax.axis("off")
    for ax, k, xi, cam in zip(axes.flat, wrong, x, cams):
        img = np.clip(xi.numpy() * std + mean, 0, 1).transpose(1, 2, 0)
        ax.imshow(img.mean(2) if card.channels == "grey_to_rgb" else img, cmap="gray")
        ax.imshow(cam, cmap="jet", alpha=.35)
        ax.set_title(f"true {classes[y[k]]}\npred {classes[pred[k]]} ({probs[k].max():.2f})", fontsize=8)
    return _save(fig, path)


def write_html(out: Path, rep: dict, summ: dict, images: Any, test_idx: Sequence[int],
               probs: np.ndarray | None, classes: Sequence[str], card: Any, model: Any,
               cls_text: str, n_gallery: int = 12, probs_uncalibrated: np.ndarray | None = None) -> Path:

    pdir = out / "plots"
    pdir.mkdir(exist_ok=True)
    figs: list[tuple[str, str]] = []
    if rep["history"]:
        figs.append(("Loss and accuracy", curves(rep["history"], pdir / "curves.png")))
    figs.append(("Class distribution", class_distribution(rep["splits"], classes, pdir / "classes.png")))
    figs.append(("Image sizes", sizes_scatter(images.sizes, pdir / "sizes.png")))
    t = rep["test"]
    if probs is not None and len(probs):
        y = np.asarray([int(images.y[i]) for i in test_idx])
        figs.append(("Confusion matrix", confusion(t["confusion_matrix"], classes, pdir / "confusion.png")))
        roc, pr = roc_pr(y, probs, classes, pdir)
        figs += [("ROC", roc), ("Precision-recall", pr)]
        figs.append(("Reliability (calibration)", reliability(y, probs, pdir / "reliability.png",
                                                              probs_uncalibrated)))
        g = gallery(images, test_idx, probs, classes, card, model, pdir / "misclassified.png", n_gallery)
        if g:
            figs.append(("Misclassified test images with Grad-CAM", g))
    ci = t.get("ci95") or {}
    rows = [[k, t.get(k), _ci(ci.get(k))] for k in ("accuracy", "balanced_accuracy", "macro_precision",
                                                    "macro_recall", "macro_f1", "weighted_f1", "log_loss",
                                                    "macro_roc_auc", "ece", "ece_uncalibrated", "ood_flagged")]
    per = [[c, v["precision"], v["recall"], v["f1"], v["support"], t["roc_auc"].get(c),
            _ci((ci.get("roc_auc") or {}).get(c))] for c, v in t["per_class"].items()]
    n_boot = rep["hyperparameters"].get("bootstrap")
    ci_note = (f"<p>95% confidence intervals: percentile bootstrap, {n_boot} resamples of the test set "
               f"(seed {rep['hyperparameters'].get('seed')}).</p>" if ci else "")
    parts = [f"<h1>medviewer training report: {html.escape(card.name)}</h1>",
             f"<p>{html.escape(card.summary())}</p>"]
    if rep.get("warnings"):
        parts.append("<div class='warn'><b>Warnings</b><ul>" +
                     "".join(f"<li>{html.escape(w)}</li>" for w in rep["warnings"]) + "</ul></div>")
    tr = rep.get("training") or {}
    if tr.get("restored_epoch", -1) > 0:
        chosen = ("the last epoch" if tr["restored_epoch"] == tr["epochs_run"]
                  else f"the best {tr['selected_on'].replace('_', ' ')} (restore-best)")
        check = (tr.get("validation_check") or {}).get("message", "")
        parts.append(f"<p><b>Model:</b> the weights of epoch {tr['restored_epoch']} of {tr['epochs_run']}, "
                     f"{html.escape(chosen)}. {html.escape(check)}</p>")
    parts += [
             "<h2>Test metrics</h2>", html_table(rows, ["metric", "value", "95% CI"]),
             html_table(per, ["class", "precision", "recall", "F1", "support", "ROC AUC", "95% CI"]), ci_note,
             f"<pre>{html.escape(cls_text)}</pre>",
             *_trust_html(card),
             "<h2>Data</h2>", html_table([[s] + [rep["splits"][s][c] for c in classes]
                                          for s in ("train", "val", "test")], ["split", *classes])]
    if rep["class_map"]:
        parts.append(html_table([[k, v] for k, v in rep["class_map"].items()], ["folder", "class"]))
    if summ["duplicates_across_splits"]:
        parts.append(f"<p><b>Leakage:</b> {len(summ['duplicates_across_splits'])} identical files "
                     "appear in more than one split (see dataset.json).</p>")
    if summ["skipped"]:
        parts.append("<h3>Skipped files</h3>" + html_table([[s["path"], s["reason"]] for s in summ["skipped"]],
                                                          ["file", "reason"]))
    if rep.get("cv"):
        parts.append(cv_html(rep["cv"]))
    for title, name in figs:
        parts.append(f"<h2>{html.escape(title)}</h2><img src='plots/{name}' alt='{html.escape(title)}'>")
    if rep["search"]:
        parts.append("<h2>Hyperparameter search</h2><pre>" +
                     html.escape(json.dumps({k: rep["search"][k] for k in ("best_params", "best_value",
                                                                            "importances")}, indent=2)) + "</pre>")
    parts.append("<h2>Hyperparameters</h2><pre>" + html.escape(json.dumps(rep["hyperparameters"], indent=2)) + "</pre>")
    style = "body{font-family:sans-serif;max-width:1000px;margin:auto}table{border-collapse:collapse;margin:8px 0}" \
            "td,th{border:1px solid #ccc;padding:2px 8px}img{max-width:100%}" \
            ".warn{border:2px solid #b00;background:#fee;padding:4px 12px;margin:8px 0}"
    path = out / "report.html"
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>medviewer report</title>"
                    f"<style>{style}</style></head><body>{''.join(parts)}</body></html>", encoding="utf-8")
    return path


def _trust_html(card: Any) -> list[str]:
    """Calibration, the OOD check and what the model was trained on (from the card)."""
    rows: list[list[Any]] = [["temperature (fitted on the validation split)", card.temperature]]
    fit = (card.ood or {}).get("fit", {})
    if card.ood:
        rows.append(["OOD method", card.ood["method"] + " over " +
                     ", ".join(layer["name"] for layer in card.ood["layers"])])
        rows.append(["OOD threshold (quantile of validation scores)",
                     f"{card.ood['threshold']:.4g} ({card.ood['quantile']:.0%})"])
        for key in ("val_flagged", "test_flagged", "probe_auroc", "probe_flagged", "probe_images"):
            if key in fit:
                rows.append([f"OOD {key.replace('_', ' ')}", fit[key]])
    else:
        rows.append(["OOD check", "none"])
    for key, values in (card.trained_on or {}).items():
        rows.append([f"trained on: {key.replace('_', ' ')}", ", ".join(values)])
    return ["<h2>Calibration and out-of-distribution check</h2>", html_table(rows, ["", "value"])]


def html_table(rows: list[list[Any]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def _ci(pair: Any) -> str:
    return f"{pair[0]:.3f} - {pair[1]:.3f}" if isinstance(pair, (list, tuple)) and len(pair) == 2 else ""


def cv_html(cv: dict) -> str:
    """The cross-validation table: one row per fold, then mean and standard deviation."""
    keys = ["accuracy", "balanced_accuracy", "macro_f1", "macro_roc_auc", "val_loss"]
    rows = [[f"fold {f['fold']}", f.get("n_train"), f.get("n_val"), *(f.get(k) for k in keys)] for f in cv["folds"]]
    rows.append(["mean", "", "", *(cv["mean"].get(k) for k in keys)])
    rows.append(["std", "", "", *(cv["std"].get(k) for k in keys)])
    return (f"<h2>Cross-validation ({len(cv['folds'])} folds, grouped by patient)</h2>"
            + html_table(rows, ["", "train", "validate", *keys]))
