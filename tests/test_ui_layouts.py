"""Viewport layouts with pytest-qt: layouts from the toolbar and menu (remembered), the
active viewport (border, keys, AI strip), series dragged from the browser onto a viewport
or double-clicked, and each viewport's own view state."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QMouseEvent
from PySide6.QtWidgets import QApplication, QLabel

from medviewer.viewer.display import PRESETS
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.viewport import ACTIVE_COLOUR, SERIES_MIME
from medviewer.viewer.ui.window import MainWindow
from test_ui_window import make_study, mouse, open_and_wait, wheel


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.resize(1100, 760)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


@pytest.fixture
def opened(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, make_study(tmp_path / "study", n_ct=6, n_mr=4, rows=20, cols=24))
    return window


def _uids(w):
    return [v.series.series_uid if v.series is not None else None for v in w.session.viewports]


def _press(widget, pos=QPointF(20, 20)):
    mouse(widget, QMouseEvent.Type.MouseButtonPress, pos, Qt.MouseButton.MiddleButton, Qt.MouseButton.MiddleButton)
    mouse(widget, QMouseEvent.Type.MouseButtonRelease, pos, Qt.MouseButton.MiddleButton, Qt.MouseButton.NoButton)


def test_layouts_from_the_toolbar_and_menu_are_remembered(qtbot, opened, tmp_path):
    w = opened
    ct, mr = w.browser.series_uids()
    assert w.grid.viewports[0].isVisible() and len(w.grid.visible_viewports()) == 1
    w.actions_by_name["layout_2x2"].trigger()
    assert w.session.layout == "2x2"
    shown = [vp for vp in w.grid.viewports if vp.isVisible()]
    assert len(shown) == 4
    # filled with the series not shown yet; the others stay empty instead of repeating one
    assert _uids(w) == [ct, mr, None, None]
    assert w.grid.viewports[0].highlight and not w.grid.viewports[1].highlight
    # a 2x2 grid: two columns and two rows of equal size
    qtbot.wait(50)
    g0, g3 = w.grid.viewports[0].geometry(), w.grid.viewports[3].geometry()
    assert g3.left() > g0.right() and g3.top() > g0.bottom()
    assert abs(g0.width() - g3.width()) <= 2 and abs(g0.height() - g3.height()) <= 2
    w.actions_by_name["layout_2x1"].trigger()
    qtbot.wait(50)
    v0, v1 = w.grid.viewports[0].geometry(), w.grid.viewports[1].geometry()
    assert v1.top() > v0.bottom() and not w.grid.viewports[2].isVisible()
    # the View menu lists every layout; the choice is remembered for the next start
    titles = [a.text() for a in w.menu("View").actions() if a.menu() is not None
              for a in a.menu().actions()]
    assert {"1 x 1", "1 x 2 (side by side)", "2 x 2"} <= set(titles)
    assert Settings(tmp_path / "settings").value("view/layout") == "2x1"
    w2 = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w2)
    try:
        assert w2.session.layout == "2x1" and w2.actions_by_name["layout_2x1"].isChecked()
    finally:
        w2.shutdown()


def test_each_viewport_has_its_own_view_state_and_the_active_one_gets_the_keys(qtbot, opened):
    w = opened
    w.actions_by_name["layout_1x2"].trigger()
    left, right = w.grid.viewports[:2]
    qtbot.waitUntil(lambda: right.canvas.rendered is not None and not right.canvas.loading(), timeout=5000)
    assert left.state.series.modality == "CT" and right.state.series.modality == "MR"
    # clicking (or scrolling) a viewport makes it the active one: border, window.state, keys
    _press(right.canvas)
    assert w.session.active_index == 1 and right.highlight and not left.highlight
    assert w.state.series is right.state.series and w.canvas is right.canvas
    w.actions_by_name["next"].trigger()
    w.actions_by_name["preset_lung"].trigger()
    w.actions_by_name["fit"].trigger()
    assert right.state.index == 1 and right.state.window == PRESETS["lung"]
    assert left.state.index == 0 and left.state.window is None           # untouched
    wheel(left.canvas, -120)
    assert w.session.active_index == 0 and left.state.index == 1 and right.state.index == 1
    left.state.set_zoom(3.0)
    assert right.state.zoom is None                                      # zoom / pan per viewport
    # the border is drawn in the active colour
    img = left.grab().toImage()
    assert img.pixelColor(0, img.height() // 2) == ACTIVE_COLOUR


def test_the_ai_strip_follows_the_active_viewport(qtbot, opened):
    w = opened
    w.actions_by_name["layout_1x2"].trigger()
    strip = QLabel("per-slice strip")
    w.set_slice_strip(strip)
    left, right = w.grid.viewports[:2]
    assert strip.parent() is left and strip.isVisible()
    _press(right.canvas)
    assert strip.parent() is right and right.slice_strip() is strip and left.slice_strip() is None
    assert strip.isVisible()
    strip.hide()                       # the AI panel hides it when there is nothing to show
    _press(left.canvas)
    assert strip.parent() is left and strip.isHidden()


def _drop(widget, mime, pos=QPointF(30, 30)):
    enter = QDragEnterEvent(pos.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return enter.isAccepted(), drop.isAccepted()


def test_series_dragged_from_the_browser_onto_a_viewport_or_double_clicked(qtbot, opened):
    w = opened
    w.actions_by_name["layout_2x2"].trigger()
    ct, mr = w.browser.series_uids()
    item = w.browser.item(1)                      # the MR
    mime = w.browser.mimeData([item])
    assert bytes(mime.data(SERIES_MIME)).decode() == mr and w.browser.mimeTypes() == [SERIES_MIME]
    target = w.grid.viewports[3]
    assert _drop(target, mime) == (True, True)
    assert target.state.series.series_uid == mr and w.session.active_index == 3
    qtbot.waitUntil(lambda: target.canvas.rendered is not None and not target.canvas.loading(), timeout=5000)
    assert target.canvas.rendered.shape == (20, 24)
    # double click in the browser: into the active viewport
    _press(w.grid.viewports[1].canvas)
    w.browser.itemDoubleClicked.emit(w.browser.item(0))
    assert w.grid.viewports[1].state.series.series_uid == ct
    assert w.grid.viewports[3].state.series.series_uid == mr
    # something else than a series or files is refused
    from PySide6.QtCore import QMimeData

    junk = QMimeData()
    junk.setText("hello")
    assert _drop(target, junk) == (False, False)


def test_ai_analysis_in_a_non_first_viewport_fills_the_strip_under_it(qtbot, tmp_path, monkeypatch):
    """The AI panel acts on the active viewport: analysing the series of the fourth viewport
    puts its per-slice results in the strip under that viewport; another viewport made
    active with another series shows no strip (no stale results), and the strip comes back
    with the analysed series' results when that viewport is active again."""
    import numpy as np

    from medviewer.viewer.resources import resource
    from medviewer.viewer.ui.app import create_window

    monkeypatch.setenv("MEDVIEWER_SETTINGS_DIR", str(tmp_path / "settings"))
    w = create_window(None)
    qtbot.addWidget(w)
    w.resize(1100, 760)
    w.show()
    ai = w.ai
    try:
        open_and_wait(qtbot, w, make_study(tmp_path / "study", n_ct=6, n_mr=4, rows=20, cols=24))
        ai.load_model(str(resource("models", "demo.safetensors")))
        qtbot.waitUntil(lambda: ai.model is not None, timeout=60000)
        w.reading.layouts.set_layout("2x2")
        ct, mr = w.browser.series_uids()
        fourth = w.grid.viewports[3]
        w.grid.viewports[0].state.set_series(next(s for s in w.scan_result.all_series() if s.series_uid == mr))
        fourth.state.set_series(next(s for s in w.scan_result.all_series() if s.series_uid == ct))
        _press(fourth.canvas)
        assert w.session.active_index == 3 and w.state.series.series_uid == ct
        ai.analyze_series()
        qtbot.waitUntil(lambda: ai.strip.filled() == 6 and not ai.panel.progress.isVisible(), timeout=120000)
        assert fourth.slice_strip() is ai.strip and ai.strip.isVisible()
        probs = ai.probs
        assert probs.shape == (6, 4) and np.allclose(probs.sum(1), 1.0, atol=1e-4)
        np.testing.assert_allclose(ai.strip.values, probs[:, int(np.argmax(probs.mean(0)))])
        # the MR viewport: the strip moves with the active viewport and hides (nothing analysed)
        _press(w.grid.viewports[0].canvas)
        assert w.state.series.series_uid == mr and ai.strip.isHidden()
        _press(fourth.canvas)
        assert fourth.slice_strip() is ai.strip and ai.strip.isVisible() and ai.strip.filled() == 6
    finally:
        ai.shutdown()
        w.shutdown()
