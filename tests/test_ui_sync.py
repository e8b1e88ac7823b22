"""Synchronised viewports and prior comparison with pytest-qt: scroll sync across two series
of one frame of reference (the wheel in one viewport moves the other to the same place),
the toggles and their badges, window sync, File > Open prior with the compare layout,
the warning for another patient, and a prior folder dropped on a viewport."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QUrl
from pydicom.uid import generate_uid

import dicomgen as g
from medviewer.viewer.display import PRESETS
from medviewer.viewer.state.sync import stack_axis
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.window import MainWindow
from test_ui_layouts import _drop
from test_ui_window import open_and_wait, wheel

PATIENT = ("Doe^Jane", "PAT42")


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.resize(1200, 760)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.shutdown()


def _one_frame_study(root):
    """Thin (1 mm) and thick (5 mm) axial series of one study and frame of reference."""
    study, frame = generate_uid(), generate_uid()
    g.ct_series(root / "thin", n=20, dz=1.0, z0=-10.0, study_uid=study, frame_of_reference=frame,
                description="Thin 1 mm", series_number=2, patient=PATIENT)
    g.ct_series(root / "thick", n=5, dz=5.0, z0=-10.0, study_uid=study, frame_of_reference=frame,
                description="Thick 5 mm", series_number=3, patient=PATIENT)
    return root


def _badges(w, i):
    return [text for text, _c in w.reading.badges.of(w.session.viewports[i])]


def test_scroll_sync_across_two_series_of_one_frame_of_reference(qtbot, window, tmp_path):
    w = window
    open_and_wait(qtbot, w, _one_frame_study(tmp_path / "study"))
    w.actions_by_name["layout_1x2"].trigger()
    left, right = w.grid.viewports[:2]
    thin = next(s for s in (left.state.series, right.state.series) if len(s.items) == 20)
    if left.state.series is not thin:
        left.state.set_series(thin)
        right.state.set_series(next(s for s in w.scan_result.all_series() if len(s.items) == 5))
    assert not w.actions_by_name["sync_scroll"].isChecked()
    wheel(left.canvas, -120)
    assert left.state.index == 1 and right.state.index == 0     # not linked yet
    w.actions_by_name["sync_scroll"].trigger()
    assert _badges(w, 0) == ["Linked: scroll"] and _badges(w, 1) == ["Linked: scroll"]
    thin_axis, thick_axis = stack_axis(left.state.series), stack_axis(right.state.series)
    for _ in range(12):
        wheel(left.canvas, -120)
        z = thin_axis.points[left.state.index][2]
        assert abs(thick_axis.points[right.state.index][2] - z) <= 2.5, (left.state.index, right.state.index)
    assert right.state.index == int(np.argmin(np.abs(thick_axis.points[:, 2] - z)))
    # the other way round: the thick series drives the thin one to the same position
    wheel(right.canvas, -120)
    assert thin_axis.points[left.state.index][2] == pytest.approx(thick_axis.points[right.state.index][2])
    # window / level sync: off by default, then both follow
    w.actions_by_name["preset_lung"].trigger()                     # acts on the active (right) one
    assert right.state.window == PRESETS["lung"] and left.state.window is None
    w.actions_by_name["sync_window"].trigger()
    w.actions_by_name["preset_bone"].trigger()
    assert left.state.window == right.state.window == PRESETS["bone"]
    assert _badges(w, 0) == ["Linked: scroll, W/L"]
    # toggled off: the viewports scroll on their own again
    w.actions_by_name["sync_scroll"].trigger()
    before = right.state.index
    wheel(left.canvas, 120)
    assert right.state.index == before and _badges(w, 0) == ["Linked: W/L"]


def _study(root, date, z0=-20.0, patient=PATIENT, n=12):
    g.ct_series(root, n=n, dz=2.5, z0=z0, description="Chest", series_number=2, patient=patient,
                study_date=date)
    return root


def test_open_prior_compares_side_by_side_with_scroll_sync(qtbot, window, tmp_path, monkeypatch):
    w = window
    open_and_wait(qtbot, w, _study(tmp_path / "current", "20240301"))
    w.state.set_slice(4)
    assert not w.actions_by_name["compare_prior"].isEnabled()
    monkeypatch.setattr("medviewer.viewer.ui.prior.QFileDialog.getExistingDirectory",
                        lambda *a, **k: str(_study(tmp_path / "prior", "20230301", z0=-15.0)))
    w.actions_by_name["open_prior"].trigger()
    qtbot.waitUntil(lambda: w.session.layout == "1x2" and w.session.viewports[1].series is not None,
                    timeout=10000)
    cur, prior = w.session.viewports[:2]
    assert w.session.is_prior(prior.series) and not w.session.is_prior(cur.series)
    assert _badges(w, 0) == ["Linked: scroll (offset)", "CURRENT 2024-03-01"]
    assert _badges(w, 1) == ["Linked: scroll (offset)", "PRIOR 2023-03-01"]
    assert any(w.browser.item(i).text().startswith("Prior 2023-03-01") for i in range(w.browser.count()))
    # put at the same place in the patient (z), then linked: scrolling moves both the same mm
    ca, pa = stack_axis(cur.series), stack_axis(prior.series)
    assert pa.points[prior.index][2] == pytest.approx(ca.points[cur.index][2])
    offset = prior.index - cur.index
    wheel(w.grid.viewports[0].canvas, -120)
    wheel(w.grid.viewports[0].canvas, -120)
    assert cur.index == 6 and prior.index == 6 + offset
    # back to 1x1 and to the compare layout again
    w.actions_by_name["layout_1x1"].trigger()
    w.actions_by_name["compare_prior"].trigger()
    assert w.session.layout == "1x2" and w.session.viewports[1].series is prior.series


def test_a_prior_of_another_patient_needs_confirmation(qtbot, window, tmp_path, monkeypatch):
    w = window
    open_and_wait(qtbot, w, _study(tmp_path / "current", "20240301"))
    asked = []
    monkeypatch.setattr(w.reading.priors, "confirm_other_patient", lambda text: asked.append(text) or False)
    w.reading.priors.open_prior(_study(tmp_path / "other", "20230301", patient=("Roe^Richard", "PAT99")))
    qtbot.waitUntil(lambda: bool(asked), timeout=10000)
    assert "another patient" in asked[0] and "PAT99" in asked[0] and "PAT42" in asked[0]
    qtbot.wait(50)
    assert w.session.priors == [] and w.session.layout == "1x1"
    assert "not opened (another patient)" in w.statusBar().currentMessage()


def test_a_folder_dropped_on_a_viewport_opens_as_prior_there(qtbot, window, tmp_path):
    w = window
    open_and_wait(qtbot, w, _study(tmp_path / "current", "20240301"))
    w.actions_by_name["layout_2x2"].trigger()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(_study(tmp_path / "prior", "20230301")))])
    target = w.grid.viewports[2]
    assert _drop(target, mime) == (True, True)
    qtbot.waitUntil(lambda: target.state.series is not None, timeout=10000)
    assert w.session.is_prior(target.state.series) and w.session.layout == "2x2"
    assert w.session.active_index == 2 and _badges(w, 2) == ["PRIOR 2023-03-01"]
    assert w.scan_result.studies[0].date == "20240301"       # the current study stays
