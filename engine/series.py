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
    probs: np.ndarray                               # (N, C) float32, calibrated
    cams: list[np.ndarray] | None = None            # per item, float32 [0, 1] at source shape
    failed: dict[int, str] = field(default_factory=dict)   # index -> one-line reason
    ood: np.ndarray | None = None                   # (N,) OOD scores; None: the model has no OOD model
    threshold: float | None = None                  # OOD scores above it are flagged

    @property
    def flags(self) -> np.ndarray | None:
        """(N,) bool, True = unlike the training images (None without an OOD model)."""
        return None if self.ood is None or self.threshold is None else self.ood > self.threshold

    def ood_summary(self, keep: Sequence[int] | None = None) -> dict[str, Any] | None:
        """{"flagged", "checked", "fraction_flagged", "threshold"} over `keep` (default: the
        slices that decoded); None without an OOD model."""
        flags = self.flags
        if flags is None:
            return None
        idx = [i for i in range(len(flags)) if i not in self.failed] if keep is None else list(keep)
        n = len(idx)
        k = int(np.count_nonzero(flags[idx])) if n else 0
        return {"flagged": k, "checked": n, "fraction_flagged": (k / n) if n else None,
                "threshold": float(self.threshold)}


def predict_series(model: "LoadedModel", store: "PixelStore", refs: Sequence["ImageRef"],
                   shape: tuple[int, int] = (8, 8), cam_method: str | None = None,
                   batch_size: int = 16, progress: Callable[[int, int], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   on_batch: Callable[[int, np.ndarray, list[np.ndarray] | None], None] | None = None,
                   on_ood: Callable[[int, np.ndarray], None] | None = None,
                   tta: Any = None) -> SeriesPrediction:
    """Probabilities (and Grad-CAMs of each slice's top class when `cam_method`) for `refs`.

    `on_batch(start, probs, cams_or_None)` streams results as batches finish;
    `on_ood(start, scores)` the same batch's out-of-distribution scores, before it
    (models with an OOD model).  Undecodable slices get NaN scores.
    `tta` (engine.tta.TTASpec): test-time augmentation of the probabilities (the
    Grad-CAM and the OOD score of each slice are computed once, on the image itself).
    """
    from medviewer.engine.cam import gradcam_images
    from medviewer.engine.infer import predict_full

    images = SeriesImages(store, refs, shape)
    n = len(images)
    threshold = model.ood.threshold if model.ood is not None else None
    if cam_method:
        probs = np.zeros((n, len(model.classes)), dtype=np.float32)
        ood = np.full(n, np.nan, dtype=np.float32) if model.ood is not None else None

        def got(start: int, maps: list[np.ndarray], p: np.ndarray) -> None:
            probs[start:start + len(p)] = p
            if on_batch:
                on_batch(start, p, maps)

        def scored(start: int, s: np.ndarray) -> None:
            if ood is not None:
                ood[start:start + len(s)] = s
            if on_ood:
                on_ood(start, s)

        cams = gradcam_images(model, images, class_index=None, method=cam_method, batch_size=batch_size,
                              progress=progress, should_stop=should_stop, on_batch=got, on_scores=scored)
        if tta is not None:   # the CAM pass gave plain probabilities: replace them by TTA's
            probs = predict_full(model, images, batch_size=batch_size, should_stop=should_stop, tta=tta).probs
        return _finish(SeriesPrediction(probs, cams, dict(images.failed), ood, threshold))

    def batch(start: int, p: np.ndarray, s: np.ndarray | None) -> None:
        if on_ood and s is not None:
            on_ood(start, s)
        if on_batch:
            on_batch(start, p, None)

    pred = predict_full(model, images, batch_size=batch_size, progress=progress, should_stop=should_stop,
                        on_batch=batch if (on_batch or on_ood) else None, tta=tta)
    return _finish(SeriesPrediction(pred.probs, None, dict(images.failed), pred.ood, threshold))


def _finish(pred: SeriesPrediction) -> SeriesPrediction:
    if pred.ood is not None:   # a slice that did not decode was scored as a blank image
        for i in pred.failed:
            pred.ood[i] = np.nan
    return pred


def predict_prepared(model: "LoadedModel", x: Any, geometries: Sequence[Any] | None = None,
                     cam_method: str | None = None, batch_size: int = 16) -> SeriesPrediction:
    """`predict_series` for slices already decoded and preprocessed elsewhere (the Ray
    engine's CPU tasks run `preprocess_batch`, the local engine's own CPU path).

    `x` is the (N, 3, S, S) tensor; with `cam_method`, each map is brought back to
    its source image through `geometries` as `gradcam_images` does for lazy images.
    Probabilities are calibrated and, for models with an OOD model, scored (engine.ood).
    """
    from medviewer.engine.cam import gradcam_images
    from medviewer.engine.infer import predict_full

    n = len(x)
    threshold = model.ood.threshold if getattr(model, "ood", None) is not None else None
    if cam_method:
        probs = np.zeros((n, len(model.classes)), dtype=np.float32)
        ood = np.full(n, np.nan, dtype=np.float32) if threshold is not None else None

        def got(start: int, maps: list[np.ndarray], p: np.ndarray) -> None:
            probs[start:start + len(p)] = p

        def scored(start: int, s: np.ndarray) -> None:
            if ood is not None:
                ood[start:start + len(s)] = s

        maps = gradcam_images(model, x, class_index=None, method=cam_method, batch_size=batch_size, on_batch=got,
                              on_scores=scored)
        if geometries is not None:
            maps = [np.clip(g.to_source(m), 0.0, 1.0) for g, m in zip(geometries, maps)]
        return SeriesPrediction(probs, maps, {}, ood, threshold)
    pred = predict_full(model, x, batch_size=batch_size)
    return SeriesPrediction(pred.probs, None, {}, pred.ood, threshold)
