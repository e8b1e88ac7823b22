"""The MPR layout with pytest-qt on the demo CT phantom: the volume built on a worker, the
linked crosshair (a click in one view moves the other two), oblique planes from a rotation
handle, thick slabs computed on a worker (thin while dragging), orientation letters of
each plane, and the layout refused with its reason for series that are not a volume."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QMouseEvent

import dicomgen as g
from medviewer.viewer.display.mpr import reformat, render_plane
from medviewer.viewer.io import demo
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.window import MainWindow
from test_ui_window import mouse, open_and_wait, wheel


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    return demo.make_demo_study(tmp_path_factory.mktemp("demo"))


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.resize(1300, 800)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


def _enter_mpr(qtbot, w):
    mpr = w.reading.mpr
    qtbot.waitUntil(lambda: w.actions_by_name["layout_mpr"].isEnabled(), timeout=10000)
    w.actions_by_name["layout_mpr"].trigger()
    qtbot.waitUntil(lambda: mpr.state.volume is not None
                    and all(v.plane is not None for v in mpr.views.values()), timeout=20000)
    return mpr


def _idle(qtbot, mpr):
    qtbot.waitUntil(lambda: not any(v.slab_pending() for v in mpr.views.values()), timeout=20000)


def test_mpr_views_with_a_linked_crosshair(qtbot, window, phantom):
    w = window
    open_and_wait(qtbot, w, phantom)
    w.state.set_slice(20)
    mpr = _enter_mpr(qtbot, w)
    assert w.grid.mpr_shown()
    vol = mpr.state.volume
    assert vol.data.shape == (48, 256, 256) and vol.data.dtype == np.int16
    views = mpr.views
    # radiological convention: letters of each plane
    assert views["axial"].plane.grid.labels().as_dict() == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
    assert views["coronal"].plane.grid.labels().as_dict() == {"left": "R", "right": "L", "top": "H", "bottom": "F"}
    assert views["sagittal"].plane.grid.labels().as_dict() == {"left": "A", "right": "P", "top": "H", "bottom": "F"}
    # the crosshair starts on the stack's slice
    assert mpr.state.nearest_slice() == 20
    # what each view shows is the core's reformat through the display pipeline
    for kind, view in views.items():
        expected = render_plane(reformat(vol, mpr.state.grid(kind)), view.window())
        np.testing.assert_array_equal(view.grey, expected)
    # a click in the axial view moves the crosshair there: the other two planes follow
    ax = views["axial"]
    geo = ax.view_geometry()
    target = (60.5, 100.5)                        # image coordinates (column, row) in the axial plane
    pos = QPointF(*geo.image_to_screen(*target))
    coronal_before = views["coronal"].plane.grid
    axial_before = ax.plane.grid
    mouse(ax, QMouseEvent.Type.MouseButtonPress, pos, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
    mouse(ax, QMouseEvent.Type.MouseButtonRelease, pos, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
    point = axial_before.to_patient(*target)
    np.testing.assert_allclose(mpr.state.crosshair.center, point, atol=1e-6)
    assert ax.plane.grid == axial_before                         # the axial plane itself stays
    cor, sag = views["coronal"].plane.grid, views["sagittal"].plane.grid
    assert cor != coronal_before
    assert cor.offset_along_normal(point) == pytest.approx(0, abs=1e-6)
    assert sag.offset_along_normal(point) == pytest.approx(0, abs=1e-6)
    # the crosshair lines of the coronal view pass through the point
    x, y, _ = cor.from_patient(point)
    (a, b) = mpr.state.lines("coronal")["sagittal"]
    assert abs(a[0] - x) < 1e-6 and abs(b[0] - x) < 1e-6
    # dragging in the coronal view moves the axial plane (head-feet) and the stack follows
    cv = views["coronal"]
    geo = cv.view_geometry()
    p0 = QPointF(*geo.image_to_screen(x, y))
    p1 = QPointF(*geo.image_to_screen(x, y + 25 / cor.spacing))        # 25 mm towards the feet
    mouse(cv, QMouseEvent.Type.MouseButtonPress, p0, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
    mouse(cv, QMouseEvent.Type.MouseMove, p1, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)
    mouse(cv, QMouseEvent.Type.MouseButtonRelease, p1, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
    assert mpr.state.crosshair.center[2] == pytest.approx(point[2] - 25, abs=0.5)
    assert w.state.index == mpr.state.nearest_slice() == 30      # 20 + 25 mm / 2.5 mm
    # the slice keys move the crosshair through the acquired slices
    w.actions_by_name["next"].trigger()
    assert mpr.state.nearest_slice() == 31
    # the wheel moves a view by one plane
    before = views["sagittal"].plane.grid.offset_along_normal(mpr.state.crosshair.center)
    z_before = mpr.state.crosshair.center[0]
    wheel(views["sagittal"], -120, pos=QPointF(40, 40))
    assert mpr.state.crosshair.center[0] == pytest.approx(z_before + mpr.state.plane_step("sagittal"))
    assert before == pytest.approx(0, abs=1e-6)
    # back to 1x1: the stack is where the crosshair left it
    w.actions_by_name["layout_1x1"].trigger()
    assert not w.grid.mpr_shown() and w.state.index == 31


def test_oblique_planes_from_a_rotation_handle_and_slabs_on_a_worker(qtbot, window, phantom):
    w = window
    open_and_wait(qtbot, w, phantom)
    w.state.set_slice(24)
    mpr = _enter_mpr(qtbot, w)
    ax = mpr.views["axial"]
    geo = ax.view_geometry()
    c = ax.centre_on_screen(geo)
    other, h = next((o, h) for o, h in ax.handles(geo) if o == "sagittal")
    # turn the handle by 30 degrees counter-clockwise around the centre
    r = math.hypot(h.x() - c.x(), h.y() - c.y())
    a0 = math.atan2(-(h.y() - c.y()), h.x() - c.x())
    a1 = a0 + math.radians(30)
    target = QPointF(c.x() + r * math.cos(a1), c.y() - r * math.sin(a1))
    mouse(ax, QMouseEvent.Type.MouseButtonPress, h, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
    mouse(ax, QMouseEvent.Type.MouseMove, target, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)
    mouse(ax, QMouseEvent.Type.MouseButtonRelease, target, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
    ch = mpr.state.crosshair
    assert not ch.oblique("axial") and ch.oblique("coronal") and ch.oblique("sagittal")
    normal = np.asarray(mpr.views["sagittal"].plane.grid.normal)
    assert math.degrees(math.acos(abs(normal[0]))) == pytest.approx(30, abs=0.5)
    assert "oblique 30" in mpr.views["sagittal"].corner_texts(mpr.views["sagittal"].view_geometry())["tl"][0]
    w.actions_by_name["mpr_reset_oblique"].trigger()
    assert not mpr.state.oblique()
    # a 10 mm MIP: computed on the worker, equal to the core's slab
    mpr.set_slab("mip", 10.0)
    assert mpr.projection.currentText() == "MIP" and mpr.thickness.value() == 10.0
    _idle(qtbot, mpr)
    for kind, view in mpr.views.items():
        expected = reformat(mpr.state.volume, mpr.state.grid(kind), 10.0, "mip")
        np.testing.assert_array_equal(view.plane.pixels, expected.pixels)
        assert view.shown[1:] == ("mip", 10.0)
    assert mpr.views["axial"].corner_texts(geo)["bl"][0] == "MIP 10 mm slab"
    # while the crosshair is dragged the view keeps a slab on screen (never the thin plane)
    # and the worker follows the crosshair; the exact slab of the last position once it stops
    cv = mpr.views["coronal"]
    ax = mpr.views["axial"]
    g2 = cv.view_geometry()
    start = cv.centre_on_screen(g2)
    before = ax.shown[0]
    mouse(cv, QMouseEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
    moved = QPointF(start.x(), start.y() + 20)
    mouse(cv, QMouseEvent.Type.MouseMove, moved, Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton)
    assert mpr.dragging and ax.shown[1:] == ("mip", 10.0) and ax.slab_pending()
    assert "computing" in ax.corner_texts(geo)["bl"][0]
    qtbot.waitUntil(lambda: ax.shown[0] != before, timeout=20000)     # delivered during the drag
    mouse(cv, QMouseEvent.Type.MouseMove, QPointF(start.x(), start.y() + 30), Qt.MouseButton.NoButton,
          Qt.MouseButton.LeftButton)
    mouse(cv, QMouseEvent.Type.MouseButtonRelease, QPointF(start.x(), start.y() + 30), Qt.MouseButton.LeftButton,
          Qt.MouseButton.NoButton)
    _idle(qtbot, mpr)
    assert ax.shown == ax.wanted() and not ax.plane.draft and ax.shown[1:] == ("mip", 10.0)
    np.testing.assert_array_equal(ax.plane.pixels,
                                  reformat(mpr.state.volume, mpr.state.grid("axial"), 10.0, "mip").pixels)
    assert w.settings.value("mpr/projection") == "mip"
    # back to thin planes: at once, no worker
    mpr.set_slab("thin")
    assert ax.shown == ax.wanted() and ax.shown[1] == "thin" and not ax.slab_pending()


def test_mpr_is_refused_with_its_reason(qtbot, window, tmp_path):
    w = window
    root = tmp_path / "study"
    g.ct_series(root / "ct", n=1)                          # a single slice: no volume
    open_and_wait(qtbot, w, root)
    act = w.actions_by_name["layout_mpr"]
    qtbot.waitUntil(lambda: "single image" in act.toolTip(), timeout=10000)
    assert not act.isEnabled() and "at least 2 parallel slices" in act.statusTip()
    w.reading.layouts.set_layout("mpr")
    assert w.session.layout == "1x1"


def test_double_oblique_slab_drafts_while_dragging(qtbot, window, phantom):
    """A slab without a fast kernel (double oblique): a half-resolution draft from the worker
    while the crosshair is dragged, the exact slab once the drag stops."""
    from medviewer.viewer.display.mpr import slab_speed

    w = window
    open_and_wait(qtbot, w, phantom)
    mpr = _enter_mpr(qtbot, w)
    mpr.state.rotate("axial", math.radians(30))
    mpr.state.rotate("coronal", math.radians(20))
    mpr.set_slab("mip", 8.0)
    _idle(qtbot, mpr)
    slow = [k for k in ("axial", "coronal", "sagittal")
            if slab_speed(mpr.state.volume, mpr.state.grid(k), 8.0) == "slow"]
    assert slow, "a double-oblique plane should need a draft"
    view = mpr.views[slow[0]]
    assert view.shown == view.wanted() and not view.plane.draft
    mpr.begin_drag()
    centre = np.asarray(mpr.state.crosshair.center, float)
    mpr.state.move_to(centre + np.asarray(mpr.state.grid(slow[0]).normal) * 3.0)
    qtbot.waitUntil(lambda: view.shown == view.wanted() and view.plane.draft, timeout=20000)
    assert "(draft)" in view.corner_texts(view.view_geometry())["bl"][0]
    mpr.end_drag()
    _idle(qtbot, mpr)
    assert not view.plane.draft
    np.testing.assert_array_equal(view.plane.pixels,
                                  reformat(mpr.state.volume, mpr.state.grid(slow[0]), 8.0, "mip").pixels)


def test_a_failing_slab_is_reported_once_not_retried(qtbot, window, phantom, monkeypatch):
    import medviewer.viewer.ui.mpr.view as view_mod

    calls = []

    def broken(state, volume, grid, slab_mm, projection, draft=False):
        calls.append(grid)
        raise MemoryError("no room for the slab")

    w = window
    open_and_wait(qtbot, w, phantom)
    mpr = _enter_mpr(qtbot, w)
    monkeypatch.setattr(view_mod, "slab_task", broken)
    mpr.set_slab("mean", 6.0)
    ax = mpr.views["axial"]
    qtbot.waitUntil(lambda: "failed" in ax.corner_texts(ax.view_geometry())["bl"][0], timeout=20000)
    _idle(qtbot, mpr)                                      # nothing left pending
    qtbot.wait(200)
    assert len(calls) == 3 and ax.shown[1] == "thin"       # one try per view, the thin plane stays
    # another thickness is tried again
    monkeypatch.setattr(view_mod, "slab_task", lambda state, v, g, mm, pr, draft=False: reformat(v, g, mm, pr))
    mpr.set_slab("mean", 8.0)
    _idle(qtbot, mpr)
    assert ax.shown[1:] == ("mean", 8.0) and "failed" not in ax.corner_texts(ax.view_geometry())["bl"][0]
