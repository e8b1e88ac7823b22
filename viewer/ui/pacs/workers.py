"""Thin Qt adapters running the Qt-free PACS client (medviewer.viewer.pacs) off the GUI thread.

Each job carries a generation number; progress, results and errors cross back
by signal only, errors as one line (STYLE.md patterns 4-6).  `cancel()` sets a
flag the client polls between instances / matches, so a retrieval or a send
stops at the next instance and keeps what arrived.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, Signal

log = logging.getLogger("medviewer.pacs")
PROGRESS_INTERVAL_S = 0.1


class PacsSignals(QObject):
    """sig_progress(gen, done, total); sig_done(gen, kind, result | None, error | None)."""

    sig_progress = Signal(int, int, int)
    sig_done = Signal(int, str, object, object)


class PacsJob(QRunnable):
    """Run `work(progress, should_stop)` and report its result (or one-line error) by signal."""

    def __init__(self, signals: PacsSignals, generation: int, kind: str,
                 work: Callable[[Callable[[int, int], None], Callable[[], bool]], Any]) -> None:
        super().__init__()
        self.signals, self.generation, self.kind, self.work = signals, generation, kind, work
        self._stop = threading.Event()
        self._last = 0.0

    def cancel(self) -> None:
        self._stop.set()

    def should_stop(self) -> bool:
        return self._stop.is_set()

    def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - self._last >= PROGRESS_INTERVAL_S:
            self._last = now
            try:
                self.signals.sig_progress.emit(self.generation, int(done), int(total))
            except RuntimeError:
                pass

    def run(self) -> None:  # noqa: D102 - QRunnable entry point
        from medviewer.viewer.errors import MedviewerError

        result: Any = None
        error: str | None = None
        try:
            result = self.work(self.progress, self.should_stop)
        except MedviewerError as exc:
            error = str(exc)
        except Exception as exc:  # a bug: the trace goes to the log, the user gets one line
            log.exception("PACS %s failed", self.kind)
            error = f"internal error: {type(exc).__name__}: {exc}"
        try:
            self.signals.sig_done.emit(self.generation, self.kind, result, error)
        except RuntimeError:  # the dialog was closed meanwhile
            pass


_session_secrets: dict[str, str] = {}   # node URL -> password or token, for this session only (never saved)


def with_credentials(parent: Any, node: Any) -> Any:
    """A DICOMweb node with its password / bearer token: from the environment, else asked once per session."""
    from dataclasses import replace

    from PySide6.QtWidgets import QInputDialog, QLineEdit

    if getattr(node, "kind", "") != "dicomweb" or node.auth == "none":
        return node
    node = node.with_env_credentials()
    if (node.auth == "basic" and node.password) or (node.auth == "bearer" and node.token):
        return node
    secret = _session_secrets.get(node.url)
    if secret is None:
        what = f"Password for {node.username}" if node.auth == "basic" else "Bearer token"
        secret, ok = QInputDialog.getText(parent, f"DICOMweb: {node.url}", f"{what} (kept for this session only):",
                                          QLineEdit.EchoMode.Password)
        if not ok:
            return node
        _session_secrets[node.url] = secret
    return replace(node, password=secret) if node.auth == "basic" else replace(node, token=secret)
