"""Read PyTorch weights without running pickled code: the one state-dict unwrapper.

Used by `medviewer convert-model` and the trainer's ``--weights PATH``.  Accepts a
``.safetensors`` file or a ``.pt/.pth`` file read with ``torch.load(weights_only=True)``
(which refuses pickled code); unwraps the usual checkpoint layouts (``model``,
``state_dict``, ``model_state_dict``, ``model_state``), drops DistributedDataParallel's
``module.`` prefix and refuses non-finite values.  Every problem is one ModelFileError
line naming the file.
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medviewer.viewer.errors import ModelFileError

if TYPE_CHECKING:  # pragma: no cover
    import torch

CHECKPOINT_KEYS = ("model", "state_dict", "model_state_dict", "model_state")
#: a weights file larger than this is refused before reading (no torchvision model comes close)
MAX_BYTES = 8 * 2**30


def unwrap_state_dict(obj: Any, where: str) -> dict[str, "torch.Tensor"]:
    """A state dict of tensors from a state dict or a checkpoint holding one."""
    import torch

    if isinstance(obj, dict):
        for key in CHECKPOINT_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj or not all(isinstance(k, str) for k in obj):
        raise ModelFileError(f"{where}: no state dict of tensors found (save model.state_dict(), not the module)")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelFileError(f"{where}: no state dict of tensors found (save model.state_dict(), not the module)")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    check_finite(tensors, where)
    return tensors


def check_finite(tensors: dict[str, "torch.Tensor"], where: str) -> None:
    """ModelFileError naming the first tensor that holds NaN or infinity."""
    import torch

    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise ModelFileError(f"{where}: tensor {name!r} holds NaN or infinite values")


def read_state_dict(path: str | Path, where: str | None = None, what: str = "weights") -> dict[str, "torch.Tensor"]:
    """Tensors of a .safetensors or weights-only .pt/.pth file, unwrapped and checked.

    `where` names the file in messages (default: its name); `what` says what the file
    is for (e.g. "--weights").
    """
    import pickle

    import torch

    path = Path(path)
    where = where or path.name
    try:
        st = path.stat()
    except OSError:
        raise ModelFileError(f"{path}: {what} file not found") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(f"{path}: {what} file is not a regular file")
    if st.st_size > MAX_BYTES:
        raise ModelFileError(f"{where}: {st.st_size / 2**30:.1f} GiB is larger than any supported model")
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state: Any = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelFileError(f"{where}: not a readable safetensors file ({str(exc).splitlines()[0][:160]})") from None
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, TypeError,
                OSError, UnicodeDecodeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFileError(f"{where}: cannot read as weights only, refusing to unpickle code "
                                 f"({first[:160]})") from None
    return unwrap_state_dict(state, where)
