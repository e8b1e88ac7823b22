"""Measurement shapes, ROI statistics against numpy, the tool protocol, undo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medviewer.viewer.display.meta import ImageMeta
from medviewer.viewer.measure import geometry as geo
from medviewer.viewer.measure.stats import measure, roi_mask, roi_stats
from medviewer.viewer.measure.tools import TOOLS, Annotation, AnnotationStore, hit_test, label_text, paint_shape

CT = ImageMeta(photometric="MONOCHROME2", bits_stored=12, bits_allocated=16, pixel_representation=0,
               rescale_slope=1.0, rescale_intercept=-1024.0, modality="CT", units="HU",
               pixel_spacing=(0.5, 0.8), rows=40, columns=50)


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4000, (40, 50)).astype(np.uint16)


def _centres(shape=(40, 50)):
    y, x = np.mgrid[0:shape[0], 0:shape[1]]
    return x + 0.5, y + 0.5


@pytest.mark.parametrize("box", [(10, 5, 30, 25), (30.2, 25.7, 10.4, 5.1), (0, 0, 50, 40), (12, 8, 13, 9),
                                 (-10, -10, 8, 7)])
def test_ellipse_and_rectangle_stats_match_numpy(box) -> None:
    stored = _image()
    hu = stored.astype(float) - 1024
    x, y = _centres()
    left, right = sorted((box[0], box[2]))
    top, bottom = sorted((box[1], box[3]))
    a, b = (right - left) / 2, (bottom - top) / 2
    cx, cy = (left + right) / 2, (top + bottom) / 2
    masks = {
        geo.Ellipse(*box): ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1,
        geo.Rectangle(*box): (x >= left) & (x <= right) & (y >= top) & (y <= bottom),
    }
    for shape, mask in masks.items():
        s = roi_stats(shape, stored, CT)
        assert s.n_pixels == mask.sum() > 0
        v = hu[mask]
        assert (s.mean, s.std, s.min, s.max) == pytest.approx((v.mean(), v.std(), v.min(), v.max()))
        assert s.units == "HU"
    assert roi_stats(geo.Ellipse(*box), stored, CT).area_mm2 == pytest.approx(math.pi * a * b * 0.8 * 0.5)
    assert roi_stats(geo.Rectangle(*box), stored, CT).area_mm2 == pytest.approx(4 * a * b * 0.4)


def test_pixel_counts_by_centre_on_a_known_grid() -> None:
    # box (2, 3)-(5, 7): pixel centres 2.5, 3.5, 4.5 (3 columns) x 3.5..6.5 (4 rows)
    assert roi_stats(geo.Rectangle(2, 3, 5, 7), _image(), CT).n_pixels == 12
    # the centre (x.5) on the border counts as inside
    assert roi_stats(geo.Rectangle(2.5, 3.5, 4.5, 6.5), _image(), CT).n_pixels == 12
    # a 4x4 box: the inscribed circle holds the 12 centres not in the corners
    assert roi_stats(geo.Ellipse(10, 10, 14, 14), _image(), CT).n_pixels == 12
    empty = roi_stats(geo.Ellipse(60, 60, 70, 70), _image(), CT)
    assert empty.n_pixels == 0 and empty.mean is None


def test_freehand_polygon_even_odd_and_shoelace() -> None:
    stored = _image(2)
    tri = geo.Freehand(((5.0, 5.0), (35.0, 8.0), (12.0, 33.0)))
    x, y = _centres()
    # reference: barycentric test
    (x1, y1), (x2, y2), (x3, y3) = tri.vertices
    d = (y2 - y3) * (x1 - x3) + (x3 - x2) * (y1 - y3)
    l1 = ((y2 - y3) * (x - x3) + (x3 - x2) * (y - y3)) / d
    l2 = ((y3 - y1) * (x - x3) + (x1 - x3) * (y - y3)) / d
    inside = (l1 > 0) & (l2 > 0) & (1 - l1 - l2 > 0)
    s = roi_stats(tri, stored, CT)
    assert s.n_pixels == inside.sum()
    assert s.mean == pytest.approx((stored[inside].astype(float) - 1024).mean())
    assert s.area_mm2 == pytest.approx(abs(d) / 2 * 0.4)
    mask, _ = roi_mask(tri, 40, 50)
    assert mask.sum() == inside.sum()


def test_lengths_and_angles_use_pixel_spacing() -> None:
    d = geo.Distance((0, 0), (10, 10))
    assert measure(d, None, CT) == {"length": pytest.approx(math.hypot(8, 5)), "unit": "mm"}
    assert measure(d, None, ImageMeta())["unit"] == "px"
    # a right angle in mm: (0,0)-(0,0)->(5,0) is 4 mm along x; (0,8) is 4 mm along y
    assert geo.Angle((5, 0), (0, 0), (0, 8)).degrees((0.5, 0.8)) == pytest.approx(90.0)
    assert geo.Angle((10, 0), (0, 0), (10, 10)).degrees(None) == pytest.approx(45.0)
    cobb = geo.CobbAngle((0, 0), (10, 0), (0, 5), (10, 15))
    assert cobb.degrees(None) == pytest.approx(45.0)
    assert geo.CobbAngle((0, 0), (10, 0), (10, 15), (0, 5)).degrees(None) == pytest.approx(45.0)  # 0..90


def test_point_probe_reads_the_modality_value() -> None:
    stored = _image()
    out = measure(geo.PointProbe((7.9, 3.2)), stored, CT)
    assert out == {"value": float(stored[3, 7]) - 1024, "units": "HU"}


def test_shapes_round_trip_through_dicts_and_edit() -> None:
    shapes = [geo.Distance((1, 2), (3, 4)), geo.Angle((1, 1), (2, 2), (3, 1)),
              geo.CobbAngle((0, 0), (1, 0), (0, 1), (1, 2)), geo.Ellipse(1, 2, 3, 4),
              geo.Rectangle(4, 3, 2, 1), geo.Freehand(((0, 0), (4, 0), (2, 3))),
              geo.PointProbe((2.5, 3.5)), geo.Arrow((1, 1), (5, 5), "lesion")]
    for s in shapes:
        assert geo.shape_from_dict(s.to_dict()) == s
        moved = s.moved(2, -1)
        np.testing.assert_allclose([(x - 2, y + 1) for x, y in moved.points()], list(s.points()))
        edited = s.with_point(0, (9, 9))
        assert edited.points()[0] == (9, 9) and type(edited) is type(s)
    with pytest.raises(ValueError):
        geo.shape_from_dict({"kind": "angle", "points": [[0, 0]]})


class RecordingPainter:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def polyline(self, points, closed=False):
        self.calls.append(("polyline", len(points), closed))

    def ellipse(self, left, top, right, bottom):
        self.calls.append(("ellipse", left, top, right, bottom))

    def handle(self, p):
        self.calls.append(("handle", p))

    def text(self, anchor, text):
        self.calls.append(("text", text))

    def arrow(self, tail, tip):
        self.calls.append(("arrow", tail, tip))


def test_tools_turn_pointer_events_into_shapes() -> None:
    t = TOOLS["ellipse"]()
    t.press((10, 10))
    t.move((20, 15))
    painter = RecordingPainter()
    t.paint(painter)
    assert painter.calls == [("ellipse", 10, 10, 20, 15)]
    assert t.release((30, 20)) == geo.Ellipse(10, 10, 30, 20)
    t = TOOLS["distance"]()
    t.press((5, 5))
    assert t.release((5.1, 5)) is None   # a click without a drag draws nothing
    angle = TOOLS["angle"]()
    assert angle.release((0, 0)) is None and angle.release((5, 5)) is None
    assert angle.release((10, 0)) == geo.Angle((0, 0), (5, 5), (10, 0))
    cobb = TOOLS["cobb"]()
    for p in [(0, 0), (10, 0), (0, 5)]:
        assert cobb.release(p) is None
    assert isinstance(cobb.release((10, 9)), geo.CobbAngle)
    free = TOOLS["freehand"]()
    free.press((0, 0))
    for p in [(10, 0), (10, 10), (0.2, 10)]:
        free.move(p)
    shape = free.release((0, 9))
    assert isinstance(shape, geo.Freehand) and len(shape.vertices) == 5
    assert TOOLS["point"]().release((3, 4)) == geo.PointProbe((3, 4))
    assert set(TOOLS) == {"distance", "ellipse", "rectangle", "arrow", "point", "angle", "cobb", "freehand"}


def test_paint_label_and_hit_testing() -> None:
    ellipse = geo.Ellipse(10, 10, 30, 20)
    numbers = measure(ellipse, _image(), CT)
    text = label_text(ellipse, numbers)
    assert text.startswith("Area ") and "HU" in text
    painter = RecordingPainter()
    paint_shape(ellipse, painter, text, handles=True)
    assert painter.calls[0] == ("ellipse", 10, 10, 30, 20) and painter.calls[-1] == ("text", text)
    assert hit_test(ellipse, (30.3, 20.2), 1.0) == 1          # a corner handle
    assert hit_test(ellipse, (20, 15), 1.0) == -1             # inside: move
    assert hit_test(ellipse, (45, 35), 1.0) is None
    line = geo.Distance((0, 0), (10, 0))
    assert hit_test(line, (5, 0.4), 0.5) == -1 and hit_test(line, (5, 2), 0.5) is None


def test_annotation_store_undo_redo_keeps_tracking_uid() -> None:
    store = AnnotationStore()
    a = Annotation(geo.Distance((0, 0), (1, 1)), "1.2.3")
    store.add(a)
    (added,) = list(store)
    assert added.uid
    moved = Annotation(added.shape.moved(1, 1), "1.2.3")
    store.replace(added, moved)
    (now,) = list(store)
    assert now.uid == added.uid and now.shape == geo.Distance((1, 1), (2, 2))
    store.remove(now)
    assert len(store) == 0
    assert store.undo() and list(store)[0].shape == geo.Distance((1, 1), (2, 2))
    assert store.undo() and list(store)[0].shape == geo.Distance((0, 0), (1, 1))
    assert store.redo() and list(store)[0].shape == geo.Distance((1, 1), (2, 2))
    assert store.on_image("1.2.3") and not store.on_image("1.2.3", 0)
    assert store.undo() and store.undo() and not store.undo()


def test_labels_keep_their_place_when_free_and_move_clear_when_taken() -> None:
    from medviewer.viewer.measure.labels import overlaps, place_label

    bounds = (0.0, 0.0, 400.0, 300.0)
    first = place_label((100.0, 50.0, 80.0, 30.0), [], bounds)
    assert first == (100.0, 50.0, 80.0, 30.0)
    taken = [first]
    second = place_label((105.0, 55.0, 80.0, 30.0), taken, bounds)
    assert not overlaps(second, first) and abs(second[1] - 55.0) <= 2 * 32.0
    taken.append(second)
    third = place_label((105.0, 55.0, 80.0, 30.0), taken, bounds)
    assert not any(overlaps(third, t) for t in taken)
    # clipped into the view; near the bottom edge the label goes up, not out
    low = place_label((390.0, 290.0, 80.0, 30.0), [], bounds)
    assert low == (320.0, 270.0, 80.0, 30.0)
    crowded = [(x, y, 40.0, 20.0) for x in range(0, 400, 40) for y in range(0, 300, 20)]
    assert place_label((10.0, 10.0, 40.0, 20.0), crowded, bounds) == (10.0, 10.0, 40.0, 20.0)
