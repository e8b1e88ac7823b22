"""Start-up, welcome screen, settings persistence and the crash hook fallback."""

from __future__ import annotations

import logging
import sys

import pytest
from PySide6.QtCore import Qt

from medviewer.viewer.ui import app as ui_app
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.window import MainWindow


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIEWER_SETTINGS_DIR", str(tmp_path / "settings"))
    return tmp_path / "settings"


def test_settings_round_trip(tmp_path, isolated_settings):
    s = Settings()
    assert s.recent_folders() == [] and s.device() == "auto" and s.overlay_opacity() == 0.5
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    s.add_recent(a)
    s.add_recent(b)
    s.add_recent(a)  # moves to the front, no duplicate
    s.set_overlay_opacity(0.7)
    s.set_model("/models/demo.safetensors")
    s.set_device("cpu")
    s.set_default_preset("lung")
    s.set_cine_fps(24)
    s.sync()
    assert (isolated_settings / "medviewer.ini").exists()
    t = Settings()
    assert t.recent_folders() == [str(a.resolve()), str(b.resolve())]
    assert t.overlay_opacity() == pytest.approx(0.7)
    assert (t.model(), t.device(), t.default_preset(), t.cine_fps()) == (
        "/models/demo.safetensors", "cpu", "lung", 24)
    t.set_overlay_opacity(3.0)  # clamped
    assert t.overlay_opacity() == 1.0


def test_window_layout_persists(qtbot):
    from pydicom.data import get_testdata_file

    w = MainWindow()
    qtbot.addWidget(w)
    w.resize(777, 555)
    w.show()
    qtbot.waitExposed(w)
    assert w.stack.currentWidget() is w.welcome and not w.browser_dock.isVisible()
    w.open_path(get_testdata_file("CT_small.dcm"))  # docks come back with a study
    assert w.browser_dock.isVisible() and w.tags_dock.isVisible()
    qtbot.waitUntil(lambda: not w.is_scanning(), timeout=10000)
    w.tags_dock.hide()
    w.close()
    w2 = MainWindow()
    qtbot.addWidget(w2)
    w2.restore_layout()
    w2.show()
    qtbot.waitExposed(w2)
    assert (w2.width(), w2.height()) == (777, 555)
    assert not w2.tags_dock.isVisible()
    w2.shutdown()


def test_welcome_screen_buttons(qtbot, tmp_path, monkeypatch):
    Settings().add_recent(tmp_path)
    w = ui_app.create_window(ui_app.parse_args([]), plugins=False)
    qtbot.addWidget(w)
    w.show()
    assert w.stack.currentWidget() is w.welcome
    assert w.welcome.recent.count() == 1
    assert w.welcome.recent.item(0).text() == str(tmp_path.resolve())
    assert [a.text() for a in w.recent_menu.actions()] == [str(tmp_path.resolve())]

    opened: list[str] = []
    monkeypatch.setattr(MainWindow, "open_path", lambda self, p, remember=True: opened.append(str(p)))
    monkeypatch.setattr(MainWindow, "open_demo", lambda self: opened.append("demo"))
    monkeypatch.setattr("viewer.ui.window.QFileDialog.getExistingDirectory",
                        lambda *a, **k: str(tmp_path))
    qtbot.mouseClick(w.welcome.open_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(w.welcome.demo_button, Qt.MouseButton.LeftButton)
    w.welcome.recent.itemActivated.emit(w.welcome.recent.item(0))
    assert opened == [str(tmp_path), "demo", str(tmp_path.resolve())]
    w.shutdown()


def test_bad_path_is_one_line_error(capsys):
    from medviewer.viewer.cli import main

    assert main(["/no/such/study"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "/no/such/study" in err[0] and "no such" in err[0]


def test_fallback_excepthook_logs_and_keeps_running(qtbot, monkeypatch, caplog):
    shown = []
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr("PySide6.QtWidgets.QMessageBox.critical",
                        lambda *a, **k: shown.append(a[2]))
    ui_app._fallback_excepthook(None)
    with caplog.at_level(logging.ERROR, logger="medviewer.ui"):
        try:
            raise ValueError("boom in a slot")
        except ValueError:
            sys.excepthook(*sys.exc_info())
    assert shown and "ValueError: boom in a slot" in shown[0]
    assert "boom in a slot" in caplog.text


def test_plugins_failure_does_not_stop_the_viewer(qtbot, monkeypatch, caplog):
    import types

    broken = types.ModuleType("medviewer.viewer.ui.ai")

    def install(window):
        raise RuntimeError("plugin exploded")

    broken.install = install
    monkeypatch.setitem(sys.modules, "medviewer.viewer.ui.ai", broken)
    import medviewer.viewer.ui as ui_pkg

    monkeypatch.setattr(ui_pkg, "ai", broken, raising=False)
    w = MainWindow()
    qtbot.addWidget(w)
    with caplog.at_level(logging.ERROR, logger="medviewer.ui"):
        ui_app.install_plugins(w)
    assert "failed to install" in caplog.text
    w.shutdown()


DRIVER = """
import sys
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
from medviewer.viewer.ui import app as ui_app
from medviewer.viewer.ui.window import MainWindow
app = QApplication(["medviewer"])  # main() uses the existing instance
seen = {}
def check_and_quit():
    wins = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
    if wins and wins[0].scan_result is not None and wins[0].scan_result.complete:
        w = wins[0]
        seen["series"] = len(w.scan_result.all_series())
        seen["rendered"] = w.canvas.rendered is not None or w.canvas.loading()
        seen["icon"] = not QApplication.windowIcon().isNull()
        w.close()
        QApplication.quit()
    else:
        QTimer.singleShot(50, check_and_quit)
QTimer.singleShot(50, check_and_quit)
rc = ui_app.main(sys.argv[1:])
print("RESULT", rc, sorted(seen.items()))
"""


def test_main_opens_path_and_runs_the_event_loop(tmp_path, isolated_settings):
    """`medviewer PATH` end to end in its own process: logging, crash hook, plug-ins,
    window, scan, exit code; the log file holds no patient name."""
    import os
    import subprocess

    from pydicom.data import get_testdata_file

    env = dict(os.environ, MEDVIEWER_LOG_DIR=str(tmp_path / "logs"), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(get_testdata_file("CT_small.dcm"))],
                          env=env, capture_output=True, text=True, timeout=240)
    assert "RESULT 0 [('icon', True), ('rendered', True), ('series', 1)]" in proc.stdout, (
        proc.stdout + proc.stderr)[-2000:]
    text = (tmp_path / "logs" / "medviewer.log").read_text()
    assert "scan finished: 1 series" in text
    assert "CompressedSamples" not in text  # CT_small's patient name never reaches the log


def test_debug_logging_option_persists_and_controls_redaction(qtbot, isolated_settings):
    """Help > Debug logging is off by default (identifiers redacted), persists, and
    turning it on really stops the redaction until it is turned off again."""
    from medviewer.viewer import logs

    w = MainWindow()
    qtbot.addWidget(w)
    act = w.actions_by_name["debug_log"]
    try:
        assert not act.isChecked() and "SMITH^JANE" not in logs.redact("PatientName SMITH^JANE")
        act.trigger()
        assert act.isChecked() and w.settings.debug_logging()
        assert logs.redact("patient SMITH^JANE") == "patient SMITH^JANE"
        w2 = MainWindow()                         # the choice is applied at the next start too
        qtbot.addWidget(w2)
        assert w2.actions_by_name["debug_log"].isChecked()
        act.trigger()
        assert not w.settings.debug_logging()
        assert "SMITH^JANE" not in logs.redact("patient SMITH^JANE")
        assert w.show_log_location().endswith("medviewer.log")
    finally:
        logs.set_debug(False)
