"""The reading workstation's Qt-free state: layouts, viewport sync, MPR state, annotations,
and a study's annotations on disk (restore / save) -- on generated DICOM series."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import generate_uid

import dicomgen as g
from medviewer.viewer.display import Window
from medviewer.viewer.io.scan import scan
from medviewer.viewer.io.volume import Volume, VolumeGeometry
from medviewer.viewer.measure.geometry import Distance, Ellipse
from medviewer.viewer.measure.tools import Annotation
from medviewer.viewer.state.annotations import AnnotationSession
from medviewer.viewer.state.layout import LAYOUTS, fill_series, layout_spec
from medviewer.viewer.state.mpr import MprState
from medviewer.viewer.state.sync import ViewportSync, stack_axis
from medviewer.viewer.state.view import ViewSession
from test_ui_orientation import oriented_series


def _series(folder: Path, **kw):
    g.ct_series(folder, **kw)
    return scan(folder).all_series()[0]


# -- layouts --------------------------------------------------------------------------------
def test_layouts_add_viewports_and_fill_them_with_series_not_shown(tmp_path):
    s1 = _series(tmp_path / "a", n=3)
    s2 = _series(tmp_path / "b", n=4)
    session = ViewSession()
    seen = []
    session.events.layout_changed.connect(lambda spec: seen.append(spec.name))
    assert session.set_layout("2x2").cells == 4 and len(session.viewports) == 4
    session.show_series([s1, s2])
    assert [v.series.series_uid if v.series else None for v in session.viewports] == \
        [s1.series_uid, s2.series_uid, None, None]           # never the same series twice
    session.set_active(3)
    session.set_layout("1x2")
    assert session.active_index == 0 and len(session.viewports) == 4   # hidden ones keep their state
    assert session.set_layout("mpr").mpr and session.visible_viewports() == [session.active]
    assert seen == ["2x2", "1x2", "mpr"]
    assert layout_spec("nonsense").name == "1x1" and LAYOUTS["2x1"].rows == 2
    assert fill_series([s1, s2], [s1, s2]) is None


# -- sync -------------------------------------------------------------------------------------
def test_scroll_sync_by_patient_position_in_one_frame_of_reference(tmp_path):
    frame = generate_uid()
    study = generate_uid()
    thin = _series(tmp_path / "thin", n=20, dz=1.0, z0=-10.0, frame_of_reference=frame, study_uid=study)
    thick = _series(tmp_path / "thick", n=5, dz=5.0, z0=-10.0, frame_of_reference=frame, study_uid=study)
    session = ViewSession()
    session.set_layout("1x2")
    a, b = session.viewports[:2]
    sync = ViewportSync(session.visible_viewports)
    for vp in session.viewports:
        sync.attach(vp)
    a.set_series(thin)
    b.set_series(thick)
    sync.set_link("scroll", True)
    assert sync.shared_frame(a, b) and not sync.linked_manually(a)
    thin_axis, thick_axis = stack_axis(thin), stack_axis(thick)
    for index in range(20):
        a.set_slice(index)
        z = thin_axis.points[index][2]
        expected = int(np.argmin(np.abs(thick_axis.points[:, 2] - z)))
        assert b.index == expected, (index, z)
        assert abs(thick_axis.points[b.index][2] - z) <= 2.5     # the nearest 5 mm slice
    b.set_slice(4)                                               # and back: z = -10 (the last)
    assert thin_axis.points[a.index][2] == pytest.approx(-10.0)


def test_manual_link_for_different_frames_of_reference_and_no_sync_across_planes(tmp_path):
    cur = _series(tmp_path / "cur", n=10, dz=2.0, z0=0.0)
    prior = _series(tmp_path / "prior", n=10, dz=2.0, z0=100.0)       # another table position
    session = ViewSession()
    session.set_layout("1x2")
    a, b = session.viewports[:2]
    sync = ViewportSync(session.visible_viewports)
    for vp in session.viewports:
        sync.attach(vp)
    a.set_series(cur)
    b.set_series(prior)
    assert sync.target_index(a, b) is None                # not linked: nothing to go by
    a.set_slice(2)
    b.set_slice(5)
    sync.link_at_current()
    assert sync.links["scroll"] and sync.linked_manually(a) and sync.linked_manually(b)
    a.set_slice(4)                                        # 4 mm towards the feet
    assert b.index == 7
    b.set_slice(9)
    assert a.index == 6
    # a new series in a manually linked viewport drops that viewport's manual link
    sag = scan(oriented_series(tmp_path / "sag", (0, 1, 0, 0, 0, -1), n=6, modality="CT")).all_series()[0]
    assert stack_axis(sag).kind == "sagittal"
    b.set_series(sag)
    assert not sync.linked_manually(b)
    sync.link_at_current()
    before = b.index
    a.set_slice(0)                  # a sagittal stack does not scroll with an axial one
    assert sync.target_index(a, b) is None and b.index == before


def test_window_and_zoom_sync(tmp_path):
    s1 = _series(tmp_path / "a", n=3)
    s2 = _series(tmp_path / "b", n=3)
    session = ViewSession()
    session.set_layout("1x2")
    a, b = session.viewports[:2]
    fits = {id(a): 2.0, id(b): 4.0}
    sync = ViewportSync(session.visible_viewports, lambda vp: fits[id(vp)])
    for vp in session.viewports:
        sync.attach(vp)
    a.set_series(s1)
    b.set_series(s2)
    win = Window(-600, 1500)
    a.set_window(win)
    assert b.window is None                               # off by default
    sync.set_link("window", True)
    sync.set_link("zoom", True)
    a.set_window(win)
    assert b.window == win
    a.set_zoom(3.0)                                       # 1.5x fit in a -> 1.5x fit in b
    assert b.zoom == pytest.approx(6.0)
    a.set_pan(10.0, -4.0)
    assert b.pan == pytest.approx((20.0, -8.0))
    assert sync.describe() == "W/L, zoom/pan"


# -- MPR state ----------------------------------------------------------------------------------
def _volume(n=10, rows=12, cols=14, dz=2.0, ps=(1.0, 1.0)) -> Volume:
    positions = [(0.0, 0.0, -k * dz) for k in range(n)]           # axial, head to feet
    geo = VolumeGeometry(positions, (1, 0, 0), (0, 1, 0), ps, (n, rows, cols))
    data = np.arange(n * rows * cols, dtype=np.int16).reshape(n, rows, cols)
    from medviewer.viewer.display.meta import ImageMeta

    meta = ImageMeta(photometric="MONOCHROME2", bits_stored=16, pixel_representation=1, samples_per_pixel=1,
                     rescale_slope=1.0, rescale_intercept=0.0, pixel_spacing=ps, modality="CT",
                     rows=rows, columns=cols, windows=(Window(500, 1000),))
    return Volume(data, geo, meta)


def test_mpr_state_crosshair_scroll_slices_and_slab():
    m = MprState()
    events = []
    m.events.crosshair_changed.connect(lambda old, new: events.append("x"))
    m.events.slab_changed.connect(lambda: events.append("slab"))
    vol = _volume()
    m.set_volume(vol)
    c0 = np.asarray(m.crosshair.center)
    np.testing.assert_allclose(c0, vol.geometry.center())
    assert m.plane_step("axial") == 2.0 and m.plane_step("coronal") == 1.0
    m.scroll("axial", 1)                                   # one slice towards the feet
    assert np.asarray(m.crosshair.center)[2] == pytest.approx(c0[2] - 2.0)
    m.scroll("axial", 100)                                 # stops at the last slice
    assert np.asarray(m.crosshair.center)[2] == pytest.approx(-18.0)
    assert m.nearest_slice() == 9
    m.go_to_slice(3)
    assert m.nearest_slice() == 3 and np.asarray(m.crosshair.center)[2] == pytest.approx(-6.0)
    m.move_to((1000.0, 5.0, -8.0))                          # clipped into the volume
    assert np.asarray(m.crosshair.center)[0] == pytest.approx(13.0)
    grid = m.grid("axial")
    assert grid is m.grid("axial")                         # cached while the crosshair stays
    m.rotate("axial", math.radians(30))
    assert m.oblique() and not m.crosshair.oblique("axial") and m.crosshair.oblique("coronal")
    m.reset_rotation()
    assert not m.oblique()
    assert m.slab() == ("thin", 0.0)
    m.set_slab("mip", 20.0)
    assert m.slab() == ("mip", 20.0)
    with pytest.raises(ValueError):
        m.set_slab("sum")
    assert "slab" in events and "x" in events


# -- annotations ----------------------------------------------------------------------------------
def test_annotation_session_undo_redo_selection_keys_and_dirty():
    s = AnnotationSession()
    changed = []
    s.events.changed.connect(changed.append)
    a = s.add("study", Annotation(Distance((0, 0), (3, 4)), "sop1"))
    assert a.uid and s.dirty("study") and changed == ["study"]
    s.select("study", a.uid)
    moved = s.replace("study", a, Annotation(Distance((1, 1), (4, 5)), "sop1"))
    assert moved.uid == a.uid and s.on_image("study", "sop1", None)[0].shape.p0 == (1, 1)
    s.remove("study", moved)
    assert s.annotations("study") == [] and s.selected is None   # the selection went with it
    assert s.undo("study") and s.undo("study")
    assert s.annotations("study")[0].shape == Distance((0, 0), (3, 4))
    assert s.redo("study") and s.annotations("study")[0].shape.p0 == (1, 1)
    s.mark_saved("study")
    assert not s.dirty("study")
    assert s.toggle_key("study", "sop1", None) and s.is_key("study", "sop1", None)
    assert not s.toggle_key("study", "sop1", None)
    restored = Annotation(Ellipse(0, 0, 4, 4), "sop2", uid="1.2.3")
    assert s.restore("study", [restored, restored]) == 2 and not s.dirty("study")
    s.clear()
    assert s.annotations("study") == [] and s.key_images("study") == []


# -- a study's annotations on disk ------------------------------------------------------------------
def test_save_and_restore_a_study_with_an_ohif_report_and_key_images(tmp_path):
    import pydicom

    from medviewer.viewer.io.pixels import PixelStore
    from medviewer.viewer.measure.stats import measure
    from medviewer.viewer.measure.study import image_index, image_label, restore_study, save_key_images, save_study
    from test_measure_report import ohif_report

    root = tmp_path / "study"
    paths, _uid = g.ct_series(root, n=4, rows=20, cols=20)
    result = scan(root)
    study = result.studies[0]
    series = study.series[0]
    index = image_index(study.series)
    store = PixelStore()
    try:
        ref = series.items[1]
        sop = str(series.headers[ref.path].SOPInstanceUID)
        assert image_label(index, Annotation(Distance((0, 0), (1, 1)), sop)) == "Se 1 Im 2"
        shape = Ellipse(2, 2, 12, 10)
        numbers = measure(shape, store.get(ref), store.meta(ref))
        first = Annotation(shape, sop, None, numbers=numbers, uid="2.25.1")
        save_study(root, study, [first, Annotation(Distance((1, 1), (9, 9)), "not-in-study")])
        # a later save without the distance: only the newest own report counts
        import time

        time.sleep(1.1)
        path = save_study(root, study, [first])
        assert path.parent == root
        ohif_report(root / "ohif.dcm", pydicom.dcmread(paths[2]))
        save_key_images(root, study, [(sop, None)])
        result = scan(root)
        restored = restore_study(result, result.studies[0], store)
        assert not restored.problems
        uids = {a.uid for a in restored.annotations}
        assert "2.25.1" in uids and len(restored.reports) == 2
        ours = next(a for a in restored.annotations if a.uid == "2.25.1")
        assert ours.shape == shape and ours.numbers["mean"] == pytest.approx(numbers["mean"])
        ohif = [a for a in restored.annotations if a.uid != "2.25.1"]
        assert ohif and all(a.sop_instance_uid == str(pydicom.dcmread(paths[2]).SOPInstanceUID) for a in ohif)
        assert restored.key_images == [(sop, None)]
    finally:
        store.close()
