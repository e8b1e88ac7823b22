"""The annotation layer of one canvas: draws the annotations of the image on screen and
turns mouse gestures into tool input, selection, moves and edits.

Everything happens in image coordinates (viewer.measure.geometry: pixel (i, j) covers
[i, i+1) x [j, j+1)), so annotations stay on their anatomy under zoom and pan and
belong to their slice (SOP Instance UID and frame).  With a tool selected, a press on
the image feeds the tool (viewer.measure.tools protocol: press / move / release);
a press on an annotation's handle edits that point and on its outline (or inside an
ROI) moves it -- also without a tool.  Escape cancels what is half drawn, then the
selection.  The layer never changes the annotations itself: it asks the controller
(viewer.ui.tools.controller), which measures and stores them undoably.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import Qt

from medviewer.viewer.io import tags
from medviewer.viewer.measure.tools import TOOLS, hit_test, label_text, paint_shape
from medviewer.viewer.ui.tools.painter import DRAWING, INK, SELECTED, QtShapePainter

HIT_PX = 6.0


@dataclass(frozen=True)
class ImageContext:
    """Which image of which study a canvas shows (what an annotation refers to)."""

    study_uid: str
    sop_instance_uid: str
    frame: int | None
    sop_class_uid: str
    series_uid: str
    dicom: bool            # False: a plain image (PNG...), not saved in a DICOM report


def image_context(canvas: Any) -> ImageContext | None:
    """The context of the image on `canvas` (None while nothing or another slice is shown)."""
    ref, series = canvas.ref, canvas.state.series
    if ref is None or series is None or canvas.stored is None or ref != canvas.state.ref():
        return None
    entries = series.headers.entries() if hasattr(series.headers, "entries") else {}
    header = entries.get(ref.path)
    sop = tags.ascii_text(header, "SOPInstanceUID") if header is not None else ""
    sop_class = tags.ascii_text(header, "SOPClassUID") if header is not None else ""
    study = canvas.state.study_uid_of(series) or "no-study"
    if not sop:
        return ImageContext(study, f"file:{ref.path}#{ref.frame}", ref.frame, "", str(series.series_uid), False)
    return ImageContext(study, sop, ref.frame, sop_class, str(series.series_uid), True)


class AnnotationLayer:
    """A canvas layer (ImageCanvas.add_layer) for the measurement tools."""

    def __init__(self, canvas: Any, controller: Any) -> None:
        self.canvas = canvas
        self.ctl = controller
        self.tool: Any = None              # the tool instance being used on this canvas
        self.tool_name: str | None = None
        self.edit: dict[str, Any] | None = None
        self._ctx: ImageContext | None = None
        self.label_rects: list = []        # where the last paint put the labels (screen)

    # -- painting ------------------------------------------------------------------------
    def paint(self, p: Any, geo: Any, canvas: Any) -> None:
        ctx = image_context(canvas)
        if ctx is None:
            return
        session = self.ctl.session
        selected = session.selected
        labels: list = []
        self.label_rects = labels
        for ann in session.on_image(ctx.study_uid, ctx.sop_instance_uid, ctx.frame):
            shape, numbers = ann.shape, ann.numbers
            if self.edit is not None and self.edit["uid"] == ann.uid:
                shape, numbers = self.edit["shape"], self.edit["numbers"]
            is_sel = selected == (ctx.study_uid, ann.uid)
            painter = QtShapePainter(p, geo, SELECTED if is_sel else INK, labels=labels)
            paint_shape(shape, painter, "" if hasattr(shape, "text") else label_text(shape, numbers),
                        handles=is_sel)
        tool = self.current_tool()
        if tool is not None:
            tool.paint(QtShapePainter(p, geo, DRAWING, labels=labels))

    def current_tool(self) -> Any:
        """The tool instance for the selected tool (made on first use, kept while selected)."""
        name = self.ctl.session.tool
        if name != self.tool_name:
            if self.tool is not None:
                self.tool.cancel()
            self.tool = TOOLS[name]() if name in TOOLS else None
            self.tool_name = name
        return self.tool

    # -- gestures ------------------------------------------------------------------------
    def _point(self, event: Any, geo: Any) -> tuple[float, float]:
        pos = event.position()
        return geo.screen_to_image(pos.x(), pos.y())

    def hit(self, ctx: ImageContext, pt: tuple[float, float], geo: Any,
            drawing: bool = False) -> tuple[Any, int] | None:
        """(annotation, control point index or -1 for the body) under `pt`; the selected
        annotation first, then the most recent.  `drawing` (a tool is selected): only
        handles, and the selected annotation's outline, are taken -- a press inside an
        ROI or on another annotation draws (an ROI in an ROI, an arrow onto one)."""
        tol = HIT_PX / max(1e-6, min(geo.scales()))
        anns = self.ctl.session.on_image(ctx.study_uid, ctx.sop_instance_uid, ctx.frame)
        sel = self.ctl.session.selected
        anns.sort(key=lambda a: sel == (ctx.study_uid, a.uid))
        for ann in reversed(anns):
            index = hit_test(ann.shape, pt, tol)
            if index is None:
                continue
            if drawing and index < 0 and not (sel == (ctx.study_uid, ann.uid)
                                               and ann.shape.distance_to(pt) <= tol):
                continue
            return ann, index
        return None

    def press(self, event: Any, geo: Any) -> bool:
        if event.button() != Qt.MouseButton.LeftButton:
            return False
        ctx = image_context(self.canvas)
        if ctx is None:
            return False
        pt = self._point(event, geo)
        tool = self.current_tool()
        if tool is not None and tool.in_progress():          # the next click of an angle...
            tool.press(pt)
            self._ctx = ctx
            return True
        found = self.hit(ctx, pt, geo, drawing=tool is not None)
        session = self.ctl.session
        if found is not None:
            ann, index = found
            session.select(ctx.study_uid, ann.uid)
            self.edit = {"uid": ann.uid, "ann": ann, "index": index, "start": pt, "shape": ann.shape,
                         "numbers": ann.numbers, "ctx": ctx}
            return True
        session.select(None, None)
        if tool is None:
            return False                                      # pan, as without tools
        tool.press(pt)
        self._ctx = ctx
        return True

    def move(self, event: Any, geo: Any) -> None:
        pt = self._point(event, geo)
        e = self.edit
        if e is not None:
            shape = e["ann"].shape
            if e["index"] >= 0:
                shape = shape.with_point(e["index"], pt)
            else:
                shape = shape.moved(pt[0] - e["start"][0], pt[1] - e["start"][1])
            e["shape"], e["numbers"] = shape, self.ctl.measure(self.canvas, shape)
        elif self.tool is not None:
            self.tool.move(pt)

    def release(self, event: Any, geo: Any) -> None:
        pt = self._point(event, geo)
        e, self.edit = self.edit, None
        if e is not None:
            if e["shape"] != e["ann"].shape:
                self.ctl.edit(self.canvas, e["ctx"], e["ann"], e["shape"])
            return
        if self.tool is not None and self._ctx is not None:
            shape = self.tool.release(pt)
            if shape is not None:
                self.ctl.add(self.canvas, self._ctx, shape)

    def hover(self, event: Any, geo: Any) -> None:
        tool = self.current_tool()
        if tool is not None and tool.in_progress():
            tool.move(self._point(event, geo))
        ctx = image_context(self.canvas)
        over = ctx is not None and self.hit(ctx, self._point(event, geo), geo, tool is not None) is not None
        if over:
            self.canvas.setCursor(Qt.CursorShape.SizeAllCursor)
        elif tool is not None:
            self.canvas.setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.canvas.unsetCursor()

    def double_click(self, event: Any, geo: Any) -> bool:
        """A quick second click of a multi-click tool, or editing an arrow's text."""
        ctx = image_context(self.canvas)
        if ctx is None:
            return False
        pt = self._point(event, geo)
        tool = self.current_tool()
        if tool is not None and tool.in_progress():
            tool.press(pt)
            shape = tool.release(pt)
            if shape is not None and self._ctx is not None:
                self.ctl.add(self.canvas, self._ctx, shape)
            return True
        found = self.hit(ctx, pt, geo)
        if found is not None and hasattr(found[0].shape, "text"):
            self.ctl.edit_text(ctx, found[0])
            return True
        return tool is not None        # drawing: a double click is not "fit"

    def key(self, event: Any) -> bool:
        """Escape: drop what is half drawn, else the selection."""
        if event.key() != Qt.Key.Key_Escape:
            return False
        if self.tool is not None and self.tool.in_progress():
            self.tool.cancel()
            self.canvas.update()
            return True
        if self.ctl.session.selected is not None:
            self.ctl.session.select(None, None)
            return True
        return False
