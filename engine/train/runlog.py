"""Training logs: ``history.csv`` for every run and, with ``--tensorboard``, TensorBoard events.

``history.csv`` has one row per epoch with every history field (epoch, train and
validation loss and accuracy, learning rate, seconds the epoch took, and any
field added later, in order of first appearance).  It is appended to as epochs
finish, so a long run can be followed with ``tail -f``, and rewritten from the
complete history when the run ends (a resumed run keeps the earlier epochs).

TensorBoard (optional extra ``medviewer[tensorboard]``) receives the same scalars
per epoch under ``loss/``, ``accuracy/``, ``lr`` and ``time/``, the test metrics
under ``test/`` and, at the end, the test confusion matrix as an image.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from medviewer.viewer.errors import UsageError

HISTORY_CSV = "history.csv"
HISTORY_FIELDS = ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds")
TENSORBOARD_DIR = "tensorboard"
TENSORBOARD_HINT = "--tensorboard needs the tensorboard package: pip install 'medviewer[tensorboard]'"


def _cell(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ""
    return repr(float(v)) if isinstance(v, float) else str(v)


def _fields(history: Sequence[dict]) -> list[str]:
    names = list(HISTORY_FIELDS)
    for rec in history:
        names += [k for k in rec if k not in names]
    return names


def write_history_csv(path: Path, history: Sequence[dict]) -> Path:
    """The whole history, one row per epoch (empty cells for NaN / missing values)."""
    names = _fields(history)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for rec in history:
            w.writerow([_cell(rec.get(k)) for k in names])
    return path


def read_history_csv(path: Path) -> list[dict[str, float | None]]:
    """history.csv back as records (numbers as float, empty cells as None)."""
    with path.open(newline="", encoding="utf-8") as fh:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()}
                for row in csv.DictReader(fh)]


class EpochLog:
    """The trainer's ``on_epoch`` hook: appends to history.csv, feeds TensorBoard."""

    def __init__(self, out: Path, tensorboard: bool = False, resume: bool = False) -> None:
        self.path = out / HISTORY_CSV
        self.writer = open_tensorboard(out) if tensorboard else None
        self._started = False
        self._resume = resume

    def __call__(self, rec: dict) -> None:
        if not self._started:
            self._started = True
            kept = []
            if self._resume and self.path.is_file():   # epochs before the checkpoint stay
                try:
                    kept = [r for r in read_history_csv(self.path)
                            if r.get("epoch") is not None and r["epoch"] < rec["epoch"]]
                except (OSError, ValueError, csv.Error):
                    kept = []
            self._names = _fields([*kept, rec])
            write_history_csv(self.path, kept)
        with self.path.open("a", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerow([_cell(rec.get(k)) for k in self._names])
        if self.writer is not None:
            step = int(rec["epoch"])
            for key, tag in (("train_loss", "loss/train"), ("val_loss", "loss/val"),
                             ("train_accuracy", "accuracy/train"), ("val_accuracy", "accuracy/val"),
                             ("lr", "lr"), ("seconds", "time/seconds_per_epoch")):
                v = rec.get(key)
                if v is not None and math.isfinite(float(v)):
                    self.writer.add_scalar(tag, float(v), step)
            self.writer.flush()

    def finish(self, metrics: dict, classes: Sequence[str], step: int) -> None:
        """Test metrics and the confusion-matrix image; closes the event file."""
        if self.writer is None:
            return
        for key in ("accuracy", "balanced_accuracy", "macro_f1", "macro_roc_auc", "log_loss"):
            v = metrics.get(key)
            if isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(f"test/{key}", float(v), step)
        cm = metrics.get("confusion_matrix")
        if cm and any(any(row) for row in cm):
            self.writer.add_figure("test/confusion_matrix", confusion_figure(cm, classes), step)
        self.writer.close()
        self.writer = None


def open_tensorboard(out: Path) -> Any:
    """A SummaryWriter on OUT/tensorboard, or one UsageError line naming the extra to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UsageError(TENSORBOARD_HINT) from None
    return SummaryWriter(log_dir=str(out / TENSORBOARD_DIR))


def confusion_figure(cm: list[list[int]], classes: Sequence[str]) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    a = np.asarray(cm, float)
    fig, ax = plt.subplots(figsize=(2 + 0.8 * len(classes), 1.6 + 0.8 * len(classes)))
    ax.imshow(a, cmap="Blues", vmin=0)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title="test confusion matrix")
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(j, i, f"{a[i, j]:.0f}", ha="center", va="center",
                    color="white" if a[i, j] > a.max() / 2 else "black")
    fig.tight_layout()
    return fig
