"""Pick the compute device: CUDA, then Apple MPS, then CPU; overridable.

Order of precedence: an explicit argument ("cpu", "cuda", "cuda:1", "mps",
"auto"), then $MEDVIEWER_DEVICE, then the best available.  torch is imported
only when a device is actually needed (STYLE.md pattern 8).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from medviewer.viewer.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch


def pick_device(preference: str | None = None) -> "torch.device":
    """Return the torch.device to run on; an unavailable explicit choice is a UsageError."""
    import torch

    pref = (preference or os.environ.get("MEDVIEWER_DEVICE") or "auto").strip().lower()
    if pref == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(pref)
    except RuntimeError:
        raise UsageError(f"unknown device {pref!r} (use auto, cpu, cuda or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"device {pref!r} requested but only {torch.cuda.device_count()} CUDA GPU(s) exist")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UsageError("device 'mps' requested but Apple MPS is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise UsageError(f"unsupported device {pref!r} (use auto, cpu, cuda or mps)")
    return dev


def describe(device: "torch.device") -> str:
    """Human-readable device name for panels and the CLI JSON, e.g. 'cuda:0 (NVIDIA H100)'."""
    import torch

    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{idx} ({torch.cuda.get_device_name(idx)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def autocast(device: "torch.device") -> Any:
    """Mixed precision on CUDA (float16), a no-op elsewhere."""
    import torch

    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def prepare_module(module: "torch.nn.Module", device: "torch.device") -> "torch.nn.Module":
    """Move to `device` in eval mode; channels-last memory format on CUDA."""
    import torch

    module = module.to(device).eval()
    if device.type == "cuda":
        module = module.to(memory_format=torch.channels_last)
    return module


def prepare_input(x: "torch.Tensor", device: "torch.device") -> "torch.Tensor":
    import torch

    if device.type == "cuda":
        if x.device.type != "cuda":
            x = x.pin_memory().to(device, non_blocking=True)
        return x.contiguous(memory_format=torch.channels_last)
    return x.to(device)
