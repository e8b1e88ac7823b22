"""engine.infer / engine.device: batching, progress, cancel, aggregation, device choice, Qt boundary."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from medviewer.engine.device import autocast, describe, pick_device
from medviewer.engine.infer import Cancelled, aggregate, aggregation_name, batches, predict
from medviewer.engine.modelfile import load_model
from test_engine_modelfile import make_model_file
from medviewer.viewer.errors import UsageError
from medviewer import engine


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    p = tmp_path_factory.mktemp("m") / "tiny.safetensors"
    make_model_file(p, arch="resnet18", classes=("a", "b", "c"), size=32)
    return load_model(p, device="cpu", cache=False)


def test_progress_and_streamed_batches(tiny):
    images = [np.full((20, 30), 100 * i, np.uint16) for i in range(7)]
    seen, prog = [], []
    probs = predict(tiny, images, batch_size=3, progress=lambda d, t: prog.append((d, t)),
                    on_batch=lambda s, p: seen.append((s, p.copy())))
    assert [s for s, _ in seen] == [0, 3, 6] and prog == [(0, 7), (3, 7), (6, 7), (7, 7)]
    np.testing.assert_array_equal(np.concatenate([p for _, p in seen]), probs)
    assert batches(7, 3) == [(0, 3), (3, 6), (6, 7)]


def test_cancel_between_batches(tiny):
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 2          # allow two batches, then stop

    done = []
    with pytest.raises(Cancelled):
        predict(tiny, torch.randn(10, 3, 32, 32), batch_size=2, should_stop=stop,
                on_batch=lambda s, p: done.append(s))
    assert done == [0, 2]


def test_aggregations():
    p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]], np.float32)
    np.testing.assert_allclose(aggregate(p, "mean"), [0.6, 0.4])
    np.testing.assert_allclose(aggregate(p, "max"), [0.9, 0.8])
    np.testing.assert_allclose(aggregate(p, "topk_mean", k=2), [0.8, 0.6])
    np.testing.assert_allclose(aggregate(p, "topk_mean", k=99), aggregate(p, "mean"))
    assert aggregation_name("topk_mean", 2) == "topk_mean(k=2)" and aggregation_name("max") == "max"
    with pytest.raises(ValueError):
        aggregate(p, "median")
    with pytest.raises(ValueError):
        aggregate(np.zeros((0, 2)), "mean")


def test_device_choice(monkeypatch):
    assert pick_device("cpu").type == "cpu"
    monkeypatch.setenv("MEDVIEWER_DEVICE", "cpu")
    assert pick_device(None).type == "cpu"
    monkeypatch.delenv("MEDVIEWER_DEVICE")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        expected = "mps"
    assert pick_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA GPU is available; use --device cpu"):
            pick_device("cuda")
    with pytest.raises(UsageError, match="unknown device 'tpu9'"):
        pick_device("tpu9")
    assert describe(torch.device("cpu")).startswith("cpu (")
    with autocast(torch.device("cpu")):
        pass


def test_engine_imports_torch_lazily():
    """The viewer starts without paying for torch (Qt-freedom is an import-linter contract)."""
    code = (
        "import sys\n"
        "import medviewer.engine, medviewer.engine.card, medviewer.engine.registry\n"
        "import medviewer.engine.preprocess, medviewer.engine.modelfile, medviewer.engine.device\n"
        "import medviewer.engine.results, medviewer.engine.overlay, medviewer.engine.infer\n"
        "import medviewer.engine.cam\n"
        "assert 'torch' not in sys.modules, 'torch imported eagerly'\n"
        "import medviewer.engine.series, medviewer.engine.cli\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_predict_equals_eager(tmp_path, monkeypatch):
    """Full batches of a long series replay a CUDA graph; the probabilities equal the
    eager forward's (both fp16 autocast), the short last batch runs eagerly, and the
    captured graph is reused by the next call."""
    from medviewer.engine.card import ModelCard
    from medviewer.engine.modelfile import save_model
    from medviewer.engine.registry import build_model

    path = tmp_path / "r.safetensors"
    save_model(path, build_model("resnet18", 3), ModelCard(name="g", architecture="resnet18",
                                                            classes=["a", "b", "c"], input_size=64))
    model = load_model(path, device="cuda")
    x = torch.randn(70, 3, 64, 64)
    graphed = predict(model, x, batch_size=16)
    assert set(model._graphs) == {(16, 3, 64, 64)} and model._graphs[(16, 3, 64, 64)] is not None
    first = model._graphs[(16, 3, 64, 64)]
    monkeypatch.setenv("MEDVIEWER_CUDA_GRAPHS", "0")
    eager = predict(model, x, batch_size=16)
    np.testing.assert_allclose(graphed, eager, atol=2e-3)
    monkeypatch.delenv("MEDVIEWER_CUDA_GRAPHS")
    again = predict(model, x, batch_size=16)
    assert model._graphs[(16, 3, 64, 64)] is first
    np.testing.assert_allclose(again, graphed, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graph_capture_and_replay_beside_a_gradcam_thread(tmp_path):
    """As in the viewer: a Grad-CAM job (eager, autograd) runs in another thread while
    predict captures and replays its graph; both finish and agree with a quiet run."""
    import threading

    from medviewer.engine.card import ModelCard
    from medviewer.engine.modelfile import save_model
    from medviewer.engine.registry import build_model

    path = tmp_path / "r.safetensors"
    save_model(path, build_model("resnet18", 2), ModelCard(name="g", architecture="resnet18",
                                                            classes=["a", "b"], input_size=64))
    model = load_model(path, device="cuda")
    x = torch.randn(96, 3, 64, 64)
    cams_quiet = engine.gradcam(model, x[:8], batch_size=8)
    errors: list[BaseException] = []
    cams: list = []
    go = threading.Event()

    def cam_job() -> None:
        try:
            go.wait()
            for _ in range(4):
                cams.append(engine.gradcam(model, x[:8], batch_size=8))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    th = threading.Thread(target=cam_job)
    th.start()
    go.set()
    busy = predict(model, x, batch_size=16)  # captures the graph while CAMs run
    th.join()
    assert not errors, errors
    assert model._graphs[(16, 3, 64, 64)] is not None
    quiet = predict(model, x, batch_size=16)
    np.testing.assert_allclose(busy, quiet, atol=1e-6)
    for got in cams:
        for a, b in zip(got, cams_quiet):
            np.testing.assert_allclose(a, b, atol=1e-3)
