"""viewer.ui.crash: unexpected UI exceptions are logged, shown once, and the app lives on."""

from __future__ import annotations

import logging
import sys
import threading

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QMainWindow, QMessageBox

from medviewer.viewer import logs
from medviewer.viewer.ui import crash


@pytest.fixture
def reporter(qtbot, tmp_path):
    logs.close_logging()
    logs.setup_logging(debug=False, directory=tmp_path)
    win = QMainWindow()
    qtbot.addWidget(win)
    rep = crash.install_excepthook(win)
    yield rep
    rep.uninstall()
    if rep.dialog is not None:
        rep.dialog.close()
    logs.close_logging()


def _log_text(tmp_path) -> str:
    for h in logging.getLogger().handlers:
        h.flush()
    return (tmp_path / "medviewer.log").read_text(encoding="utf-8")


@pytest.mark.qt_no_exception_capture
def test_exception_in_slot_is_logged_shown_and_app_keeps_running(reporter, qtbot, tmp_path):
    assert sys.excepthook == reporter.excepthook
    ran_after: list[bool] = []

    def broken_slot():
        raise RuntimeError("overlay for DOE^JOHN failed")

    QTimer.singleShot(0, broken_slot)
    QTimer.singleShot(20, lambda: ran_after.append(True))
    qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.isVisible(), timeout=5000)
    qtbot.waitUntil(lambda: bool(ran_after), timeout=5000)  # the event loop survived
    box = reporter.dialog
    assert box.icon() == QMessageBox.Icon.Critical
    assert "RuntimeError" in box.informativeText()
    assert str(logs.log_path()) in box.informativeText()
    assert "DOE" not in box.informativeText() and "DOE" not in box.detailedText()
    text = _log_text(tmp_path)
    assert "unexpected error" in text and "Traceback" in text and "broken_slot" in text
    assert "DOE" not in text and "JOHN" not in text


def test_repeated_errors_show_one_dialog(reporter, qtbot):
    for i in range(5):
        try:
            raise ValueError(f"paint failed {i}")
        except ValueError:
            reporter.excepthook(*sys.exc_info())
    qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.isVisible(), timeout=5000)
    qtbot.wait(50)
    assert reporter.reported == 1
    assert reporter.repeats == 4
    reporter.dialog.close()
    try:
        raise KeyError("later")
    except KeyError:
        reporter.excepthook(*sys.exc_info())
    qtbot.waitUntil(lambda: reporter.reported == 2, timeout=5000)
    assert "KeyError" in reporter.dialog.informativeText()


def test_worker_thread_exception_reaches_the_gui_thread(reporter, qtbot, tmp_path):
    def work():
        raise OSError("disk gone")

    t = threading.Thread(target=work, name="scan-worker")
    t.start()
    t.join()
    qtbot.waitUntil(lambda: reporter.dialog is not None and reporter.dialog.isVisible(), timeout=5000)
    assert "OSError: disk gone" in reporter.dialog.informativeText()
    assert "in thread scan-worker" in _log_text(tmp_path)


def test_uninstall_restores_previous_hooks(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIEWER_LOG_DIR", str(tmp_path))
    logs.close_logging()
    before_sys, before_thread = sys.excepthook, threading.excepthook
    rep = crash.install_excepthook()
    assert sys.excepthook == rep.excepthook
    assert logs.log_path() == (tmp_path / "medviewer.log").resolve()  # set up the log itself
    rep.uninstall()
    assert sys.excepthook == before_sys and threading.excepthook == before_thread
    logs.close_logging()
