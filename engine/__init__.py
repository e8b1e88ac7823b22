"""medviewer's AI engine: Qt-free models, preprocessing, inference, Grad-CAM, trainer.

torch is imported lazily so that the viewer opens fast; `engine.load_model`
is the public entry point (see README, "Python API").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from engine.modelfile import LoadedModel


def load_model(path: Any, device: str | None = None) -> "LoadedModel":
    """Load a `.safetensors` model file with its card; see engine.modelfile."""
    from engine.modelfile import load_model as _load

    return _load(path, device=device)


__all__ = ["load_model"]
