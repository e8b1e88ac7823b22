"""Run a model over a whole series read through viewer.io's PixelStore (Qt-free).

Shared by `medviewer predict` and the viewer's AI worker.  Decoding happens
lazily inside the inference pipeline's preparation thread; a slice that fails
to decode is reported in `failed` instead of aborting the series.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.viewer.errors import MedviewerError

log = logging.getLogger(__name__)

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.engine.modelfile import LoadedModel
    from medviewer.viewer.io.model import ImageRef
    from medviewer.viewer.io.pixels import PixelStore


class SeriesImages(Sequence):
    """Lazy (stored pixels, ImageMeta) per ImageRef; failures become blank images."""

    def __init__(self, store: "PixelStore", refs: Sequence["ImageRef"], shape: tuple[int, int] = (8, 8)) -> None:
        self.store = store
        self.refs = list(refs)
        self.shape = shape
        self.failed: dict[int, str] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i: int) -> tuple[np.ndarray, Any]:  # type: ignore[override]
        ref = self.refs[i]
        try:
            return self.store.get(ref), self.store.meta(ref)
        except MedviewerError as exc:
            reason = str(exc)
        except MemoryError:
            reason = "not enough memory to decode this image"
        except Exception as exc:  # a decoder's own error: this slice only, never the series
            log.warning("decode of %s failed", ref.path.name, exc_info=True)
            reason = f"cannot decode ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''})"
        with self._lock:
            self.failed[i] = reason
        return np.zeros(self.shape, dtype=np.uint8), None


@dataclass
class SeriesPrediction:
    probs: np.ndarray                               # (N, C) float32
    cams: list[np.ndarray] | None = None            # per item, float32 [0, 1] at source shape
    failed: dict[int, str] = field(default_factory=dict)   # index -> one-line reason


def predict_series(model: "LoadedModel", store: "PixelStore", refs: Sequence["ImageRef"],
                   shape: tuple[int, int] = (8, 8), cam_method: str | None = None,
                   batch_size: int = 16, progress: Callable[[int, int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   on_batch: Callable[[int, np.ndarray, list[np.ndarray] | None], None] | None = None,
                   tta: Any = None) -> SeriesPrediction:
    """Probabilities (and Grad-CAMs of each slice's top class when `cam_method`) for `refs`.

    `on_batch(start, probs, cams_or_None)` streams results as batches finish.
    `tta` (engine.tta.TTASpec): test-time augmentation of the probabilities (the
    Grad-CAM of each slice is computed once, on the image itself).
    """
    from medviewer.engine.cam import gradcam_images
    from medviewer.engine.infer import predict

    images = SeriesImages(store, refs, shape)
    n = len(images)
    if cam_method:
        probs = np.zeros((n, len(model.classes)), dtype=np.float32)

        def got(start: int, maps: list[np.ndarray], p: np.ndarray) -> None:
            probs[start:start + len(p)] = p
            if on_batch:
                on_batch(start, p, maps)

        cams = gradcam_images(model, images, class_index=None, method=cam_method, batch_size=batch_size,
                              progress=progress, should_stop=should_stop, on_batch=got)
        if tta is not None:   # the CAM pass gave plain probabilities: replace them by TTA's
            probs = predict(model, images, batch_size=batch_size, should_stop=should_stop, tta=tta)
        return SeriesPrediction(probs, cams, dict(images.failed))
    probs = predict(model, images, batch_size=batch_size, progress=progress, should_stop=should_stop,
                    on_batch=(lambda s, p: on_batch(s, p, None)) if on_batch else None, tta=tta)
    return SeriesPrediction(probs, None, dict(images.failed))


def predict_prepared(model: "LoadedModel", x: Any, geometries: Sequence[Any] | None = None,
                     cam_method: str | None = None, batch_size: int = 16) -> SeriesPrediction:
    """`predict_series` for slices already decoded and preprocessed elsewhere (the Ray
    engine's CPU tasks run `preprocess_batch`, the local engine's own CPU path).

    `x` is the (N, 3, S, S) tensor; with `cam_method`, each map is brought back to
    its source image through `geometries` as `gradcam_images` does for lazy images.
    """
    from medviewer.engine.cam import gradcam_images
    from medviewer.engine.infer import predict

    n = len(x)
    if cam_method:
        probs = np.zeros((n, len(model.classes)), dtype=np.float32)

        def got(start: int, maps: list[np.ndarray], p: np.ndarray) -> None:
            probs[start:start + len(p)] = p

        maps = gradcam_images(model, x, class_index=None, method=cam_method, batch_size=batch_size, on_batch=got)
        if geometries is not None:
            maps = [np.clip(g.to_source(m), 0.0, 1.0) for g, m in zip(geometries, maps)]
        return SeriesPrediction(probs, maps, {})
    return SeriesPrediction(predict(model, x, batch_size=batch_size), None, {})
