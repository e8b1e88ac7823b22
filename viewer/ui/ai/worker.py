"""Thin Qt adapters that run the Qt-free engine off the GUI thread (STYLE.md pattern 4).

Every job carries the generation of the ResultRouter job that started it;
results, progress and errors cross back by signal only, errors as one-line
strings (pattern 6).  `should_stop` is checked between batches: a cancelled or
superseded job stops at the next batch boundary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Signal

from medviewer.viewer.errors import MedviewerError

log = logging.getLogger("medviewer.ai")

PROGRESS_INTERVAL_S = 0.05


class JobSignals(QObject):
    """sig_progress(gen, done, total); sig_batch(gen, start, probs (B,C), cams list|None);
    sig_cam(gen, index, class_index, cam); sig_loaded(gen, LoadedModel);
    sig_finished(gen, kind, error|None, seconds)."""

    sig_progress = Signal(int, int, int)
    sig_batch = Signal(int, int, object, object)
    sig_cam = Signal(int, int, int, object)
    sig_loaded = Signal(int, object)
    sig_finished = Signal(int, str, object, float)


class _Job(QRunnable):
    kind = "job"

    def __init__(self, signals: JobSignals, generation: int, is_current: Callable[[int], bool]) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.signals = signals
        self.generation = generation
        self._is_current = is_current
        self._cancel = threading.Event()
        self._last = 0.0

    def cancel(self) -> None:
        self._cancel.set()

    def should_stop(self) -> bool:
        return self._cancel.is_set() or not self._is_current(self.generation)

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            self.signals.sig_progress.emit(self.generation, int(done), int(total))

    def work(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def run(self) -> None:  # noqa: D102 - QRunnable entry point
        from medviewer.engine.infer import Cancelled

        t0 = time.perf_counter()
        error: str | None = None
        try:
            self.work()
        except Cancelled:
            error = "cancelled"
        except MedviewerError as exc:
            error = str(exc)
        except Exception as exc:  # a bug: log the trace, show one line
            log.exception("AI %s failed", self.kind)
            error = f"internal error: {type(exc).__name__}: {exc}"
        try:
            self.signals.sig_finished.emit(self.generation, self.kind, error, time.perf_counter() - t0)
        except RuntimeError:  # receiver gone (window closed)
            pass


class LoadJob(_Job):
    """Load a model file (imports torch on first use) on the worker thread."""

    kind = "load"

    def __init__(self, signals: JobSignals, generation: int, is_current: Callable[[int], bool],
                 path: str, device: str | None, threads: int | None = None) -> None:
        super().__init__(signals, generation, is_current)
        self.path, self.device, self.threads = path, device, threads

    def work(self) -> None:
        from medviewer.engine import load_model

        from medviewer.engine.threads import apply as apply_thread_policy

        apply_thread_policy(count=self.threads)  # passive OpenMP waits beside decode threads
        model = load_model(self.path, device=self.device)
        from medviewer.viewer.ui.gcpolicy import freeze_long_lived

        freeze_long_lived()   # torch's modules, imported just now, live as long as the app
        self.signals.sig_loaded.emit(self.generation, model)


class SeriesJob(_Job):
    """Classify `refs` (one slice for 'analyze image', all for 'analyze series')."""

    kind = "series"

    def __init__(self, signals: JobSignals, generation: int, is_current: Callable[[int], bool],
                 model: Any, store: Any, refs: Sequence[Any], shape: tuple[int, int],
                 first_index: int = 0, batch_size: int = 16) -> None:
        super().__init__(signals, generation, is_current)
        self.model, self.store, self.refs, self.shape = model, store, list(refs), shape
        self.first_index, self.batch_size = first_index, batch_size

    def work(self) -> None:
        from medviewer.engine.series import predict_series

        def on_batch(start: int, probs: Any, cams: Any) -> None:
            self.signals.sig_batch.emit(self.generation, self.first_index + start, probs.copy(), cams)

        predict_series(self.model, self.store, self.refs, self.shape, cam_method=None,
                       batch_size=self.batch_size, progress=self.progress,
                       should_stop=self.should_stop, on_batch=on_batch)


class CamJob(_Job):
    """Grad-CAM of one displayed slice for a class (None: its top class)."""

    kind = "cam"

    def __init__(self, signals: JobSignals, generation: int, is_current: Callable[[int], bool],
                 model: Any, store: Any, ref: Any, index: int, class_index: int | None,
                 method: str) -> None:
        super().__init__(signals, generation, is_current)
        self.model, self.store, self.ref, self.index = model, store, ref, index
        self.class_index, self.method = class_index, method

    def work(self) -> None:
        import numpy as np

        from medviewer.engine.cam import gradcam_images

        pixels, meta = self.store.get(self.ref), self.store.meta(self.ref)
        if self.should_stop():
            return
        got: dict[str, Any] = {}
        maps = gradcam_images(self.model, [(pixels, meta)], class_index=self.class_index,
                              method=self.method, batch_size=1,
                              on_batch=lambda _s, _m, p: got.setdefault("probs", p))
        cls = self.class_index if self.class_index is not None else int(np.argmax(got["probs"][0]))
        if not self.should_stop():
            self.signals.sig_cam.emit(self.generation, self.index, int(cls), maps[0])
