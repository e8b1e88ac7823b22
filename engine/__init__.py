"""medviewer's AI engine: Qt-free models, preprocessing, inference, Grad-CAM, trainer.

torch is imported lazily so that the viewer opens fast.  The public API (README,
"Python API"):

    from medviewer import engine
    model = engine.load_model("demo")             # a .safetensors path or a model name
    probs = engine.predict(model, images)         # (N, C) class probabilities
    maps = engine.gradcam(model, images)          # Grad-CAM maps on each image's own grid

`LoadedModel` is plain data (module, card, classes, Grad-CAM layer, device,
preprocessing spec); the work is done by the functions above.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from medviewer.engine import threads as _threads

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.engine.modelfile import LoadedModel

_threads.prepare()  # passive OpenMP waiting, set before anything here imports torch


def load_model(path_or_name: str | Path, device: str | None = None) -> "LoadedModel":
    """Load a `.safetensors` model file with its card; a bundled or user model can be named."""
    from medviewer.engine.catalog import resolve_model
    from medviewer.engine.modelfile import load_model as _load

    return _load(resolve_model(path_or_name), device=device)


def predict(model: "LoadedModel", images: Any, **kwargs: Any) -> Any:
    """Class probabilities (N, C); see `medviewer.engine.infer.predict`."""
    from medviewer.engine.infer import predict as _predict

    return _predict(model, images, **kwargs)


def gradcam(model: "LoadedModel", images: Any, **kwargs: Any) -> Any:
    """Grad-CAM maps; see `medviewer.engine.cam.gradcam_images`."""
    from medviewer.engine.cam import gradcam_images

    return gradcam_images(model, images, **kwargs)


__all__ = ["gradcam", "load_model", "predict"]
