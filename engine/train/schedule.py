"""Re-planning a learning-rate schedule when ``--resume`` changes ``--epochs``.

A checkpoint's scheduler was planned for the run that wrote it: CosineAnnealingLR
for ``T_max`` = its epochs (stepping past it climbs back up: the cosine wraps),
OneCycleLR for ``total_steps`` batches (stepping past it raises).  Resuming an
8-epoch run with ``--epochs 10`` therefore re-plans the schedule for 10 epochs:
from the resumed epoch on, the learning rate is exactly the one a run planned
for 10 epochs from the start would use at that epoch (closed forms), so it
decreases to the end of the new plan and never wraps.  StepLR and
ReduceLROnPlateau do not depend on the number of epochs and continue as they
were.
"""

from __future__ import annotations

import warnings
from typing import Any


def _set_lrs(sched: Any, lrs: list[float]) -> None:
    for group, lr in zip(sched.optimizer.param_groups, lrs):
        group["lr"] = lr
    sched._last_lr = list(lrs)


def replan(sched: Any, kind: str, old_epochs: int, new_epochs: int, steps_per_epoch: int,
           pct_start: float) -> str | None:
    """Re-plan ``sched`` (state already loaded from the checkpoint) for ``new_epochs``.

    Returns a sentence for the log, or None when nothing had to change.
    """
    if sched is None or old_epochs == new_epochs:
        return None
    if kind == "cosine":
        before = [g["lr"] for g in sched.optimizer.param_groups]
        sched.T_max = max(1, new_epochs)
        _set_lrs(sched, sched._get_closed_form_lr())
    elif kind == "onecycle":
        before = [g["lr"] for g in sched.optimizer.param_groups]
        total = max(1, new_epochs) * max(1, steps_per_epoch)
        sched.total_steps = total
        phases = sched._schedule_phases
        if len(phases) != 2:     # the trainer never builds the three-phase variant
            raise ValueError("cannot re-plan a three-phase OneCycleLR")
        phases[0]["end_step"] = float(pct_start * total) - 1
        phases[1]["end_step"] = total - 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # get_lr outside step() warns
            _set_lrs(sched, [float(v) for v in sched.get_lr()])
    else:
        return (f"resuming with --epochs {new_epochs} (the checkpoint planned {old_epochs}): "
                f"the {kind} schedule does not depend on the number of epochs and continues")
    after = sched.optimizer.param_groups[-1]["lr"]
    return (f"re-planned the {kind} schedule for {new_epochs} epochs (the checkpoint planned {old_epochs}): "
            f"lr {before[-1]:.3g} -> {after:.3g} now, {'annealing' if kind == 'cosine' else 'one cycle'} "
            f"to the end of epoch {new_epochs}")

