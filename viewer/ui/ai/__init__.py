"""The viewer's AI panels (Qt adapter over the Qt-free `engine`).

`install(window)` is called by viewer.ui.app at start-up: it adds an "AI models"
dock (bundled `resources/models/` and the user models folder), an "AI results"
dock (probabilities, series result, Grad-CAM controls and colour bar), the
per-slice strip under the slice scroller and the AI menu actions.
"""

from __future__ import annotations

from typing import Any


def install(window: Any) -> Any:
    """Attach the AI controller to `window` (stored as `window.ai`) and return it."""
    from medviewer.viewer.ui.ai.controller import AIController

    controller = AIController(window)
    window.ai = controller
    from medviewer.viewer.ui.ai.dicomsave import install as install_dicom_save

    install_dicom_save(controller)  # AI > Save AI results as DICOM...
    return controller


__all__ = ["install"]
