"""Cine: step through the slices of the shown series at the chosen rate (frames per second)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal


class Cine(QObject):
    """Plays `state` (a ViewState) in a loop; sig_playing(bool) follows start/stop."""

    sig_playing = Signal(bool)

    def __init__(self, state: Any, fps: Callable[[], int], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._fps = fps
        self.timer = QTimer(self)
        self.timer.timeout.connect(self._step)
        state.sig_series_changed.connect(lambda _s: self.set_playing(False))

    def is_playing(self) -> bool:
        return self.timer.isActive()

    def set_playing(self, playing: bool) -> None:
        was = self.timer.isActive()
        if playing and self.state.count() > 1:
            self.timer.start(self.interval_ms())
        else:
            self.timer.stop()
        if was != self.timer.isActive() or playing != self.timer.isActive():
            self.sig_playing.emit(self.timer.isActive())

    def interval_ms(self) -> int:
        return int(1000 / max(1, self._fps()))

    def rate_changed(self) -> None:
        if self.timer.isActive():
            self.timer.setInterval(self.interval_ms())

    def _step(self) -> None:
        n = self.state.count()
        if n > 1:
            self.state.set_slice((self.state.index + 1) % n)
