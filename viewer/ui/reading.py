"""The reading workstation's features, installed with the main window.

    layouts   1x1 / 1x2 / 2x1 / 2x2 / MPR 1x3, drag and drop of series (viewer.ui.layouts)
    sync      scroll / window-level / zoom-pan links between viewports (viewer.ui.sync)
    mpr       axial / coronal / sagittal reformats with a linked crosshair, oblique
              planes and thick slabs (viewer.ui.mpr)
    priors    a prior study beside the current one, the compare layout (viewer.ui.prior)
    tools     measurement and annotation tools, undo / redo, DICOM SR / KOS / CSV
              (viewer.ui.tools)

They share the "Reading" toolbar and the badges drawn at the top of each viewport
(viewer.ui.badges).  Each part talks to the window only through its public
attributes (session, grid, state, settings, menu(), show_message()).
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QToolBar

from medviewer.viewer.ui.badges import BadgeLayer, Badges

log = logging.getLogger("medviewer.ui")


class Reading(QObject):
    """Holds the reading features of `window` (window.reading)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        from medviewer.viewer.ui.layouts import LayoutController
        from medviewer.viewer.ui.mpr import MprController
        from medviewer.viewer.ui.prior import PriorController
        from medviewer.viewer.ui.sync import SyncController
        from medviewer.viewer.ui.tools import ToolsController

        self.window = window
        self.toolbar = QToolBar("Reading toolbar", window)
        self.toolbar.setObjectName("reading_toolbar")
        window.addToolBar(self.toolbar)
        self.badges = Badges()
        self._badge_layer = BadgeLayer(self.badges)
        for vp in window.grid.viewports:
            vp.canvas.add_layer(self._badge_layer)
        window.grid.sig_viewport_added.connect(lambda vp: vp.canvas.add_layer(self._badge_layer))
        self.layouts = LayoutController(window, self.toolbar)
        self.sync = SyncController(window, self.toolbar, self.badges)
        self.mpr = MprController(window, self.toolbar)
        self.priors = PriorController(window, self.toolbar, self.badges)
        tools_bar = QToolBar("Measurement tools", window)
        tools_bar.setObjectName("tools_toolbar")
        window.addToolBarBreak()
        window.addToolBar(tools_bar)
        self.tools = ToolsController(window, tools_bar, self.badges)

    def shutdown(self) -> None:
        for part in (self.tools, self.mpr, self.priors):
            try:
                part.shutdown()
            except Exception:
                log.exception("shutting down %s", type(part).__name__)


def install(window: Any) -> Reading:
    return Reading(window)
