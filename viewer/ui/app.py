"""`medviewer [PATH] [--demo]`: start the window.

With no argument a welcome screen offers "Open folder", "Open demo study" and
the recent folders.  The AI panels (`viewer.ui.ai`) and the crash handler
(`viewer.ui.crash`) are installed at start-up; if either fails, the failure is
logged and the viewer runs without it.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

log = logging.getLogger("medviewer.ui")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="medviewer", description="medviewer DICOM viewer")
    p.add_argument("path", nargs="?", help="study folder or image file to open")
    p.add_argument("--demo", action="store_true", help="open the built-in demo study")
    return p.parse_args(argv)


def _setup_logging() -> None:
    """The redacting rotating log file of viewer.logs, else plain stderr logging."""
    from medviewer.viewer.logs import setup_logging

    try:
        setup_logging()
    except Exception as exc:  # an unwritable log folder must not stop the viewer
        logging.basicConfig(level=logging.INFO)
        log.warning("log file unavailable: %s", exc)


def _fallback_excepthook(parent: Any) -> None:
    """Log unexpected exceptions and show them in a dialog; the app keeps running."""

    def hook(etype: type, value: BaseException, tb: Any) -> None:
        log.error("unexpected error\n%s", "".join(traceback.format_exception(etype, value, tb)))
        try:
            from PySide6.QtWidgets import QMessageBox

            QMessageBox.critical(parent, "medviewer: unexpected error",
                                 f"{etype.__name__}: {value}\n\nThe viewer keeps running.")
        except Exception:
            pass

    sys.excepthook = hook


def install_excepthook(window: Any) -> None:
    """The crash reporter (viewer.ui.crash); the plain dialog hook if it cannot start."""
    from medviewer.viewer.ui.crash import install_excepthook as crash_hook

    try:
        crash_hook(window)
    except Exception:
        log.exception("crash handler")
        _fallback_excepthook(window)


#: further panels installed after the AI panels: module with install(window)
PLUGINS = ("medviewer.viewer.ui.reports", "medviewer.viewer.ui.pacs")


def install_plugins(window: Any) -> None:
    """Call viewer.ui.ai.install(window), then each of PLUGINS; a failure is logged and
    the viewer runs without that panel."""
    try:
        from medviewer.viewer.ui import ai

        ai.install(window)
    except Exception:
        log.exception("AI panels failed to install")
    _install_more(window)


def _install_more(window: Any) -> None:
    import importlib

    for name in PLUGINS:
        try:
            importlib.import_module(name).install(window)
        except Exception:
            log.exception("%s failed to install", name)


def _app_icon() -> Any:
    """The application icon from resources/icons (every size shipped)."""
    from PySide6.QtGui import QIcon

    icon = QIcon()
    try:
        from medviewer.viewer.resources import resource

        folder = resource("icons")
        for png in sorted(folder.glob("medviewer*.png")):
            icon.addFile(str(png))
    except Exception:
        log.debug("no application icon", exc_info=True)
    return icon


def create_window(args: argparse.Namespace | None = None, plugins: bool = True) -> Any:
    """Build the main window, open PATH / the demo, or show the welcome page."""
    from medviewer.viewer.ui.window import MainWindow

    window = MainWindow()
    if plugins:
        install_plugins(window)
    window.restore_layout()
    if args is not None:
        if args.demo:
            window.open_demo()
            ai = getattr(window, "ai", None)
            if ai is not None:
                ai.load_default_model()
        elif args.path:
            window.open_path(Path(args.path))
    return window


def main(argv: list[str] | None = None) -> int:
    """Run the GUI; returns the Qt exit code."""
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.path and not Path(args.path).exists():
        from medviewer.viewer.errors import UsageError

        raise UsageError(f"{args.path}: no such file or folder")
    _setup_logging()
    from PySide6.QtCore import QCoreApplication
    from PySide6.QtWidgets import QApplication

    from medviewer.viewer.ui.settings import APP, ORG

    QCoreApplication.setOrganizationName(ORG)
    QCoreApplication.setApplicationName(APP)
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "medviewer"])
    app.setWindowIcon(_app_icon())
    window = create_window(args)
    install_excepthook(window)
    window.show()
    return int(app.exec())
