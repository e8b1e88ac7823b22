"""An ensemble model file in the viewer: picker card lists members; analysis and Grad-CAM run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dicomgen
from test_engine_modelfile import make_model_file
from medviewer import engine
from medviewer.engine.ensemble import make_ensemble
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.window import MainWindow


@pytest.fixture()
def setup(qtbot, tmp_path, monkeypatch):
    models = tmp_path / "models"
    models.mkdir()
    make_model_file(tmp_path / "a.safetensors", arch="resnet18", classes=("normal", "lesion"), size=32)
    torch.manual_seed(2)
    make_model_file(tmp_path / "b.safetensors", arch="mobilenet_v3_small", classes=("normal", "lesion"), size=48,
                    window={"center": 40, "width": 400})
    make_ensemble([tmp_path / "a.safetensors", tmp_path / "b.safetensors"], models / "pair.safetensors",
                  weights=[1, 1], name="pair")
    dicomgen.ct_series(tmp_path / "study", n=6, rows=40, cols=24)
    monkeypatch.setenv("MEDVIEWER_SETTINGS_DIR", str(tmp_path / "settings"))
    monkeypatch.setenv("MEDVIEWER_MODELS_DIR", str(models))
    from medviewer.viewer.ui.ai import install

    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.show()
    ai = install(w)
    w.open_path(tmp_path / "study")
    qtbot.waitUntil(lambda: w.scan_result is not None and not w.is_scanning(), timeout=30000)
    yield w, ai, models / "pair.safetensors"
    ai.shutdown()
    w.shutdown()


def test_ensemble_opens_in_the_viewer(qtbot, setup):
    w, ai, path = setup
    items = [ai.picker.list.item(i) for i in range(ai.picker.list.count())]
    pair = next(it for it in items if it.text().startswith("pair 1.0 (ensemble of 2"))
    ai.picker.list.setCurrentItem(pair)
    details = ai.picker.details.text()
    assert "ensemble of 2" in details and "resnet18" in details and "mobilenet_v3_small" in details
    assert "C 40 / W 400" in details and "weight 0.50" in details
    ai.load_model(str(path))
    qtbot.waitUntil(lambda: ai.model is not None, timeout=60000)
    series = w.scan_result.all_series()[0]
    w.state.set_series(series)
    ai.analyze_series()
    qtbot.waitUntil(lambda: ai.strip.filled() == 6 and not ai.panel.progress.isVisible(), timeout=120000)
    want = engine.predict(engine.load_model(path, device="cpu"),
                          [(w.pixels.get(r), w.pixels.meta(r)) for r in series.items])
    np.testing.assert_allclose(ai.probs[:6], want, atol=1e-5)
    w.state.set_slice(2)
    ai.cam.enabled.setChecked(True)
    qtbot.waitUntil(lambda: ai.cam_layer.shown is not None, timeout=60000)
    ov = w.canvas._layers["gradcam"]
    assert ov.rgba.shape == (40, 24, 4)
