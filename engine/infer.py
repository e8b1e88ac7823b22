"""Batched inference over slices with progress, cancel and series aggregation.

A plain function (STYLE.md pattern 4): the Qt adapter in viewer/ui/ai runs it on
a worker thread, passing `progress`, `should_stop` and `on_batch` callbacks.
On GPUs, preprocessing of the next batch overlaps the forward pass of the current one.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from medviewer.engine.modelfile import LoadedModel
    from medviewer.engine.preprocess import Geometry
    from medviewer.engine.tta import TTASpec

AGGREGATIONS = ("mean", "max", "topk_mean")
PREP_WORKERS = 8  # preparation threads ahead of a GPU


class Cancelled(Exception):
    """Raised by predict/gradcam when `should_stop()` turned true between batches."""


def split_item(item: Any, meta: Any = None) -> tuple[np.ndarray, Any]:
    """An image item is an array, or a (stored pixels, ImageMeta) pair."""
    if isinstance(item, tuple) and len(item) == 2:
        return item
    return item, meta


def batches(n: int, batch_size: int) -> list[tuple[int, int]]:
    batch_size = max(1, int(batch_size))
    return [(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def iter_prepared(model: "LoadedModel", images: Any, metas: Sequence[Any] | None, batch_size: int,
                  should_stop: Callable[[], bool] | None = None):
    """Yield (start, stop, tensor (B,3,S,S), geometries or None), preparing one batch ahead.

    `images` is a ready (N, 3, S, S) tensor, or a sequence (possibly lazy, e.g.
    decoding from a PixelStore in __getitem__) of arrays / (array, meta) pairs.
    """
    import torch

    if isinstance(images, torch.Tensor):
        for a, b in batches(len(images), batch_size):
            if should_stop and should_stop():
                raise Cancelled()
            yield a, b, images[a:b], None
        return

    def prep(a: int, b: int) -> tuple["torch.Tensor", list["Geometry"]]:
        return prepare_items(model, [split_item(images[i], metas[i] if metas is not None else None)
                                     for i in range(a, b)])

    spans = batches(len(images), batch_size)
    if not spans:
        return
    if getattr(model.device, "type", "cpu") == "cpu":
        # On CPU the forward pass already uses every core; a concurrent preparation thread
        # only oversubscribes them (measured in bench/bench_infer.py), so prepare in line.
        for a, b in spans:
            if should_stop and should_stop():
                raise Cancelled()
            x, geoms = prep(a, b)
            yield a, b, x, geoms
        return
    # GPU: the forward pass is fast, so several batches are prepared ahead in parallel
    # (cv2 and numpy release the GIL) while the device works; results stay in order.
    workers = max(1, min(PREP_WORKERS, (os.cpu_count() or 2) - 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="medviewer-prep") as pool:
        pending = deque(pool.submit(prep, *span) for span in spans[:workers])
        nxt = len(pending)
        for a, b in spans:
            x, geoms = pending.popleft().result()
            if nxt < len(spans):
                pending.append(pool.submit(prep, *spans[nxt]))
                nxt += 1
            if should_stop and should_stop():
                for f in pending:
                    f.cancel()
                raise Cancelled()
            if x.is_cuda:  # made on a side stream (preprocess_gpu): keep its memory until
                x.record_stream(torch.cuda.current_stream(x.device))  # our stream is done with it
            yield a, b, x, geoms


def prepare_items(model: "LoadedModel", items: Sequence[tuple[np.ndarray, Any]]
                  ) -> tuple["torch.Tensor", list["Geometry"]]:
    """One batch of (stored pixels, meta) pairs as the model's input tensor and geometries."""
    if getattr(model.device, "type", "cpu") == "cuda":
        # LUT on the CPU, resize + normalisation on the GPU (engine.preprocess_gpu)
        from medviewer.engine.preprocess_gpu import preprocess_batch_device

        return preprocess_batch_device([p for p, _ in items], [m for _, m in items], model.spec, model.device)
    return model.preprocess_batch([p for p, _ in items], [m for _, m in items])


def member_inputs(model: Any, images: Any, metas: Sequence[Any] | None, a: int, b: int
                  ) -> list[tuple["LoadedModel", "torch.Tensor", list["Geometry"] | None]]:
    """Items a..b prepared for each member of an ensemble (once per distinct preprocessing)."""
    import torch

    if isinstance(images, torch.Tensor):
        sizes = {m.spec.input_size for m in model.members}
        if sizes != {int(images.shape[-1])}:
            raise ValueError(f"the ensemble's members take inputs of {sorted(sizes)} px; pass images, "
                             f"not a ready {tuple(images.shape[-2:])} tensor")
        return [(m, images[a:b], None) for m in model.members]
    items = [split_item(images[i], metas[i] if metas is not None else None) for i in range(a, b)]
    done: dict[Any, tuple["torch.Tensor", list["Geometry"]]] = {}
    out = []
    for m in model.members:
        key = (m.spec, str(m.device))
        if key not in done:
            x, geoms = prepare_items(m, items)
            if x.is_cuda:  # made on a side stream (preprocess_gpu): keep its memory for our stream
                x.record_stream(torch.cuda.current_stream(x.device))
            done[key] = (x, geoms)
        out.append((m, *done[key]))
    return out


def forward_probs(model: "LoadedModel", x: "torch.Tensor") -> np.ndarray:
    """Calibrated softmax probabilities of one batch, as float32 numpy (B, C)."""
    return _Pending(model, x).result()


def tta_outputs(model: "LoadedModel", x: "torch.Tensor", out: "torch.Tensor", tta: "TTASpec") -> "torch.Tensor":
    """`model.outputs` of the identity view `out` with the probability columns replaced by
    the mean of every TTA view's calibrated softmax (engine.tta); the out-of-distribution
    score stays the one of the image itself (the views are not what the OOD model saw)."""
    import itertools

    import torch

    from medviewer.engine.tta import views

    c = len(model.classes)
    total = out[:, :c].float().clone()
    for v in itertools.islice(views(x, tta), 1, None):
        total += torch.softmax(model.module(v).float() / model.temperature, dim=1)
    return torch.cat([total / tta.n_views(), out[:, c:]], dim=1)


class _Pending:
    """One batch's forward pass, launched; `result()` waits for its probabilities
    (and `scores()` for its out-of-distribution scores when the model has an OOD model).

    On CUDA the probabilities come back by a non-blocking copy into page-locked
    memory, so the caller can launch the next batch's forward before waiting
    for this one: the GPU never idles while Python queues the next kernels.
    """

    def __init__(self, model: "LoadedModel", x: "torch.Tensor", graphs: bool = False,
                 tta: "TTASpec | None" = None) -> None:
        import torch

        from medviewer.engine.device import autocast, prepare_input

        graph = None
        if graphs and tta is None and getattr(model.device, "type", "cpu") == "cuda":
            from medviewer.engine.graphs import graphed

            graph = graphed(model, tuple(x.shape))
        self._event = None
        self._classes = len(model.classes)
        if graph is not None:
            x = prepare_input(x, model.device)
            with graph.lock:  # the static output is copied out before anyone replays again
                self._fetch(graph(x))
            return
        with torch.inference_mode(), autocast(model.device):
            xin = prepare_input(x, model.device)
            with model.feature_tap() as tap:
                logits = model.module(xin)
            out = model.outputs(logits, tap)   # temperature-scaled probabilities [+ OOD score]
            if tta is not None and tta.enabled:
                out = tta_outputs(model, xin, out, tta)
        self._fetch(out)

    def _fetch(self, probs: "torch.Tensor") -> None:
        import torch

        if probs.is_cuda:
            self._host = torch.empty(probs.shape, dtype=probs.dtype, pin_memory=True)
            self._host.copy_(probs, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host = probs

    @property
    def asynchronous(self) -> bool:
        return self._event is not None

    def _all(self) -> np.ndarray:
        if self._event is not None:
            self._event.synchronize()
            self._event = None
        return self._host.numpy()

    def result(self) -> np.ndarray:
        """(B, C) probabilities."""
        return self._all()[:, :self._classes]

    def scores(self) -> np.ndarray | None:
        """(B,) out-of-distribution scores, or None when the model has no OOD model."""
        out = self._all()
        return out[:, self._classes] if out.shape[1] > self._classes else None


@dataclass
class Prediction:
    """What a model says about N images: calibrated probabilities and OOD scores."""

    probs: np.ndarray              # (N, C) float32, softmax of logits / card temperature
    ood: np.ndarray | None = None  # (N,) float32 out-of-distribution scores; None: no OOD model
    threshold: float | None = None  # scores above it are flagged

    @property
    def flags(self) -> np.ndarray | None:
        """(N,) bool: the image is unlike the training images (None without an OOD model)."""
        return None if self.ood is None or self.threshold is None else self.ood > self.threshold


def predict(model: "LoadedModel", images: Any, metas: Sequence[Any] | None = None, batch_size: int = 16,
            progress: Callable[[int, int], None] | None = None,
            should_stop: Callable[[], bool] | None = None,
            on_batch: Callable[[int, np.ndarray], None] | None = None,
            tta: "TTASpec | None" = None) -> np.ndarray:
    """Class probabilities (N, C) float32 (temperature-scaled as the card says);
    `on_batch(start, probs)` streams partial results.  See `predict_full` for the
    out-of-distribution scores."""
    return predict_full(model, images, metas, batch_size, progress, should_stop,
                        on_batch=(lambda a, p, _s: on_batch(a, p)) if on_batch else None, tta=tta).probs


def predict_full(model: "LoadedModel", images: Any, metas: Sequence[Any] | None = None, batch_size: int = 16,
                 progress: Callable[[int, int], None] | None = None,
                 should_stop: Callable[[], bool] | None = None,
                 on_batch: Callable[[int, np.ndarray, np.ndarray | None], None] | None = None,
                 tta: "TTASpec | None" = None) -> Prediction:
    """Probabilities and out-of-distribution scores; `on_batch(start, probs, scores|None)`.

    `tta`: test-time augmentation (engine.tta), the mean of the views' probabilities.
    An ensemble (a model with `members`, engine.modelfile.EnsembleModel) gives the
    weighted mean of its members' probabilities, each member fed by its own card.

    On CUDA each batch's probabilities are collected after the next batch's
    forward pass has been launched (one batch in flight), so results and
    progress trail the device by one batch; all are delivered before this
    returns or raises Cancelled.  Full batches of a long series replay a CUDA
    graph of the forward pass (engine.graphs).
    """
    if getattr(model, "members", None):   # no OOD model for ensembles (engine.ensemble)
        return Prediction(_predict_members(model, images, metas, batch_size, progress, should_stop,
                                           (lambda a, p: on_batch(a, p, None)) if on_batch else None, tta))
    n = len(images)
    out = np.zeros((n, len(model.classes)), dtype=np.float32)
    ood = np.full(n, np.nan, dtype=np.float32) if model.ood is not None else None
    if progress:
        progress(0, n)

    def finish(a: int, b: int, pending: _Pending) -> None:
        out[a:b] = pending.result()
        scores = pending.scores()
        if ood is not None and scores is not None:
            ood[a:b] = scores
        if on_batch:
            on_batch(a, out[a:b], ood[a:b] if ood is not None else None)
        if progress:
            progress(b, n)

    in_flight: tuple[int, int, _Pending] | None = None
    graphs = n > 2 * batch_size  # a long series: full batches replay a CUDA graph (engine.graphs)
    try:
        for a, b, x, _ in iter_prepared(model, images, metas, batch_size, should_stop):
            launched = _Pending(model, x, graphs=graphs and b - a == batch_size, tta=tta)
            if in_flight is not None:
                finish(*in_flight)
                in_flight = None
            if launched.asynchronous:
                in_flight = (a, b, launched)
            else:  # CPU: already computed, deliver it now
                finish(a, b, launched)
    finally:  # also on Cancelled: what was computed is delivered
        if in_flight is not None:
            finish(*in_flight)
    return Prediction(out, ood, model.ood.threshold if model.ood is not None else None)


def _predict_members(model: Any, images: Any, metas: Sequence[Any] | None, batch_size: int,
                     progress: Callable[[int, int], None] | None, should_stop: Callable[[], bool] | None,
                     on_batch: Callable[[int, np.ndarray], None] | None, tta: "TTASpec | None") -> np.ndarray:
    """An ensemble's probabilities: per batch, each member on its own input, weighted mean."""
    n = len(images)
    out = np.zeros((n, len(model.classes)), dtype=np.float32)
    if progress:
        progress(0, n)
    for a, b in batches(n, batch_size):
        if should_stop and should_stop():
            raise Cancelled()
        acc = np.zeros((b - a, len(model.classes)), dtype=np.float64)
        for w, (member, x, _) in zip(model.weights, member_inputs(model, images, metas, a, b)):
            acc += w * _Pending(member, x, tta=tta).result()
        out[a:b] = acc
        if on_batch:
            on_batch(a, out[a:b])
        if progress:
            progress(b, n)
    return out


def aggregate(probs: np.ndarray, method: str = "mean", k: int = 3) -> np.ndarray:
    """Series-level probabilities from per-slice ones (N, C) -> (C,).

    mean: average over slices; max: per-class maximum over slices (any slice
    positive); topk_mean: per class, the mean of its k highest slice values.
    """
    probs = np.asarray(probs, dtype=np.float32)
    if probs.ndim != 2 or len(probs) == 0:
        raise ValueError("aggregate needs a non-empty (N, C) array")
    if method == "mean":
        return probs.mean(axis=0)
    if method == "max":
        return probs.max(axis=0)
    if method == "topk_mean":
        k = max(1, min(int(k), len(probs)))
        return np.sort(probs, axis=0)[-k:].mean(axis=0)
    raise ValueError(f"unknown aggregation {method!r} (use {', '.join(AGGREGATIONS)})")


def aggregation_name(method: str, k: int = 3) -> str:
    """The name shown to the user and written to JSON, e.g. 'topk_mean(k=3)'."""
    return f"topk_mean(k={k})" if method == "topk_mean" else method
