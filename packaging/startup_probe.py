"""Measure start-up: quit as soon as the first window is on screen.

Enabled by MEDVIEWER_STARTUP_PROBE=1 in packaging/medviewer_main.py (the bundle's
entry point) so the app's own code stays untouched.  It wraps QApplication.exec:
when the event loop starts, an event filter waits for the first Expose/Paint of
a top-level window, prints

    medviewer-startup: first window shown after 2.345 s

(seconds since the process started, from psutil) and quits with exit code 0.
If no window appears within MEDVIEWER_STARTUP_PROBE_TIMEOUT seconds (default
120), it quits with exit code 3.
"""

from __future__ import annotations

import os
import sys
import time


def _process_start() -> float:
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:  # psutil missing: measure from interpreter start instead
        return time.time() - time.perf_counter()


def install() -> None:
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QWidget

    start = _process_start()
    limit = float(os.environ.get("MEDVIEWER_STARTUP_PROBE_TIMEOUT", "120"))
    original_exec = QApplication.exec

    class _Probe(QObject):
        done = False

        def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
            if (not self.done and event.type() in (QEvent.Type.Expose, QEvent.Type.Paint)
                    and isinstance(obj, QWidget) and obj.isWindow() and obj.isVisible()):
                self.done = True
                elapsed = time.time() - start
                print(f"medviewer-startup: first window shown after {elapsed:.3f} s "
                      f"({type(obj).__name__})", flush=True)
                QTimer.singleShot(0, lambda: QApplication.exit(0))
            return False

    def exec_with_probe(*args):
        app = QApplication.instance()
        probe = _Probe(app)
        app.installEventFilter(probe)

        def give_up() -> None:
            if not probe.done:
                print(f"medviewer-startup: no window within {limit:.0f} s", file=sys.stderr, flush=True)
                QApplication.exit(3)

        QTimer.singleShot(int(limit * 1000), give_up)
        return original_exec()

    QApplication.exec = staticmethod(exec_with_probe)
