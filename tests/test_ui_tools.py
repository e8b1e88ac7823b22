"""Measurement tools with pytest-qt: every registered tool drawn with the mouse, its numbers
(ROI statistics on the stored pixels), edited by a handle, moved, undone / redone and
deleted; annotations and key images saved as DICOM SR / KOS and restored when the study
is opened again (with a report written by other software), and the CSV table."""

from __future__ import annotations

import csv
import math
import time

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent, QMouseEvent
from PySide6.QtWidgets import QApplication

from medviewer.viewer.measure.labels import overlaps
from medviewer.viewer.measure.stats import roi_stats
from medviewer.viewer.measure.tools import TOOLS
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.window import MainWindow
from test_measure_report import ohif_report
from test_ui_window import drag, make_study, mouse, open_and_wait, settle

L = Qt.MouseButton.LeftButton
NONE = Qt.MouseButton.NoButton


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.resize(1000, 760)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


@pytest.fixture
def opened(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, make_study(tmp_path / "study", n_ct=4, n_mr=0, rows=24, cols=32))
    window.state.set_zoom(14.0)
    return window


def click(c, x, y):
    p = c.image_to_screen(x, y)
    mouse(c, QMouseEvent.Type.MouseButtonPress, p, L, L)
    mouse(c, QMouseEvent.Type.MouseButtonRelease, p, L, NONE)


def draw(c, name):
    """Draw with tool `name` as a user would: a drag, clicks, or a freehand outline."""
    s = c.image_to_screen
    if name in ("distance", "ellipse", "rectangle", "arrow"):
        drag(c, L, s(4, 5), s(14, 13))
    elif name == "point":
        click(c, 3.5, 2.5)                          # the pixel at (column 3, row 2): 40 HU
    elif name == "angle":
        for pt in ((14, 4), (6, 10), (14, 16)):
            click(c, *pt)
    elif name == "cobb":
        for pt in ((3, 4), (13, 6), (3, 16), (13, 12)):
            click(c, *pt)
    elif name == "freehand":
        pts = [(5, 5), (15, 5), (15, 15), (5, 15), (5, 5)]
        mouse(c, QMouseEvent.Type.MouseButtonPress, s(*pts[0]), L, L)
        for a, b in zip(pts, pts[1:]):
            for t in np.linspace(0, 1, 6)[1:]:
                mouse(c, QMouseEvent.Type.MouseMove, s(a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])), NONE, L)
        mouse(c, QMouseEvent.Type.MouseButtonRelease, s(*pts[-1]), L, NONE)
    else:
        raise AssertionError(f"no gesture for tool {name}")


def _annotations(w):
    return w.reading.tools.session.on_image(w.state.study_uid_of(w.state.series),
                                            str(w.state.header().SOPInstanceUID), None)


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_each_tool_drawn_edited_moved_undone_and_deleted(qtbot, opened, monkeypatch, name):
    w = opened
    c = w.canvas
    tools = w.reading.tools
    monkeypatch.setattr(tools, "ask_text", lambda *a: "lesion 1")
    w.actions_by_name[f"tool_{name}"].trigger()
    assert tools.session.tool == name
    draw(c, name)
    (ann,) = _annotations(w)
    shape, numbers = ann.shape, ann.numbers
    assert shape.kind == name
    spacing = (0.5, 0.8)                                   # row, column mm
    if shape.is_roi:
        stats = roi_stats(shape, c.stored, c.meta)
        assert numbers["mean"] == pytest.approx(stats.mean) and numbers["n_pixels"] == stats.n_pixels > 0
        assert numbers["units"] == "HU" and numbers["area_mm2"] == pytest.approx(shape.area(spacing))
    elif name == "distance":
        assert numbers["length"] == pytest.approx(math.hypot(10 * 0.8, 8 * 0.5))
    elif name == "point":
        assert numbers["value"] == pytest.approx(40.0)     # HU of the marked pixel
    elif name in ("angle", "cobb"):
        assert 0 < numbers["angle"] < 180
    elif name == "arrow":
        assert shape.text == "lesion 1"
    assert tools.session.selected is not None                # a new annotation is selected
    # edit: drag its first control point
    p0 = shape.points()[0]
    drag(c, L, c.image_to_screen(*p0), c.image_to_screen(p0[0] + 2, p0[1] + 1))
    (edited,) = _annotations(w)
    assert edited.uid == ann.uid and np.allclose(edited.shape.points()[0], (p0[0] + 2, p0[1] + 1), atol=1e-6)
    if shape.is_roi:
        assert edited.numbers["n_pixels"] == roi_stats(edited.shape, c.stored, c.meta).n_pixels
    # move it with the pointer: drag a point of its outline
    w.actions_by_name["tool_pointer"].trigger()
    grab = edited.shape.points()[-1] if name != "freehand" else edited.shape.points()[1]
    drag(c, L, c.image_to_screen(*grab), c.image_to_screen(grab[0] + 1, grab[1] + 2))
    (moved,) = _annotations(w)
    assert moved.shape != edited.shape
    # undo, undo, redo (Ctrl+Z / Ctrl+Shift+Z)
    w.actions_by_name["tool_undo"].trigger()
    assert _annotations(w)[0].shape == edited.shape
    w.actions_by_name["tool_undo"].trigger()
    assert _annotations(w)[0].shape == shape
    w.actions_by_name["tool_redo"].trigger()
    assert _annotations(w)[0].shape == edited.shape
    # annotations belong to their slice and follow zoom / pan
    w.state.set_pan(30, -20)
    w.state.step(1)
    settle(qtbot, w)
    assert _annotations(w) == []
    w.state.step(-1)
    settle(qtbot, w)
    # select (click on a handle) and delete
    pt = _annotations(w)[0].shape.points()[0]
    click(c, *pt)
    assert tools.session.selected is not None
    w.actions_by_name["tool_delete"].trigger()
    assert _annotations(w) == []
    w.actions_by_name["tool_undo"].trigger()
    assert len(_annotations(w)) == 1


def test_escape_cancels_a_half_drawn_angle_and_roi_inside_roi(qtbot, opened):
    w = opened
    c = w.canvas
    w.actions_by_name["tool_angle"].trigger()
    click(c, 4, 4)
    click(c, 10, 10)
    layer = next(layer for layer in w.reading.tools.layers if layer.canvas is c)
    assert layer.tool.in_progress()
    QApplication.sendEvent(c, QKeyEvent(QKeyEvent.Type.KeyPress, Qt.Key.Key_Escape, Qt.KeyboardModifier.NoModifier))
    assert not layer.tool.in_progress() and _annotations(w) == []
    # with a tool selected, a drag inside an ROI draws a new one (it does not move the first)
    w.actions_by_name["tool_ellipse"].trigger()
    drag(c, L, c.image_to_screen(2, 2), c.image_to_screen(20, 20))
    drag(c, L, c.image_to_screen(8, 8), c.image_to_screen(12, 12))
    assert len(_annotations(w)) == 2


def test_labels_of_neighbouring_rois_do_not_overlap(qtbot, opened):
    """Two ROIs whose labels would land on the same spot (their rightmost points one
    pixel apart): the second label moves clear of the first, both inside the view."""
    w = opened
    c = w.canvas
    w.actions_by_name["tool_rectangle"].trigger()
    drag(c, L, c.image_to_screen(4, 5), c.image_to_screen(14, 10))
    drag(c, L, c.image_to_screen(5, 6), c.image_to_screen(14, 11))
    assert len(_annotations(w)) == 2
    c.repaint()
    layer = next(layer for layer in w.reading.tools.layers if layer.canvas is c)
    first, second = layer.label_rects
    assert first[2] > 40 and first[3] > 20          # multi-line ROI labels were drawn
    assert not overlaps(first, second, gap=0)
    for x, y, width, height in (first, second):
        assert 0 <= x and x + width <= c.width() and 0 <= y and y + height <= c.height()


def test_annotations_and_key_images_saved_and_restored(qtbot, window, tmp_path, monkeypatch):
    w = window
    root = make_study(tmp_path / "study", n_ct=4, n_mr=0, rows=24, cols=32)
    open_and_wait(qtbot, w, root)
    w.state.set_zoom(14.0)
    c, tools = w.canvas, w.reading.tools
    monkeypatch.setattr(tools, "ask_text", lambda *a: "nodule")
    w.actions_by_name["tool_ellipse"].trigger()
    draw(c, "ellipse")
    w.actions_by_name["tool_arrow"].trigger()
    drag(c, L, c.image_to_screen(20, 20), c.image_to_screen(28, 12))   # away from the ellipse's handles
    w.state.set_slice(2)
    settle(qtbot, w)
    w.actions_by_name["tool_distance"].trigger()
    draw(c, "distance")
    w.actions_by_name["tool_key_image"].trigger()           # K
    study = w.state.study_uid_of(w.state.series)
    before = {a.uid: a for a in tools.session.annotations(study)}
    assert len(before) == 3 and tools.session.dirty(study)
    w.actions_by_name["tool_save_sr"].trigger()             # Ctrl+S
    qtbot.waitUntil(lambda: bool(tools.last_saved), timeout=10000)
    (line,) = tools.last_saved
    assert line.startswith(f"saved {root}") and not tools.session.dirty(study)
    tools.last_saved = []
    w.actions_by_name["tool_save_kos"].trigger()
    qtbot.waitUntil(lambda: bool(tools.last_saved), timeout=10000)
    assert "key-images" in tools.last_saved[0]
    # the CSV table of the study
    out = tools.export_csv(tmp_path / "table.csv", study)
    rows = list(csv.DictReader(out.open()))
    assert sorted(r["kind"] for r in rows) == ["arrow", "distance", "ellipse"]
    assert {r["image"] for r in rows} == {"Se 2 Im 1", "Se 2 Im 3"}
    ellipse_row = next(r for r in rows if r["kind"] == "ellipse")
    assert ellipse_row["units"] == "HU" and float(ellipse_row["mean"]) == pytest.approx(
        before[next(u for u, a in before.items() if a.shape.kind == "ellipse")].numbers["mean"], abs=1e-3)
    # a report written by other software (OHIF) lies in the folder too
    first = w.state.series.items[0]
    ohif_report(root / "ohif.dcm", pydicom.dcmread(first.path))
    # open the study again: everything comes back
    time.sleep(0.05)
    w.open_path(root)
    qtbot.waitUntil(lambda: len(tools.session.annotations(study)) >= 3 + 4, timeout=15000)
    after = {a.uid: a for a in tools.session.annotations(study)}
    for uid, ann in before.items():
        assert after[uid].shape == ann.shape and after[uid].sop_instance_uid == ann.sop_instance_uid
        assert after[uid].numbers.get("mean") == pytest.approx(ann.numbers.get("mean"))
    ohif_kinds = sorted(a.shape.kind for u, a in after.items() if u not in before)
    assert ohif_kinds == ["angle", "arrow", "distance", "ellipse"]
    assert not tools.session.dirty(study)
    qtbot.waitUntil(lambda: len(tools.session.key_images(study)) == 1, timeout=5000)
    w.state.set_slice(2)
    settle(qtbot, w)
    assert ("KEY IMAGE" in [t for t, _c in w.reading.badges.of(w.state.viewport)])
    assert "annotation(s) restored" in w.statusBar().currentMessage()
