"""Layout actions: 1x1, 1x2, 2x1, 2x2 and MPR 1x3 from the View menu and the reading toolbar.

The chosen layout is the session's (viewer.state.view.ViewSession.set_layout) and is
remembered in the settings (`view/layout`) for the next start.  A series dragged from
the browser onto a viewport opens there; double-clicking one in the browser opens it
in the active viewport (a single click too, as before).  The MPR layout's action is
enabled by the MPR views only for series that can be a volume (viewer.ui.mpr).
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, QRectF, Qt
from PySide6.QtGui import QAction, QActionGroup, QColor, QIcon, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import QToolBar

from medviewer.viewer.state.layout import LAYOUTS, LayoutSpec, layout_spec

log = logging.getLogger("medviewer.ui")

KEY_LAYOUT = "view/layout"
SHORTCUTS = {"1x1": "Alt+1", "1x2": "Alt+2", "2x1": "Alt+3", "2x2": "Alt+4", "mpr": "Alt+M"}


def layout_icon(spec: LayoutSpec, size: int = 22) -> QIcon:
    """A small picture of the layout's cells (the MPR one with its three plane colours)."""
    pix = QPixmap(size, size)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    m, gap = 2.0, 2.0
    w = (size - 2 * m - (spec.columns - 1) * gap) / spec.columns
    h = (size - 2 * m - (spec.rows - 1) * gap) / spec.rows
    colours = [QColor(220, 70, 70), QColor(80, 190, 90), QColor(230, 200, 60)]
    for r in range(spec.rows):
        for c in range(spec.columns):
            fill = colours[c % 3] if spec.mpr else QColor(150, 170, 200)
            p.setPen(QColor(30, 30, 30))
            p.setBrush(fill)
            p.drawRect(QRectF(m + c * (w + gap), m + r * (h + gap), w, h))
    p.end()
    return QIcon(pix)


class LayoutController(QObject):
    """The layout actions of `window` (`actions[name]`) and the reading toolbar."""

    def __init__(self, window: Any, toolbar: QToolBar) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        menu = window.menu("View").addMenu("Layout")
        for name, spec in LAYOUTS.items():
            act = QAction(layout_icon(spec), spec.title, window)
            act.setObjectName(f"layout_{name}")
            act.setCheckable(True)
            act.setShortcut(QKeySequence(SHORTCUTS[name]))
            act.setToolTip(f"Layout {spec.title} ({SHORTCUTS[name]})")
            act.setActionGroup(group)
            act.triggered.connect(lambda _c=False, n=name: self.set_layout(n))
            window.addAction(act)
            menu.addAction(act)
            toolbar.addAction(act)
            self.actions[name] = act
            window.actions_by_name[f"layout_{name}"] = act
        self.session.events.layout_changed.connect(self._on_layout_changed)
        window.grid.sig_series_dropped.connect(self.open_dropped_series)
        window.browser.itemDoubleClicked.connect(self._on_double_click)
        saved = layout_spec(window.settings.value(KEY_LAYOUT, "1x1", str))
        self.set_layout("1x1" if saved.mpr else saved.name, remember=False)   # MPR needs a volume first
        self.actions[self.session.layout].setChecked(True)

    def set_layout(self, name: str, remember: bool = True) -> LayoutSpec:
        """Show layout `name` (viewer.state.layout.LAYOUTS) and remember it."""
        act = self.actions.get(name)
        if act is not None and not act.isEnabled():
            self.window.show_message(act.statusTip() or f"Layout {name} is not available", 8000)
            self.actions[self.session.layout].setChecked(True)
            return layout_spec(self.session.layout)
        spec = self.session.set_layout(name)
        if not spec.mpr:
            self.window.session.show_series(self._browser_series())
        if remember:
            self.window.settings.set_value(KEY_LAYOUT, spec.name)
        return spec

    def _browser_series(self) -> list[Any]:
        b = self.window.browser
        return [s for s in (b.series(uid) for uid in b.series_uids()) if s is not None]

    def _on_layout_changed(self, spec: LayoutSpec) -> None:
        act = self.actions.get(spec.name)
        if act is not None and not act.isChecked():
            act.setChecked(True)

    def open_dropped_series(self, viewport: Any, uid: str) -> None:
        """A series dragged from the browser onto `viewport`: shown there, which becomes active."""
        series = self.window.browser.series(uid)
        if series is None:
            return
        self.window.grid.activate(viewport)
        viewport.viewport_state.set_series(series)

    def _on_double_click(self, item: Any) -> None:
        from medviewer.viewer.ui.browser import UID_ROLE

        series = self.window.browser.series(item.data(UID_ROLE))
        if series is not None:
            self.window.state.set_series(series)
