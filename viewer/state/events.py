"""A minimal Qt-free signal: widgets and other state objects subscribe to state changes.

The state objects of `medviewer.viewer.state` announce every change through
`Event`s; the Qt side (viewer.ui.state) relays them as Qt signals, a headless
caller (tests, a future synchronisation of viewports) connects plain callables.
Callbacks run synchronously, in connection order, on the thread that changed
the state (the GUI thread in the viewer).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Callback = Callable[..., Any]


class Event:
    """A named list of callbacks; `emit(*args)` calls each with `args`."""

    __slots__ = ("name", "_callbacks", "_blocked")

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callback] = []
        self._blocked = 0

    def connect(self, callback: Callback) -> Callback:
        """Subscribe `callback` (once); returns it, so it works as a decorator."""
        if callback not in self._callbacks:
            self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callback) -> None:
        try:
            self._callbacks.remove(callback)
        except ValueError:
            pass

    def emit(self, *args: Any) -> None:
        if self._blocked:
            return
        for cb in list(self._callbacks):
            cb(*args)

    def block(self) -> "_Blocker":
        """`with event.block(): ...` changes state without announcing it."""
        return _Blocker(self)

    def __len__(self) -> int:
        return len(self._callbacks)

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {len(self._callbacks)} callbacks)"


class _Blocker:
    __slots__ = ("_event",)

    def __init__(self, event: Event) -> None:
        self._event = event

    def __enter__(self) -> Event:
        self._event._blocked += 1
        return self._event

    def __exit__(self, *_exc: Any) -> None:
        self._event._blocked -= 1
