"""Synchronisation of the viewports: toggles, "link at current slices" and their badges.

The linking itself is Qt-free (viewer.state.sync.ViewportSync): scroll by patient
position for series of one Frame of Reference, else by the offset set with
"Link at current slices"; window/level; zoom/pan.  Here are its actions (View >
Synchronize and the reading toolbar, each a toggle that shows its state) and the
badge each linked viewport carries ("Linked: scroll, W/L").
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QColor, QKeySequence
from PySide6.QtWidgets import QToolBar

from medviewer.viewer.state.sync import LINKS, ViewportSync

LINK_COLOUR = QColor(120, 220, 255)
TITLES = {"scroll": ("Sync scroll", "Scroll the viewports together (same place in the patient)", "Ctrl+Alt+S"),
          "window": ("Sync W/L", "Window / level changes apply to every viewport of the modality", "Ctrl+Alt+W"),
          "zoom": ("Sync zoom", "Zoom and pan apply to every viewport", "Ctrl+Alt+Z")}


class SyncController(QObject):
    """Links the visible viewports of `window`; `sync` is the Qt-free linker."""

    def __init__(self, window: Any, toolbar: QToolBar, badges: Any) -> None:
        super().__init__(window)
        self.window = window
        session = window.session
        self.sync = ViewportSync(session.visible_viewports, self._fit_scale)
        for vstate in session.viewports:
            self.sync.attach(vstate)
        window.grid.sig_viewport_added.connect(lambda vp: self.sync.attach(vp.viewport_state))
        session.events.scan_updated.connect(lambda _r: self.sync.forget_series())
        menu = window.menu("View").addMenu("Synchronize")
        toolbar.addSeparator()
        self.actions: dict[str, QAction] = {}
        for name in LINKS:
            title, tip, key = TITLES[name]
            act = QAction(title, window)
            act.setObjectName(f"sync_{name}")
            act.setCheckable(True)
            act.setShortcut(QKeySequence(key))
            act.setToolTip(f"{tip} ({key})")
            act.toggled.connect(lambda on, n=name: self.sync.set_link(n, on))
            window.addAction(act)
            menu.addAction(act)
            toolbar.addAction(act)
            self.actions[name] = act
            window.actions_by_name[f"sync_{name}"] = act
        link = QAction("Link at current slices", window)
        link.setObjectName("sync_link_here")
        link.setShortcut(QKeySequence("Ctrl+L"))
        link.setToolTip("The slices shown now correspond: scroll together from here on, by the "
                        "same distance in mm (series of different frames of reference, e.g. a prior) (Ctrl+L)")
        link.triggered.connect(lambda _c=False: self.link_at_current())
        window.addAction(link)
        menu.addSeparator()
        menu.addAction(link)
        toolbar.addAction(link)
        self.actions["link_here"] = link
        window.actions_by_name["sync_link_here"] = link
        self.sync.changed.connect(self._on_changed)
        badges.add(self.badges)

    def _fit_scale(self, vstate: Any) -> float | None:
        vp = self.window.grid.viewport_of(vstate)
        if vp is None or vp.canvas.rendered is None:
            return None
        return vp.canvas.fit_scale()

    def set_link(self, name: str, on: bool) -> None:
        self.actions[name].setChecked(on)

    def link_at_current(self) -> None:
        self.sync.link_at_current()
        self.window.show_message("Viewports linked at the slices shown: they scroll together from here")

    def _on_changed(self) -> None:
        for name in LINKS:
            act = self.actions[name]
            if act.isChecked() != self.sync.links[name]:
                act.blockSignals(True)
                act.setChecked(self.sync.links[name])
                act.blockSignals(False)
        for canvas in self.window.canvases():
            canvas.update()

    def badges(self, vstate: Any) -> list[tuple[str, QColor]]:
        """'Linked: scroll, W/L' on each linked viewport when several are shown."""
        visible = self.window.session.visible_viewports()
        if len(visible) < 2 or vstate.series is None or not any(v is vstate for v in visible):
            return []
        others = [v for v in visible if v is not vstate and v.series is not None]
        parts = []
        if self.sync.links["scroll"] and others:
            linked = [o for o in others if self.sync.target_index(vstate, o) is not None]
            if linked:
                manual = not all(self.sync.shared_frame(vstate, o) for o in linked)
                parts.append("scroll (offset)" if manual else "scroll")
        if self.sync.links["window"] and any(o.series.modality == vstate.series.modality for o in others):
            parts.append("W/L")
        if self.sync.links["zoom"] and others:
            parts.append("zoom")
        return [(f"Linked: {', '.join(parts)}", LINK_COLOUR)] if parts else []
