"""The classifier's forward pass replayed as a CUDA graph (inference only).

A small network such as resnet18 runs a batch of 32 in about 1.5 ms on a
current GPU, and Python needs about as long to launch its ~60 kernels one by
one; with preparation threads also wanting the interpreter, the GPU waits on
Python.  A CUDA graph (torch.cuda.CUDAGraph) records the kernels of one forward
pass once and replays them with a single call.  The recorded pass is exactly
the eager one (same autocast fp16 and channels-last input), so probabilities
agree with the eager forward to float16 rounding.

Used by `engine.infer.predict` on CUDA for full batches; the last, shorter
batch, Grad-CAM (which needs autograd) and every CPU/MPS run stay eager.  A
capture that fails (an architecture with host synchronisation in its forward,
say) is remembered and that shape runs eagerly.  Set MEDVIEWER_CUDA_GRAPHS=0
to turn graphs off.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from medviewer.engine.modelfile import LoadedModel

log = logging.getLogger("medviewer.engine")
WARMUP = 3  # eager passes on a side stream before capture (cuDNN / allocator settle)
MAX_SHAPES = 2  # graphs kept per model (each holds its own activation memory)


def enabled() -> bool:
    return os.environ.get("MEDVIEWER_CUDA_GRAPHS", "1") not in ("0", "false", "no", "off")


class GraphedForward:
    """`model.outputs` (calibrated probabilities [+ OOD score]) of model.module for one
    fixed input shape, by graph replay.

    `__call__(x)` copies `x` into the graph's static input and replays; the
    returned tensor is the graph's static output, valid until the next call
    (stream order keeps a copy queued before that call safe).  Callers that
    may share the model across threads hold `lock` from the call until their
    copy of the output is queued.
    """

    def __init__(self, model: "LoadedModel", shape: tuple[int, ...]) -> None:
        import torch

        dev = model.device
        self.shape = shape
        self.static_in = torch.zeros(shape, device=dev).contiguous(memory_format=torch.channels_last)
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.no_grad(), torch.cuda.stream(side), _autocast():
            for _ in range(WARMUP):
                with model.feature_tap() as tap:
                    model.outputs(model.module(self.static_in), tap)
        torch.cuda.current_stream(dev).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        self.lock = threading.Lock()  # one copy-in / replay / copy-out at a time
        # thread_local: a Grad-CAM job running eagerly in another thread is not disturbed.
        # The OOD feature hooks run during the capture only: the graph records their kernels.
        with torch.no_grad(), _autocast(), torch.cuda.graph(self.graph, capture_error_mode="thread_local"), \
                model.feature_tap() as tap:
            logits = model.module(self.static_in)
            self.static_out = model.outputs(logits, tap)

    def __call__(self, x: "torch.Tensor") -> "torch.Tensor":
        self.static_in.copy_(x)  # also converts to channels-last
        self.graph.replay()
        return self.static_out


def _autocast() -> Any:
    import torch

    # the weight casts must happen inside the graph each replay: no autocast cache
    return torch.autocast("cuda", dtype=torch.float16, cache_enabled=False)


_lock = threading.Lock()


def graphed(model: "LoadedModel", shape: tuple[int, ...]) -> GraphedForward | None:
    """The model's graph for `shape` (captured on first use), or None to run eagerly."""
    if getattr(model.device, "type", "cpu") != "cuda" or not enabled():
        return None
    with _lock:
        cache: dict[tuple[int, ...], GraphedForward | None] = model.__dict__.setdefault("_graphs", {})
        if shape in cache:
            return cache[shape]
        if sum(g is not None for g in cache.values()) >= MAX_SHAPES:
            return None
        try:
            graph: GraphedForward | None = GraphedForward(model, shape)
        except Exception as exc:  # not capturable: eager from now on, for this shape
            log.warning("CUDA graph capture failed for %s %s, running eagerly: %s",
                        model.card.architecture, shape, str(exc).splitlines()[0] if str(exc) else exc)
            graph = None
        cache[shape] = graph
        return graph
