"""Catch unexpected exceptions in the UI: log them, tell the user, keep running.

`install_excepthook(parent)` replaces `sys.excepthook` (which PySide6 calls for
an exception escaping a slot or a virtual method such as paintEvent) and
`threading.excepthook` (worker threads).  Each exception is logged with its
traceback through `viewer.logs` (patient identifiers redacted) and reported in
one dialog that names the log file.  The dialog is always shown from the GUI
thread through a queued signal, never opened inside the failing call, and an
exception that repeats while its dialog is open is only counted, so a broken
paintEvent cannot flood the screen.
"""

from __future__ import annotations

import logging
import sys
import threading
import traceback
from types import TracebackType

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QApplication, QMessageBox, QWidget

from medviewer.viewer import logs

log = logging.getLogger("medviewer.crash")


class CrashReporter(QObject):
    """Receives exceptions from any thread and shows them in the GUI thread."""

    sig_report = Signal(str, str)  # summary line, traceback text

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(QApplication.instance())
        self._parent = parent
        self.dialog: QMessageBox | None = None
        self.repeats = 0
        self.reported = 0
        self._prev_sys_hook = sys.excepthook
        self._prev_thread_hook = threading.excepthook
        self.sig_report.connect(self._show, Qt.ConnectionType.QueuedConnection)

    # -- hooks (any thread) -----------------------------------------------------------
    def excepthook(self, etype: type[BaseException], value: BaseException,
                   tb: TracebackType | None) -> None:
        if issubclass(etype, KeyboardInterrupt):
            self._prev_sys_hook(etype, value, tb)
            return
        self.handle(etype, value, tb)

    def thread_excepthook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        self.handle(args.exc_type, args.exc_value, args.exc_traceback,
                    where=f" in thread {args.thread.name if args.thread else '?'}")

    def handle(self, etype: type[BaseException], value: BaseException | None,
               tb: TracebackType | None, where: str = "") -> None:
        """Log the exception and queue the dialog; never raises."""
        try:
            log.error("unexpected error%s", where, exc_info=(etype, value, tb))
            message = str(value).strip().splitlines()[0] if value is not None and str(value).strip() else ""
            summary = logs.redact(f"{etype.__name__}: {message}" if message else etype.__name__)
            text = logs.redact("".join(traceback.format_exception(etype, value, tb)))
            self.sig_report.emit(summary, text)
        except Exception:  # the crash handler itself must never crash the app
            pass

    # -- GUI thread ---------------------------------------------------------------------
    @Slot(str, str)
    def _show(self, summary: str, details: str) -> None:
        if self.dialog is not None and self.dialog.isVisible():
            self.repeats += 1  # one dialog at a time; later errors are in the log
            return
        self.reported += 1
        parent = self._parent if isinstance(self._parent, QWidget) else QApplication.activeWindow()
        box = QMessageBox(parent)
        box.setIcon(QMessageBox.Icon.Critical)
        box.setWindowTitle("medviewer: unexpected error")
        box.setText("Something went wrong. medviewer keeps running, but the last action "
                    "may not have finished.")
        box.setInformativeText(f"{summary}\n\nDetails were written to the log file:\n{logs.log_path()}")
        box.setDetailedText(details)
        box.setStandardButtons(QMessageBox.StandardButton.Ok)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self.dialog = box
        box.open()  # window-modal, non-blocking: the event loop keeps running

    def uninstall(self) -> None:
        """Restore the previous hooks (tests)."""
        if sys.excepthook == self.excepthook:
            sys.excepthook = self._prev_sys_hook
        if threading.excepthook == self.thread_excepthook:
            threading.excepthook = self._prev_thread_hook


_reporter: CrashReporter | None = None


def install_excepthook(parent: QWidget | None = None) -> CrashReporter:
    """Route unexpected exceptions to the log and a dialog; return the reporter.

    Call once after the QApplication exists (and the main window, as `parent`,
    if there is one).  Also sets up the redacting log file if nobody has.
    """
    global _reporter
    if QApplication.instance() is None:
        raise RuntimeError("install_excepthook needs a QApplication")
    if not any(isinstance(f, logs.PhiFilter) for h in logging.getLogger().handlers for f in h.filters):
        logs.setup_logging()
    if _reporter is not None:
        _reporter.uninstall()
    _reporter = CrashReporter(parent)
    sys.excepthook = _reporter.excepthook
    threading.excepthook = _reporter.thread_excepthook
    return _reporter
