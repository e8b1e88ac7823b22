"""viewer.ui.ai with pytest-qt (offscreen): picker, analysis worker, strip, stale results,
cancel, Grad-CAM overlay, export, model files loaded directly.  (The GUI heartbeat while
300 slices are classified is in bench/bench_ui_responsiveness.py and test_ui_heartbeat.py.)"""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

import dicomgen
from test_engine_modelfile import make_model_file
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.window import MainWindow


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("aistudy")
    study_uid = "1.2.826.0.1.3680043.8.498.4242"
    _, uid_a = dicomgen.ct_series(root / "a", n=300, rows=32, cols=32, series_number=1, study_uid=study_uid)
    _, uid_b = dicomgen.ct_series(root / "b", n=12, rows=40, cols=24, series_number=2, study_uid=study_uid)
    return root, uid_a, uid_b


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    make_model_file(d / "tiny.safetensors", arch="resnet18", classes=("normal", "lesion"), size=32,
                    intended_use="research", metrics={"auc": 0.75})
    (d / "broken.safetensors").write_bytes(b"not a model")
    return d


@pytest.fixture()
def win(qtbot, tmp_path, monkeypatch, models_dir, study):
    monkeypatch.setenv("MEDVIEWER_SETTINGS_DIR", str(tmp_path / "settings"))
    monkeypatch.setenv("MEDVIEWER_MODELS_DIR", str(models_dir))
    from medviewer.viewer.ui.ai import install

    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.show()
    ai = install(w)
    root, uid_a, uid_b = study
    w.open_path(root)
    qtbot.waitUntil(lambda: w.scan_result is not None and not w.is_scanning(), timeout=30000)
    yield w, ai
    ai.shutdown()
    w.shutdown()


def _series(w, uid):
    return next(s for s in w.scan_result.all_series() if s.series_uid == uid)


def _load(qtbot, ai, models_dir):
    ai.load_model(str(models_dir / "tiny.safetensors"))
    qtbot.waitUntil(lambda: ai.model is not None, timeout=30000)


def _show_grid_slice(qtbot, w, uid, index):
    """Show slice `index` of the 24x40 image-grid series and wait until it is drawn."""
    w.state.set_series(_series(w, uid))
    w.state.set_slice(index)
    qtbot.waitUntil(lambda: w.canvas.image_size() == (24, 40), timeout=10000)


def test_picker_lists_models_with_card_and_errors(win, models_dir):
    w, ai = win
    items = [ai.picker.list.item(i) for i in range(ai.picker.list.count())]
    labels = [it.text() for it in items]
    assert any(lbl.startswith("tiny 1.0 (resnet18, 2 classes") for lbl in labels)
    assert any("broken.safetensors (unusable)" in lbl for lbl in labels)
    tiny = next(it for it in items if it.text().startswith("tiny"))
    ai.picker.list.setCurrentItem(tiny)
    text = ai.picker.details.text()
    assert "normal, lesion" in text and "research" in text and "auc" in text
    broken = next(it for it in items if "broken" in it.text())
    ai.picker.list.setCurrentItem(broken)
    assert "not a safetensors model file" in ai.picker.details.text()
    assert not ai.picker.use_button.isEnabled()


def test_analyze_series_strip_and_panel(qtbot, win, models_dir, study):
    w, ai = win
    root, uid_a, _ = study
    _load(qtbot, ai, models_dir)
    assert ai.panel.notice.isVisible() and "Not validated" in ai.panel.notice.text()
    assert "tiny" in ai.panel.header.text() and "cpu" in ai.panel.header.text()
    # the header names the file in use (two models of one name are told apart)
    assert "tiny.safetensors" in ai.panel.header.text() and str(models_dir) in ai.panel.header.text()
    w.state.set_series(_series(w, uid_a))
    qtbot.waitUntil(lambda: w.state.series is not None)
    gen = ai.analyze_series()
    assert gen is not None
    qtbot.waitUntil(lambda: ai.strip.filled() == 300 and not ai.panel.progress.isVisible(), timeout=120000)

    # strip, panel and series result agree with the engine
    probs = ai.probs
    assert probs.shape == (300, 2) and not np.isnan(probs).any()
    top = int(np.argmax(probs.mean(0)))              # "Top class": the series' top class (mean)
    np.testing.assert_allclose(ai.strip.values, probs[:, top])
    assert ai.strip.caption == f"Strip: P({('normal', 'lesion')[top]}) per slice (series top class, mean)"
    assert "mean over 300/300 slices" in ai.panel.series_label.text()
    assert "Analyzed 300 image(s)" in ai.panel.status.text()
    ai.panel.aggregation.setCurrentIndex(1)          # max over slices
    assert "max over 300/300 slices" in ai.panel.series_label.text()
    assert f"{probs.max(0).max():.3f}" in ai.panel.series_label.text()
    ai.panel.aggregation.setCurrentIndex(2)
    assert "topk_mean(k=3) over 300/300" in ai.panel.series_label.text()
    w.state.set_slice(7)
    assert ai.panel.bars[ai.panel.top_index][2].text() == f"{probs[7].max():.3f}"
    # clicking a cell jumps to that slice
    rect = ai.strip.cell_rect(123)
    qtbot.mouseClick(ai.strip, Qt.MouseButton.LeftButton, pos=rect.center().toPoint())
    assert w.state.index == 123 and ai.strip.current == 123


def test_stale_results_dropped_when_series_changes(qtbot, win, models_dir, study):
    w, ai = win
    _, uid_a, uid_b = study
    _load(qtbot, ai, models_dir)
    w.state.set_series(_series(w, uid_a))
    gen = ai.analyze_series()
    w.state.set_series(_series(w, uid_b))     # the user moves on at once
    qtbot.waitUntil(lambda: ai.pool.activeThreadCount() == 0, timeout=60000)
    qtbot.wait(50)
    assert not ai.router.is_current(gen)
    assert ai.probs is None and ai.strip.filled() == 0 and not ai.strip.isVisible()
    assert ai.panel.top_index is None
    # analysing B now works and only B's cells fill
    ai.analyze_series()
    qtbot.waitUntil(lambda: ai.strip.filled() == 12 and not ai.panel.progress.isVisible(), timeout=60000)
    assert ai.probs.shape == (12, 2)


def test_cancel_stops_between_batches(qtbot, win, models_dir, study):
    w, ai = win
    _, uid_a, _ = study
    _load(qtbot, ai, models_dir)
    w.state.set_series(_series(w, uid_a))
    ai.analyze_series()
    qtbot.waitUntil(lambda: ai.strip.filled() > 0, timeout=60000)
    ai.cancel()
    qtbot.waitUntil(lambda: not ai.panel.progress.isVisible(), timeout=60000)
    assert "cancelled" in ai.panel.status.text()
    assert 0 < ai.strip.filled() < 300


def test_gradcam_overlay_on_image_grid_and_export(qtbot, win, models_dir, study, tmp_path):
    w, ai = win
    _, _, uid_b = study
    _load(qtbot, ai, models_dir)
    _show_grid_slice(qtbot, w, uid_b, 5)
    plain = tmp_path / "plain.png"
    ai.export_png(plain)
    ai.cam.enabled.setChecked(True)
    qtbot.waitUntil(lambda: ai.cam_layer.shown is not None, timeout=60000)
    assert "gradcam" in w.canvas.overlay_names()
    ov = w.canvas._layers["gradcam"]
    assert ov.rgba.shape == (40, 24, 4) and ov.ref == w.state.ref()
    # class selector recomputes for that class; opacity/colormap only recolour
    ai.cam.target.setCurrentIndex(1)   # "normal"
    qtbot.waitUntil(lambda: ai.cam_layer.shown is not None and ai.cam_layer.shown[2] == 0, timeout=60000)
    ai.cam.opacity.setValue(80)
    assert abs(w.canvas.overlay_opacity("gradcam") - 0.8) < 1e-6
    w.state.set_zoom(3.0)
    w.state.set_pan(15, -10)
    out = ai.export_png(tmp_path / "view.png")
    a, b = QImage(str(plain)), QImage(str(out))
    assert not b.isNull() and a.size() == b.size() and a != b
    ai.cam.enabled.setChecked(False)
    assert "gradcam" not in w.canvas.overlay_names()
    # a CAM for another slice never paints on this one
    w.state.set_slice(6)
    assert "gradcam" not in w.canvas.overlay_names()


def test_device_setting_reloads_model(qtbot, win, models_dir):
    w, ai = win
    _load(qtbot, ai, models_dir)
    first = ai.model
    ai.picker.device.setCurrentText("cpu")
    assert w.settings.value("ai/device", "auto") == "cpu"
    qtbot.waitUntil(lambda: ai.model is not None and ai.model.device.type == "cpu", timeout=30000)
    assert ai.model.card == first.card
    assert w.settings.value("ai/model", "") == str(models_dir / "tiny.safetensors")


def test_analyze_image_single_slice(qtbot, win, models_dir, study):
    w, ai = win
    _, _, uid_b = study
    _load(qtbot, ai, models_dir)
    w.state.set_series(_series(w, uid_b))
    w.state.set_slice(3)
    ai.analyze_image()
    qtbot.waitUntil(lambda: ai.strip.filled() == 1 and not ai.panel.progress.isVisible(), timeout=60000)
    assert not np.isnan(ai.probs[3]).any() and np.isnan(ai.probs[2]).all()
    assert ai.panel.top_index is not None and "slice 4" in ai.panel.timing.text()
    assert "Analyzed 1 image(s)" in ai.panel.status.text()


def test_overlay_pixels_land_on_their_image_pixels_under_zoom_and_pan(qtbot, win, models_dir, study):
    w, ai = win
    _, _, uid_b = study
    _load(qtbot, ai, models_dir)
    _show_grid_slice(qtbot, w, uid_b, 2)
    cam = np.zeros((40, 24), np.float32)
    cam[30, 5] = 1.0                                  # one hot source pixel (row 30, col 5)
    ai.cam.enabled.blockSignals(True)
    ai.cam.enabled.setChecked(True)
    ai.cam.enabled.blockSignals(False)
    ai.cam.opacity.blockSignals(True)
    ai.cam.opacity.setValue(100)
    ai.cam.opacity.blockSignals(False)
    key = ai.cam_layer.key()
    ai.results.cams.put(key, 1, cam)
    ai.cam_layer.paint(key)
    from medviewer.engine.overlay import colormap_lut

    hot, cold = colormap_lut("jet")[255], colormap_lut("jet")[0]
    for zoom, pan in [(2.0, (0, 0)), (7.5, (40, -25)), (11.0, (-60, 30))]:
        w.state.set_zoom(zoom)
        w.state.set_pan(*pan)
        qtbot.wait(10)
        img = w.canvas.grab_view()
        ratio = img.devicePixelRatio() or 1.0
        for (r, c), expect in [((30, 5), hot), ((30, 6), cold), ((29, 5), cold), ((31, 5), cold)]:
            pt = w.canvas.image_to_screen(c + 0.5, r + 0.5)
            px = img.pixelColor(int(pt.x() * ratio), int(pt.y() * ratio))
            got = (px.red(), px.green(), px.blue())
            assert max(abs(int(a) - int(b)) for a, b in zip(got, expect)) <= 40, (zoom, pan, (r, c), got)


def test_demo_flag_loads_the_bundled_demo_model(qtbot, tmp_path, monkeypatch):
    """`medviewer --demo` opens the demo study with the shipped demo model loaded,
    its card shown and the not-validated notice visible; a saved model wins."""
    monkeypatch.setenv("MEDVIEWER_SETTINGS_DIR", str(tmp_path / "settings"))
    from medviewer.viewer.ui.app import create_window, parse_args

    w = create_window(parse_args(["--demo"]))
    qtbot.addWidget(w)
    w.show()
    ai = w.ai
    try:
        qtbot.waitUntil(lambda: ai.model is not None, timeout=60000)
        assert ai.model.card.intended_use == "demo"
        assert ai.model.path.name == "demo.safetensors"
        assert "demo" in ai.panel.notice.text() and not ai.panel.notice.isHidden()
        assert ai.load_default_model() is False          # already loaded: nothing to do
        assert "medviewer-demo" in ai.picker.details.text()   # the picker shows the card in use
        qtbot.waitUntil(lambda: w.scan_result is not None and not w.is_scanning(), timeout=60000)
        ai.analyze_image()
        qtbot.waitUntil(lambda: ai.panel.top_index is not None, timeout=60000)
        assert set(ai.model.classes) == {"cavity", "nodule", "normal", "spiculated"}
    finally:
        ai.shutdown()
        w.shutdown()


def _biased_model(path, classes=("normal", "nodule", "cavity"), favour=0, name="tiny"):
    """A 3-class model whose top class is `favour` (not the last class) on any input."""
    import torch

    from medviewer.engine.card import ModelCard
    from medviewer.engine.modelfile import save_model
    from medviewer.engine.registry import build_model, head_spec

    torch.manual_seed(1)
    module = build_model("resnet18", len(classes)).eval()
    with torch.no_grad():
        module.fc.weight.mul_(0.01)
        module.fc.bias.zero_()
        module.fc.bias[favour] = 3.0
    save_model(path, module, ModelCard(name=name, architecture="resnet18", classes=list(classes),
                                       input_size=32, head=head_spec(), intended_use="research"))
    return path


def test_strip_shows_the_class_named_in_the_panel_and_follows_the_selector(qtbot, win, study, tmp_path):
    w, ai = win
    _, uid_a, uid_b = study
    ai.load_model(str(_biased_model(tmp_path / "three.safetensors")))
    qtbot.waitUntil(lambda: ai.model is not None and len(ai.model.classes) == 3, timeout=30000)
    w.state.set_series(_series(w, uid_b))
    ai.analyze_series()
    qtbot.waitUntil(lambda: ai.strip.filled() == 12 and not ai.panel.progress.isVisible(), timeout=60000)
    probs = ai.probs.copy()
    assert int(np.argmax(probs.mean(0))) == 0          # the top class is not the last one
    # "Top class": the series' top class, named
    np.testing.assert_allclose(ai.strip.values, probs[:, 0])
    assert ai.strip.caption == "Strip: P(normal) per slice (series top class, mean)"
    # every selector change recolours at once from the stored probabilities (no new analysis)
    started = ai.jobs.generation
    for index, cls in ((1, 0), (2, 1), (3, 2), (0, 0)):
        ai.cam.target.setCurrentIndex(index)
        np.testing.assert_allclose(ai.strip.values, probs[:, cls])
        assert f"P({ai.model.classes[cls]})" in ai.strip.caption
        assert ("series top class" in ai.strip.caption) == (index == 0)
    assert ai.jobs.generation == started
    # a tooltip per slice with that class's probability
    ai.cam.target.setCurrentIndex(3)
    x = ai.strip.cell_rect(4).center().x()
    assert ai.strip.tooltip_at(x).startswith(f"slice 5: cavity {probs[4, 2]:.3f}")
    # the strip's top class follows the panel's aggregation too
    ai.cam.target.setCurrentIndex(0)
    ai.panel.aggregation.setCurrentIndex(1)            # max over slices
    top_max = int(np.argmax(probs.max(0)))
    np.testing.assert_allclose(ai.strip.values, probs[:, top_max])
    assert "max" in ai.strip.caption


def test_gradcam_caption_goes_with_the_layer(qtbot, win, models_dir, study):
    w, ai = win
    _, _, uid_b = study
    _load(qtbot, ai, models_dir)
    _show_grid_slice(qtbot, w, uid_b, 3)
    ai.cam.enabled.setChecked(True)
    qtbot.waitUntil(lambda: ai.cam_layer.shown is not None, timeout=60000)
    assert ai.cam.caption.text().startswith("Grad-CAM: '") and "slice 4" in ai.cam.caption.text()
    ai.cam.enabled.setChecked(False)
    assert ai.cam.caption.text() == "" and "gradcam" not in w.canvas.overlay_names()
    assert "Grad-CAM" not in ai.panel.status.text()


def test_model_file_loaded_directly_or_dropped_and_told_apart(qtbot, win, models_dir, study, tmp_path):
    from PySide6.QtCore import QMimeData, QPointF, QUrl
    from PySide6.QtGui import QDropEvent

    w, ai = win
    other = tmp_path / "elsewhere"
    other.mkdir()
    # a second model named "tiny", outside the models folder
    _biased_model(other / "tiny_v2.safetensors", name="tiny")
    ai.load_model_file(other / "tiny_v2.safetensors")
    qtbot.waitUntil(lambda: ai.model is not None and ai.model.path.name == "tiny_v2.safetensors", timeout=30000)
    header = ai.panel.header.text()
    assert "tiny_v2.safetensors" in header and str(other) in header
    labels = [ai.picker.list.item(i).text() for i in range(ai.picker.list.count())]
    tiny = [lbl for lbl in labels if lbl.startswith("tiny")]
    assert len(tiny) == 2 and len(set(tiny)) == 2 and any("tiny_v2.safetensors" in lbl for lbl in tiny)
    assert ai.picker.list.currentItem().text() in tiny and "tiny_v2" in ai.picker.list.currentItem().text()
    # dropping a model file loads it (it is not opened as a study)
    scan_before = w.scan_result
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(models_dir / "tiny.safetensors"))])
    w.dropEvent(QDropEvent(QPointF(5, 5), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton,
                           Qt.KeyboardModifier.NoModifier))
    qtbot.waitUntil(lambda: ai.model.path == models_dir / "tiny.safetensors", timeout=30000)
    assert w.scan_result is scan_before and not w.is_scanning()
    assert str(models_dir) in ai.panel.header.text()
    # AI > Load model file... is in the menu
    assert any(a.text() == "Load model file..." for a in w.ai_menu.actions())
