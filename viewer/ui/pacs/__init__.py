"""The viewer's PACS features (Qt adapter over the Qt-free `medviewer.viewer.pacs`).

`install(window)` (called by viewer.ui.app at start-up) adds the PACS menu:
Query/Retrieve..., Send current series..., Send AI results..., Receive
(Storage SCP, off by default) with its "Received" dock, PACS settings...
"""

from __future__ import annotations

from typing import Any


def install(window: Any) -> Any:
    """Attach the PACS controller to `window` (stored as `window.pacs`) and return it."""
    from medviewer.viewer.ui.pacs.controller import PacsController

    controller = PacsController(window)
    window.pacs = controller
    return controller


__all__ = ["install"]
