"""Training checkpoints: atomic writes that leave nothing behind, strict reads.

A checkpoint is a dict written with ``torch.save`` and read back with
``torch.load(weights_only=True)`` (tensors, numbers, strings, lists and dicts
only: a checkpoint can never run code).  Reading it is not enough to trust it:
``validate`` checks the type and range of every field, and that the tensors fit
the model being resumed, so that a damaged or hand-edited file gives one line
naming the field instead of a traceback half-way through ``--resume``.
Writing goes to ``checkpoint.pt.tmp`` and is renamed over the old file; when
the disk fills up (or the file-size limit is hit) the temporary file is
removed and the previous checkpoint stays as it was.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch

from medviewer.viewer.errors import DiskFullError, ModelFileError

CHECKPOINT = "checkpoint.pt"
#: field -> what it must be (checked by ``validate``)
FIELDS = ("epoch", "arch", "num_classes", "model", "optimizer", "scheduler", "scaler", "history",
          "best_loss", "best_epoch", "best_state", "bad_epochs", "args")


def save(path: Path, state: dict) -> None:
    """Atomic: write ``path.tmp`` next to the target, then rename it over the target."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:     # ENOSPC/EFBIG surface as RuntimeError from the zip writer
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:120]
        raise DiskFullError(f"{path}: cannot write the checkpoint ({reason}); the temporary file was "
                            "removed and the previous checkpoint kept. Free some space and rerun with --resume"
                            ) from None


def load(path: Path) -> dict:
    """``torch.load(weights_only=True)``; any failure is one ModelFileError line."""
    try:
        st = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(f"{path}: unreadable checkpoint ({str(exc).splitlines()[0][:120]}); "
                             "delete it or use --overwrite to start over") from None
    if not isinstance(st, dict):
        raise ModelFileError(f"{path}: not a medviewer checkpoint (a {type(st).__name__}, not a dict); "
                             "delete it or use --overwrite to start over")
    return st


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _tensors_fit(value: Any, reference: dict[str, torch.Tensor]) -> str | None:
    """None when ``value`` is a state dict with exactly the reference's names and shapes."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        return "must be a dict of named tensors"
    bad = [k for k, v in value.items() if not isinstance(v, torch.Tensor)]
    if bad:
        return f"{bad[0]!r} is a {type(value[bad[0]]).__name__}, not a tensor"
    missing = [k for k in reference if k not in value]
    extra = [k for k in value if k not in reference]
    if missing or extra:
        what = f"{len(missing)} missing (e.g. {missing[0]!r})" if missing else \
            f"{len(extra)} unexpected (e.g. {extra[0]!r})"
        return f"tensors do not fit the model: {what}"
    wrong = [k for k, v in value.items() if tuple(v.shape) != tuple(reference[k].shape)]
    if wrong:
        k = wrong[0]
        return f"{k!r} has shape {tuple(value[k].shape)}, the model {tuple(reference[k].shape)}"
    nonfinite = [k for k, v in value.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if nonfinite:
        return f"{nonfinite[0]!r} holds NaN or infinite values"
    return None


def _like(saved: Any, fresh: Any, where: str) -> str | None:
    """None when ``saved`` has the structure and value types of ``fresh`` (a new object's state)."""
    if isinstance(fresh, bool):
        return None if isinstance(saved, bool) else f"{where} must be true or false"
    if _is_num(fresh):
        if not _is_num(saved) or (isinstance(saved, float) and math.isnan(saved) and not math.isnan(fresh)):
            return f"{where} must be a number, got {saved!r}"[:160]
        return None
    if isinstance(fresh, str):
        return None if isinstance(saved, str) else f"{where} must be a string"
    if isinstance(fresh, torch.Tensor):
        if not isinstance(saved, torch.Tensor) or tuple(saved.shape) != tuple(fresh.shape):
            return f"{where} must be a tensor of shape {tuple(fresh.shape)}"
        return None
    if isinstance(fresh, (list, tuple)):
        if not isinstance(saved, (list, tuple)) or len(saved) != len(fresh):
            return f"{where} must be a list of {len(fresh)}"
        for i, (a, b) in enumerate(zip(saved, fresh)):
            why = _like(a, b, f"{where}[{i}]")
            if why:
                return why
        return None
    if isinstance(fresh, dict):
        if not isinstance(saved, dict):
            return f"{where} must be a dict"
        for k, v in fresh.items():
            if k not in saved:
                return f"{where} lacks {k!r}"
            why = _like(saved[k], v, f"{where}[{k!r}]")
            if why:
                return why
        return None
    return None   # None and other values: anything of the kind is accepted


def _optimizer_state(saved: Any, opt: torch.optim.Optimizer) -> str | None:
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict) \
            or not isinstance(saved.get("param_groups"), list):
        return "must be an optimizer state dict (state, param_groups)"
    fresh = opt.state_dict()
    if len(saved["param_groups"]) != len(fresh["param_groups"]):
        return f"must hold {len(fresh['param_groups'])} parameter groups"
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, (g, f) in enumerate(zip(saved["param_groups"], fresh["param_groups"])):
        why = _like(g, {k: v for k, v in f.items() if k != "params"}, f"group {i}")
        if why:
            return why
        if not isinstance(g.get("params"), list) or len(g["params"]) != len(f["params"]) \
                or not all(_is_int(p) and 0 <= p < len(params) for p in g["params"]):
            return f"group {i} must list {len(f['params'])} parameter indices"
        lr = g["lr"]
        if not math.isfinite(lr) or lr < 0:
            return f"group {i} learning rate {lr!r} is not a non-negative number"
    for k, s in saved["state"].items():
        if not _is_int(k) or not 0 <= k < len(params) or not isinstance(s, dict):
            return "state must map parameter indices to dicts"
        for name, v in s.items():
            if isinstance(v, torch.Tensor):
                if v.ndim and tuple(v.shape) != tuple(params[k].shape):
                    return f"state {name!r} of parameter {k} has shape {tuple(v.shape)}, " \
                           f"the parameter {tuple(params[k].shape)}"
            elif v is not None and not _is_num(v):
                return f"state {name!r} of parameter {k} must be a tensor or a number"
    return None


def validate(st: dict, path: Path, *, arch: str, num_classes: int, model: torch.nn.Module,
             optimizer: torch.optim.Optimizer, scheduler: Any = None, scaler: Any = None) -> None:
    """Raise ModelFileError (one line naming the field) unless every field is well-formed
    and fits the model, optimiser, scheduler and gradient scaler about to be resumed."""

    def bad(name: str, why: str) -> ModelFileError:
        return ModelFileError(f"{path}: checkpoint field {name!r}: {why}; delete it or use --overwrite "
                              "to start over")

    missing = [f for f in FIELDS if f not in st]
    if missing:
        raise bad(missing[0], "missing")
    if not isinstance(st["arch"], str):
        raise bad("arch", f"must be a string, got {type(st['arch']).__name__}")
    if not _is_int(st["num_classes"]):
        raise bad("num_classes", f"must be an integer, got {type(st['num_classes']).__name__}")
    if st["arch"] != arch or st["num_classes"] != num_classes:
        from medviewer.viewer.errors import UsageError

        raise UsageError(f"{path}: checkpoint is for {st['arch']} with {st['num_classes']} classes, not "
                         f"{arch} with {num_classes}; use another --out, or --overwrite")
    for name in ("epoch", "best_epoch", "bad_epochs"):
        v = st[name]
        if not _is_int(v) or v < (-1 if name == "best_epoch" else 0):
            raise bad(name, f"must be a non-negative integer, got {v!r}"[:160])
    if not _is_num(st["best_loss"]) or math.isnan(st["best_loss"]):
        raise bad("best_loss", f"must be a number, got {st['best_loss']!r}"[:160])
    if not isinstance(st["args"], dict):
        raise bad("args", f"must be a dict, got {type(st['args']).__name__}")
    for name in ("epochs", "stage_epochs"):
        v = st["args"].get(name)
        if name in st["args"] and (not _is_int(v) or v < (1 if name == "epochs" else 0)):
            raise bad("args", f"{name!r} must be a positive integer, got {v!r}"[:160])
    if "epochs" not in st["args"]:
        raise bad("args", "'epochs' missing")
    if not isinstance(st["history"], list) or len(st["history"]) != st["epoch"] + 1:
        raise bad("history", f"must be a list of {st['epoch'] + 1} epoch record(s)")
    for i, h in enumerate(st["history"]):
        if not isinstance(h, dict) or not all(isinstance(k, str) and (v is None or _is_num(v))
                                              for k, v in h.items()):
            raise bad("history", f"record {i + 1} must map names to numbers")
    if not -1 <= st["best_epoch"] <= st["epoch"] + 1:
        raise bad("best_epoch", f"{st['best_epoch']} is not one of the {st['epoch'] + 1} epoch(s) run")
    reference = model.state_dict()
    why = _tensors_fit(st["model"], reference)
    if why:
        raise bad("model", why)
    if st["best_state"] is not None:
        why = _tensors_fit(st["best_state"], reference)
        if why:
            raise bad("best_state", why)
    why = _optimizer_state(st["optimizer"], optimizer)
    if why:
        raise bad("optimizer", why)
    for name, obj in (("scheduler", scheduler), ("scaler", scaler)):
        saved = st[name]
        if saved is None:
            continue
        if not isinstance(saved, dict):
            raise bad(name, f"must be a dict or None, got {type(saved).__name__}")
        if obj is not None:
            why = _like(saved, obj.state_dict(), name)
            if why:
                raise bad(name, why)
