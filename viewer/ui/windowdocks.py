"""Docks, menus and the saved window layout of the main window (a mixin of MainWindow).

`add_dock` and `menu` are extension points (ARCHITECTURE.md); `restore_layout` brings
back the saved geometry and dock layout after the plug-ins added their docks; the
welcome page uses the whole window and the docks come back with a study.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDockWidget, QMenu, QScrollArea, QWidget

from medviewer.viewer.ui.focus import guard_wheel


class DockHost:
    """Mixed into viewer.ui.window.MainWindow (which provides settings, stack, welcome,
    viewer_page, tags_dock, browser_dock, _menus, _wheel_guard, _welcome_hidden)."""

    def restore_layout(self) -> None:
        """Restore the saved geometry and dock layout (call after plug-ins added
        their docks, so theirs are restored too); on a first start, give the
        right-hand area to plug-in panels with the tag browser as a tab."""
        geo, st = self.settings.geometry(), self.settings.window_state()
        if geo is not None:
            self.restoreGeometry(geo)
        else:
            self._fit_to_screen()
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

    def _fit_to_screen(self) -> None:
        """First start: 1280x820, or less on a smaller screen (docks scroll, nothing is cut)."""
        screen = self.screen()
        if screen is not None:
            avail = screen.availableGeometry()
            self.resize(min(self.width(), avail.width()), min(self.height(), avail.height()))

    def add_dock(self, widget: QWidget, area: Any = Qt.DockWidgetArea.RightDockWidgetArea,
                 title: str | None = None, scrollable: bool = False) -> QDockWidget:
        """Wrap `widget` in a dock (saved with the window layout) and add it.
        `scrollable` puts it in a scroll area, so a small window never cuts it off."""
        dock = QDockWidget(title or widget.windowTitle() or widget.objectName(), self)
        name = widget.objectName() or (title or "dock").lower().replace(" ", "_")
        dock.setObjectName(f"dock_{name}")
        if scrollable:
            scroll = QScrollArea()
            scroll.setObjectName(f"scroll_{name}")
            scroll.setWidgetResizable(True)
            scroll.setFrameShape(QScrollArea.Shape.NoFrame)
            scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
            scroll.setWidget(widget)
            guard_wheel(widget, self._wheel_guard)
            dock.setWidget(scroll)
        else:
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
