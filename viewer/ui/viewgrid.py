"""The viewports of the layout: a grid of stack viewports, or the MPR views.

`ViewportGrid` owns one `Viewport` per `ViewportState` of the session (created when a
layout first needs it) and shows the session's layout (viewer.state.layout): the
first rows x columns viewports in a grid, or the MPR page (set by the MPR views,
`set_mpr_page`).  It makes a viewport active when it is pressed, scrolled or focused
and highlights the active one's border; a series or files dropped on a viewport are
passed on by signal.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QStackedWidget, QVBoxLayout, QWidget

from medviewer.viewer.state.layout import LayoutSpec, layout_spec
from medviewer.viewer.ui.state import ViewState
from medviewer.viewer.ui.viewport import Viewport


class ViewportGrid(QWidget):
    """Signals: sig_viewport_added(Viewport), sig_series_dropped(Viewport, uid),
    sig_paths_dropped(Viewport, [Path])."""

    sig_viewport_added = Signal(object)
    sig_series_dropped = Signal(object, str)
    sig_paths_dropped = Signal(object, list)

    def __init__(self, session: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("viewport_grid")
        self.session = session
        self.viewports: list[Viewport] = []
        self._pages = QStackedWidget(self)
        self._cells = QWidget()
        self._grid = QGridLayout(self._cells)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSpacing(2)
        self._mpr_page: QWidget = QLabel("MPR")
        self._strip: QWidget | None = None
        self._pages.addWidget(self._cells)
        self._pages.addWidget(self._mpr_page)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self._pages)
        self.ensure(len(session.viewports))
        session.events.layout_changed.connect(self.apply_layout)
        session.events.active_changed.connect(lambda _vp: self._on_active_changed())
        self.apply_layout(layout_spec(session.layout))

    # -- viewports ---------------------------------------------------------------------
    def ensure(self, count: int) -> None:
        """Create the Viewport widgets of the first `count` viewport states."""
        while len(self.viewports) < min(count, len(self.session.viewports)):
            vstate = self.session.viewports[len(self.viewports)]
            vp = Viewport(ViewState(parent=self, session=self.session, viewport=vstate))
            vp.setObjectName(f"viewport_{len(self.viewports)}")
            # equal cells whatever each shows (an empty viewport is as large as the others)
            vp.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
            vp.sig_activated.connect(self.activate)
            vp.sig_series_dropped.connect(self.sig_series_dropped.emit)
            vp.sig_paths_dropped.connect(self.sig_paths_dropped.emit)
            self.viewports.append(vp)
            self.sig_viewport_added.emit(vp)

    def viewport_of(self, vstate: Any) -> Viewport | None:
        return next((v for v in self.viewports if v.viewport_state is vstate), None)

    def active_viewport(self) -> Viewport:
        self.ensure(self.session.active_index + 1)
        return self.viewports[self.session.active_index]

    def visible_viewports(self) -> list[Viewport]:
        return [v for v in (self.viewport_of(s) for s in self.session.visible_viewports()) if v is not None]

    def activate(self, viewport: Viewport) -> None:
        if viewport in self.viewports:
            self.session.set_active(self.viewports.index(viewport))

    # -- layout --------------------------------------------------------------------------
    def set_mpr_page(self, widget: QWidget) -> None:
        """The widget the MPR layout shows (the three reformat views)."""
        self._pages.removeWidget(self._mpr_page)
        self._mpr_page = widget
        self._pages.addWidget(widget)
        self.apply_layout(layout_spec(self.session.layout))

    def mpr_shown(self) -> bool:
        return self._pages.currentWidget() is self._mpr_page

    def apply_layout(self, spec: LayoutSpec) -> None:
        if spec.mpr:
            self._pages.setCurrentWidget(self._mpr_page)
            self._highlight()
            self.place_strip()
            return
        self.ensure(spec.cells)
        for vp in self.viewports:
            self._grid.removeWidget(vp)
            vp.hide()
        for i in range(spec.cells):
            vp = self.viewports[i]
            self._grid.addWidget(vp, i // spec.columns, i % spec.columns)
            vp.show()
        for r in range(2):
            self._grid.setRowStretch(r, 1 if r < spec.rows else 0)
        for c in range(2):
            self._grid.setColumnStretch(c, 1 if c < spec.columns else 0)
        self._pages.setCurrentWidget(self._cells)
        self._highlight()
        self.place_strip()

    def _on_active_changed(self) -> None:
        self._highlight()
        self.place_strip()

    # -- the per-slice strip -------------------------------------------------------------
    def set_slice_strip(self, widget: QWidget | None) -> None:
        """The per-slice strip (AI) follows the active stack: under the active viewport,
        or under the MPR view of the acquisition plane (the MPR page's own holder)."""
        if self._strip is not None and widget is not self._strip:
            for host in self._strip_hosts():
                if host.slice_strip() is self._strip:
                    host.set_slice_strip(None)
        self._strip = widget
        self.place_strip()

    def mpr_page(self) -> QWidget:
        return self._mpr_page

    def _strip_hosts(self) -> list[Any]:
        mpr = [self._mpr_page] if hasattr(self._mpr_page, "set_slice_strip") else []
        return [*self.viewports, *mpr]

    def strip_host(self) -> Any:
        if self.mpr_shown() and hasattr(self._mpr_page, "set_slice_strip"):
            return self._mpr_page
        return self.active_viewport()

    def place_strip(self) -> None:
        widget = self._strip
        if widget is None:
            return
        host = self.strip_host()
        if host.slice_strip() is widget:
            return
        hidden = widget.isHidden() if widget.parentWidget() is not None else False
        for other in self._strip_hosts():
            if other is not host and other.slice_strip() is widget:
                other.set_slice_strip(None)
        host.set_slice_strip(widget)
        widget.setHidden(hidden)

    def _highlight(self) -> None:
        spec = layout_spec(self.session.layout)
        several = spec.cells > 1
        for i, vp in enumerate(self.viewports):
            vp.set_highlight(several and i == self.session.active_index, framed=several)
