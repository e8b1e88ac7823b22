"""Main-window behaviour with pytest-qt (offscreen): open, scroll, window, values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, MRImageStorage, generate_uid
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QLabel

import dicomgen as g
from medviewer.viewer.display import PRESETS, default_window, render
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.window import MainWindow

def write_slice(path: Path, pixels: np.ndarray, *, series_uid: str, study_uid: str,
                z: float, number: int, modality: str = "CT", spacing=(0.5, 0.8),
                window: tuple[float, float] | None = None, series_desc: str = "Axial",
                series_number: int = 1) -> None:
    """A minimal valid single-frame image (PS3.3 A.3 CT / A.4 MR) for UI tests."""
    ds = g.base_dataset(CTImageStorage if modality == "CT" else MRImageStorage, modality,
                        study_uid=study_uid, series_uid=series_uid, series_number=series_number,
                        description=series_desc, patient="Test^Patient", patient_id="PID123")
    ds.StudyDescription = "UI study"
    ds.InstanceNumber = number
    ds.ImagePositionPatient = [0.0, 0.0, z]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.SliceLocation = z
    ds.PixelSpacing = list(spacing)
    g.set_pixels(ds, pixels)
    if modality == "CT":
        ds.RescaleSlope = 1
        ds.RescaleIntercept = -1024
        ds.RescaleType = "HU"
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    g.save(ds, path)


def make_study(root: Path, n_ct: int = 6, n_mr: int = 3, rows: int = 24, cols: int = 32) -> Path:
    """Two series (CT with a header window, MR without), one garbage file, one text file."""
    root.mkdir(parents=True, exist_ok=True)
    study = generate_uid()
    ct_uid, mr_uid = generate_uid(), generate_uid()
    rng = np.random.default_rng(1)
    for i in range(n_ct):
        px = (rng.integers(0, 2000, size=(rows, cols)) + 10 * i).astype(np.uint16)
        px[2, 3] = 1024 + 40  # 40 HU at (row 2, col 3)
        # shuffled names and reversed numbers: display order must come from geometry
        write_slice(root / f"ct_{(i * 7) % n_ct:03d}", px, series_uid=ct_uid, study_uid=study,
                    z=-5.0 * i, number=n_ct - i, window=(40, 400), series_desc="CT axial",
                    series_number=2)
    for i in range(n_mr):
        px = rng.integers(0, 500, size=(rows, cols)).astype(np.uint16)
        write_slice(root / f"mr_{i}.dcm", px, series_uid=mr_uid, study_uid=study, z=float(i),
                    number=i + 1, modality="MR", series_desc="MR T1", series_number=3)
    (root / "garbage.dcm").write_bytes(b"DICM" * 3 + b"\x00" * 7)
    (root / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.resize(900, 700)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


def open_and_wait(qtbot, w: MainWindow, path: Path) -> None:
    w.open_path(path)
    qtbot.waitUntil(lambda: not w.is_scanning() and w.scan_result is not None
                    and w.scan_result.complete, timeout=20000)
    qtbot.waitUntil(lambda: w.canvas.rendered is not None and not w.canvas.loading(),
                    timeout=5000)


@pytest.fixture
def opened(qtbot, window, tmp_path):
    open_and_wait(qtbot, window, make_study(tmp_path / "study"))
    return window


def settle(qtbot, w: MainWindow) -> None:
    """Wait until the canvas shows the slice the state points at (decode is async)."""
    qtbot.waitUntil(lambda: not w.canvas.loading(), timeout=5000)


def expected_grey(w: MainWindow, window=None) -> np.ndarray:
    ref = w.state.ref()
    stored, meta = w.pixels.get(ref), w.pixels.meta(ref)
    return render(stored, meta, window if window is not None else default_window(meta, stored))


def wheel(widget, dy: int, mods=Qt.KeyboardModifier.NoModifier, pos=QPointF(50, 50)) -> None:
    ev = QWheelEvent(pos, widget.mapToGlobal(pos), QPoint(0, 0), QPoint(0, dy),
                     Qt.MouseButton.NoButton, mods, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, ev)


def mouse(widget, kind, pos: QPointF, button=Qt.MouseButton.NoButton,
          buttons=Qt.MouseButton.NoButton) -> None:
    ev = QMouseEvent(kind, pos, widget.mapToGlobal(pos), button, buttons,
                     Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def drag(widget, button, a: QPointF, b: QPointF, steps: int = 4) -> None:
    mouse(widget, QMouseEvent.Type.MouseButtonPress, a, button, button)
    for k in range(1, steps + 1):
        p = QPointF(a.x() + (b.x() - a.x()) * k / steps, a.y() + (b.y() - a.y()) * k / steps)
        mouse(widget, QMouseEvent.Type.MouseMove, p, Qt.MouseButton.NoButton, button)
    mouse(widget, QMouseEvent.Type.MouseButtonRelease, b, button, Qt.MouseButton.NoButton)


def test_open_folder_lists_series_and_skipped(qtbot, opened):
    w = opened
    res = w.scan_result
    assert len(w.browser.series_uids()) == 2
    texts = [w.browser.item(i).text() for i in range(w.browser.count())]
    assert any("CT axial" in t and "CT - 6 images" in t for t in texts), texts
    assert any("MR T1" in t and "MR - 3 images" in t for t in texts), texts
    # first series shown at slice 0; slices in geometry order (z descending = reversed numbers)
    assert w.state.series is not None and w.state.index == 0
    assert w.canvas.rendered is not None and w.canvas.rendered.dtype == np.uint8
    assert w.canvas.rendered.shape == (24, 32)
    np.testing.assert_array_equal(w.canvas.rendered, expected_grey(w))
    # skipped files with reasons, shown in the status bar and its dialog
    skipped = {p.path.name for p in res.skipped}
    assert "garbage.dcm" in skipped
    assert w.skipped_button.isVisible()
    assert f"Skipped: {len(res.skipped)}" in w.skipped_button.text()
    from medviewer.viewer.ui.dialogs import skipped_dialog

    dlg = skipped_dialog(w, res)
    qtbot.addWidget(dlg)
    rows = {dlg.table.item(r, 0).text(): dlg.table.item(r, 1).text()
            for r in range(dlg.table.rowCount())}
    assert "garbage.dcm" in rows and rows["garbage.dcm"]
    # thumbnails arrive from the pool
    qtbot.waitUntil(lambda: all(w.browser.has_thumbnail(u) for u in w.browser.series_uids()),
                    timeout=5000)
    # choosing the other series in the browser shows it
    mr_uid = [u for u in w.browser.series_uids() if w.browser.series(u).modality == "MR"][0]
    item = w.browser.item(w.browser.series_uids().index(mr_uid))
    w.browser.itemClicked.emit(item)
    assert w.state.series.series_uid == mr_uid and w.state.count() == 3


def test_scroll_with_wheel_and_keys(qtbot, opened):
    w = opened
    c = w.canvas
    first = c.rendered.copy()
    wheel(c, -120)
    assert w.state.index == 1
    settle(qtbot, w)
    assert not np.array_equal(c.rendered, first)
    np.testing.assert_array_equal(c.rendered, expected_grey(w))
    wheel(c, 120)
    assert w.state.index == 0
    wheel(c, 120)  # clamped at the first slice
    assert w.state.index == 0
    w.activateWindow()
    c.setFocus()
    qtbot.keyClick(c, Qt.Key.Key_Down)
    assert w.state.index == 1
    qtbot.keyClick(c, Qt.Key.Key_End)
    assert w.state.index == 5
    qtbot.keyClick(c, Qt.Key.Key_Up)
    assert w.state.index == 4
    qtbot.keyClick(c, Qt.Key.Key_Home)
    assert w.state.index == 0
    qtbot.keyClick(c, Qt.Key.Key_PageDown)
    assert w.state.index == 5  # +10, clamped
    assert w.slider.value() == 5 and w.slice_label.text() == "6/6"
    w.slider.setValue(2)
    assert w.state.index == 2


def test_ctrl_wheel_zooms_and_keys_fit(qtbot, opened):
    w = opened
    c = w.canvas
    fit = c.fit_scale()
    wheel(c, 120, Qt.KeyboardModifier.ControlModifier, QPointF(100, 100))
    assert c.scale() == pytest.approx(fit * 1.25)
    assert w.state.index == 0  # Ctrl+wheel does not scroll
    w.activateWindow()
    c.setFocus()
    qtbot.keyClick(c, Qt.Key.Key_F)
    assert w.state.zoom is None and c.scale() == pytest.approx(fit)
    qtbot.keyClick(c, Qt.Key.Key_1, Qt.KeyboardModifier.ControlModifier)
    assert c.scale() == 1.0
    # pan by left drag moves the image by the drag distance
    before = c.image_to_screen(0, 0)
    drag(c, Qt.MouseButton.LeftButton, QPointF(200, 200), QPointF(230, 190))
    after = c.image_to_screen(0, 0)
    assert (after.x() - before.x(), after.y() - before.y()) == pytest.approx((30, -10))


def test_right_drag_changes_window_live(qtbot, opened):
    w = opened
    c = w.canvas
    start = c.effective_window()
    assert (start.center, start.width) == (40, 400)  # the file's own window
    before = c.rendered.copy()
    seen = []
    w.state.sig_window_changed.connect(lambda win: seen.append(win))
    drag(c, Qt.MouseButton.RightButton, QPointF(300, 300), QPointF(364, 332), steps=4)
    assert len(seen) == 4  # live feedback on every move
    win = w.state.window
    assert win.width == pytest.approx(400 + 64 * 400 / 256)
    assert win.center == pytest.approx(40 + 32 * 400 / 256)
    assert not np.array_equal(c.rendered, before)
    np.testing.assert_array_equal(c.rendered, expected_grey(w, win))


def test_preset_hotkeys_and_reset(qtbot, opened):
    w = opened
    c = w.canvas
    w.activateWindow()
    c.setFocus()
    qtbot.keyClick(c, Qt.Key.Key_1)
    assert w.state.window == PRESETS["lung"]
    np.testing.assert_array_equal(c.rendered, expected_grey(w, PRESETS["lung"]))
    lung = c.rendered.copy()
    qtbot.keyClick(c, Qt.Key.Key_4)
    assert w.state.window == PRESETS["bone"]
    np.testing.assert_array_equal(c.rendered, expected_grey(w, PRESETS["bone"]))
    assert not np.array_equal(lung, c.rendered)
    qtbot.keyClick(c, Qt.Key.Key_0)
    assert w.state.window is None
    np.testing.assert_array_equal(c.rendered, expected_grey(w))
    # the header windows menu lists the file's window by name
    acts = w.header_windows_menu.actions()
    assert acts and "W 400 / L 40" in acts[0].text()


def test_pixel_value_under_cursor_in_hu(qtbot, opened):
    w = opened
    c = w.canvas
    w.state.set_zoom(4.0)
    pos = c.image_to_screen(3.5, 2.5)  # centre of pixel (col 3, row 2)
    mouse(c, QMouseEvent.Type.MouseMove, pos)
    assert c.cursor_value is not None
    assert (c.cursor_value.col, c.cursor_value.row) == (3, 2)
    assert c.cursor_value.text == "40 HU"
    assert w.cursor_label.text() == "(3, 2) 40 HU"
    from medviewer.viewer.ui.overlays import corner_texts

    texts = corner_texts(w.state, w.state.header(), c.effective_window(), c.scale(),
                         c.cursor_value)
    assert "(3, 2)  40 HU" in texts["br"]
    assert "Zoom: 400%" in texts["br"]
    assert "W: 400  L: 40" in texts["br"][0]
    assert texts["tl"][:2] == ["Test, Patient", "ID: PID123"]
    assert texts["tr"] == ["2024-01-02", "UI study"]
    assert texts["bl"][0] == "Im 1/6"
    # display order is by geometry (PS3.3 C.7.6.2) in the stack convention, head to
    # feet: z = 0 ... -25 whatever the file names
    assert texts["bl"][1] == "Loc: z 0.00 mm"
    w.state.set_slice(5)
    texts = corner_texts(w.state, w.state.header(), c.effective_window(), c.scale(), None)
    assert texts["bl"] == ["Im 6/6", "Loc: z -25.00 mm"]
    # off the image: no value
    mouse(c, QMouseEvent.Type.MouseMove, c.image_to_screen(-3, -3))
    assert c.cursor_value is None


def test_ruler_measures_mm_from_pixel_spacing(qtbot, opened):
    w = opened
    c = w.canvas
    w.state.set_zoom(8.0)
    w.actions_by_name["ruler"].trigger()          # R: the distance tool
    a, b = c.image_to_screen(2, 2), c.image_to_screen(12, 6)
    drag(c, Qt.MouseButton.LeftButton, a, b)
    session = w.reading.tools.session
    study = w.state.study_uid_of(w.state.series)
    sop = w.state.header().SOPInstanceUID
    (ann,) = session.on_image(study, sop, None)
    assert np.allclose(ann.shape.points(), [(2, 2), (12, 6)])
    # PixelSpacing = (row 0.5 mm, column 0.8 mm): dx = 10 cols, dy = 4 rows
    assert ann.numbers["unit"] == "mm"
    assert ann.numbers["length"] == pytest.approx(math.hypot(10 * 0.8, 4 * 0.5), rel=1e-6)
    w.state.step(1)
    settle(qtbot, w)
    assert session.on_image(study, w.state.header().SOPInstanceUID, None) == []  # it belongs to its slice


def test_anisotropic_pixels_are_shown_with_their_true_shape(qtbot, opened):
    """Pixel Spacing (row 0.5 mm, column 0.8 mm): a pixel is drawn 0.625 times
    as high as it is wide, so 1 cm is as long across as down; fit keeps it whole."""
    w = opened
    c = w.canvas
    assert c.aspect() == pytest.approx(0.5 / 0.8)
    rect = c.image_rect()
    cols, rows = c.image_size()
    assert rect.height() / rect.width() == pytest.approx(rows * 0.5 / (cols * 0.8), rel=1e-6)
    assert rect.width() <= c.width() + 1e-6 and rect.height() <= c.height() + 1e-6
    x, y = c.screen_to_image(c.image_to_screen(7.25, 3.5))
    assert (x, y) == (pytest.approx(7.25), pytest.approx(3.5))
    w.state.set_zoom(4.0)
    a, b = c.image_to_screen(0, 0), c.image_to_screen(10, 16)   # 8 mm across, 8 mm down
    assert b.x() - a.x() == pytest.approx(b.y() - a.y())


def test_overlay_is_registered_to_its_slice(qtbot, opened):
    w = opened
    c = w.canvas
    w.state.set_zoom(8.0)
    w.state.set_pan(0, 0)
    w.state.set_show_text(False)
    rgba = np.zeros((24, 32, 4), np.uint8)
    rgba[10, 20] = (255, 0, 0, 255)
    c.set_overlay("cam", rgba, opacity=1.0)
    centre = c.image_to_screen(20.5, 10.5)
    img = c.grab_view()
    px = img.pixelColor(int(centre.x()), int(centre.y()))
    assert (px.red(), px.green(), px.blue()) == (255, 0, 0)
    other = c.image_to_screen(5.5, 5.5)
    px2 = img.pixelColor(int(other.x()), int(other.y()))
    g = int(c.rendered[5, 5])
    assert (px2.red(), px2.green(), px2.blue()) == (g, g, g)
    w.state.step(1)  # another slice: the overlay is not painted over it
    settle(qtbot, w)
    px3 = c.grab_view().pixelColor(int(centre.x()), int(centre.y()))
    g = int(c.rendered[10, 20])
    assert (px3.red(), px3.green(), px3.blue()) == (g, g, g)
    with pytest.raises(ValueError):
        c.set_overlay("bad", np.zeros((5, 5, 4), np.uint8))
    c.set_overlay("cam", None)
    assert c.overlay_names() == []


def test_tag_browser_filter(qtbot, opened):
    w = opened
    w.tags_dock.show()
    w.tags.set_dataset(w.state.header())
    names = w.tags.visible_names()
    assert "PatientID" in names and "Modality" in names and "PixelData" not in names
    w.tags.filter.setText("patientid")
    assert w.tags.visible_names() == ["PatientID"]
    w.tags.filter.setText("0008,0060")  # by tag
    assert w.tags.visible_names() == ["Modality"]
    w.tags.filter.setText("UI study")  # by value
    assert w.tags.visible_names() == ["StudyDescription"]
    w.tags.filter.setText("no-such-thing")
    assert w.tags.visible_names() == []
    w.tags.filter.clear()
    assert len(w.tags.visible_names()) == len(names)


def test_cine_slice_strip_and_shortcuts(qtbot, opened):
    w = opened
    w.fps_spin.setValue(50)
    w.set_cine(True)
    qtbot.waitUntil(lambda: w.state.index >= 2, timeout=3000)
    w.set_cine(False)
    assert not w.cine_timer.isActive()
    strip = QLabel("strip")
    w.set_slice_strip(strip)
    assert strip.parent() is not None and strip.isVisible()
    w.set_slice_strip(None)
    assert strip.parent() is None
    from medviewer.viewer.ui.actions import shortcut_rows

    rows = dict((a, k) for k, a in shortcut_rows(w))
    assert rows["Next slice"].startswith("Down")
    assert rows["Cine play / pause"] == "Space"
    assert "Lung" in " ".join(rows)
    assert w.menu("AI") is w.ai_menu
    dock = w.add_dock(QLabel("panel"), title="AI panel")
    assert dock.objectName() and dock.widget().text() == "panel"


def test_drop_folder_opens_it(qtbot, window, tmp_path):
    root = make_study(tmp_path / "dropped", n_ct=2, n_mr=0)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(root))])
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime,
                    Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    window.dropEvent(ev)
    qtbot.waitUntil(lambda: window.scan_result is not None and window.scan_result.complete
                    and not window.is_scanning(), timeout=10000)
    assert window.browser.count() == 1
    assert window.settings.recent_folders()[0] == str(root.resolve())


def test_empty_folder_says_so(qtbot, window, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "junk.bin").write_bytes(b"\x01\x02")
    window.open_path(tmp_path / "empty")
    qtbot.waitUntil(lambda: not window.is_scanning() and window.scan_result is not None,
                    timeout=10000)
    assert window.browser.count() == 0
    assert "No displayable images" in window.statusBar().currentMessage()
    assert window.canvas.rendered is None


def test_default_ct_preset_and_overlay_opacity_are_saved(qtbot, window, tmp_path):
    window.settings.set_default_preset("lung")
    open_and_wait(qtbot, window, make_study(tmp_path / "study"))
    assert window.state.series.modality == "CT"
    assert window.state.window == PRESETS["lung"]
    np.testing.assert_array_equal(window.canvas.rendered, expected_grey(window, PRESETS["lung"]))
    mr = [window.browser.series(u) for u in window.browser.series_uids()
          if window.browser.series(u).modality == "MR"][0]
    window.state.set_series(mr)
    settle(qtbot, window)
    assert window.state.window is None  # presets are for CT only
    window.canvas.set_overlay("x", np.zeros((24, 32, 4), np.uint8), opacity=0.3)
    assert Settings(tmp_path / "settings").overlay_opacity() == pytest.approx(0.3)
    window.canvas.set_overlay("y", np.zeros((24, 32, 4), np.uint8))
    assert window.canvas.overlay_opacity("y") == pytest.approx(0.3)


def test_keys_go_to_the_viewer_except_in_the_tag_filter(qtbot, opened):
    w = opened
    w.activateWindow()
    w.browser.setFocus()
    qtbot.keyClick(w.browser, Qt.Key.Key_Down)  # the series list does not eat slice keys
    assert w.state.index == 1
    w.tags_dock.show()
    w.tags_dock.raise_()
    w.tags.filter.setFocus()
    qtbot.keyClicks(w.tags.filter, "10")  # typing a filter does not switch presets
    assert w.tags.filter.text() == "10"
    assert w.state.window is None


def test_labels_and_header_text_helpers(tmp_path):
    from medviewer.viewer.io.model import ImageRef, Series
    from medviewer.viewer.ui.browser import series_label
    from medviewer.viewer.ui.overlays import format_date, format_person_name, slice_location

    s = Series("1.2", 3, "CT", "", 8, 8, items=[ImageRef(tmp_path / "CT_small.dcm")])
    assert series_label(s) == "CT_small.dcm\nCT - 1 image"
    s.items = [ImageRef(tmp_path / "f", k) for k in range(4)]
    assert series_label(s) == "Series 3\nCT - 4 images"
    s.description = "Axial"
    assert series_label(s) == "3: Axial\nCT - 4 images"
    assert format_date("20240102") == "2024-01-02" and format_date("2024") == "2024"
    assert format_person_name("Doe^John^M") == "Doe, John M"
    assert format_person_name("Doe") == "Doe"
    ds = Dataset()
    ds.ImagePositionPatient = [0, 0, 7.5]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal: normal is +y
    assert slice_location(ds) == pytest.approx(0.0)
    ds.ImagePositionPatient = [0, -12, 7.5]
    assert slice_location(ds) == pytest.approx(-12.0)  # y: the axis the normal is closest to
    ds.SliceLocation = 3.25  # vendor-defined: Image Position (Patient) wins when present
    assert slice_location(ds) == pytest.approx(-12.0)
    # an axial MR whose normal is -z: its location is z, not the projection on the normal
    ds.ImageOrientationPatient = [1, 0, 0, 0, -1, 0]
    ds.ImagePositionPatient = [0, 0, 27.0]
    assert slice_location(ds) == pytest.approx(27.0)
    del ds.ImagePositionPatient  # no Image Plane geometry: Slice Location is all there is
    assert slice_location(ds) == 3.25


def test_multi_valued_header_windows_selectable_by_name(qtbot, window, tmp_path):
    root = tmp_path / "mw"
    root.mkdir()
    px = np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 3
    write_slice(root / "a.dcm", px, series_uid=generate_uid(), study_uid=generate_uid(), z=0.0,
                number=1, window=(40, 400))
    from pydicom import dcmread

    ds = dcmread(root / "a.dcm")
    ds.WindowCenter, ds.WindowWidth = [40, -600], [400, 1500]
    ds.WindowCenterWidthExplanation = ["MEDIASTINUM", "LUNG"]
    ds.save_as(root / "a.dcm")
    open_and_wait(qtbot, window, root)
    acts = window.header_windows_menu.actions()
    assert [a.text().split()[0] for a in acts] == ["MEDIASTINUM", "LUNG"]
    acts[1].trigger()
    assert window.state.window.name == "LUNG"
    assert (window.state.window.center, window.state.window.width) == (-600, 1500)
    np.testing.assert_array_equal(window.canvas.rendered, expected_grey(window, window.state.window))


def test_real_ct_file_value_under_cursor_matches_pydicom(qtbot, window):
    from pydicom import dcmread
    from pydicom.data import get_testdata_file
    from pydicom.pixels import apply_modality_lut

    path = Path(get_testdata_file("CT_small.dcm"))
    open_and_wait(qtbot, window, path)  # a single file opens too
    ds = dcmread(path)
    hu = apply_modality_lut(ds.pixel_array, ds)
    window.state.set_zoom(2.0)
    c = window.canvas
    for col, row in ((10, 20), (64, 64), (100, 37)):
        mouse(c, QMouseEvent.Type.MouseMove, c.image_to_screen(col + 0.5, row + 0.5))
        assert c.cursor_value.text == f"{int(round(float(hu[row, col])))} HU"
    np.testing.assert_array_equal(c.rendered, expected_grey(window))


def test_array_to_qimage_odd_widths_keep_pixels():
    from medviewer.viewer.ui.qimage import array_to_qimage

    grey = (np.arange(5 * 7, dtype=np.uint8).reshape(5, 7) * 7)  # 7 columns: padded rows
    img = array_to_qimage(grey)
    assert (img.width(), img.height()) == (7, 5)
    for r, c in ((0, 0), (2, 5), (4, 6)):
        assert img.pixelColor(c, r).red() == grey[r, c]
    rgb = np.random.default_rng(0).integers(0, 256, (3, 5, 3), dtype=np.uint8)
    img = array_to_qimage(rgb[:, ::-1])  # a non-contiguous view is made contiguous
    px = img.pixelColor(1, 2)
    assert (px.red(), px.green(), px.blue()) == tuple(int(v) for v in rgb[2, 3])
    with pytest.raises(ValueError):
        array_to_qimage(np.zeros((4, 4, 2), np.uint8))


def test_zoom_keys_export_view_and_shortcut_dialog(qtbot, opened, tmp_path):
    w = opened
    c = w.canvas
    w.activateWindow()
    c.setFocus()
    fit = c.scale()
    qtbot.keyClick(c, Qt.Key.Key_Plus)
    assert c.scale() == pytest.approx(fit * 1.25)
    qtbot.keyClick(c, Qt.Key.Key_Minus)
    assert c.scale() == pytest.approx(fit)
    out = tmp_path / "view.png"
    w.export_view(out)
    from PySide6.QtGui import QImage

    img = QImage(str(out))
    assert (img.width(), img.height()) == (c.width(), c.height())
    from medviewer.viewer.ui.actions import shortcut_rows
    from medviewer.viewer.ui.dialogs import shortcuts_dialog

    dlg = shortcuts_dialog(w, shortcut_rows(w))
    qtbot.addWidget(dlg)
    keys = [dlg.table.item(r, 0).text() for r in range(dlg.table.rowCount())]
    assert "Right drag" in keys and "Space" in keys and "0" in keys
