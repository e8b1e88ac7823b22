"""viewer.state without Qt: viewport state and events, geometry, session, AI results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medviewer.viewer.display import Window
from medviewer.viewer.io.model import ImageRef, Series
from medviewer.viewer.state import AIResults, CamCache, ViewGeometry, ViewportState, ViewSession


def series(uid: str, n: int) -> Series:
    return Series(uid, 1, "CT", "", 8, 8, items=[ImageRef(Path(f"/s/{uid}/{i}.dcm")) for i in range(n)])


def mean_aggregate(probs, method, k):
    return {"mean": probs.mean(0), "max": probs.max(0)}[method]


def test_core_imports_without_qt():
    code = ("import sys, builtins; real = builtins.__import__\n"
            "def block(name, *a, **k):\n"
            "    if name.startswith(('PySide6', 'shiboken6')): raise ImportError('Qt blocked')\n"
            "    return real(name, *a, **k)\n"
            "builtins.__import__ = block\n"
            "import medviewer.viewer.state, medviewer.viewer.display\n"
            "print('ok', any(m.startswith('PySide6') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok False", out.stderr


def test_viewport_events_follow_every_change():
    vp = ViewportState()
    seen: list[tuple] = []
    ev = vp.events
    ev.series_changed.connect(lambda s: seen.append(("series", s.series_uid if s else None)))
    ev.slice_changed.connect(lambda i: seen.append(("slice", i)))
    ev.window_changed.connect(lambda w: seen.append(("window", w)))
    ev.view_changed.connect(lambda: seen.append(("view",)))
    ev.overlays_changed.connect(lambda: seen.append(("overlays",)))
    a = series("a", 5)
    vp.set_series(a)
    assert seen == [("series", "a"), ("slice", 0), ("window", None)]
    seen.clear()
    vp.set_slice(99)
    assert vp.index == 4 and seen == [("slice", 4)]
    vp.set_slice(4)                                  # no change, no event
    assert seen == [("slice", 4)]
    win = Window(40, 400)
    vp.set_window(win)
    vp.set_zoom(100.0)
    assert vp.zoom == 32.0                           # clamped (MAX_ZOOM)
    vp.set_overlay("cam", visible=False, opacity=2.0)
    assert vp.overlay("cam").opacity == 1.0 and not vp.overlay("cam").visible
    assert seen[1:] == [("window", win), ("view",), ("overlays",)]
    # the same series again keeps slice and window; another one starts fresh
    vp.set_series(series("a", 5))
    assert (vp.index, vp.window) == (4, win)
    vp.set_series(series("b", 3))
    assert (vp.index, vp.window, vp.zoom, vp.pan) == (0, None, None, (0.0, 0.0))


def test_update_series_keeps_the_image_the_user_chose():
    vp = ViewportState()
    a = series("a", 4)
    vp.set_series(a)
    vp.set_slice(2)
    shown = vp.ref()
    grown = series("a", 6)
    grown.items = [ImageRef(Path("/s/a/new0.dcm")), ImageRef(Path("/s/a/new1.dcm")), *a.items]
    vp.update_series(grown)
    assert vp.ref() == shown and vp.index == 4


@pytest.mark.parametrize("aspect", [1.0, 0.625, 2.0])
def test_zoom_by_keeps_the_anchor_point_fixed(aspect):
    vp = ViewportState()
    vp.set_series(series("a", 1))
    w, h, cols, rows = 640.0, 480.0, 32, 24
    geo = ViewGeometry(w, h, cols, rows, aspect, vp.zoom, vp.pan)
    anchor = (500.0, 100.0)
    before = geo.screen_to_image(*anchor)
    for factor in (1.25, 1.25, 0.8, 3.0):
        vp.zoom_by(factor, geo.scale(), (anchor[0] - w / 2, anchor[1] - h / 2))
        geo = ViewGeometry(w, h, cols, rows, aspect, vp.zoom, vp.pan)
        assert geo.screen_to_image(*anchor) == pytest.approx(before)
    assert geo.image_to_screen(*geo.screen_to_image(7.0, 9.0)) == pytest.approx((7.0, 9.0))


def test_geometry_fit_and_aspect():
    geo = ViewGeometry(400, 300, 32, 24, aspect=0.5)
    # rows drawn half as high: fit is limited by the width (400/32) not the height (300/12)
    assert geo.fit_scale() == pytest.approx(12.5)
    left, top, width, height = geo.image_rect()
    assert (width, height) == pytest.approx((400, 150)) and top == pytest.approx(75)


def test_session_holds_several_viewports_with_their_own_state():
    session = ViewSession()
    second = session.add_viewport("right")
    session.viewports[0].set_series(series("a", 5))
    second.set_series(series("b", 3))
    session.viewports[0].set_slice(3)
    assert second.index == 0 and second.series.series_uid == "b"
    changed = []
    session.events.active_changed.connect(lambda vp: changed.append(vp.name))
    session.set_active(second)
    assert session.active is second and changed == ["right"]
    # the automatic series windows are shared, and per-image mode hides them
    assert session.needs_series_window("a", 5)
    session.remember_series_window("a", Window(10, 20, name="Auto (series)"), 5)
    assert not session.needs_series_window("a", 5) and session.series_window("a").width == 20
    # computed from a scan snapshot: once more when the scan is complete with more slices
    session.remember_series_window("b", Window(1, 2), 1)
    session.scan_result = type("Snapshot", (), {"complete": False})()
    assert not session.needs_series_window("b", 3)
    session.scan_result = type("Final", (), {"complete": True})()
    assert session.needs_series_window("b", 3) and session.series_window("b") == Window(1, 2)
    session.set_auto_window_per_image(True)
    assert session.series_window("a") is None and not session.needs_series_window("b", 3)
    session.set_scan_result(None)
    assert session.series_windows == {}


def test_ai_results_strip_follows_the_class_choice_and_the_aggregation():
    res = AIResults(mean_aggregate)
    key = ("st", "se", "m")
    res.ensure(key, 4, ["normal", "nodule", "cavity"])
    probs = np.array([[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.5, 0.4, 0.1]], np.float32)
    res.store(key, 0, probs[:2])
    view = res.strip(key)
    assert (view.class_index, view.top) == (0, True)                 # series top class, not the last
    np.testing.assert_array_equal(view.values[:2], probs[:2, 0])
    assert np.isnan(view.values[2:]).all()
    assert view.tooltip(1) == "slice 2: normal 0.600" and view.tooltip(3) == "slice 4: not analysed"
    assert view.label() == "Strip: P(normal) per slice (series top class, mean)"
    res.store(key, 2, probs[2:])
    events = []
    res.choice_changed.connect(lambda: events.append(1))
    res.set_aggregation("max")                                       # max: cavity 0.8 wins
    assert res.strip(key).class_index == 2 and events == [1]
    res.set_class_choice(1)
    view = res.strip(key)
    assert (view.class_index, view.top, view.class_name) == (1, False, "nodule")
    np.testing.assert_array_equal(view.values, probs[:, 1])
    assert "chosen class" in view.label()
    agg, used = res.series_probs(key)
    assert used == 4 and agg == pytest.approx(probs.max(0))
    # a series that gained slices has its results dropped, never shifted
    assert res.results_for(key, 5) is None and res.get(key) is None


def test_cam_cache_keeps_the_most_recent_maps():
    cache = CamCache(size=2)
    for k in "abc":
        cache.put(k, 0, np.zeros((2, 2)))
    assert "a" not in cache and len(cache) == 2
    cache.get("b")
    cache.put("d", 1, np.ones((2, 2)))
    assert "b" in cache and "c" not in cache and cache.get("d")[0] == 1
