"""Orientation in the viewport (issue 9, section 1): A/P, R/L, H/F markers on the four image
edges under zoom and pan, one scroll direction for every axial stack (head to feet), and the
corner location as the patient coordinate along the slice's closest axis."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import CTImageStorage, MRImageStorage, SecondaryCaptureImageStorage, generate_uid

import dicomgen as g
from medviewer.viewer.display.orientation import patient_orientation_labels, slice_normal
from medviewer.viewer.state import ViewGeometry
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.window import MainWindow
from test_ui_window import open_and_wait, settle, wheel

C30, S30 = math.cos(math.radians(30)), math.sin(math.radians(30))
ORIENTATIONS = {
    # name: (Image Orientation (Patient), expected letters left/right/top/bottom)
    "axial": ((1, 0, 0, 0, 1, 0), {"left": "R", "right": "L", "top": "A", "bottom": "P"}),
    "axial feet-first": ((-1, 0, 0, 0, 1, 0), {"left": "L", "right": "R", "top": "A", "bottom": "P"}),
    "coronal": ((1, 0, 0, 0, 0, -1), {"left": "R", "right": "L", "top": "H", "bottom": "F"}),
    "sagittal": ((0, 1, 0, 0, 0, -1), {"left": "A", "right": "P", "top": "H", "bottom": "F"}),
    # axial tilted 30 degrees about x: rows still R-L, columns run posterior and down
    "oblique": ((1, 0, 0, 0, C30, -S30), {"left": "R", "right": "L", "top": "AH", "bottom": "PF"}),
}


def oriented_series(folder: Path, iop, n: int = 4, rows: int = 18, cols: int = 24, *,
                    modality: str = "MR", start=(0.0, 0.0, 0.0), step: float = 3.0,
                    study_uid: str | None = None, number: int = 1) -> Path:
    """`n` slices with Image Orientation (Patient) `iop`, stepping `step` mm along the normal."""
    normal = slice_normal(iop)
    uid = generate_uid()
    for k in range(n):
        ds = g.base_dataset(MRImageStorage if modality == "MR" else CTImageStorage, modality,
                            study_uid=study_uid, series_uid=uid, series_number=number,
                            description=f"{modality} {number}")
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = [float(v) for v in iop]
        ds.ImagePositionPatient = [start[i] + k * step * normal[i] for i in range(3)]
        ds.PixelSpacing = [1.0, 1.0]
        g.set_pixels(ds, (np.arange(rows * cols, dtype=np.uint16).reshape(rows, cols) * 7 + 100 * k))
        ds.WindowCenter, ds.WindowWidth = 1500, 3000
        g.save(ds, folder / f"{modality}{number}_{k:03d}.dcm")
    return folder


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.resize(900, 700)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


def _changed_near(a, b, x: float, y: float, box: int = 20) -> int:
    """Pixels that differ between two grabs in a box around (x, y)."""
    ratio = a.devicePixelRatio() or 1.0
    n = 0
    for dx in range(-box, box + 1, 2):
        for dy in range(-box, box + 1, 2):
            px, py = int((x + dx) * ratio), int((y + dy) * ratio)
            if 0 <= px < a.width() and 0 <= py < a.height():
                n += a.pixelColor(px, py) != b.pixelColor(px, py)
    return n


def _grab_without_markers(canvas, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(canvas, "edge_labels", lambda: None)
        return canvas.grab_view()


@pytest.mark.parametrize("name", list(ORIENTATIONS))
def test_edge_letters_follow_the_image_orientation(qtbot, window, tmp_path, monkeypatch, name):
    iop, expected = ORIENTATIONS[name]
    open_and_wait(qtbot, window, oriented_series(tmp_path / "s", iop))
    c = window.canvas
    assert c.edge_labels().as_dict() == expected
    # drawn on all four edges, fit to the window and zoomed and panned off the left/top edges
    for zoom, pan in ((None, (0, 0)), (30.0, (120, -100))):   # 30x: left and top edges off screen
        window.state.set_zoom(zoom)
        window.state.set_pan(*pan)
        qtbot.wait(10)
        img, plain = c.grab_view(), _grab_without_markers(c, monkeypatch)
        anchors = c.view_geometry().edge_anchors()
        assert set(anchors) == {"left", "right", "top", "bottom"}
        if zoom is not None:
            left, top, _w, _h = c.view_geometry().image_rect()
            assert left < 0 and top < 0 and anchors["left"][0] == 0 and anchors["top"][1] == 0
        for edge, (x, y) in anchors.items():
            assert 0 <= x <= c.width() and 0 <= y <= c.height()
            # just inside the image edge, or just outside it where the view has room
            inside = {"left": (x + 14, y), "right": (x - 14, y), "top": (x, y + 16), "bottom": (x, y - 16)}[edge]
            outside = {"left": (x - 14, y), "right": (x + 14, y), "top": (x, y - 16), "bottom": (x, y + 16)}[edge]
            assert max(_changed_near(img, plain, *inside), _changed_near(img, plain, *outside)) > 3, \
                (name, zoom, edge)
    # hidden with the corner text
    window.state.set_show_text(False)
    hidden, plain = c.grab_view(), _grab_without_markers(c, monkeypatch)
    assert _changed_near(hidden, plain, *inside) == 0 and _changed_near(hidden, plain, *outside) == 0


def test_projection_image_letters_from_patient_orientation(qtbot, window, tmp_path):
    ds = g.base_dataset(SecondaryCaptureImageStorage, "CR")
    ds.PatientOrientation = ["L", "F"]          # PS3.3 C.7.6.1.1.1: row direction, column direction
    g.set_pixels(ds, np.arange(30 * 20, dtype=np.uint16).reshape(30, 20))
    g.save(ds, tmp_path / "cr" / "chest.dcm")
    open_and_wait(qtbot, window, tmp_path / "cr")
    assert window.canvas.edge_labels().as_dict() == {"left": "R", "right": "L", "top": "H", "bottom": "F"}


def test_axial_ct_and_mr_scroll_head_to_feet_and_show_z(qtbot, window, tmp_path):
    """A CT with rows growing posterior and an MR with rows growing anterior (normal -z)
    scroll the same way; the corner shows z, not the projection on the normal."""
    study = generate_uid()
    root = tmp_path / "study"
    oriented_series(root, (1, 0, 0, 0, 1, 0), n=5, modality="CT", start=(0, 0, -30.0), step=5.0,
                    study_uid=study, number=1)
    # normal -z: stepping along it moves towards the feet; z = 27, 24, 21, 18
    oriented_series(root, (1, 0, 0, 0, -1, 0), n=4, modality="MR", start=(0, 0, 27.0), step=3.0,
                    study_uid=study, number=2)
    open_and_wait(qtbot, window, root)
    from medviewer.viewer.ui.overlays import corner_texts

    for series in window.scan_result.all_series():
        window.state.set_series(series)
        settle(qtbot, window)
        zs = []
        for _ in range(len(series.items)):
            zs.append(series.location(window.state.ref()).mm)
            texts = corner_texts(window.state, window.state.header(), None, 1.0, None)
            assert texts["bl"][1] == f"Loc: z {zs[-1]:.2f} mm"
            wheel(window.canvas, -120)          # wheel down: the next slice
            settle(qtbot, window)
        assert zs == sorted(zs, reverse=True), (series.modality, zs)   # head to feet
        if series.modality == "MR":
            assert zs[0] == pytest.approx(27.0)                       # not -27 (the normal's sign)
        assert window.canvas.edge_labels().as_dict()["top"] == ("A" if series.modality == "CT" else "P")


def test_patient_orientation_labels_and_edge_anchors():
    assert patient_orientation_labels("A\\FR").as_dict() == {"left": "P", "right": "A", "top": "HL", "bottom": "FR"}
    assert patient_orientation_labels("L") is None and patient_orientation_labels("X\\F") is None
    geo = ViewGeometry(400, 300, 40, 30, 1.0)                    # fit: 10 px per pixel, 400 x 300
    assert geo.edge_anchors() == {"left": (0.0, 150.0), "right": (400.0, 150.0),
                                  "top": (200.0, 0.0), "bottom": (200.0, 300.0)}
    small = ViewGeometry(400, 300, 40, 30, 1.0, zoom=2.0)         # 80 x 60 in the middle
    assert small.edge_anchors()["left"] == (160.0, 150.0) and small.edge_anchors()["bottom"] == (200.0, 180.0)
    shifted = ViewGeometry(400, 300, 40, 30, 1.0, zoom=20.0, pan=(-300.0, 0.0))  # image x -500 .. 300
    a = shifted.edge_anchors()
    assert a["left"] == (0.0, 150.0) and a["right"] == (300.0, 150.0) and a["top"] == (150.0, 0.0)
    assert ViewGeometry(400, 300, 40, 30, 1.0, zoom=1.0, pan=(1000.0, 0.0)).edge_anchors() == {}


def test_markers_leave_the_corner_text_font_alone(qtbot, window, tmp_path, monkeypatch):
    open_and_wait(qtbot, window, oriented_series(tmp_path / "s", ORIENTATIONS["axial"][0]))
    c = window.canvas
    fonts = []
    import medviewer.viewer.ui.canvas as canvas_mod

    real = canvas_mod.paint_corner_texts
    monkeypatch.setattr(canvas_mod, "paint_corner_texts",
                        lambda p, *a, **k: (fonts.append((p.font().bold(), p.font().pointSize())), real(p, *a, **k)))
    c.grab_view()
    with_markers = fonts[-1]
    monkeypatch.setattr(c, "edge_labels", lambda: None)
    c.grab_view()
    assert fonts[-1] == with_markers and not with_markers[0]


def test_edge_letters_outside_the_image_and_clear_of_corner_texts_and_badges(qtbot):
    """Letters sit outside the image where the view has room; in a narrow view the top /
    bottom letters move below / above the corner lines they would cover, and past badges."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QImage, QPainter

    from medviewer.viewer.ui.overlays import corner_text_boxes, edge_label_boxes

    texts = {"tl": ["CHEST^PHANTOM, ANONYMOUS", "Series 3: CT THORAX WITH CONTRAST", "Im 12/40"],
             "tr": ["Study 2026-11-30"], "bl": ["W 400 L 40 (CT lung window preset)", "Zoom 0.52", "Z -120.5 mm"],
             "br": []}
    letters = {"top": "A", "bottom": "P", "left": "R", "right": "L"}
    img = QImage(240, 320, QImage.Format.Format_RGB32)
    p = QPainter(img)
    try:
        # the image fills a narrow view: letters inside it, clear of the corner lines
        geo = ViewGeometry(240, 320, 240, 320, 1.0)
        corners = corner_text_boxes(p, texts, 240, 320)
        assert len(corners) == 2          # the top-right line has no room beside the top-left ones
        boxes = edge_label_boxes(p, geo.edge_anchors(), letters, 240, 320, corners)
        view = QRectF(0, 0, 240, 320)
        for edge, box in boxes.items():
            assert view.contains(box) and not any(box.intersects(r) for r in corners), edge
        assert boxes["top"].top() > corners[0].bottom() and boxes["bottom"].bottom() < corners[1].top()
        assert abs(boxes["top"].center().x() - 120) < 1 and boxes["left"].left() == pytest.approx(6)
        # a badge under the corner text: the top letter goes below it too
        badge = QRectF(80, boxes["top"].top() - 2, 80, 20)
        below = edge_label_boxes(p, geo.edge_anchors(), letters, 240, 320, corners + [badge])
        assert below["top"].top() > badge.bottom()
        # a small image in a wide view: every letter outside the image, next to its edge
        small = ViewGeometry(1600, 900, 40, 30, 1.0, zoom=10.0)      # 400 x 300 in the middle
        left, top, w, h = small.image_rect()
        image = QRectF(left, top, w, h)
        boxes = edge_label_boxes(p, small.edge_anchors(), letters, 1600, 900, [])
        for edge, box in boxes.items():
            assert not box.intersects(image), edge
        assert boxes["top"].bottom() == pytest.approx(top - 6) and boxes["left"].right() == pytest.approx(left - 6)
    finally:
        p.end()


def test_right_corner_lines_shortened_where_they_would_run_into_the_left_ones(qtbot):
    from PySide6.QtGui import QFont, QFontMetricsF

    from medviewer.viewer.ui.overlays import fit_corner_texts

    font = QFont()
    font.setPointSize(max(9, font.pointSize()))
    fm = QFontMetricsF(font)
    texts = {"tl": ["DEMO, PHANTOM", "ID: DEMO0001", "Born: 1970-01-01"],
             "tr": ["2024-01-01", "Demo CT phantom (generated)"],
             "bl": ["Im 15/48", "Loc: z 22.50 mm"], "br": ["W: 1500  L: -600  (Lung)", "Zoom: 107%"]}
    wide = fit_corner_texts(fm, texts, 1200)
    assert wide == texts
    narrow = fit_corner_texts(fm, texts, 260)
    assert narrow["tl"] == texts["tl"] and narrow["bl"] == texts["bl"]
    assert narrow["tr"][0] == "2024-01-01"
    short = narrow["tr"][1]
    assert short != texts["tr"][1] and (short == "" or short.endswith("\u2026"))
    for left, right in ((narrow["tl"][1], short), (narrow["bl"][-1], narrow["br"][-1])):
        assert fm.horizontalAdvance(left) + fm.horizontalAdvance(right) + 12 <= 260 - 12 + 1e-6
    # bottom rows pair from the bottom: "Zoom" with "Loc", the window line with "Im"
    assert narrow["br"][1] == "Zoom: 107%"
