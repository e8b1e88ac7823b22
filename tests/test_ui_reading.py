"""The viewer shows the truth (issue 9, section 1) with pytest-qt: one automatic window per
series, readable and correctly rounded overlay text, one size convention, keys that reach
cine after the tag filter, export with anonymized overlays, and a small window that keeps
every control reachable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter
from PySide6.QtWidgets import (QAbstractButton, QAbstractSlider, QApplication, QComboBox, QDialog,
                               QDockWidget, QScrollArea, QScrollBar, QWidget)

from medviewer.viewer.display import auto_window, render, series_auto_window
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.window import MainWindow
from test_display_serieswindow import mr_series_with_growing_range
from test_ui_window import make_study, open_and_wait, settle, wheel


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.resize(900, 700)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


def test_one_automatic_window_for_the_whole_series(qtbot, window, tmp_path):
    w = window
    open_and_wait(qtbot, w, mr_series_with_growing_range(tmp_path / "mr"))
    series = w.state.series
    expected = series_auto_window(w.pixels, series.items)
    seen = []
    for i in range(len(series.items)):
        w.state.set_slice(i)
        settle(qtbot, w)
        win = w.canvas.effective_window()
        seen.append(win)
        np.testing.assert_array_equal(w.canvas.rendered, render(w.canvas.stored, w.canvas.meta, win))
    assert set(seen) == {expected}, "brightness must not change while scrolling"
    assert "Auto (series)" in " ".join(_corner_lines(w))
    # View > Automatic window per image: each slice gets its own again (and it is remembered)
    w.actions_by_name["auto_window_per_image"].trigger()
    assert Settings(tmp_path / "settings").auto_window_per_image()
    per_image = []
    for i in (0, 5, 11):
        w.state.set_slice(i)
        settle(qtbot, w)
        ref = w.state.ref()
        assert w.canvas.effective_window() == auto_window(w.pixels.get(ref), w.pixels.meta(ref))
        per_image.append(w.canvas.effective_window())
    assert len(set(per_image)) == 3
    w.actions_by_name["auto_window_per_image"].trigger()
    assert w.canvas.effective_window() == expected


def test_header_window_series_keep_their_own_window(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, make_study(tmp_path / "study"))
    assert window.state.series.modality == "CT"
    assert (window.canvas.effective_window().center, window.canvas.effective_window().width) == (40, 400)


def _corner_lines(w: MainWindow) -> list[str]:
    from medviewer.viewer.ui.overlays import corner_texts

    c = w.canvas
    texts = corner_texts(w.state, w.state.header(), c.effective_window(), c.scale(), None, meta=c.meta)
    return [line for lines in texts.values() for line in lines]


def test_corner_text_rounds_the_window_and_labels_the_size(qtbot, window, tmp_path):
    from medviewer.viewer.display import Window

    w = window
    open_and_wait(qtbot, w, make_study(tmp_path / "study", rows=24, cols=32))
    w.state.set_window(Window(182.763, 357.525))
    lines = _corner_lines(w)
    assert "W: 358  L: 183" in lines
    assert any(line.endswith("24 x 32 (rows x cols)") for line in lines)
    out = w.export_view(tmp_path / "v.png")
    assert "(rows x cols)" in w.statusBar().currentMessage() and out.is_file()


def _dark_ring_around_ink(img: QImage, ink: QColor) -> tuple[int, int]:
    """(ink pixels, ink pixels with a near-black pixel within 2 px) of `img`."""
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.bytesPerLine())
    arr = arr[:, : img.width() * 4].reshape(img.height(), img.width(), 4)[..., :3][..., ::-1]  # BGRA -> RGB
    is_ink = (np.abs(arr.astype(int) - (ink.red(), ink.green(), ink.blue())).max(-1) < 40)
    dark = arr.max(-1) < 60
    near = np.zeros_like(dark)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            near |= np.roll(np.roll(dark, dy, 0), dx, 1)
    return int(is_ink.sum()), int((is_ink & near).sum())


def test_overlay_text_is_outlined_so_it_reads_on_bone(qtbot):
    from medviewer.viewer.ui.overlays import draw_outlined_text

    img = QImage(160, 40, QImage.Format.Format_RGB32)
    img.fill(QColor(250, 250, 250))                   # as bright as cortical bone at a bone window
    p = QPainter(img)
    f = QFont(p.font())
    f.setPointSize(12)
    p.setFont(f)
    ink = QColor(235, 235, 160)
    draw_outlined_text(p, 6, 28, "W: 1800  L: 400", ink)
    p.end()
    n_ink, outlined = _dark_ring_around_ink(img, ink)
    assert n_ink > 30 and outlined / n_ink > 0.9, (n_ink, outlined)


def test_cine_keys_work_after_the_tag_filter(qtbot, window, tmp_path):
    w = window
    open_and_wait(qtbot, w, make_study(tmp_path / "study"))
    w.activateWindow()
    w.tags_dock.show()
    w.tags.filter.setFocus()
    qtbot.keyClicks(w.tags.filter, "ui study")      # typing keeps its spaces and digits
    assert w.tags.filter.text() == "ui study" and not w.cine.is_playing()
    qtbot.keyClick(w.tags.filter, Qt.Key.Key_Return)  # done typing: the keys go back to the image
    assert w.canvas.hasFocus() and w.tags.filter.text() == "ui study"
    fps = w.fps_spin.value()
    qtbot.keyClick(w.canvas, Qt.Key.Key_BracketRight)
    assert w.fps_spin.value() == fps + 2
    qtbot.keyClick(w.canvas, Qt.Key.Key_Space)
    assert w.cine.is_playing()
    qtbot.keyClick(w.canvas, Qt.Key.Key_Space)
    assert not w.cine.is_playing()
    # Escape does the same; scrolling the image takes the focus back too
    w.tags.filter.setFocus()
    qtbot.keyClick(w.tags.filter, Qt.Key.Key_Escape)
    assert w.canvas.hasFocus()
    w.tags.filter.setFocus()
    wheel(w.canvas, -120)
    assert w.canvas.hasFocus() and w.state.index == 1


def test_export_anonymized_in_the_last_folder_at_the_image_resolution(qtbot, window, tmp_path, monkeypatch):
    from medviewer.viewer.ui.export import ExportDialog

    w = window
    open_and_wait(qtbot, w, make_study(tmp_path / "study", rows=24, cols=32))
    w.state.set_zoom(3.0)
    # anonymized (the default) leaves the name out; the plain view has it
    plain = w.canvas.render_view(anonymize=False)
    anon = w.canvas.render_view(anonymize=True)
    assert plain.size() == anon.size() and plain != anon
    lines = _corner_lines(w)
    assert "Test, Patient" in lines and "ID: PID123" in lines
    from medviewer.viewer.ui.overlays import corner_texts

    texts = corner_texts(w.state, w.state.header(), w.canvas.effective_window(), 1.0, None, anonymize=True)
    flat = " ".join(x for v in texts.values() for x in v)
    assert "Test" not in flat and "PID123" not in flat and "Born" not in flat
    # the image's own resolution: one output pixel per image pixel (rows stretched by 0.5/0.8)
    native = w.canvas.render_view(native=True)
    assert (native.width(), native.height()) == (32, round(24 * 0.5 / 0.8))
    # image pixels only (grey), no yellow corner text over a small image
    colours = {(native.pixelColor(x, y).red(), native.pixelColor(x, y).green(), native.pixelColor(x, y).blue())
               for x in range(32) for y in range(15)}
    assert all(r == g == b for r, g, b in colours) and len(colours) > 5
    # the dialog: anonymize on by default, starts in the folder used last
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    dlg = ExportDialog(w)
    qtbot.addWidget(dlg)
    assert dlg.anonymize.isChecked()
    dlg.path.setText(str(out_dir / "first"))
    dlg.size.setCurrentIndex(dlg.size.findData("native"))
    monkeypatch.setattr(ExportDialog, "exec", lambda self: QDialog.DialogCode.Accepted)
    opened: list[ExportDialog] = []
    orig_init = ExportDialog.__init__

    def remember(self, *a, **k):
        orig_init(self, *a, **k)
        opened.append(self)
        if len(opened) == 1:
            self.path.setText(str(out_dir / "first"))
            self.size.setCurrentIndex(self.size.findData("native"))

    monkeypatch.setattr(ExportDialog, "__init__", remember)
    written = w.choose_export()
    assert written == out_dir / "first.png"
    img = QImage(str(written))
    assert (img.width(), img.height()) == (32, 15)
    w.choose_export()
    second = opened[1]
    assert Path(second.path.text()).parent == out_dir                 # the last-used folder
    assert second.size.currentData() == "native" and second.anonymize.isChecked()


def _reachable(widget: QWidget, window: QWidget) -> bool:
    """Visible inside the window, after scrolling its scroll area to it if it has one."""
    parent = widget.parentWidget()
    while parent is not None and not isinstance(parent, QScrollArea):
        parent = parent.parentWidget()
    if parent is not None:
        parent.ensureWidgetVisible(widget, 0, 0)
        QApplication.processEvents()
    if widget.visibleRegion().isEmpty():
        return False
    top_left = widget.mapTo(window, widget.rect().topLeft())
    return window.rect().contains(top_left) and widget.visibleRegion().boundingRect().height() >= min(
        widget.height(), 8)


def test_small_window_keeps_every_ai_control_reachable(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIEWER_SETTINGS_DIR", str(tmp_path / "settings"))
    from medviewer.viewer.ui.ai import install

    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    ai = install(w)
    w.restore_layout()
    w.resize(1000, 650)
    w.show()
    qtbot.waitExposed(w)
    open_and_wait(qtbot, w, make_study(tmp_path / "study"))
    # the bundled demo model: 4 classes, the not-validated notice, a series result
    from medviewer.viewer.resources import resource

    ai.load_model(str(resource("models", "demo.safetensors")))
    qtbot.waitUntil(lambda: ai.model is not None, timeout=60000)
    ai.analyze_image()
    qtbot.waitUntil(lambda: ai.panel.top_index is not None and not ai.panel.progress.isVisible(),
                    timeout=60000)
    qtbot.wait(50)
    # without scroll areas the panel's minimum height made the window grow past the screen
    assert (w.width(), w.height()) == (1000, 650), "the window must be allowed to be this small"
    try:
        for dock, kinds in ((ai.results_dock, (QAbstractButton, QComboBox, QAbstractSlider)),
                            (ai.models_dock, (QAbstractButton, QComboBox))):
            dock.show()
            dock.raise_()
            qtbot.wait(20)
            assert isinstance(dock, QDockWidget) and isinstance(dock.widget(), QScrollArea)
            content = dock.widget().widget()
            controls = [c for c in content.findChildren(QWidget)
                        if isinstance(c, kinds) and not isinstance(c, QScrollBar) and c.isVisibleTo(content)]
            controls.append(ai.cam.colorbar)
            assert len(controls) >= 5
            for c in controls:
                assert _reachable(c, w), f"{type(c).__name__} {c.objectName() or c.text() if hasattr(c, 'text') else ''}"
    finally:
        ai.shutdown()
        w.shutdown()


def test_wheel_over_a_combo_box_scrolls_the_panel_instead_of_changing_it(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIEWER_SETTINGS_DIR", str(tmp_path / "settings"))
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent

    from medviewer.viewer.ui.ai import install

    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    ai = install(w)
    w.resize(1000, 500)
    w.show()
    qtbot.waitExposed(w)
    try:
        scroll = ai.results_dock.widget()
        scroll.setFixedHeight(150)                    # the panel does not fit: it scrolls
        qtbot.wait(20)
        bar = scroll.verticalScrollBar()
        assert bar.maximum() > 0
        method = ai.cam.method
        before, pos = method.currentIndex(), bar.value()
        ev = QWheelEvent(QPointF(5, 5), method.mapToGlobal(QPointF(5, 5)), QPoint(0, 0), QPoint(0, -120),
                         Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                         Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(method, ev)
        assert method.currentIndex() == before and bar.value() > pos
    finally:
        ai.shutdown()
        w.shutdown()
