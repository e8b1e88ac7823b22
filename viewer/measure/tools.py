"""The tool protocol the viewer's canvas plugs measurement tools into (Qt-free).

A tool turns pointer events, already mapped to image coordinates (see
viewer.measure.geometry: pixel (i, j) covers [i, i+1) x [j, j+1)), into a shape:

    tool = TOOLS["ellipse"]()          # a new tool instance per drawing session
    tool.press(p); tool.move(p); ...   # the canvas forwards mouse events
    shape = tool.release(p)            # a finished Shape, or None (keep drawing / nothing)
    tool.paint(painter)                # the shape being drawn, through a Painter
    tool.in_progress()                 # True while a shape is half drawn (more clicks due)

The canvas implements `Painter` with QPainter (image -> screen transform applied
by the painter), and keeps the annotations of each image in an `AnnotationStore`
(add / replace / remove, undo / redo: Ctrl+Z), drawing each with `paint_shape`.
Selecting, moving and editing use `hit_test` and `Shape.with_point` / `moved`.
A new tool is one new class registered with `register_tool`; nothing else in the
canvas, window or actions changes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from medviewer.viewer.measure.geometry import (Angle, Arrow, CobbAngle, Distance, Ellipse, Freehand,
                                               Point, PointProbe, Rectangle, Shape)

__all__ = ["Annotation", "AnnotationStore", "Painter", "TOOLS", "Tool", "hit_test", "label_text",
           "paint_shape", "register_tool"]


class Painter(Protocol):
    """What a tool needs to draw; coordinates are image coordinates."""

    def polyline(self, points: Sequence[Point], closed: bool = False) -> None: ...
    def ellipse(self, left: float, top: float, right: float, bottom: float) -> None: ...
    def handle(self, p: Point) -> None: ...           # a draggable control point
    def text(self, anchor: Point, text: str) -> None: ...
    def arrow(self, tail: Point, tip: Point) -> None: ...


class Tool(Protocol):
    name: str            # the key of TOOLS, e.g. "ellipse"
    title: str           # menu / tooltip text
    shortcut: str        # suggested key

    def press(self, p: Point) -> None: ...
    def move(self, p: Point) -> None: ...
    def release(self, p: Point) -> Shape | None: ...
    def paint(self, painter: Painter) -> None: ...
    def cancel(self) -> None: ...
    def in_progress(self) -> bool: ...   # a shape is half drawn


TOOLS: dict[str, Callable[[], Tool]] = {}


def register_tool(cls):
    """Class decorator: make a tool available by its `name`."""
    TOOLS[cls.name] = cls
    return cls


class _DragTool:
    """Press at one point, drag, release at the other: two-point shapes."""

    name = ""
    title = ""
    shortcut = ""
    min_drag = 0.5     # pixels: a click without a drag draws nothing

    def __init__(self) -> None:
        self._start: Point | None = None
        self._end: Point | None = None

    def make(self, a: Point, b: Point) -> Shape:
        raise NotImplementedError

    def press(self, p: Point) -> None:
        self._start = self._end = p

    def move(self, p: Point) -> None:
        if self._start is not None:
            self._end = p

    def release(self, p: Point) -> Shape | None:
        if self._start is None:
            return None
        a, self._start, self._end = self._start, None, None
        if math.hypot(p[0] - a[0], p[1] - a[1]) < self.min_drag:
            return None
        return self.make(a, p)

    def current(self) -> Shape | None:
        if self._start is None or self._end is None:
            return None
        return self.make(self._start, self._end)

    def in_progress(self) -> bool:
        return self._start is not None

    def paint(self, painter: Painter) -> None:
        shape = self.current()
        if shape is not None:
            paint_shape(shape, painter)

    def cancel(self) -> None:
        self._start = self._end = None


@register_tool
class DistanceTool(_DragTool):
    name, title, shortcut = "distance", "Distance", "D"

    def make(self, a, b):
        return Distance(a, b)


@register_tool
class EllipseTool(_DragTool):
    name, title, shortcut = "ellipse", "Ellipse ROI", "E"

    def make(self, a, b):
        return Ellipse(a[0], a[1], b[0], b[1])


@register_tool
class RectangleTool(_DragTool):
    name, title, shortcut = "rectangle", "Rectangle ROI", "Shift+R"

    def make(self, a, b):
        return Rectangle(a[0], a[1], b[0], b[1])


@register_tool
class ArrowTool(_DragTool):
    """Drag from the tip to where the text goes; the UI asks for the text and calls
    `Arrow` with it (`dataclasses.replace(shape, text=...)`)."""

    name, title, shortcut = "arrow", "Arrow with text", "A"

    def make(self, a, b):
        return Arrow(a, b, "")


@register_tool
class PointTool:
    """One click: the value of the pixel under it."""

    name, title, shortcut = "point", "Point probe", "P"

    def press(self, p: Point) -> None:
        pass

    def move(self, p: Point) -> None:
        pass

    def release(self, p: Point) -> Shape | None:
        return PointProbe(p)

    def paint(self, painter: Painter) -> None:
        pass

    def cancel(self) -> None:
        pass

    def in_progress(self) -> bool:
        return False


class _ClickTool:
    """Click the control points one after the other (angle: 3, Cobb angle: 4)."""

    name = ""
    title = ""
    shortcut = ""
    count = 0

    def __init__(self) -> None:
        self._points: list[Point] = []
        self._hover: Point | None = None

    def make(self, points: Sequence[Point]) -> Shape:
        raise NotImplementedError

    def press(self, p: Point) -> None:
        pass

    def move(self, p: Point) -> None:
        self._hover = p

    def release(self, p: Point) -> Shape | None:
        self._points.append(p)
        if len(self._points) < self.count:
            return None
        pts, self._points = self._points, []
        return self.make(pts)

    def paint(self, painter: Painter) -> None:
        pts = self._points + ([self._hover] if self._hover is not None else [])
        for p in self._points:
            painter.handle(p)
        if self.count == 4:   # two separate lines
            for i in range(0, len(pts) - 1, 2):
                painter.polyline(pts[i:i + 2])
        elif len(pts) > 1:
            painter.polyline(pts)

    def cancel(self) -> None:
        self._points, self._hover = [], None

    def in_progress(self) -> bool:
        return bool(self._points)


@register_tool
class AngleTool(_ClickTool):
    name, title, shortcut, count = "angle", "Angle", "G", 3

    def make(self, points):
        return Angle(*points)


@register_tool
class CobbAngleTool(_ClickTool):
    name, title, shortcut, count = "cobb", "Cobb angle", "C", 4

    def make(self, points):
        return CobbAngle(*points)


@register_tool
class FreehandTool:
    """Press, draw the outline, release: a closed polygon (points closer than
    `min_step` pixels are dropped)."""

    name, title, shortcut = "freehand", "Freehand ROI", "H"
    min_step = 0.75

    def __init__(self) -> None:
        self._points: list[Point] = []

    def press(self, p: Point) -> None:
        self._points = [p]

    def move(self, p: Point) -> None:
        if self._points and math.hypot(p[0] - self._points[-1][0], p[1] - self._points[-1][1]) >= self.min_step:
            self._points.append(p)

    def release(self, p: Point) -> Shape | None:
        self.move(p)
        pts, self._points = self._points, []
        if len(pts) < 3 or Freehand(tuple(pts)).area(None) < 0.5:
            return None
        return Freehand(tuple(pts))

    def paint(self, painter: Painter) -> None:
        if len(self._points) > 1:
            painter.polyline(self._points)

    def cancel(self) -> None:
        self._points = []

    def in_progress(self) -> bool:
        return bool(self._points)


def label_text(shape: Shape, numbers: dict) -> str:
    """The text shown next to a shape, from `viewer.measure.stats.measure`."""
    if "length" in numbers:
        return f"{numbers['length']:.1f} {numbers['unit']}"
    if "angle" in numbers:
        return f"{numbers['angle']:.1f}\N{DEGREE SIGN}"
    if "n_pixels" in numbers:
        area = numbers.get("area_mm2")
        lines = [f"Area {area:.1f} mm\N{SUPERSCRIPT TWO}" if area is not None else "Area -"]
        if numbers.get("mean") is not None:
            u = numbers["units"]
            lines.append(f"Mean {numbers['mean']:.1f} SD {numbers['std']:.1f} {u}")
            lines.append(f"Min {numbers['min']:.0f} Max {numbers['max']:.0f} {u}")
        return "\n".join(lines)
    if "value" in numbers:
        v = numbers["value"]
        return "-" if v is None else (f"{v:.1f} {numbers['units']}" if isinstance(v, float) else str(v))
    return str(numbers.get("text", ""))


def paint_shape(shape: Shape, painter: Painter, text: str = "", handles: bool = False) -> None:
    """Draw a finished shape (and its label / handles) through a Painter."""
    if isinstance(shape, (Ellipse,)):
        painter.ellipse(*shape.box)
    elif isinstance(shape, Arrow):
        painter.arrow(shape.tail, shape.tip)
    elif isinstance(shape, CobbAngle):
        painter.polyline([shape.p0, shape.p1])
        painter.polyline([shape.p2, shape.p3])
    elif isinstance(shape, (Rectangle, Freehand)):
        painter.polyline(shape.outline()[:-1], closed=True)
    elif isinstance(shape, PointProbe):
        painter.handle(shape.p)
    else:
        painter.polyline(list(shape.points()))
    if handles:
        for p in shape.points():
            painter.handle(p)
    if text or isinstance(shape, Arrow):
        anchor = shape.tail if isinstance(shape, Arrow) else max(shape.points(), key=lambda q: q[0])
        painter.text(anchor, text or getattr(shape, "text", ""))


def hit_test(shape: Shape, p: Point, tolerance: float) -> int | None:
    """-1 when `p` is on the shape's outline (move it), the index of a control point
    within `tolerance` pixels (edit it), else None."""
    for i, q in enumerate(shape.points()):
        if math.hypot(p[0] - q[0], p[1] - q[1]) <= tolerance:
            return i
    if shape.distance_to(p) <= tolerance:
        return -1
    if shape.is_roi and bool(shape.contains(p[0], p[1])):  # type: ignore[attr-defined]
        return -1
    return None


@dataclass(frozen=True)
class Annotation:
    """A shape on one image (frame) of a study, with its identity for SR round trips."""

    shape: Shape
    sop_instance_uid: str
    frame: int | None = None            # 0-based frame of a multi-frame image
    sop_class_uid: str = ""
    series_uid: str = ""
    uid: str = ""                       # Tracking Unique Identifier (kept across saves)
    label: str = ""                     # Tracking Identifier text / finding
    numbers: dict = field(default_factory=dict, compare=False)  # last measured values


class AnnotationStore:
    """The annotations of a study, with undo / redo of every change."""

    def __init__(self, annotations: Iterable[Annotation] = ()) -> None:
        self._items: list[Annotation] = list(annotations)
        self._undo: list[list[Annotation]] = []
        self._redo: list[list[Annotation]] = []

    def __iter__(self):
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def on_image(self, sop_instance_uid: str, frame: int | None = None) -> list[Annotation]:
        return [a for a in self._items if a.sop_instance_uid == sop_instance_uid and a.frame == frame]

    def _change(self, items: list[Annotation]) -> None:
        self._undo.append(self._items)
        self._redo.clear()
        self._items = items

    def add(self, annotation: Annotation) -> None:
        if not annotation.uid:
            from pydicom.uid import generate_uid

            annotation = replace(annotation, uid=str(generate_uid()))
        self._change(self._items + [annotation])

    def replace(self, old: Annotation, new: Annotation) -> None:
        """Edit (move, drag a handle, relabel): keeps the tracking UID."""
        new = replace(new, uid=old.uid or new.uid)
        self._change([new if a is old else a for a in self._items])

    def remove(self, annotation: Annotation) -> None:
        self._change([a for a in self._items if a is not annotation])

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self._items)
        self._items = self._undo.pop()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self._items)
        self._items = self._redo.pop()
        return True
