"""``medviewer compare RUN_DIR... --out DIR``: one table of training runs, with uncertainty.

A run is a trainer output folder (``report.json``, ``predictions.csv``,
``history.csv``) or a ``--search`` trial folder (``OUT/search/trial_<n>``, metrics
on the validation split).  ``DIR/compare.csv`` has one row per run: name,
architecture, the hyperparameters that differ between the runs, epochs trained,
training time, accuracy, balanced accuracy, macro F1 and macro ROC AUC each with
its 95 % bootstrap interval (report.json ``ci95``), ECE when the run reports one,
and - when a run's predictions are on exactly the same images as the best run's
(same files, same labels) - the difference of the ranking metric from the best
run with its paired-bootstrap two-sided p-value (engine.train.bootstrap).
Every number except the paired test is copied from the run's report.json.

``DIR/compare.html`` shows the same table (click a header to sort), the runs'
validation curves overlaid and their ROC curves overlaid (macro average of the
one-vs-rest curves, from predictions.csv).
"""

from __future__ import annotations

import csv
import glob
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.viewer.clikit import EXIT_FAIL, EXIT_OK, EXIT_PARTIAL, Parser, say
from medviewer.viewer.errors import NothingToShowError, UsageError

METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_roc_auc")
NOT_COMPARED = {"device", "aug", "feature_cache_used"}   # where it ran / echoes of other keys
PROG = "medviewer compare"


@dataclass
class Run:
    name: str
    path: Path
    report: dict[str, Any]
    split: str                                   # "test", or "val" for search trials
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    predictions: tuple[list[str], np.ndarray, np.ndarray] | None = None   # paths, true index, probs
    state: str = ""                              # search trials: COMPLETE / PRUNED / FAIL
    notes: list[str] = field(default_factory=list)


def _read_predictions(path: Path, classes: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray] | None:
    if not path.is_file():
        return None
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        return None
    index = {c: i for i, c in enumerate(classes)}
    paths = [r["path"] for r in rows]
    y = np.asarray([index[r["true"]] for r in rows])
    p = np.asarray([[float(r[f"p_{c}"]) for c in classes] for r in rows])
    return paths, y, p


def load_run(path: Path) -> Run:
    """One run folder; NothingToShowError (one line) when it is not a run."""
    rep_path = path / "report.json"
    try:
        rep = json.loads(rep_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NothingToShowError(f"{path}: no report.json (not a training run folder)") from None
    except (OSError, ValueError) as exc:
        raise NothingToShowError(f"{rep_path}: unreadable ({str(exc).splitlines()[0][:100]})") from None
    if not isinstance(rep, dict) or "classes" not in rep or "hyperparameters" not in rep:
        raise NothingToShowError(f"{rep_path}: not a medviewer training report")
    split = "val" if rep.get("validation") is not None or rep.get("trial") else "test"
    metrics = (rep.get("validation") if split == "val" else rep.get("test")) or {}
    run = Run(path.name, path, rep, split, metrics, list(rep.get("history") or []),
              state=str((rep.get("trial") or {}).get("state", "")))
    try:
        run.predictions = _read_predictions(path / "predictions.csv", rep["classes"])
    except (OSError, KeyError, ValueError, csv.Error) as exc:
        run.notes.append(f"predictions.csv unreadable ({type(exc).__name__})")
    return run


def expand(patterns: Sequence[str]) -> tuple[list[Path], list[str]]:
    """Run folders from paths and glob patterns; a folder of runs stands for its runs."""
    found: list[Path] = []
    problems: list[str] = []
    for pat in patterns:
        matches = sorted(glob.glob(pat)) if any(ch in pat for ch in "*?[") else [pat]
        if not matches:
            problems.append(f"{pat}: matches nothing")
        for m in matches:
            p = Path(m)
            if p.is_dir() and not (p / "report.json").is_file():
                kids = sorted(c.parent for c in p.glob("*/report.json"))
                if kids:
                    found += kids
                    continue
            if p.is_dir() or (p / "report.json").exists():
                found.append(p)
            elif p.name == "report.json" and p.is_file():
                found.append(p.parent)
            else:
                problems.append(f"{m}: not a run folder")
    seen: set[Path] = set()
    unique = []
    for p in found:
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique, problems


def _names(runs: Sequence[Run]) -> None:
    """Folder names, made unique with their parent where two runs share one."""
    counts: dict[str, int] = {}
    for r in runs:
        counts[r.name] = counts.get(r.name, 0) + 1
    for r in runs:
        if counts[r.name] > 1:
            r.name = f"{r.path.parent.name}/{r.path.name}"


def differing(runs: Sequence[Run]) -> list[str]:
    """Hyperparameters whose values are not the same in every run (architecture/epochs have columns)."""
    keys: list[str] = []
    for r in runs:
        keys += [k for k in r.report["hyperparameters"] if k not in keys]
    out = []
    for k in keys:
        if k in NOT_COMPARED or k in ("arch", "epochs"):
            continue
        vals = {json.dumps(r.report["hyperparameters"].get(k), sort_keys=True) for r in runs}
        if len(vals) > 1:
            out.append(k)
    return out


def _ece(metrics: dict[str, Any]) -> float | None:
    """report.json test.ece: a number, or an object whose calibrated value is preferred."""
    v = metrics.get("ece")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, dict):
        for key in ("calibrated", "after", "temperature_scaled", "value", "ece", "uncalibrated", "before"):
            if isinstance(v.get(key), (int, float)) and not isinstance(v.get(key), bool):
                return float(v[key])
    return None


def training_seconds(run: Run) -> float | None:
    """Seconds of all training epochs: the final model's and, after --folds, the folds'."""
    from medviewer.engine.train.runlog import read_history_csv

    secs = [h.get("seconds") for h in run.history]
    if not secs or any(not isinstance(s, (int, float)) for s in secs):
        return None
    total = float(sum(secs))
    if run.report.get("cv"):
        for f in sorted(run.path.glob("cv/fold_*/history.csv")):
            try:
                total += sum(r.get("seconds") or 0.0 for r in read_history_csv(f))
            except (OSError, ValueError):
                pass
    return total


def paired_tests(runs: Sequence[Run], best: Run, metric: str, n_boot: int, seed: int) -> dict[str, dict]:
    """Paired bootstrap of each run against the best on the images both predicted identically-labelled."""
    from medviewer.engine.train.bootstrap import paired_bootstrap

    out: dict[str, dict] = {}
    if best.predictions is None:
        return out
    bp, by, bprobs = best.predictions
    border = np.argsort(bp)
    key_best = [(bp[i], int(by[i])) for i in border]
    for r in runs:
        if r is best or r.predictions is None or r.report["classes"] != best.report["classes"]:
            continue
        rp, ry, rprobs = r.predictions
        order = np.argsort(rp)
        if [(rp[i], int(ry[i])) for i in order] != key_best:
            r.notes.append("not paired with the best run: different test images")
            continue
        res = paired_bootstrap(by[border], rprobs[order], bprobs[border], len(best.report["classes"]),
                               metric, n_boot, seed)
        out[r.name] = res
    return out


def build_rows(runs: Sequence[Run], metric: str = "macro_f1", n_boot: int = 1000, seed: int = 0
               ) -> tuple[list[dict[str, Any]], list[str], Run | None]:
    """(rows, column names, best run) of the comparison table."""
    hp = differing(runs)
    ranked = [r for r in runs if isinstance(r.metrics.get(metric), (int, float))]
    best = max(ranked, key=lambda r: r.metrics[metric]) if ranked else None
    tests = paired_tests(runs, best, metric, n_boot, seed) if best is not None else {}
    any_ece = any(_ece(r.metrics) is not None for r in runs)
    any_state = any(r.state for r in runs)
    cols = ["name", "architecture", *hp, "split", "epochs", "training_s"]
    for m in METRICS:
        cols += [m, f"{m}_ci_low", f"{m}_ci_high"]
    if any_ece:
        cols.append("ece")
    cols += [f"{metric}_diff_vs_best", "p_value_vs_best"]
    if any_state:
        cols.append("state")
    rows = []
    for r in runs:
        h = r.report["hyperparameters"]
        row: dict[str, Any] = {"name": r.name, "architecture": h.get("arch"), "split": r.split,
                               "epochs": len(r.history), "training_s": training_seconds(r)}
        for k in hp:
            v = h.get(k)
            row[k] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
        ci = r.metrics.get("ci95") or {}
        for m in METRICS:
            row[m] = r.metrics.get(m)
            pair = ci.get(m) if isinstance(ci.get(m), list) else None
            row[f"{m}_ci_low"], row[f"{m}_ci_high"] = (pair[0], pair[1]) if pair else (None, None)
        if any_ece:
            row["ece"] = _ece(r.metrics)
        t = tests.get(r.name)
        if r is best:
            row[f"{metric}_diff_vs_best"], row["p_value_vs_best"] = 0.0, None
        else:
            row[f"{metric}_diff_vs_best"] = t["difference"] if t else None
            row["p_value_vs_best"] = t["p_value"] if t else None
        if any_state:
            row["state"] = r.state
        rows.append(row)
    return rows, cols, best


def _csv_cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return repr(v) if isinstance(v, float) else str(v)


def write_csv(path: Path, rows: Sequence[dict], cols: Sequence[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for row in rows:
            w.writerow([_csv_cell(row.get(c)) for c in cols])
    return path


def compare(run_dirs: Sequence[Path], out: Path, metric: str = "macro_f1", n_boot: int = 1000,
            seed: int = 0, title: str = "") -> tuple[list[Run], list[dict], Run | None, list[str]]:
    """Load the runs, write compare.csv / compare.html into `out`; (runs, rows, best, problems)."""
    from medviewer.engine.train.compare_html import write_html

    runs, problems = [], []
    for d in run_dirs:
        try:
            runs.append(load_run(Path(d)))
        except NothingToShowError as exc:
            problems.append(str(exc))
    if not runs:
        return [], [], None, problems
    _names(runs)
    rows, cols, best = build_rows(runs, metric, n_boot, seed)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "compare.csv", rows, cols)
    write_html(out, runs, rows, cols, best, metric, n_boot, title)
    return runs, rows, best, problems


def main_compare(argv: list[str]) -> int:
    from medviewer.engine.train.bootstrap import CI_METRICS

    p = Parser(prog=PROG, description="Compare training runs: one table with confidence intervals, "
                                      "overlaid curves and paired bootstrap tests against the best run.")
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders, folders of runs, or glob patterns")
    p.add_argument("--out", required=True, metavar="DIR", help="where compare.csv and compare.html go")
    p.add_argument("--metric", choices=CI_METRICS, default="macro_f1", help="ranks the runs; the paired test uses it")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="paired bootstrap resamples")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.bootstrap < 1:
        raise UsageError(f"{PROG}: --bootstrap must be at least 1")
    dirs, problems = expand(args.runs)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{PROG}: --out {out} is a file, not a folder")
    runs, rows, best, more = compare(dirs, out, args.metric, args.bootstrap, args.seed)
    for line in problems + more:
        say(PROG, f"skipped {line}")
    if not runs:
        raise NothingToShowError(f"{PROG}: no training run among {', '.join(args.runs)}")
    for r in runs:
        for note in r.notes:
            say(PROG, f"{r.name}: {note}")
    print(f"{len(runs)} run(s); best by {args.metric}: {best.name if best else 'n/a'}; "
          f"wrote {out / 'compare.csv'} and {out / 'compare.html'}")
    for row in sorted(rows, key=lambda r: -(r.get(args.metric) or -1)):
        v, lo, hi = row.get(args.metric), row.get(f"{args.metric}_ci_low"), row.get(f"{args.metric}_ci_high")
        pv = row.get("p_value_vs_best")
        print(f"  {row['name']:<28} {row['architecture'] or '':<20} {args.metric} "
              + (f"{v:.3f}" if isinstance(v, float) else "n/a")
              + (f" [{lo:.3f}, {hi:.3f}]" if isinstance(lo, float) and isinstance(hi, float) else "")
              + (f"  p={pv:.3f} vs best" if isinstance(pv, float) else ""))
    return EXIT_PARTIAL if (problems or more) else EXIT_OK


__all__ = ["EXIT_FAIL", "Run", "build_rows", "compare", "expand", "load_run", "main_compare"]
