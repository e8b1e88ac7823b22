"""Qt-free state the viewer renders (STYLE.md pattern 3).

`view`: one `ViewportState` per viewport (series, slice, window, zoom/pan, overlay
flags), the `ViewSession` holding them, `ViewGeometry` (image <-> screen).
`ai`: the AI panels' results per series, the class the strip shows, the CAM cache.
`events`: the Qt-free `Event` every state change is announced by.
"""

from medviewer.viewer.state.ai import AIResults, CamCache, SeriesResults, StripView
from medviewer.viewer.state.events import Event
from medviewer.viewer.state.view import (
    MAX_ZOOM,
    MIN_ZOOM,
    OverlayFlags,
    ViewGeometry,
    ViewportState,
    ViewSession,
    pixel_aspect,
)

__all__ = [
    "AIResults", "CamCache", "Event", "MAX_ZOOM", "MIN_ZOOM", "OverlayFlags", "SeriesResults",
    "StripView", "ViewGeometry", "ViewSession", "ViewportState", "pixel_aspect",
]
