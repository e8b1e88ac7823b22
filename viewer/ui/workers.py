"""Background work for the window: study scanning and thumbnail decoding.

The work itself is Qt-free (viewer.io.scan, PixelStore, viewer.display.render);
these classes are thin adapters that run it off the GUI thread and hand results
back by signal only (STYLE.md patterns 4-6).  Every job carries the generation
number of the scan that started it so the window can drop stale results.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QRunnable, QThread, Signal

log = logging.getLogger("medviewer.ui")

THUMB_SIZE = 96
PROGRESS_INTERVAL_S = 0.05


class ScanWorker(QThread):
    """Runs viewer.io.scan on a folder (or open_path on a file) in a thread.

    Signals: sig_progress(gen, done, total), sig_snapshot(gen, ScanResult),
    sig_finished(gen, ScanResult | None, error message | None).
    """

    sig_progress = Signal(int, int, int)
    sig_snapshot = Signal(int, object)
    sig_finished = Signal(int, object, object)

    def __init__(self, path: str | Path | Callable[[], Path], generation: int,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        # a callable is resolved in the thread (e.g. generating the demo study)
        self._make_path = path if callable(path) else None
        self.path = None if callable(path) else Path(path)
        self.generation = generation
        self._stop = threading.Event()
        self._last_progress = 0.0

    def cancel(self) -> None:
        self._stop.set()

    def cancelled(self) -> bool:
        return self._stop.is_set()

    def _progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last_progress >= PROGRESS_INTERVAL_S:
            self._last_progress = now
            self.sig_progress.emit(self.generation, int(done), int(total))

    def _snapshot(self, result: Any) -> None:
        if not self._stop.is_set():
            self.sig_snapshot.emit(self.generation, result)

    def run(self) -> None:  # noqa: D102 - QThread entry point
        from medviewer.viewer.errors import MedviewerError

        try:
            from medviewer.viewer.io import scan as scan_mod

            if self._make_path is not None:
                self.path = Path(self._make_path())
            result = scan_mod.scan(
                self.path,
                progress=self._progress,
                should_stop=self._stop.is_set,
                on_snapshot=self._snapshot,
            )
            self.sig_finished.emit(self.generation, result, None)
        except MedviewerError as err:
            self.sig_finished.emit(self.generation, None, str(err))
        except Exception as exc:  # a bug: log it, report a value, keep the UI alive
            log.exception("scan failed")
            self.sig_finished.emit(self.generation, None, f"{type(exc).__name__}: {exc}")


class _ThumbSignals(QObject):
    sig_done = Signal(int, str, object)  # generation, series uid, uint8 array | None


class ThumbnailJob(QRunnable):
    """Decode one image and render a small uint8 preview (off the GUI thread)."""

    def __init__(self, signals: _ThumbSignals, generation: int, series_uid: str,
                 ref: Any, pixels: Any, size: int = THUMB_SIZE) -> None:
        super().__init__()
        self.signals = signals
        self.generation = generation
        self.series_uid = series_uid
        self.ref = ref
        self.pixels = pixels
        self.size = size

    def run(self) -> None:  # noqa: D102 - QRunnable entry point
        try:
            from medviewer.viewer.display import default_window, render

            stored = self.pixels.get(self.ref)
            meta = self.pixels.meta(self.ref)
            grey = render(stored, meta, default_window(meta, stored))
            out: np.ndarray | None = downsample(grey, self.size)
        except Exception as exc:  # shown as a blank thumbnail; the series still opens
            log.warning("thumbnail failed: %s", type(exc).__name__)
            out = None
        try:
            self.signals.sig_done.emit(self.generation, self.series_uid, out)
        except RuntimeError:  # window closed meanwhile
            pass


class DecodeSignals(QObject):
    sig_done = Signal(object, object, object, object)  # ref, stored, meta, error


class DecodeJob(QRunnable):
    """Decode one image off the GUI thread (PixelStore caches it)."""

    def __init__(self, signals: DecodeSignals, pixels: Any, ref: Any) -> None:
        super().__init__()
        self.signals, self.pixels, self.ref = signals, pixels, ref

    def run(self) -> None:  # noqa: D102 - QRunnable entry point
        try:
            stored = self.pixels.get(self.ref)
            meta = self.pixels.meta(self.ref)
            result: tuple[Any, Any, Any] = (stored, meta, None)
        except Exception as exc:  # crosses the thread as a value (STYLE.md pattern 6)
            result = (None, None, exc)
        try:
            self.signals.sig_done.emit(self.ref, *result)
        except RuntimeError:  # canvas deleted meanwhile
            pass


def warm_up() -> None:
    """Import, on the GUI thread and before any worker starts, the modules that
    scanning, decoding and rendering load lazily (numpy.ma for percentiles,
    pydicom's pixel back-ends).  Otherwise the GUI thread can block on the
    import lock while a worker imports them.  The GIL switch interval is also
    shortened to 1 ms so Python work in workers cannot hold the GUI thread
    for long between two Qt calls (each one releases and re-takes the GIL)."""
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
    from medviewer.viewer.ui.gcpolicy import freeze_long_lived

    freeze_long_lived()   # modules are forever: keep them out of full collections


def downsample(img: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour shrink so that the longer side is at most `size`."""
    rows, cols = img.shape[:2]
    step = max(1, int(np.ceil(max(rows, cols) / size)))
    return np.ascontiguousarray(img[::step, ::step])


def thumb_signals() -> _ThumbSignals:
    return _ThumbSignals()
