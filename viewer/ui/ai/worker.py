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
    sig_ood(gen, start, OOD scores (B,)) just before the same batch's sig_batch;
    sig_guard(gen, input-check warnings list[str]) before the first batch;
    sig_cam(gen, index, class_index, cam); sig_loaded(gen, LoadedModel);
    sig_finished(gen, kind, error|None, seconds);
    sig_audit(kind "analysis"|"verdict", entry, error|None) after an audit-log write."""

    sig_progress = Signal(int, int, int)
    sig_batch = Signal(int, int, object, object)
    sig_ood = Signal(int, int, object)
    sig_guard = Signal(int, object)
    sig_cam = Signal(int, int, int, object)
    sig_loaded = Signal(int, object)
    sig_finished = Signal(int, str, object, float)
    sig_audit = Signal(str, object, object)


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

        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        model = load_model(self.path, device=self.device)
        _ = model.sha256   # hashed here, once, for the audit log (never on the GUI thread)
        from medviewer.viewer.ui.gcpolicy import freeze_long_lived

        freeze_long_lived()   # torch's modules, imported just now, live as long as the app
        self.signals.sig_loaded.emit(self.generation, model)


class SeriesJob(_Job):
    """Classify `refs` (one slice for 'analyze image', all for 'analyze series')."""

    kind = "series"

    def __init__(self, signals: JobSignals, generation: int, is_current: Callable[[int], bool],
                 model: Any, store: Any, refs: Sequence[Any], shape: tuple[int, int],
                 first_index: int = 0, batch_size: int = 16, series: Any = None) -> None:
        super().__init__(signals, generation, is_current)
        self.model, self.store, self.refs, self.shape = model, store, list(refs), shape
        self.first_index, self.batch_size = first_index, batch_size
        self.series = series

    def work(self) -> None:
        from medviewer.engine.series import predict_series

        if self.series is not None:   # the input guard, before the model runs (engine.guard)
            from medviewer.engine.guard import check_series

            warnings = [w.text() for w in check_series(self.model.card, self.series, self.store)]
            self.signals.sig_guard.emit(self.generation, warnings)

        def on_batch(start: int, probs: Any, cams: Any) -> None:
            self.signals.sig_batch.emit(self.generation, self.first_index + start, probs.copy(), cams)

        def on_ood(start: int, scores: Any) -> None:
            self.signals.sig_ood.emit(self.generation, self.first_index + start, scores.copy())

        predict_series(self.model, self.store, self.refs, self.shape, cam_method=None,
                       batch_size=self.batch_size, progress=self.progress,
                       should_stop=self.should_stop, on_batch=on_batch, on_ood=on_ood)


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


class AuditJob(QRunnable):
    """Append one entry (engine.audit.Analysis or Verdict) to the audit log off the GUI
    thread; sig_audit(kind, entry, error|None) reports it.  One thread runs these jobs
    in order, so a verdict is never written before the analysis it names."""

    def __init__(self, signals: JobSignals, entry: Any, path: Any = None) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.signals, self.entry, self.path = signals, entry, path

    def run(self) -> None:  # noqa: D102 - QRunnable entry point
        from medviewer.engine.audit import Analysis, AuditLog

        kind = "analysis" if isinstance(self.entry, Analysis) else "verdict"
        error: str | None = None
        try:
            log_ = AuditLog(self.path)
            if kind == "analysis":
                log_.record_analysis(self.entry)
            else:
                log_.record_verdict(self.entry)
        except MedviewerError as exc:
            error = str(exc)
        except Exception as exc:  # a bug: log the trace, show one line
            log.exception("audit log write failed")
            error = f"internal error: {type(exc).__name__}: {exc}"
        try:
            self.signals.sig_audit.emit(kind, self.entry, error)
        except RuntimeError:  # receiver gone (window closed)
            pass
