"""compare.html: the comparison table (sortable), overlaid validation curves and ROC curves.

Plots are PNG files written next to the page (matplotlib, Agg backend); the table
sorts in the browser with a few lines of script and no external resources.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

METRIC_LABELS = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro F1",
                 "macro_roc_auc": "macro AUC"}

_SCRIPT = """
function sortBy(th){const t=th.closest('table'),b=t.tBodies[0],i=[...th.parentNode.children].indexOf(th);
const asc=th.dataset.dir!=='asc';[...th.parentNode.children].forEach(h=>{h.dataset.dir='';h.classList.remove('asc','desc')});
th.dataset.dir=asc?'asc':'desc';th.classList.add(asc?'asc':'desc');
const key=r=>{const c=r.children[i];const v=c.dataset.v;if(v===undefined||v==='')return null;const n=parseFloat(v);return isNaN(n)?v:n};
[...b.rows].sort((x,y)=>{const a=key(x),c=key(y);if(a===null)return 1;if(c===null)return -1;
return (a<c?-1:a>c?1:0)*(asc?1:-1)}).forEach(r=>b.appendChild(r))}
"""
_STYLE = ("body{font-family:sans-serif;margin:16px 24px}table{border-collapse:collapse;margin:8px 0;font-size:13px}"
          "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}"
          "td:first-child,th:first-child,td.t{text-align:left}th{background:#f0f3f7;cursor:pointer}"
          "th.asc:after{content:' \\25B2'}th.desc:after{content:' \\25BC'}tr.best{background:#eaf6ea}"
          "small{color:#666}img{max-width:100%}.ci{color:#555;font-size:11px}")


def _curves(runs: Sequence[Any], path: Path) -> str | None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    drawn = 0
    for r in runs:
        ep = [h.get("epoch") for h in r.history]
        vl = [np.nan if not isinstance(h.get("val_loss"), (int, float)) else h["val_loss"] for h in r.history]
        va = [np.nan if not isinstance(h.get("val_accuracy"), (int, float)) else h["val_accuracy"]
              for h in r.history]
        if not ep or all(math.isnan(v) for v in vl):
            continue
        line, = a.plot(ep, vl, "o-", ms=3, label=r.name)
        b.plot(ep, va, "o-", ms=3, color=line.get_color(), label=r.name)
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    a.set(xlabel="epoch", ylabel="loss (log scale)", title="validation loss", yscale="log")
    b.set(xlabel="epoch", ylabel="accuracy", title="validation accuracy")
    b.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def macro_roc(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Macro-average one-vs-rest ROC curve (the positive class's curve for two classes)."""
    from sklearn.metrics import roc_curve

    k = p.shape[1]
    grid = np.linspace(0, 1, 201)
    classes = [1] if k == 2 else range(k)
    tprs = []
    for c in classes:
        pos = y == c
        if 0 < pos.sum() < len(y):
            fpr, tpr, _ = roc_curve(pos, p[:, c])
            tprs.append(np.interp(grid, fpr, tpr))
    if not tprs:
        return None
    t = np.mean(tprs, axis=0)
    t[0] = 0.0
    return grid, t


def _roc(runs: Sequence[Any], path: Path) -> str | None:
    fig, ax = plt.subplots(figsize=(6, 5))
    drawn = 0
    for r in runs:
        if r.predictions is None:
            continue
        _, y, p = r.predictions
        curve = macro_roc(y, p)
        if curve is None:
            continue
        auc = r.metrics.get("macro_roc_auc")
        ax.plot(*curve, label=f"{r.name}" + (f" (macro AUC {auc:.3f})" if isinstance(auc, float) else ""))
        drawn += 1
    if not drawn:
        plt.close(fig)
        return None
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate",
           title="ROC (macro average of one-vs-rest curves)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def _table(rows: Sequence[dict], cols: Sequence[str], best: Any, metric: str) -> str:
    shown = [c for c in cols if not c.endswith(("_ci_low", "_ci_high"))
             and not (c == "split" and len({r.get("split") for r in rows}) == 1)]   # said above the table
    head = "".join(f"<th onclick='sortBy(this)'>{html.escape(METRIC_LABELS.get(c, c).replace('_', ' '))}</th>"
                   for c in shown)
    body = []
    for row in rows:
        cells = []
        for c in shown:
            v = row.get(c)
            text = html.escape(_fmt(v))
            if c in METRIC_LABELS:
                lo, hi = row.get(f"{c}_ci_low"), row.get(f"{c}_ci_high")
                if isinstance(lo, float) and isinstance(hi, float):
                    text += f" <span class='ci'>[{lo:.3f}, {hi:.3f}]</span>"
            if c == "training_s" and isinstance(v, float):
                text = f"{v:.1f}"
            data = "" if v is None else html.escape(str(v), quote=True)
            cls = " class='t'" if isinstance(v, str) else ""
            cells.append(f"<td{cls} data-v='{data}'>{text}</td>")
        mark = " class='best'" if best is not None and row["name"] == best.name else ""
        body.append(f"<tr{mark}>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_html(out: Path, runs: Sequence[Any], rows: Sequence[dict], cols: Sequence[str], best: Any,
               metric: str, n_boot: int, title: str = "") -> Path:
    curves = _curves(runs, out / "compare_curves.png")
    roc = _roc(runs, out / "compare_roc.png")
    split = {r.split for r in runs}
    on = "the validation split (search trials)" if split == {"val"} else \
        "the test split" if split == {"test"} else "each run's split (see the split column)"
    label = METRIC_LABELS.get(metric, metric)
    parts = [f"<h1>{html.escape(title or 'medviewer: comparison of training runs')}</h1>",
             f"<p>{len(runs)} run(s), metrics on {on}; brackets: 95% bootstrap confidence intervals "
             f"from each run's report.json. Best by {html.escape(label)}: "
             f"<b>{html.escape(best.name) if best else 'n/a'}</b> (highlighted). "
             f"p value vs best: paired bootstrap ({n_boot} resamples) of the {html.escape(label)} difference "
             f"on the same images, two-sided. Click a column header to sort.</p>",
             _table(rows, cols, best, metric)]
    notes = [f"{r.name}: {n}" for r in runs for n in r.notes]
    if notes:
        parts.append("<p><small>" + "<br>".join(html.escape(n) for n in notes) + "</small></p>")
    if curves:
        parts.append(f"<h2>Validation curves</h2><img src='{curves}' alt='validation curves'>")
    if roc:
        parts.append(f"<h2>ROC curves</h2><img src='{roc}' alt='ROC curves'>")
    parts.append("<p><small>Runs: " + "; ".join(f"{html.escape(r.name)} = {html.escape(str(r.path))}"
                                                 for r in runs) + "</small></p>")
    path = out / "compare.html"
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>medviewer compare</title>"
                    f"<style>{_STYLE}</style><script>{_SCRIPT}</script></head><body>{''.join(parts)}</body></html>",
                    encoding="utf-8")
    return path
