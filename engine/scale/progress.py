"""A one-line progress bar on stderr: series and images done, series/s, images/s, ETA.

On a terminal the line is redrawn in place every `interval` seconds by a
background thread; when stderr is a file or a pipe (batch jobs, CI logs) a
plain line is written every `log_interval` seconds instead.  Messages go
through `say`, which clears the bar first so that lines never interleave.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Counts finished series and images (those skipped as already done apart)."""

    def __init__(self, total_series: int, total_images: int, done_series: int = 0, done_images: int = 0,
                 stream: TextIO | None = None, interval: float = 0.5, log_interval: float = 30.0) -> None:
        self.total_series = total_series
        self.total_images = total_images
        self.resumed_series = done_series
        self.resumed_images = done_images
        self.series = 0
        self.images = 0
        self.failed = 0
        self.stream = stream
        self.tty = bool(getattr(stream or sys.stderr, "isatty", lambda: False)())
        self.interval = interval if self.tty else log_interval
        self.started = time.monotonic()
        self.first: tuple[float, int] | None = None  # (time, images) of the first result
        self._lock = threading.Lock()
        self._shown = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def out(self) -> TextIO:
        return self.stream or sys.stderr

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="medviewer-progress", daemon=True)
        self._thread.start()

    def add(self, series: int = 0, images: int = 0, failed: int = 0) -> None:
        with self._lock:
            if self.first is None:
                self.first = (time.monotonic(), images)
            self.series += series
            self.images += images
            self.failed += failed

    def line(self) -> str:
        with self._lock:
            s, i, f, first = self.series, self.images, self.failed, self.first
        now = time.monotonic()
        elapsed = max(now - self.started, 1e-9)
        done_s, done_i = s + f + self.resumed_series, i + self.resumed_images
        left = self.total_images - done_i
        rate = i / elapsed
        # the remaining time from the pace since the first result (start-up excluded)
        pace = (i - first[1]) / (now - first[0]) if first and now - first[0] > 1 and i > first[1] else 0.0
        eta = _duration(left / pace) if pace > 0 and left > 0 else "-"
        width = 20
        frac = done_i / self.total_images if self.total_images else 1.0
        bar = "#" * int(frac * width) + "." * (width - int(frac * width))
        failed = f", {f} failed" if f else ""
        return (f"[{bar}] {done_s}/{self.total_series} series{failed}, {done_i}/{self.total_images} images"
                f" | {s / elapsed:.2f} series/s, {rate:.1f} images/s | {_duration(elapsed)} elapsed, ETA {eta}")

    def _draw(self) -> None:
        text = self.line()
        try:
            if self.tty:
                self.out.write("\r\x1b[2K" + text)
                self._shown = True
            else:
                self.out.write(text + "\n")
            self.out.flush()
        except (OSError, ValueError):
            pass

    def _clear(self) -> None:
        if self._shown:
            try:
                self.out.write("\r\x1b[2K")
            except (OSError, ValueError):
                pass
            self._shown = False

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with _print_lock:
                self._draw()

    def say(self, text: str) -> None:
        """One message line (the bar is redrawn after it on a terminal)."""
        with _print_lock:
            self._clear()
            try:
                self.out.write(text + "\n")
                self.out.flush()
            except (OSError, ValueError):
                pass
            if self.tty and self._thread is not None and not self._stop.is_set():
                self._draw()

    def stop(self) -> None:
        """Stop redrawing and leave the final state as one plain line (if it was started)."""
        self._stop.set()
        if self._thread is None:
            return
        self._thread.join(timeout=2)
        with _print_lock:
            self._clear()
            try:
                self.out.write(self.line() + "\n")
                self.out.flush()
            except (OSError, ValueError):
                pass


_print_lock = threading.Lock()
