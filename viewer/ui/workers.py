"""One worker base for the UI: run a Qt-free task function off the GUI thread.

Modelled on Orange3's `ConcurrentMixin` (Orange/widgets/utils/concurrent.py): a task is
a plain function ``fn(state, *args)`` that reports through its `TaskState`
(``state.progress(done, total)``, throttled; ``state.partial(value)``) and polls
``state.should_stop()``.  A `TaskRunner` owns the thread pool and a generation
counter: starting a task with ``replace=True`` (or calling ``cancel()``) interrupts
the earlier ones and drops everything they still send, so a stale result never
reaches the GUI (STYLE.md pattern 5).  Results, progress and errors come back by
signal only, on the GUI thread; an exception becomes one line (`error_line`), the
traceback goes to the log (pattern 6).

The scan, thumbnail, decode and series-window tasks of the viewer are here; the AI
tasks are in viewer.ui.ai.worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from medviewer.viewer.errors import MedviewerError

log = logging.getLogger("medviewer.ui")

THUMB_SIZE = 96
PROGRESS_INTERVAL_S = 0.05
CANCELLED = "cancelled"


def error_line(exc: BaseException, what: str = "task") -> str:
    """The one line a user sees for an exception raised by a task.

    MedviewerError messages are written for users and pass unchanged; anything else
    is a bug: its traceback goes to the log and the line says 'internal error'."""
    if isinstance(exc, MedviewerError):
        return str(exc) or type(exc).__name__
    log.error("%s failed", what, exc_info=(type(exc), exc, exc.__traceback__))
    return f"internal error: {type(exc).__name__}: {exc}"


class TaskState:
    """What a running task sees (and its handle on the GUI side).

    `key` is the caller's tag (e.g. the ImageRef being decoded); `generation` the
    runner generation it was started in; `seconds` its run time once finished."""

    def __init__(self, relay: _Relay, generation: int, key: Any, runner: TaskRunner,
                 is_current: Callable[[], bool] | None) -> None:
        self.key = key
        self.generation = generation
        self.seconds = 0.0
        self._relay = relay
        self._runner = runner
        self._is_current = is_current
        self._cancel = threading.Event()
        self._last_progress = 0.0

    def cancel(self) -> None:
        """Ask this task to stop; what it returns is still delivered."""
        self._cancel.set()

    def should_stop(self) -> bool:
        """True once cancelled, superseded, or no longer current for the caller."""
        return (self._cancel.is_set() or self.generation != self._runner.generation
                or (self._is_current is not None and not self._is_current()))

    def progress(self, done: int, total: int) -> None:
        """Report progress; at most one signal per PROGRESS_INTERVAL_S, the last one always."""
        now = time.monotonic()
        if done >= total or now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self._emit(self._relay.sig_progress, self, int(done), int(total))

    def partial(self, value: Any) -> None:
        """Hand a partial result (a scan snapshot, a batch of probabilities) to the GUI."""
        if not self.should_stop():
            self._emit(self._relay.sig_partial, self, value)

    @staticmethod
    def _emit(signal: Any, *args: Any) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the receiver was deleted (window closed)
            pass


class _Relay(QObject):
    """Carries a task's signals from the worker thread to the runner (GUI thread)."""

    sig_progress = Signal(object, int, int)
    sig_partial = Signal(object, object)
    sig_finished = Signal(object, object, object)


class _Runnable(QRunnable):
    def __init__(self, runner: TaskRunner, state: TaskState, fn: Callable[..., Any],
                 args: tuple, kwargs: dict) -> None:
        super().__init__()
        self.setAutoDelete(True)
        self.runner, self.state, self.fn, self.args, self.kwargs = runner, state, fn, args, kwargs

    def run(self) -> None:  # noqa: D102 - QRunnable entry point
        state = self.state
        t0 = time.perf_counter()
        result: Any = None
        error: str | None = None
        try:
            if state.should_stop():       # superseded while queued: do not start
                error = CANCELLED
            else:
                result = self.fn(state, *self.args, **self.kwargs)
        except Exception as exc:
            # an exception after a stop request is how a task stops (e.g. engine.infer.Cancelled)
            error = CANCELLED if state.should_stop() else error_line(exc, self.runner.name)
        finally:
            state.seconds = time.perf_counter() - t0
            self.runner._task_done()
        TaskState._emit(state._relay.sig_finished, state, result, error)


class TaskRunner(QObject):
    """Runs task functions on a thread pool; delivers only current tasks' signals.

    Signals (GUI thread): sig_progress(state, done, total), sig_partial(state, value),
    sig_finished(state, result, error) with error None, CANCELLED or one line.
    """

    sig_progress = Signal(object, int, int)
    sig_partial = Signal(object, object)
    sig_finished = Signal(object, object, object)

    def __init__(self, parent: QObject | None = None, threads: int = 1, name: str = "task",
                 pool: QThreadPool | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._generation = 0
        self._running = 0
        self._lock = threading.Lock()
        self._states: set[TaskState] = set()
        if pool is None:
            pool = QThreadPool(self)
            pool.setMaxThreadCount(max(1, threads))
        self.pool = pool
        self._relay = _Relay(self)
        self._relay.sig_progress.connect(self._on_progress)
        self._relay.sig_partial.connect(self._on_partial)
        self._relay.sig_finished.connect(self._on_finished)

    @property
    def generation(self) -> int:
        return self._generation

    def start(self, fn: Callable[..., Any], *args: Any, key: Any = None, replace: bool = True,
              is_current: Callable[[], bool] | None = None, **kwargs: Any) -> TaskState:
        """Run ``fn(state, *args, **kwargs)`` on the pool.  `replace` supersedes every
        earlier task of this runner; `is_current` adds the caller's own staleness test
        (polled by `should_stop`, checked again before delivery)."""
        if replace:
            self.cancel()
        state = TaskState(self._relay, self._generation, key, self, is_current)
        with self._lock:
            self._running += 1
        self._states.add(state)
        self.pool.start(_Runnable(self, state, fn, args, kwargs))
        return state

    def cancel(self) -> None:
        """Interrupt every task started so far; nothing more of theirs is delivered."""
        self._generation += 1
        for s in self._states:
            s.cancel()

    def is_current(self, state: TaskState) -> bool:
        return state.generation == self._generation and (
            state._is_current is None or state._is_current())

    def running(self) -> int:
        """Tasks queued or running (exact also right after `wait`)."""
        with self._lock:
            return self._running

    def wait(self, msecs: int = 3000) -> bool:
        return self.pool.waitForDone(msecs)

    def shutdown(self, msecs: int = 3000) -> bool:
        """Cancel and wait for the tasks (the window is closing)."""
        self.cancel()
        return self.wait(msecs)

    def _task_done(self) -> None:   # worker thread
        with self._lock:
            self._running -= 1

    # -- relay (GUI thread) ------------------------------------------------------------
    def _on_progress(self, state: TaskState, done: int, total: int) -> None:
        if self.is_current(state):
            self.sig_progress.emit(state, done, total)

    def _on_partial(self, state: TaskState, value: Any) -> None:
        if self.is_current(state) and not state._cancel.is_set():
            self.sig_partial.emit(state, value)

    def _on_finished(self, state: TaskState, result: Any, error: Any) -> None:
        self._states.discard(state)
        if state.generation == self._generation:
            self.sig_finished.emit(state, result, error)


# -- the viewer's tasks (plain functions of a TaskState) ------------------------------------
def scan_task(state: TaskState, path: Path | Callable[[], Path]) -> Any:
    """viewer.io.scan of a folder or file (a callable is resolved here, e.g. making the
    demo study); snapshots go out as partial results."""
    from medviewer.viewer.io.scan import scan

    root = Path(path()) if callable(path) else Path(path)
    return scan(root, progress=state.progress, should_stop=state.should_stop,
                on_snapshot=state.partial)


def thumbnail_task(state: TaskState, pixels: Any, ref: Any, size: int = THUMB_SIZE) -> np.ndarray:
    """A small uint8 preview of one image (its own window)."""
    from medviewer.viewer.display import default_window, render

    stored = pixels.get(ref)
    meta = pixels.meta(ref)
    return downsample(render(stored, meta, default_window(meta, stored)), size)


def decode_task(state: TaskState, pixels: Any, ref: Any) -> tuple[Any, Any]:
    """Stored pixels and display metadata of one image (the PixelStore caches them)."""
    return pixels.get(ref), pixels.meta(ref)


def series_window_task(state: TaskState, pixels: Any, refs: list[Any], samples: int) -> Any:
    """The automatic window of a series (viewer.display.series_auto_window)."""
    from medviewer.viewer.display import series_auto_window

    return series_auto_window(pixels, refs, samples, should_stop=state.should_stop)


def warm_up() -> None:
    """Import, on the GUI thread and before any worker starts, the modules that
    scanning, decoding and rendering load lazily (numpy.ma for percentiles,
    pydicom's pixel back-ends).  Otherwise the GUI thread can block on the
    import lock while a worker imports them.  The GIL switch interval is also
    shortened to 1 ms so Python work in workers cannot hold the GUI thread
    for long between two Qt calls (each one releases and re-takes the GIL), and
    None's reference count is protected from the Qt bindings' leak (viewer.ui.qtcompat)."""
    import importlib
    import sys

    for name in ("numpy.ma", "medviewer.viewer.io.scan", "medviewer.viewer.io.pixels", "medviewer.viewer.display",
                 "medviewer.viewer.logs", "pydicom.pixels", "pydicom.pixels.decoders",
                 "pydicom.pixels.processing"):
        try:
            importlib.import_module(name)
        except Exception:  # optional: a missing back-end is reported when used
            log.debug("warm-up import %s failed", name)
    if sys.getswitchinterval() > 0.001:
        sys.setswitchinterval(0.001)
    from medviewer.viewer.ui.qtcompat import protect_none

    protect_none()        # shiboken6 6.12 on Python 3.11: void Qt calls drop references to None
    from medviewer.viewer.ui.gcpolicy import freeze_long_lived

    freeze_long_lived()   # modules are forever: keep them out of full collections


def downsample(img: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour shrink so that the longer side is at most `size`."""
    rows, cols = img.shape[:2]
    step = max(1, int(np.ceil(max(rows, cols) / size)))
    return np.ascontiguousarray(img[::step, ::step])
