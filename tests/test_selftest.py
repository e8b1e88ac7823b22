"""viewer.selftest: every check on real inputs, failures reported without aborting the run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from medviewer.viewer import selftest
from medviewer.viewer.cli import main as cli_main


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A small untrained model file with a valid card (weights=None, no download)."""
    pytest.importorskip("medviewer.engine.modelfile")
    from medviewer.engine.card import ModelCard
    from medviewer.engine.modelfile import save_model
    from medviewer.engine.registry import build_model

    card = ModelCard(name="selftest-tiny", architecture="mobilenet_v3_small",
                     classes=["normal", "nodule"], input_size=64, cam_layer="features.12",
                     intended_use="demo")
    module = build_model("mobilenet_v3_small", num_classes=2, weights=None)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return save_model(path, module, card)


def _by_name(results):
    return {r.name: r for r in results}


def test_decoders_are_bit_exact_on_real_files():
    st = selftest.SelfTest()
    for syntax in list(selftest.SELFTEST_FILES)[:4]:
        res = st.run(syntax, lambda s=syntax: st.decode(s))
        assert res.ok, res.detail
        assert "bit-exact" in res.detail
    names = {s: selftest.find_selftest_file(n) for s, n in selftest.SELFTEST_FILES.items()}
    assert all(p is not None and p.stat().st_size < 20_000 for p in names.values())  # small


def test_decode_detects_corrupted_pixels(tmp_path, monkeypatch):
    """A decoder that returns wrong pixels must fail the check, not pass silently."""
    src = selftest.find_selftest_file("MR_small_RLE.dcm")
    real = selftest._decode

    def wrong(path):
        arr, ts = real(path)
        if path.name == "MR_small_RLE.dcm":
            arr = arr.copy()
            arr[3, 7] += 1
        return arr, ts

    monkeypatch.setattr(selftest, "_decode", wrong)
    res = selftest.SelfTest().run("rle", lambda: selftest.SelfTest().decode("RLE Lossless"))
    assert not res.ok and "1 pixels differ" in res.detail
    assert src is not None


def test_missing_file_is_reported_and_bundle_copy_preferred(tmp_path, monkeypatch):
    monkeypatch.setitem(selftest.SELFTEST_FILES, "JPEG-LS Lossless", "no_such_file_xyz.dcm")
    res = selftest.SelfTest().run("x", lambda: selftest.SelfTest().decode("JPEG-LS Lossless"))
    assert not res.ok and "not found" in res.detail
    # a PyInstaller bundle's copy wins over pydicom's
    bundle = tmp_path / selftest.BUNDLE_DATA
    bundle.mkdir()
    shutil.copy(selftest.find_selftest_file("MR_small.dcm"), bundle / "MR_small.dcm")
    monkeypatch.setattr("sys._MEIPASS", str(tmp_path), raising=False)
    assert selftest.find_selftest_file("MR_small.dcm") == bundle / "MR_small.dcm"


def test_monochrome1_check_passes_and_catches_a_broken_pipeline(monkeypatch):
    st = selftest.SelfTest()
    assert st.run("m1", st.monochrome1).ok
    import medviewer.viewer.display as display

    real = display.render
    monkeypatch.setattr(display, "render", lambda stored, meta, *a, **k: real(
        stored, meta.__class__(**{**meta.__dict__, "photometric": "MONOCHROME2"}), *a, **k))
    res = st.run("m1 broken", st.monochrome1)
    assert not res.ok and "not inverted" in res.detail


def test_failing_check_does_not_stop_the_run(monkeypatch):
    st = selftest.SelfTest()

    def boom():
        raise RuntimeError("first line\nsecond line")

    monkeypatch.setattr(st, "versions", boom)
    results = st.all()
    assert results[0].name == "versions" and not results[0].ok
    assert results[0].detail == "RuntimeError: first line"
    assert len(results) == 10  # every later check still ran
    assert _by_name(results)["oblique reformat"].ok
    assert _by_name(results)["decode RLE Lossless"].ok


def test_model_checks_with_a_real_model_file(tiny_model, capsys):
    code = selftest.main(["--model", str(tiny_model), "--json"])
    out = json.loads(capsys.readouterr().out)
    res = {r["name"]: r for r in out["results"]}
    assert res["model + Grad-CAM"]["ok"], res["model + Grad-CAM"]["detail"]
    assert "CAM 256x256" in res["model + Grad-CAM"]["detail"]  # mapped back to the demo slice
    assert res["inference time"]["ok"] and " ms " in res["inference time"]["detail"]
    assert res["compute device"]["ok"]
    assert code == (0 if all(r["ok"] for r in out["results"]) else 1)
    assert all(r["ok"] for r in out["results"]), [r for r in out["results"] if not r["ok"]]


def test_cli_self_test_table_and_exit_code(tmp_path, monkeypatch, capsys):
    """Through the real dispatcher: a missing model is a FAIL row and exit code 1."""
    monkeypatch.setenv("MEDVIEWER_RESOURCES", str(tmp_path))  # no models here
    code = cli_main(["--self-test"])
    out = capsys.readouterr().out
    assert code == 1
    assert "decode JPEG 2000 Lossless" in out and "PASS" in out
    assert "FAIL" in out and "model file missing" in out
    assert "inference time" in out and "skipped" in out
    assert "oblique reformat" in out and "exact on a ramp" in out
    assert "self-test: 8 of 10 checks passed" in out


def test_format_table_aligns_columns():
    rows = [selftest.CheckResult("a", True, "fine", 0.5), selftest.CheckResult("longer name", False, "bad", 1.25)]
    table = selftest.format_table(rows).splitlines()
    assert table[2].startswith("a          ") and "PASS" in table[2]
    assert table[3].index("FAIL") == table[2].index("PASS")
    assert table[-1] == "self-test: 1 of 2 checks passed"


def test_demo_image_is_a_ct_slice():
    stored, meta = selftest._demo_image()
    assert stored.shape == (256, 256) and stored.dtype == np.int16
    assert meta.modality == "CT" and meta.rescale_intercept == -1024


def test_bundle_flavour_is_reported(tmp_path, monkeypatch):
    (tmp_path / "medviewer_build.json").write_text('{"flavor": "cpu", "built": "2026-01-02T03:04:05Z"}')
    monkeypatch.setattr("sys._MEIPASS", str(tmp_path), raising=False)
    st = selftest.SelfTest()
    assert "cpu bundle built 2026-01-02T03:04:05Z" in st.run("v", st.versions).detail
    dev = st.run("d", st.compute_device)
    assert dev.ok
    if st.device == "cpu":
        assert "CPU bundle" in dev.detail
