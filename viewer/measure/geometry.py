"""Measurement and annotation shapes in image pixel coordinates (Qt-free).

Coordinates are (x, y) = (column, row) floats in which pixel (column i, row j)
covers [i, i+1) x [j, j+1): its centre is (i + 0.5, j + 0.5) and the image spans
[0, columns] x [0, rows].  This is the convention of DICOM SR SCOORD Graphic Data
(PS3.3 C.18.6.1.2: the top left corner of the image is 0.0\\0.0, the centre of
the top left pixel 0.5\\0.5), so shapes go to and from SR without offsets.

Every shape is a frozen dataclass with `kind`, `points()` (the control points a
tool can drag), `with_point(i, p)`, `moved(dx, dy)` and `to_dict()`;
`shape_from_dict` reads one back.  Lengths and areas take Pixel Spacing
(row spacing, column spacing) in mm (PS3.3 C.7.6.2.1.1 / 10.7.1.3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

Point = tuple[float, float]
Spacing = tuple[float, float] | None   # (between rows, between columns) mm

__all__ = ["Angle", "Arrow", "CobbAngle", "Distance", "Ellipse", "Freehand", "Point", "PointProbe",
           "Rectangle", "SHAPES", "Shape", "Spacing", "shape_from_dict"]


def _pt(p: Sequence[float]) -> Point:
    return (float(p[0]), float(p[1]))


def _mm(d: Point, spacing: Spacing) -> Point:
    """A displacement in pixels as mm (x along rows uses the column spacing)."""
    if spacing is None:
        return d
    return (d[0] * spacing[1], d[1] * spacing[0])


def _angle(u: Point, v: Point) -> float:
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu == 0 or nv == 0:
        return float("nan")
    cos = max(-1.0, min(1.0, (u[0] * v[0] + u[1] * v[1]) / (nu * nv)))
    return math.degrees(math.acos(cos))


class Shape:
    """Base of every shape: control points, edits, serialisation."""

    kind: ClassVar[str] = ""
    is_roi: ClassVar[bool] = False

    def points(self) -> tuple[Point, ...]:
        raise NotImplementedError

    def with_points(self, points: Sequence[Point]) -> Shape:
        raise NotImplementedError

    def with_point(self, index: int, p: Point) -> Shape:
        """The shape with control point `index` dragged to `p` (editing a handle)."""
        pts = list(self.points())
        pts[index] = _pt(p)
        return self.with_points(pts)

    def moved(self, dx: float, dy: float) -> Shape:
        return self.with_points([(x + dx, y + dy) for x, y in self.points()])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "points": [list(p) for p in self.points()]}

    def distance_to(self, p: Point) -> float:
        """Pixels from `p` to the nearest segment of the outline (hit testing)."""
        pts = self.outline()
        if len(pts) == 1:
            return math.hypot(p[0] - pts[0][0], p[1] - pts[0][1])
        best = math.inf
        for a, b in zip(pts, pts[1:]):
            ab = (b[0] - a[0], b[1] - a[1])
            ap = (p[0] - a[0], p[1] - a[1])
            den = ab[0] ** 2 + ab[1] ** 2
            t = 0.0 if den == 0 else max(0.0, min(1.0, (ap[0] * ab[0] + ap[1] * ab[1]) / den))
            best = min(best, math.hypot(ap[0] - t * ab[0], ap[1] - t * ab[1]))
        return best

    def outline(self) -> list[Point]:
        """The drawn path (closed shapes repeat their first point)."""
        return list(self.points())


@dataclass(frozen=True)
class Distance(Shape):
    """A ruler between two points."""

    p0: Point
    p1: Point
    kind: ClassVar[str] = "distance"

    def points(self) -> tuple[Point, ...]:
        return (self.p0, self.p1)

    def with_points(self, points):
        return Distance(_pt(points[0]), _pt(points[1]))

    def length(self, spacing: Spacing) -> float:
        """mm with Pixel Spacing, else pixels."""
        return math.hypot(*_mm((self.p1[0] - self.p0[0], self.p1[1] - self.p0[1]), spacing))


@dataclass(frozen=True)
class Angle(Shape):
    """The angle at `vertex` between the rays to `a` and `b` (0..180 deg)."""

    a: Point
    vertex: Point
    b: Point
    kind: ClassVar[str] = "angle"

    def points(self) -> tuple[Point, ...]:
        return (self.a, self.vertex, self.b)

    def with_points(self, points):
        return Angle(_pt(points[0]), _pt(points[1]), _pt(points[2]))

    def degrees(self, spacing: Spacing) -> float:
        """In the patient (mm), so anisotropic pixels do not skew it."""
        u = _mm((self.a[0] - self.vertex[0], self.a[1] - self.vertex[1]), spacing)
        v = _mm((self.b[0] - self.vertex[0], self.b[1] - self.vertex[1]), spacing)
        return _angle(u, v)


@dataclass(frozen=True)
class CobbAngle(Shape):
    """The angle between two lines (p0-p1 and p2-p3), 0..90 deg as in scoliosis."""

    p0: Point
    p1: Point
    p2: Point
    p3: Point
    kind: ClassVar[str] = "cobb"

    def points(self) -> tuple[Point, ...]:
        return (self.p0, self.p1, self.p2, self.p3)

    def with_points(self, points):
        return CobbAngle(*(_pt(p) for p in points[:4]))

    def outline(self) -> list[Point]:
        return [self.p0, self.p1]

    def distance_to(self, p: Point) -> float:
        first = Distance(self.p0, self.p1).distance_to(p)
        return min(first, Distance(self.p2, self.p3).distance_to(p))

    def degrees(self, spacing: Spacing) -> float:
        u = _mm((self.p1[0] - self.p0[0], self.p1[1] - self.p0[1]), spacing)
        v = _mm((self.p3[0] - self.p2[0], self.p3[1] - self.p2[1]), spacing)
        a = _angle(u, v)
        return 180.0 - a if a > 90.0 else a


@dataclass(frozen=True)
class _Box(Shape):
    """A shape defined by two opposite corners of its bounding box."""

    x0: float
    y0: float
    x1: float
    y1: float

    def points(self) -> tuple[Point, ...]:
        return ((self.x0, self.y0), (self.x1, self.y1))

    def with_points(self, points):
        (x0, y0), (x1, y1) = _pt(points[0]), _pt(points[1])
        return replace(self, x0=x0, y0=y0, x1=x1, y1=y1)

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(left, top, right, bottom)."""
        return (min(self.x0, self.x1), min(self.y0, self.y1), max(self.x0, self.x1),
                max(self.y0, self.y1))


@dataclass(frozen=True)
class Ellipse(_Box):
    """The axis-aligned ellipse inscribed in the box (x0, y0)-(x1, y1)."""

    kind: ClassVar[str] = "ellipse"
    is_roi: ClassVar[bool] = True

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        left, top, right, bottom = self.box
        a, b = (right - left) / 2.0, (bottom - top) / 2.0
        if a <= 0 or b <= 0:
            return np.zeros(np.broadcast(x, y).shape, bool)
        cx, cy = (left + right) / 2.0, (top + bottom) / 2.0
        return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0

    def area(self, spacing: Spacing) -> float:
        left, top, right, bottom = self.box
        sx, sy = (1.0, 1.0) if spacing is None else (spacing[1], spacing[0])
        return math.pi * (right - left) / 2.0 * (bottom - top) / 2.0 * sx * sy

    def axes_points(self) -> list[Point]:
        """SR ELLIPSE Graphic Data: major axis end points, then minor (PS3.3 C.18.6.1.2)."""
        left, top, right, bottom = self.box
        cx, cy = (left + right) / 2.0, (top + bottom) / 2.0
        horizontal = [(left, cy), (right, cy)]
        vertical = [(cx, top), (cx, bottom)]
        return horizontal + vertical if right - left >= bottom - top else vertical + horizontal

    def outline(self) -> list[Point]:
        left, top, right, bottom = self.box
        cx, cy, a, b = (left + right) / 2, (top + bottom) / 2, (right - left) / 2, (bottom - top) / 2
        t = np.linspace(0, 2 * np.pi, 65)
        return [(float(cx + a * math.cos(v)), float(cy + b * math.sin(v))) for v in t]


@dataclass(frozen=True)
class Rectangle(_Box):
    """The box (x0, y0)-(x1, y1)."""

    kind: ClassVar[str] = "rectangle"
    is_roi: ClassVar[bool] = True

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        left, top, right, bottom = self.box
        return (x >= left) & (x <= right) & (y >= top) & (y <= bottom)

    def area(self, spacing: Spacing) -> float:
        left, top, right, bottom = self.box
        sx, sy = (1.0, 1.0) if spacing is None else (spacing[1], spacing[0])
        return (right - left) * (bottom - top) * sx * sy

    def outline(self) -> list[Point]:
        left, top, right, bottom = self.box
        return [(left, top), (right, top), (right, bottom), (left, bottom), (left, top)]


@dataclass(frozen=True)
class Freehand(Shape):
    """A closed polygon (even-odd rule); the first point is not repeated."""

    vertices: tuple[Point, ...]
    kind: ClassVar[str] = "freehand"
    is_roi: ClassVar[bool] = True

    def points(self) -> tuple[Point, ...]:
        return self.vertices

    def with_points(self, points):
        return Freehand(tuple(_pt(p) for p in points))

    def outline(self) -> list[Point]:
        return list(self.vertices) + [self.vertices[0]] if self.vertices else []

    def contains(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Even-odd ray casting, vectorised over the points."""
        x, y = np.broadcast_arrays(np.asarray(x, float), np.asarray(y, float))
        inside = np.zeros(x.shape, bool)
        pts = self.vertices
        n = len(pts)
        if n < 3:
            return inside
        for i in range(n):
            (xa, ya), (xb, yb) = pts[i], pts[(i + 1) % n]
            if ya == yb:
                continue
            crosses = (ya > y) != (yb > y)
            xs = xa + (y - ya) * (xb - xa) / (yb - ya)
            inside ^= crosses & (x < xs)
        return inside

    def area(self, spacing: Spacing) -> float:
        """Shoelace formula in mm^2 (pixels^2 without spacing)."""
        sx, sy = (1.0, 1.0) if spacing is None else (spacing[1], spacing[0])
        pts = self.vertices
        s = sum(pts[i][0] * pts[(i + 1) % len(pts)][1] - pts[(i + 1) % len(pts)][0] * pts[i][1]
                for i in range(len(pts)))
        return abs(s) / 2.0 * sx * sy

    @property
    def box(self) -> tuple[float, float, float, float]:
        xs, ys = [p[0] for p in self.vertices], [p[1] for p in self.vertices]
        return (min(xs), min(ys), max(xs), max(ys))


@dataclass(frozen=True)
class PointProbe(Shape):
    """The value of the pixel under a point."""

    p: Point
    kind: ClassVar[str] = "point"

    def points(self) -> tuple[Point, ...]:
        return (self.p,)

    def with_points(self, points):
        return PointProbe(_pt(points[0]))

    def pixel(self) -> tuple[int, int]:
        """(column, row) of the pixel that contains the point."""
        return (int(math.floor(self.p[0])), int(math.floor(self.p[1])))


@dataclass(frozen=True)
class Arrow(Shape):
    """An arrow pointing at `tip` from `tail`, with a text label."""

    tip: Point
    tail: Point
    text: str = ""
    kind: ClassVar[str] = "arrow"

    def points(self) -> tuple[Point, ...]:
        return (self.tip, self.tail)

    def with_points(self, points):
        return Arrow(_pt(points[0]), _pt(points[1]), self.text)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "text": self.text}


SHAPES: dict[str, type[Shape]] = {cls.kind: cls for cls in (
    Distance, Angle, CobbAngle, Ellipse, Rectangle, Freehand, PointProbe, Arrow)}


def shape_from_dict(doc: dict[str, Any]) -> Shape:
    """Inverse of `Shape.to_dict`; ValueError for unknown kinds or wrong point counts."""
    kind = doc.get("kind")
    cls = SHAPES.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown shape kind {kind!r}")
    pts = [_pt(p) for p in doc.get("points", [])]
    if cls is Freehand:
        if len(pts) < 3:
            raise ValueError("a freehand ROI needs at least 3 points")
        return Freehand(tuple(pts))
    need = {Distance: 2, Angle: 3, CobbAngle: 4, Ellipse: 2, Rectangle: 2, PointProbe: 1, Arrow: 2}[cls]
    if len(pts) != need:
        raise ValueError(f"a {kind} needs {need} points, got {len(pts)}")
    if cls in (Ellipse, Rectangle):
        return cls(pts[0][0], pts[0][1], pts[1][0], pts[1][1])
    if cls is Arrow:
        return Arrow(pts[0], pts[1], str(doc.get("text", "")))
    return cls(*pts)
