"""The main window: welcome screen, canvas, series browser, tag browser, status bar.

Widgets bind to `ViewState`; scanning and thumbnails run off the GUI thread and
arrive by signal, tagged with a scan generation so stale results are dropped
(STYLE.md patterns 3-5).  Extension points are documented in ARCHITECTURE.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QDockWidget, QFileDialog, QHBoxLayout, QLabel, QMainWindow,
                               QMenu, QProgressBar, QPushButton, QSlider, QStackedWidget,
                               QVBoxLayout, QWidget)

from medviewer.viewer.ui.actions import build_actions
from medviewer.viewer.ui.browser import SeriesBrowser
from medviewer.viewer.ui.canvas import ImageCanvas
from medviewer.viewer.io.model import printable
from medviewer.viewer.ui.dialogs import shortcuts_dialog, skipped_dialog
from medviewer.viewer.ui.loader import StudyLoader
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.state import ViewState
from medviewer.viewer.ui.tags import TagBrowser
from medviewer.viewer.ui.welcome import WelcomeWidget
from medviewer.viewer.ui.workers import warm_up

log = logging.getLogger("medviewer.ui")

PREFETCH_RADIUS = 3
TAGS_DELAY_MS = 150


def _remember_identifiers(series: Any) -> None:
    """Tell the log redactor this patient's identifiers (viewer.logs, no PHI in logs)."""
    try:
        from medviewer.viewer.logs import remember_identifiers
    except ImportError:
        return
    for path in list(series.headers)[:1]:  # one header (parsed now), not the whole series
        try:
            remember_identifiers(series.headers[path])
        except Exception:
            log.debug("remember_identifiers failed", exc_info=True)


class MainWindow(QMainWindow):
    """The medviewer window.  See ARCHITECTURE.md 'UI extension points'."""

    def __init__(self, settings: Settings | None = None, pixels: Any = None) -> None:
        super().__init__()
        from medviewer.viewer.io.pixels import PixelStore

        warm_up()
        self.setWindowTitle("medviewer")
        self.setObjectName("medviewer_main")
        self.setAcceptDrops(True)
        self.settings = settings or Settings()
        self.pixels = pixels if pixels is not None else PixelStore()
        self.state = ViewState(self.pixels, self)
        self.scan_result: Any = None
        self.loader = StudyLoader(self.pixels, self)
        self._welcome_hidden: list[QDockWidget] = []
        self._shown_once = False
        self._menus: dict[str, QMenu] = {}

        # central: welcome page / viewer page
        self.stack = QStackedWidget(self)
        self.welcome = WelcomeWidget()
        self.canvas = ImageCanvas(self.state)
        self.canvas.default_overlay_opacity = self.settings.overlay_opacity()
        self.canvas.sig_overlay_opacity.connect(self.settings.set_overlay_opacity)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setObjectName("slice_slider")
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slice_label = QLabel("")
        self._strip_holder = QVBoxLayout()
        self._strip_holder.setContentsMargins(0, 0, 0, 0)
        self._strip: QWidget | None = None
        page = QWidget()
        lay = QVBoxLayout(page)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(2)
        lay.addWidget(self.canvas, 1)
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.slice_label)
        lay.addLayout(row)
        lay.addLayout(self._strip_holder)
        self.viewer_page = page
        self.stack.addWidget(self.welcome)
        self.stack.addWidget(page)
        self.setCentralWidget(self.stack)

        # docks
        self.browser = SeriesBrowser()
        self.browser_dock = self.add_dock(self.browser, Qt.DockWidgetArea.LeftDockWidgetArea,
                                          "Series")
        self.tags = TagBrowser()
        self.tags_dock = self.add_dock(self.tags, Qt.DockWidgetArea.RightDockWidgetArea,
                                       "DICOM tags")

        # status bar
        sb = self.statusBar()
        self.cursor_label = QLabel("")
        self.cursor_label.setObjectName("cursor_label")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.skipped_button = QPushButton("Skipped: 0")
        self.skipped_button.setObjectName("skipped_button")
        self.skipped_button.setFlat(True)
        self.skipped_button.setVisible(False)
        sb.addPermanentWidget(self.cursor_label)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.cancel_button)
        sb.addPermanentWidget(self.skipped_button)
        self.cancel_button.clicked.connect(self.cancel_scan)
        self.skipped_button.clicked.connect(self.show_skipped)

        # cine
        self.cine_timer = QTimer(self)
        self.cine_timer.timeout.connect(self._cine_step)

        self.actions_by_name = build_actions(self)
        if self.settings.debug_logging():
            self._apply_debug_logging(True)
        limits = self.settings.decode_limits()
        if any(limits):
            from medviewer.viewer.io.guard import set_limits

            set_limits(*limits)
        self.ai_menu = self.menu("AI")
        self.menu("Help")

        # bindings
        self.welcome.sig_open_folder.connect(lambda: self.choose_folder())
        self.welcome.sig_open_demo.connect(lambda: self.open_demo())
        self.welcome.sig_open_recent.connect(lambda p: self.open_path(p))
        self.browser.sig_series_selected.connect(self.state.set_series)
        self.loader.sig_progress.connect(self._on_progress)
        self.loader.sig_result.connect(self._on_result)
        self.loader.sig_failed.connect(self._on_failed)
        self.loader.sig_thumbnail.connect(self.browser.set_thumbnail)
        self.slider.valueChanged.connect(self.state.set_slice)
        self.state.sig_series_changed.connect(self._on_series_changed)
        self.state.sig_slice_changed.connect(self._on_slice_changed)
        self.canvas.sig_cursor.connect(self._on_cursor)
        self.canvas.sig_rendered.connect(self._on_rendered)
        # the tag tree is rebuilt once the slice settles, not on every wheel step
        self._tags_timer = QTimer(self)
        self._tags_timer.setSingleShot(True)
        self._tags_timer.setInterval(TAGS_DELAY_MS)
        self._tags_timer.timeout.connect(self._update_tags)
        self.tags_dock.visibilityChanged.connect(lambda _v: self._tags_timer.start())

        self.welcome.set_recent(self.settings.recent_folders())
        self.resize(1280, 820)

    def restore_layout(self) -> None:
        """Restore the saved geometry and dock layout (call after plug-ins added
        their docks, so theirs are restored too); on a first start, give the
        right-hand area to plug-in panels with the tag browser as a tab."""
        geo, st = self.settings.geometry(), self.settings.window_state()
        if geo is not None:
            self.restoreGeometry(geo)
        if st is not None and self.restoreState(st):
            return
        right = [d for d in self.findChildren(QDockWidget)
                 if d is not self.tags_dock
                 and self.dockWidgetArea(d) == Qt.DockWidgetArea.RightDockWidgetArea]
        if right:
            self.tabifyDockWidget(right[0], self.tags_dock)
            right[0].raise_()
        # needs the shown layout
        QTimer.singleShot(0, lambda: self.resizeDocks(
            [self.browser_dock, self.tags_dock], [270, 440], Qt.Orientation.Horizontal))

    # -- extension points ---------------------------------------------------------
    def add_dock(self, widget: QWidget, area: Any = Qt.DockWidgetArea.RightDockWidgetArea,
                 title: str | None = None) -> QDockWidget:
        """Wrap `widget` in a dock (saved with the window layout) and add it."""
        dock = QDockWidget(title or widget.windowTitle() or widget.objectName(), self)
        name = widget.objectName() or (title or "dock").lower().replace(" ", "_")
        dock.setObjectName(f"dock_{name}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        view = self._menus.get("View")
        if view is not None:
            view.addAction(dock.toggleViewAction())
        return dock

    def menu(self, title: str) -> QMenu:
        """The top-level menu `title`, created (before Help) when missing."""
        if title in self._menus:
            return self._menus[title]
        m = QMenu(title, self)
        help_menu = self._menus.get("Help")
        if help_menu is not None:
            self.menuBar().insertMenu(help_menu.menuAction(), m)
        else:
            self.menuBar().addMenu(m)
        self._menus[title] = m
        return m

    def set_slice_strip(self, widget: QWidget | None) -> None:
        """Place a per-slice widget under the slice scroller (None removes it)."""
        if self._strip is not None:
            self._strip_holder.removeWidget(self._strip)
            self._strip.setParent(None)
        self._strip = widget
        if widget is not None:
            self._strip_holder.addWidget(widget)
            widget.show()

    def show_message(self, text: str, msecs: int = 5000) -> None:
        self.statusBar().showMessage(text, msecs)

    def export_view(self, path: str | Path) -> None:
        if not self.canvas.grab_view().save(str(path), "PNG"):
            raise OSError(f"cannot write {path}")

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
            self._rebuild_recent_menu()
        self._start_scan(path, printable(path.name, 80))

    def _start_scan(self, path: Path | Any, label: str) -> None:
        self.scan_result = None
        self.state.scan_result = None
        self.browser.clear_all()
        self.canvas.clear_overlays()
        self.canvas.clear_rulers()
        self.state.set_series(None)
        self.skipped_button.setVisible(False)
        self._show_viewer_page()
        self.setWindowTitle(f"medviewer - {label}")
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.show_message(f"Scanning {label}...", 0)
        self.loader.start(path)

    def _show_viewer_page(self) -> None:
        """Leave the welcome page: bring back the docks it hid."""
        if self.stack.currentWidget() is not self.viewer_page:
            self.stack.setCurrentWidget(self.viewer_page)
            for d in self._welcome_hidden:
                d.show()
            self._welcome_hidden = []

    def _welcome_hide_docks(self) -> None:
        """The welcome page uses the whole window (docks come back with a study)."""
        if self.stack.currentWidget() is self.welcome:
            self._welcome_hidden = [d for d in self.findChildren(QDockWidget) if d.isVisible()]
            for d in self._welcome_hidden:
                d.hide()
                # a dock the user toggles meanwhile is theirs again
                d.toggleViewAction().triggered.connect(
                    lambda _c=False, d=d: d in self._welcome_hidden and self._welcome_hidden.remove(d))

    def showEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            self._welcome_hide_docks()

    def cancel_scan(self) -> None:
        self.loader.cancel()

    def is_scanning(self) -> bool:
        return self.loader.is_running()

    def _on_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done}/{total}")

    def _on_failed(self, error: str) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self.show_message(error, 15000)

    def _on_result(self, result: Any, final: bool) -> None:
        self._apply_result(result)
        if not final:
            return
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        n_series = len(result.all_series())
        n_img = sum(len(s.items) for s in result.all_series())
        n_skip = len(result.skipped) + len(result.non_image)
        self.skipped_button.setText(f"Skipped: {len(result.skipped)}"
                                    + (f" (+{len(result.non_image)} non-image)"
                                       if result.non_image else ""))
        self.skipped_button.setVisible(n_skip > 0)
        msg = f"{n_series} series, {n_img} images"
        if result.skipped:
            msg += f", {len(result.skipped)} file(s) skipped"
        if not getattr(result, "complete", True):
            msg += " (scan cancelled)"
        if n_img == 0:
            msg = f"No displayable images in {result.root}" + (
                f" ({len(result.skipped)} file(s) skipped)" if result.skipped else "")
        self.show_message(msg, 0)
        log.info("scan finished: %d series, %d images, %d skipped",
                 n_series, n_img, len(result.skipped))
        self.state.sig_scan_finished.emit(result)

    def _apply_result(self, result: Any) -> None:
        self.scan_result = result
        self.state.scan_result = result
        all_series = result.all_series()
        for s in self.browser.update_series(all_series):
            _remember_identifiers(s)
        cur = self.state.series
        if cur is None:
            first = next((s for s in all_series if s.items), None)
            if first is not None:
                self.state.set_series(first)
        else:
            same = next((s for s in all_series if s.series_uid == cur.series_uid), None)
            if same is not None and same is not cur:
                self.state.update_series(same)
        self.state.sig_scan_updated.emit(result)

    # -- state -> widgets -----------------------------------------------------------
    def _on_series_changed(self, series: Any) -> None:
        self.cine_timer.stop()
        preset = self.settings.default_preset()
        if (series is not None and series.modality == "CT" and preset
                and self.state.window is None):
            from medviewer.viewer.display import PRESETS

            if preset in PRESETS:  # the user's default window for CT (View settings)
                self.state.window = PRESETS[preset]
        n = len(series.items) if series is not None else 0
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, n - 1))
        self.slider.setValue(self.state.index)
        self.slider.blockSignals(False)
        if series is not None:
            self.browser.select_uid(series.series_uid)

    def _on_slice_changed(self, index: int) -> None:
        n = self.state.count()
        self.slider.blockSignals(True)
        if self.slider.maximum() != max(0, n - 1):
            self.slider.setRange(0, max(0, n - 1))
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        self.slice_label.setText(f"{index + 1}/{n}" if n else "")
        self._tags_timer.start()
        series = self.state.series
        if series is not None and n:
            lo, hi = max(0, index - PREFETCH_RADIUS), min(n, index + PREFETCH_RADIUS + 1)
            try:
                self.pixels.prefetch(series.items[lo:hi])
            except Exception:
                log.debug("prefetch failed", exc_info=True)

    def _on_rendered(self) -> None:
        from medviewer.viewer.ui.actions import refresh_window_menu

        refresh_window_menu(self)

    def _update_tags(self) -> None:
        if self.tags_dock.isVisible():
            self.tags.set_dataset(self.state.header())

    def _on_cursor(self, cv: Any) -> None:
        self.cursor_label.setText("" if cv is None else f"({cv.col}, {cv.row}) {cv.text}")

    def show_skipped(self) -> None:
        skipped_dialog(self, self.scan_result).exec()

    def set_debug_logging(self, on: bool) -> None:
        """Help > Debug logging: persist the choice and apply it to the log now."""
        self.settings.set_debug_logging(on)
        self._apply_debug_logging(on)
        self.show_message("Debug logging on: the log now includes patient identifiers" if on
                          else "Debug logging off: patient identifiers are redacted", 8000)

    @staticmethod
    def _apply_debug_logging(on: bool) -> None:
        try:
            from medviewer.viewer.logs import set_debug
        except ImportError:
            return
        set_debug(on)

    def show_log_location(self) -> str:
        try:
            from medviewer.viewer.logs import log_path
            where = str(log_path())
        except Exception:
            where = "no log file (logging to the terminal)"
        self.show_message(f"Log file: {where}", 15000)
        return where

    def show_shortcuts(self) -> None:
        from medviewer.viewer.ui.actions import shortcut_rows

        shortcuts_dialog(self, shortcut_rows(self)).exec()

    def _rebuild_recent_menu(self) -> None:
        from medviewer.viewer.ui.actions import rebuild_recent_menu

        rebuild_recent_menu(self)

    # -- cine -----------------------------------------------------------------------
    def set_cine(self, playing: bool) -> None:
        if playing and self.state.count() > 1:
            self.cine_timer.start(int(1000 / max(1, self.settings.cine_fps())))
        else:
            self.cine_timer.stop()
        act = self.actions_by_name.get("cine")
        if act is not None and act.isChecked() != self.cine_timer.isActive():
            act.blockSignals(True)
            act.setChecked(self.cine_timer.isActive())
            act.blockSignals(False)

    def set_cine_fps(self, fps: int) -> None:
        self.settings.set_cine_fps(fps)
        if self.cine_timer.isActive():
            self.cine_timer.setInterval(int(1000 / max(1, fps)))

    def _cine_step(self) -> None:
        n = self.state.count()
        if n > 1:
            self.state.set_slice((self.state.index + 1) % n)

    # -- drag and drop / close ---------------------------------------------------------
    def dragEnterEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_path(paths[0])

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
        self.cine_timer.stop()
        self.loader.shutdown()
        self.canvas.shutdown()
        try:
            self.pixels.close()
        except Exception:
            log.debug("pixel store close", exc_info=True)
