"""Test-time augmentation (engine.tta): views, predict --tta, the trainer's --tta and the card."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import dicomgen
from test_engine_modelfile import make_model_file
from medviewer import engine
from medviewer.engine.modelfile import load_model
from medviewer.engine.tta import TTASpec, tta_probs, views
from medviewer.viewer.cli import main


def test_views_mirror_and_shift_with_the_image_minimum():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    v = list(views(x, TTASpec(hflip=True)))
    assert len(v) == 2 and torch.equal(v[0], x) and torch.equal(v[1], x.flip(-1))
    v = list(views(x, TTASpec(hflip=True, shift=0.25)))      # 2 pixels on an 8-pixel input
    assert len(v) == 10 == TTASpec(True, 0.25).n_views()
    up = v[1]                                                 # moved up by 2 rows
    assert torch.equal(up[:, :, :6], x[:, :, 2:])
    assert torch.equal(up[:, :, 6:], x.amin(dim=(1, 2, 3), keepdim=True).expand(2, 3, 2, 8))
    assert torch.equal(v[5], x.flip(-1))
    with pytest.raises(ValueError, match="shift"):
        TTASpec(True, 0.5)


def test_tta_probs_average_the_views():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4))
    x = torch.randn(5, 3, 8, 8)
    spec = TTASpec(True, 0.125)
    want = torch.stack([torch.softmax(net(v), 1) for v in views(x, spec)]).mean(0)
    assert torch.allclose(tta_probs(net, x, spec), want, atol=1e-6)
    assert torch.allclose(tta_probs(net, x, None), torch.softmax(net(x), 1))


def test_predict_with_tta_is_the_mean_over_the_mirrored_image(tmp_path):
    p = tmp_path / "m.safetensors"
    make_model_file(p, arch="resnet18", classes=("a", "b"), size=32)
    m = load_model(p, device="cpu", cache=False)
    img = np.random.default_rng(1).integers(0, 4000, (32, 32), dtype=np.uint16)   # input size: no resize
    mirrored = np.ascontiguousarray(img[:, ::-1])
    got = engine.predict(m, [img], tta=TTASpec(hflip=True))
    # auto window of the mirror is the same; preprocessing commutes with the mirror at the input size
    want = (engine.predict(m, [img]) + engine.predict(m, [mirrored])) / 2
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert not np.allclose(got, engine.predict(m, [img]), atol=1e-4)


def test_predict_cli_tta_and_the_card_note(tmp_path, capsys):
    p = tmp_path / "m.safetensors"
    make_model_file(p, arch="resnet18", classes=("a", "b"), size=32, tta={"hflip": True, "shift": 0.0})
    dicomgen.ct_series(tmp_path / "ct", n=3, rows=32, cols=32)
    assert main(["predict", str(tmp_path / "ct"), "--model", str(p), "--json", "-"]) == 0
    cap = capsys.readouterr()
    assert "measured with test-time augmentation" in cap.err and "tta" not in json.loads(cap.out)
    assert main(["predict", str(tmp_path / "ct"), "--model", str(p), "--json", "-", "--tta",
                 "--tta-shift", "0.05"]) == 0
    cap = capsys.readouterr()
    assert json.loads(cap.out)["tta"] == {"hflip": True, "shift": 0.05} and "test-time" not in cap.err
    assert main(["predict", str(tmp_path / "ct"), "--model", str(p), "--tta-shift", "0.05"]) == 2
    assert "--tta-shift needs --tta" in capsys.readouterr().err


def test_trainer_tta_is_recorded_in_the_card_and_report(tmp_path):
    from medviewer.engine.train.cli import main_train
    from medviewer.engine.train.synth import make_dataset

    data = make_dataset(tmp_path / "d", ["normal", "nodule"], n=8, size=32, seed=2)
    out = tmp_path / "o"
    assert main_train(["--data", str(data), "--out", str(out), "--arch", "mobilenet_v3_small", "--image-size",
                       "32", "--epochs", "1", "--device", "cpu", "--no-report", "--tta", "--tta-shift",
                       "0.1", "--bootstrap", "50"]) == 0
    card = load_model(out / "model.safetensors", device="cpu", cache=False).card
    assert card.tta == {"hflip": True, "shift": 0.1}
    rep = json.loads((out / "report.json").read_text())
    assert rep["hyperparameters"]["tta"] is True and rep["hyperparameters"]["tta_shift"] == 0.1
