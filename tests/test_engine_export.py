"""`medviewer export-model`: ONNX (onnxruntime) and TorchScript reproduce torch's logits."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch

from test_engine_modelfile import make_model_file
from medviewer.engine.ensemble import make_ensemble
from medviewer.engine.export import (card_from_onnx, export_onnx, export_torchscript, onnx_logits,
                                     reference_logits, torchscript_logits)
from medviewer.engine.modelfile import load_model
from medviewer.viewer.cli import main


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("exp") / "m.safetensors"
    make_model_file(p, arch="mobilenet_v3_small", classes=("a", "b", "c"), size=48,
                    head={"hidden": [16], "dropout": 0.2, "batchnorm": True})
    return p


def inputs(n: int, size: int = 48) -> np.ndarray:
    return np.random.default_rng(n).standard_normal((n, 3, size, size)).astype(np.float32)


def test_onnx_equals_torch_with_a_dynamic_batch(model_file, tmp_path):
    pytest.importorskip("onnxruntime")
    m = load_model(model_file, device="cpu", cache=False)
    out = export_onnx(m, tmp_path / "m.onnx")
    for n in (1, 5):                                        # exported with a batch of 2
        x = inputs(n)
        got = onnx_logits(out, x)
        with torch.inference_mode():
            want = m.module(torch.from_numpy(x)).numpy()
        assert got.shape == (n, 3)
        np.testing.assert_allclose(got, want, atol=1e-4)
    assert card_from_onnx(out) == m.card


def test_torchscript_equals_torch(model_file, tmp_path):
    m = load_model(model_file, device="cpu", cache=False)
    out = export_torchscript(m, tmp_path / "m.pt")
    x = inputs(3)
    np.testing.assert_allclose(torchscript_logits(out, x), reference_logits(m, x), atol=1e-4)
    files = {"medviewer_card.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # torch.jit is deprecated in favour of torch.export
        torch.jit.load(str(out), _extra_files=files)
    assert b'"architecture": "mobilenet_v3_small"' in files["medviewer_card.json"]


def test_cli_exports_both_and_reports_the_check(model_file, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    assert main(["export-model", str(model_file), "--onnx", str(tmp_path / "m.onnx"),
                 "--torchscript", str(tmp_path / "m.pt")]) == 0
    err = capsys.readouterr().err
    assert err.count("max |logit difference| to torch") == 2
    assert (tmp_path / "m.onnx").stat().st_size > 1000 and (tmp_path / "m.pt").is_file()


def test_an_ensemble_of_one_input_size_exports_its_probabilities(model_file, tmp_path):
    pytest.importorskip("onnxruntime")
    from medviewer import engine

    other = tmp_path / "o.safetensors"
    torch.manual_seed(5)
    make_model_file(other, arch="resnet18", classes=("a", "b", "c"), size=48)
    make_ensemble([model_file, other], tmp_path / "e.safetensors", weights=[1, 2])
    ens = engine.load_model(tmp_path / "e.safetensors", device="cpu")
    out = export_onnx(ens, tmp_path / "e.onnx")
    x = inputs(4)
    probs = torch.softmax(torch.from_numpy(onnx_logits(out, x)), 1).numpy()
    np.testing.assert_allclose(probs, engine.predict(ens, torch.from_numpy(x)), atol=1e-5)


def test_errors_are_one_line(model_file, tmp_path, capsys, monkeypatch):
    assert main(["export-model", str(model_file)]) == 2
    assert "--onnx OUT.onnx and/or --torchscript" in capsys.readouterr().err
    assert main(["export-model", str(model_file), "--onnx", str(tmp_path / "m.txt")]) == 2
    assert "must end in .onnx" in capsys.readouterr().err
    small = tmp_path / "s.safetensors"
    make_model_file(small, arch="resnet18", classes=("a", "b", "c"), size=32)
    make_ensemble([model_file, small], tmp_path / "mixed.safetensors")
    assert main(["export-model", str(tmp_path / "mixed.safetensors"), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "export each member" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "onnx", None)          # the optional extra is not installed
    assert main(["export-model", str(model_file), "--onnx", str(tmp_path / "y.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'medviewer[onnx]'" in err[0]
    assert not (tmp_path / "y.onnx").exists()
