"""The MPR layout: axial, coronal and sagittal reformats with a linked crosshair.

    controller   MprController: volume check / build on workers, slab controls, the page
    view         MprView: one plane, its crosshair lines, rotation handles and slab worker
"""

from medviewer.viewer.ui.mpr.controller import MprController

__all__ = ["MprController"]
