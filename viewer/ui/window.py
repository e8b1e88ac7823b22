"""The main window: welcome screen, viewports, series browser, tag browser, status bar.

Widgets bind to the view state (a Qt-free `ViewSession` with one `ViewportState` per
viewport, relayed by `ViewState`); the viewports of the layout are a `ViewportGrid`
and `state`, `viewport` and `canvas` are the active viewport's.  Scanning and
thumbnails run off the GUI thread and arrive by signal, tagged with a scan generation
so stale results are dropped (STYLE.md patterns 3-5).  The reading features
(layouts, MPR, synchronisation, priors, measurement tools: viewer.ui.reading) are
installed with the window.  Extension points are documented in ARCHITECTURE.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QFileDialog, QMainWindow, QMenu, QStackedWidget, QWidget

from medviewer.viewer import logs
from medviewer.viewer.display import PRESETS
from medviewer.viewer.display.text import size_text
from medviewer.viewer.io.pixels import PixelStore
from medviewer.viewer.state.view import ViewSession
from medviewer.viewer.ui.actions import (build_actions, rebuild_recent_menu, refresh_window_menu,
                                         shortcut_rows)
from medviewer.viewer.ui.browser import SeriesBrowser
from medviewer.viewer.ui.cine import Cine
from medviewer.viewer.io.model import printable
from medviewer.viewer.ui.dialogs import shortcuts_dialog, skipped_dialog
from medviewer.viewer.ui.focus import ReturnFocus, WheelScrolls
from medviewer.viewer.ui.loader import StudyLoader
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.state import ViewState
from medviewer.viewer.ui.statusbar import ScanStatus
from medviewer.viewer.ui.tags import TagBrowser
from medviewer.viewer.ui.viewgrid import ViewportGrid
from medviewer.viewer.ui.viewport import Viewport
from medviewer.viewer.ui.welcome import WelcomeWidget
from medviewer.viewer.ui.windowdocks import DockHost
from medviewer.viewer.ui.workers import warm_up

log = logging.getLogger("medviewer.ui")

TAGS_DELAY_MS = 150


def _remember_identifiers(series: Any) -> None:
    """Tell the log redactor this patient's identifiers (viewer.logs, no PHI in logs)."""
    for path in list(series.headers)[:1]:  # one header (parsed now), not the whole series
        try:
            logs.remember_identifiers(series.headers[path])
        except Exception:
            log.debug("remember_identifiers failed", exc_info=True)


class MainWindow(DockHost, QMainWindow):
    """The medviewer window.  See ARCHITECTURE.md 'UI extension points'."""

    def __init__(self, settings: Settings | None = None, pixels: Any = None) -> None:
        super().__init__()
        warm_up()
        self.setWindowTitle("medviewer")
        self.setObjectName("medviewer_main")
        self.setAcceptDrops(True)
        self.settings = settings or Settings()
        self.pixels = pixels if pixels is not None else PixelStore()
        self.session = ViewSession(pixels=self.pixels,
                                   auto_window_per_image=self.settings.auto_window_per_image())
        self.state = ViewState(parent=self, session=self.session)
        self.state.follow_active()       # toolbar, keys and plug-ins act on the active viewport
        self.scan_result: Any = None
        self.loader = StudyLoader(self.pixels, self)
        self._welcome_hidden: list[QDockWidget] = []
        self._shown_once = False
        self._menus: dict[str, QMenu] = {}
        self._drop_handlers: list[tuple[Callable[[Path], bool], Callable[[Path], Any]]] = []
        self._wheel_guard = WheelScrolls(self)
        self._build_pages()
        self._build_docks()
        self._build_status_bar()
        self.cine = Cine(self.state, self.settings.cine_fps, self)
        self.cine_timer = self.cine.timer
        self.actions_by_name = build_actions(self)
        if self.settings.debug_logging():
            logs.set_debug(True)
        limits = self.settings.decode_limits()
        if any(limits):
            from medviewer.viewer.io.guard import set_limits

            set_limits(*limits)
        self.ai_menu = self.menu("AI")
        self.menu("Help")
        self._connect()
        from medviewer.viewer.ui.reading import install as install_reading

        self.reading = install_reading(self)
        self.welcome.set_recent(self.settings.recent_folders())
        self.resize(1280, 820)

    # -- construction ---------------------------------------------------------------
    def _build_pages(self) -> None:
        """Central widget: the welcome page, or the viewports of the layout."""
        self.stack = QStackedWidget(self)
        self.welcome = WelcomeWidget()
        self.grid = ViewportGrid(self.session)
        self.viewer_page = self.grid
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(self.grid)
        self.setCentralWidget(self.stack)

    # -- the active viewport -----------------------------------------------------------
    @property
    def viewport(self) -> Viewport:
        """The active viewport (canvas, scroller, strip)."""
        return self.grid.active_viewport()

    @property
    def canvas(self) -> Any:
        return self.viewport.canvas

    @property
    def slider(self) -> Any:
        return self.viewport.slider

    @property
    def slice_label(self) -> Any:
        return self.viewport.slice_label

    def canvases(self) -> list[Any]:
        return [vp.canvas for vp in self.grid.viewports]

    def _wire_viewport(self, vp: Viewport) -> None:
        """Signals of a viewport's canvas (every viewport, as the layout creates them)."""
        c = vp.canvas
        c.default_overlay_opacity = self.settings.overlay_opacity()
        c.sig_overlay_opacity.connect(self.settings.set_overlay_opacity)
        c.sig_cursor.connect(lambda value, c=c: c is self.canvas and self.status.set_cursor(value))
        c.sig_rendered.connect(lambda c=c: c is self.canvas and refresh_window_menu(self))

    def _on_active_changed(self) -> None:
        self._return_focus.target = self.canvas
        refresh_window_menu(self)

    def _build_docks(self) -> None:
        self.browser = SeriesBrowser()
        self.browser_dock = self.add_dock(self.browser, Qt.DockWidgetArea.LeftDockWidgetArea, "Series")
        self.tags = TagBrowser()
        self.tags_dock = self.add_dock(self.tags, Qt.DockWidgetArea.RightDockWidgetArea, "DICOM tags")
        # the tag tree is rebuilt once the slice settles, not on every wheel step
        self._tags_timer = QTimer(self)
        self._tags_timer.setSingleShot(True)
        self._tags_timer.setInterval(TAGS_DELAY_MS)

    def _build_status_bar(self) -> None:
        self.status = ScanStatus(self.statusBar(), self)
        self.cursor_label = self.status.cursor_label
        self.progress = self.status.progress
        self.cancel_button = self.status.cancel_button
        self.skipped_button = self.status.skipped_button

    def _connect(self) -> None:
        for vp in self.grid.viewports:
            self._wire_viewport(vp)
        self.grid.sig_viewport_added.connect(self._wire_viewport)
        self.session.events.active_changed.connect(lambda _vp: self._on_active_changed())
        self.status.sig_cancel.connect(self.cancel_scan)
        self.status.sig_show_skipped.connect(self.show_skipped)
        self.welcome.sig_open_folder.connect(lambda: self.choose_folder())
        self.welcome.sig_open_demo.connect(lambda: self.open_demo())
        self.welcome.sig_open_recent.connect(lambda p: self.open_path(p))
        self.browser.sig_series_selected.connect(self.state.set_series)
        self.loader.sig_progress.connect(self.status.set_progress)
        self.loader.sig_result.connect(self._on_result)
        self.loader.sig_failed.connect(self.status.failed)
        self.loader.sig_thumbnail.connect(self.browser.set_thumbnail)
        self.state.sig_series_changed.connect(self._on_series_changed)
        self.state.sig_slice_changed.connect(lambda _i: self._tags_timer.start())
        self.cine.sig_playing.connect(self._on_cine_playing)
        self._tags_timer.timeout.connect(self._update_tags)
        self.tags_dock.visibilityChanged.connect(lambda _v: self._tags_timer.start())
        # typing in a field keeps its keys; Enter / Escape give them back to the image
        self._return_focus = ReturnFocus(self.canvas, self)
        self._return_focus.watch(self.tags.filter)
        self._return_focus.watch(self.fps_spin)

    # -- extension points ---------------------------------------------------------
    def set_slice_strip(self, widget: QWidget | None) -> None:
        """Place a per-slice widget (e.g. the AI strip) under the slice scroller of the
        active viewport (it moves with the active viewport; in the MPR layout under the
        view of the acquisition plane); None removes it."""
        self.grid.set_slice_strip(widget)

    def add_drop_handler(self, accepts: Callable[[Path], bool], handle: Callable[[Path], Any]) -> None:
        """Dropped files for which `accepts(path)` is true go to `handle(path)` instead of
        being opened as a study (e.g. a .safetensors model file)."""
        self._drop_handlers.append((accepts, handle))

    def show_message(self, text: str, msecs: int = 5000) -> None:
        self.statusBar().showMessage(text, msecs)

    def export_view(self, path: str | Path, anonymize: bool = True, native: bool = False) -> Path:
        """Write the view as PNG: overlays anonymized unless asked otherwise, as on screen
        or (`native`) at the image's own resolution."""
        path = Path(path)
        img = self.canvas.render_view(anonymize=anonymize, native=native)
        if not img.save(str(path), "PNG"):
            raise OSError(f"cannot write {path}")
        self.show_message(f"Saved {path} ({size_text(img.height(), img.width())} px"
                          f"{', anonymized' if anonymize else ''})")
        return path

    def choose_export(self, title: str = "Export view") -> Path | None:
        from medviewer.viewer.ui.export import export_interactive

        return export_interactive(self, title)

    # -- opening ------------------------------------------------------------------
    def choose_folder(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Open study folder")
        if d:
            self.open_path(d)

    def choose_file(self) -> None:
        f, _ = QFileDialog.getOpenFileName(self, "Open image file")
        if f:
            self.open_path(f)

    def open_demo(self) -> None:
        """Open the demo study (generated once, in the worker) plus pydicom's real files."""

        def make() -> Path:
            from medviewer.viewer.io.demo import demo_root

            return demo_root()

        self._start_scan(make, "demo study")

    def open_path(self, path: str | Path, remember: bool = True) -> None:
        """Start a background scan of a folder or a single file."""
        path = Path(path)
        try:
            exists = path.exists()
        except OSError as exc:  # a name too long, a link loop
            self.show_message(f"{printable(path, 200)}: {exc.strerror or 'cannot be opened'}", 10000)
            return
        if not exists:
            self.show_message(f"{printable(path, 200)}: no such file or folder", 10000)
            return
        if remember:
            self.welcome.set_recent(self.settings.add_recent(path))
            rebuild_recent_menu(self)
        self._start_scan(path, printable(path.name, 80))

    def _start_scan(self, path: Path | Any, label: str) -> None:
        self.scan_result = None
        self.state.scan_result = None
        self.browser.clear_all()
        for canvas in self.canvases():
            canvas.clear_overlays()
        for vstate in self.session.viewports:
            vstate.set_series(None)
        self._show_viewer_page()
        self.setWindowTitle(f"medviewer - {label}")
        self.status.started(label)
        self.loader.start(path)

    def cancel_scan(self) -> None:
        self.loader.cancel()

    def is_scanning(self) -> bool:
        return self.loader.is_running()

    def _on_result(self, result: Any, final: bool) -> None:
        self._apply_result(result)
        if final:
            self.status.finished(result)
            log.info("scan finished: %d series, %d images, %d skipped", len(result.all_series()),
                     sum(len(s.items) for s in result.all_series()), len(result.skipped))
            self.session.events.scan_finished.emit(result)

    def _apply_result(self, result: Any) -> None:
        self.scan_result = result
        self.state.scan_result = result
        all_series = result.all_series()
        for s in self.browser.update_series(all_series):
            _remember_identifiers(s)
        self.session.show_series(all_series)
        self.session.events.scan_updated.emit(result)

    # -- state -> widgets -----------------------------------------------------------
    def _on_series_changed(self, series: Any) -> None:
        preset = self.settings.default_preset()
        if (series is not None and series.modality == "CT" and preset in PRESETS
                and self.state.window is None):
            self.state.window = PRESETS[preset]  # the user's default window for CT (View settings)
        if series is not None:
            self.browser.select_uid(series.series_uid)

    def _update_tags(self) -> None:
        if self.tags_dock.isVisible():
            self.tags.set_dataset(self.state.header())

    def show_skipped(self) -> None:
        skipped_dialog(self, self.scan_result).exec()

    def set_auto_window_per_image(self, on: bool) -> None:
        """View > Automatic window per image (else one automatic window per series)."""
        self.settings.set_auto_window_per_image(on)
        self.session.set_auto_window_per_image(on)

    def set_debug_logging(self, on: bool) -> None:
        """Help > Debug logging: persist the choice and apply it to the log now."""
        self.settings.set_debug_logging(on)
        logs.set_debug(on)
        self.show_message("Debug logging on: the log now includes patient identifiers" if on
                          else "Debug logging off: patient identifiers are redacted", 8000)

    def show_log_location(self) -> str:
        try:
            where = str(logs.log_path())
        except OSError:
            where = "no log file (logging to the terminal)"
        self.show_message(f"Log file: {where}", 15000)
        return where

    def show_shortcuts(self) -> None:
        shortcuts_dialog(self, shortcut_rows(self)).exec()

    # -- cine -----------------------------------------------------------------------
    def set_cine(self, playing: bool) -> None:
        self.cine.set_playing(playing)

    def set_cine_fps(self, fps: int) -> None:
        self.settings.set_cine_fps(fps)
        self.cine.rate_changed()

    def _on_cine_playing(self, playing: bool) -> None:
        act = self.actions_by_name.get("cine")
        if act is not None and act.isChecked() != playing:
            act.blockSignals(True)
            act.setChecked(playing)
            act.blockSignals(False)

    # -- drag and drop / close ---------------------------------------------------------
    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        rest = self.handle_dropped(paths)
        if rest:
            self.open_path(rest[0])

    def handle_dropped(self, paths: list[Path]) -> list[Path]:
        """Give dropped files to the drop handlers that accept them; return the rest."""
        rest = []
        for path in paths:
            handler = next((h for accepts, h in self._drop_handlers if accepts(path)), None)
            if handler is not None:
                handler(path)
            else:
                rest.append(path)
        return rest

    def closeEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Save the layout, stop workers and release the pixel cache."""
        for d in self._welcome_hidden:  # save the layout the user had, not the welcome one
            d.show()
        self._welcome_hidden = []
        try:
            self.settings.save_layout(self.saveGeometry(), self.saveState())
            self.settings.sync()
        except Exception:
            log.exception("saving settings")
        self.cine.set_playing(False)
        self.loader.shutdown()
        self.reading.shutdown()
        for canvas in self.canvases():
            canvas.shutdown()
        try:
            self.pixels.close()
        except Exception:
            log.debug("pixel store close", exc_info=True)
