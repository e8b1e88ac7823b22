"""Measurement and annotation tools in the window (over the Qt-free viewer.measure core).

    controller   ToolsController: tool actions from the registry, undo / redo, key images,
                 DICOM SR / KOS saving and restoring, CSV export
    layer        AnnotationLayer: per canvas, draws annotations, routes gestures to tools
    painter      QtShapePainter: the core's Painter protocol on a QPainter
"""

from medviewer.viewer.ui.tools.controller import TOOL_MODULES, ToolsController

__all__ = ["TOOL_MODULES", "ToolsController"]
