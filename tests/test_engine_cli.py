"""`medviewer predict` / `medviewer convert-model`: JSON schema, CAM files, exit codes, errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from pydicom.data import get_testdata_file

import dicomgen
from medviewer.engine.card import ModelCard
from medviewer.engine.modelfile import load_model
from medviewer.engine.registry import build_model
from test_engine_modelfile import make_model_file
from medviewer.viewer.cli import main
from medviewer import engine


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    p = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    make_model_file(p, arch="resnet18", classes=("normal", "lesion", "other"), size=32,
                    window={"center": 40, "width": 400})
    return p


@pytest.fixture()
def study(tmp_path):
    root = tmp_path / "study"
    root.mkdir()
    paths, uid = dicomgen.ct_series(root / "ct", n=5, rows=24, cols=20, shuffle_names=True)
    shutil.copy(get_testdata_file("CT_small.dcm"), root / "ct_small.dcm")
    return root, paths, uid


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_json_schema_cams_and_consistency(tmp_path, capsys, model_path, study):
    root, paths, uid = study
    out_json, cam_dir = tmp_path / "pred.json", tmp_path / "cams"
    code, out, err = _run(capsys, ["predict", str(root), "--model", str(model_path), "--json", str(out_json),
                                   "--cam-dir", str(cam_dir), "--device", "cpu", "--batch-size", "2"])
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert set(doc) == {"model", "device", "series"}
    assert doc["model"] == {"name": "tiny", "version": "1.0", "architecture": "resnet18",
                            "classes": ["normal", "lesion", "other"], "temperature": 1.0, "ood_check": False}
    assert "has no out-of-distribution check" in err
    assert doc["device"].startswith("cpu")
    assert len(doc["series"]) == 2
    by_uid = {s["series_uid"]: s for s in doc["series"]}
    ct = by_uid[uid]
    assert set(ct) == {"series_uid", "aggregate", "ood", "input_warnings", "audit_id", "items"}
    assert ct["ood"] is None and ct["input_warnings"] == [] and ct["audit_id"]
    assert ct["aggregate"]["method"] == "mean" and set(ct["aggregate"]["probabilities"]) == {"normal", "lesion", "other"}
    assert [it["path"] for it in ct["items"]] == [p.relative_to(root).as_posix() for p in paths]
    loaded = load_model(model_path, device="cpu")
    import pydicom
    from medviewer.viewer.display import meta_from_dataset

    for it, p in zip(ct["items"], paths):
        assert set(it) == {"path", "frame", "probabilities", "top", "cam", "ood"} and it["frame"] is None
        assert it["ood"] is None
        probs = it["probabilities"]
        assert abs(sum(probs.values()) - 1) < 1e-5 and it["top"] == max(probs, key=probs.get)
        ds = pydicom.dcmread(p)
        ref = engine.predict(loaded, [(ds.pixel_array, meta_from_dataset(ds))])[0]
        np.testing.assert_allclose([probs[c] for c in loaded.classes], ref, atol=1e-5)
        cam = np.load(cam_dir / it["cam"])
        assert cam.dtype == np.float32 and cam.shape == (24, 20) and 0 <= cam.min() and cam.max() <= 1
        assert (cam_dir / it["cam"]).with_suffix(".png").is_file()
    mean = np.mean([[it["probabilities"][c] for c in loaded.classes] for it in ct["items"]], axis=0)
    np.testing.assert_allclose([ct["aggregate"]["probabilities"][c] for c in loaded.classes], mean, atol=1e-6)
    small = next(s for s in doc["series"] if s["series_uid"] != uid)
    assert np.load(cam_dir / small["items"][0]["cam"]).shape == (128, 128)
    assert "series" in out  # human summary on stdout


def test_predict_series_choice_stdout_json_and_aggregation(capsys, model_path, study):
    root, paths, uid = study
    code, out, err = _run(capsys, ["predict", str(root), "--model", str(model_path), "--series", uid,
                                   "--json", "-", "--aggregate", "topk_mean", "--top-k", "2"])
    assert code == 0, err
    doc = json.loads(out)
    assert [s["series_uid"] for s in doc["series"]] == [uid]
    s = doc["series"][0]
    assert s["aggregate"]["method"] == "topk_mean(k=2)" and all(it["cam"] is None for it in s["items"])
    top2 = np.sort([[it["probabilities"][c] for c in ("normal", "lesion", "other")] for it in s["items"]], axis=0)[-2:]
    np.testing.assert_allclose(list(s["aggregate"]["probabilities"].values()), top2.mean(0), atol=1e-6)


def test_predict_skipped_slice_gives_exit_1(tmp_path, capsys, model_path, study):
    root, paths, uid = study
    dicomgen.truncated(paths[2], paths[2], keep=0.9)  # pixel data cut: header fine, decode fails
    out_json = tmp_path / "p.json"
    code, out, err = _run(capsys, ["predict", str(root), "--model", str(model_path), "--series", uid,
                                   "--json", str(out_json)])
    assert code == 1
    items = json.loads(out_json.read_text())["series"][0]["items"]
    assert paths[2].relative_to(root).as_posix() not in [it["path"] for it in items]
    assert len(items) == 4


@pytest.mark.parametrize("argv_tail, message", [
    (["--series", "99"], "no series '99'"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--cam-method", "lime"], "invalid choice"),
    (["--json", "/nonexistent/dir/p.json"], "does not exist"),
])
def test_predict_bad_arguments(capsys, model_path, study, argv_tail, message):
    root, _, _ = study
    code, out, err = _run(capsys, ["predict", str(root), "--model", str(model_path)] + argv_tail)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_predict_refuses_pickle_and_empty_folder(tmp_path, capsys, model_path):
    pt = tmp_path / "m.pt"
    torch.save({"w": torch.zeros(1)}, pt)
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(capsys, ["predict", str(empty), "--model", str(pt)])
    assert code == 2 and "refusing to load a pickled" in err and "convert-model" in err
    code, _, err = _run(capsys, ["predict", str(empty), "--model", str(model_path)])
    assert code == 2 and "no displayable image" in err and len(err.strip().splitlines()) == 1


def _card_file(tmp_path, classes=("a", "b")):
    p = tmp_path / "card.json"
    p.write_text(ModelCard(name="conv", architecture="resnet18", classes=list(classes), input_size=32).to_json())
    return p


def test_convert_model_round_trip(tmp_path, capsys):
    torch.manual_seed(0)
    module = build_model("resnet18", 2).eval()
    src = tmp_path / "ft.pth"
    # a DataParallel-style checkpoint dict, as training scripts save them
    torch.save({"epoch": 4, "state_dict": {"module." + k: v for k, v in module.state_dict().items()}}, src)
    out = tmp_path / "ft.safetensors"
    code, _, err = _run(capsys, ["convert-model", str(src), str(out), "--card", str(_card_file(tmp_path))])
    assert code == 0, err
    loaded = load_model(out, device="cpu", cache=False)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        np.testing.assert_allclose(engine.predict(loaded, x), torch.softmax(module(x), 1).numpy(), atol=1e-6)


class Evil:  # a pickled object: weights_only loading must refuse it
    def __reduce__(self):
        return (print, ("pwned",))


def test_convert_model_errors(tmp_path, capsys):
    card = _card_file(tmp_path)
    evil = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, evil)
    code, out, err = _run(capsys, ["convert-model", str(evil), str(tmp_path / "o.safetensors"), "--card", str(card)])
    assert code == 2 and "cannot read as weights only" in err and "pwned" not in out
    whole = tmp_path / "whole.pt"
    torch.save(build_model("resnet18", 3).state_dict(), whole)
    code, _, err = _run(capsys, ["convert-model", str(whole), str(tmp_path / "o.safetensors"), "--card", str(card)])
    assert code == 2 and "do not fit resnet18 with 2 classes" in err
    code, _, err = _run(capsys, ["convert-model", str(whole), str(tmp_path / "o.bin"), "--card", str(card)])
    assert code == 2 and "must be a .safetensors" in err
    assert not (tmp_path / "o.safetensors").exists()


def test_convert_model_fails_cleanly_and_leaves_nothing_behind(tmp_path, capsys):
    """Non-UTF-8 card, a folder as output, NaN weights, a full disk: one line, no files left."""
    import subprocess
    import sys

    torch.manual_seed(0)
    src = tmp_path / "ft.pth"
    torch.save(build_model("resnet18", 2).state_dict(), src)
    card = _card_file(tmp_path)
    latin = tmp_path / "latin.json"
    latin.write_bytes(card.read_bytes().replace(b'"conv"', b'"conv\xe9"'))
    code, _, err = _run(capsys, ["convert-model", str(src), str(tmp_path / "o.safetensors"), "--card", str(latin)])
    assert code == 2 and "not UTF-8" in err and len(err.strip().splitlines()) == 1
    folder = tmp_path / "out.safetensors"
    folder.mkdir()
    code, _, err = _run(capsys, ["convert-model", str(src), str(folder), "--card", str(card)])
    assert code == 2 and "is a folder" in err
    nan = tmp_path / "nan.pth"
    sd = build_model("resnet18", 2).state_dict()
    sd["fc.bias"][0] = float("nan")
    torch.save(sd, nan)
    code, _, err = _run(capsys, ["convert-model", str(nan), str(tmp_path / "n.safetensors"), "--card", str(card)])
    assert code == 2 and "'fc.bias' holds NaN" in err
    # a full disk: the file size limit makes the write fail half-way (EFBIG), as ENOSPC would
    out = tmp_path / "full" / "o.safetensors"
    out.parent.mkdir()
    code_py = ("import resource, signal, sys\n"
               "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
               "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
               "from medviewer.viewer.cli import main\n"
               f"sys.exit(main(['convert-model', {str(src)!r}, {str(out)!r}, '--card', {str(card)!r}]))\n")
    res = subprocess.run([sys.executable, "-c", code_py], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert "cannot write the model file" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert list(out.parent.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["ft.pth", "card.json", "latin.json", "out.safetensors", "nan.pth", "full"])


def test_predict_with_an_ood_model_reports_scores_flags_and_input_warnings(tmp_path, capsys, monkeypatch):
    """Item "ood" {"score", "flag"}, series "ood" summary, the input check on an MR file
    for a model trained on CT, and both series in the audit log."""
    import pydicom

    from medviewer.engine.audit import AuditLog
    from medviewer.viewer.display import meta_from_dataset
    from test_engine_ood import make_ood_model_file

    monkeypatch.setenv("MEDVIEWER_AUDIT_FILE", str(tmp_path / "audit.sqlite"))
    root = tmp_path / "study"
    paths, uid = dicomgen.ct_series(root / "ct", n=6, rows=24, cols=20)
    shutil.copy(get_testdata_file("MR_small.dcm"), root / "mr.dcm")
    rng = np.random.default_rng(0)
    imgs, labels = [], []
    for k in range(24):   # CT-like training images: the series' grey levels with noise
        ds = pydicom.dcmread(paths[k % 6])
        px = (ds.pixel_array + rng.normal(0, 3, ds.pixel_array.shape)).astype(np.int16)
        imgs.append((px, meta_from_dataset(ds)))
        labels.append(k % 2)
    model = tmp_path / "ood.safetensors"
    _, card, fitted = make_ood_model_file(model, imgs, labels, size=32, temperature=1.3,
                                          trained_on={"modality": ["CT"], "photometric": ["MONOCHROME2"]},
                                          window={"center": 40, "width": 400})
    out_json = tmp_path / "p.json"
    code, out, err = _run(capsys, ["predict", str(root), "--model", str(model), "--json", str(out_json)])
    assert code == 0, err
    doc = json.loads(out_json.read_text())
    assert doc["model"]["ood_check"] is True and doc["model"]["temperature"] == 1.3
    by_uid = {s["series_uid"]: s for s in doc["series"]}
    ct = by_uid[uid]
    mr = next(s for s in doc["series"] if s["series_uid"] != uid)
    for s in (ct, mr):
        for it in s["items"]:
            assert set(it["ood"]) == {"score", "flag"} and it["ood"]["flag"] == (it["ood"]["score"] > fitted.threshold)
        flags = [it["ood"]["flag"] for it in s["items"]]
        assert s["ood"] == {"flagged": sum(flags), "checked": len(flags),
                            "fraction_flagged": sum(flags) / len(flags), "threshold": fitted.threshold}
    assert ct["input_warnings"] == []
    assert [w["field"] for w in mr["input_warnings"]] == ["modality"]
    assert mr["input_warnings"][0]["message"] == "modality MR; the model was trained on CT"
    assert f"series {mr['series_uid']}: modality MR; the model was trained on CT" in err
    assert mr["items"][0]["ood"]["flag"], "an MR image is unlike CT slices"
    entries = {e["series_uid"]: e for e in AuditLog().analyses()}
    assert entries[mr["series_uid"]]["input_warnings"] == ["modality MR; the model was trained on CT"]
    assert entries[mr["series_uid"]]["ood_checked"] and entries[mr["series_uid"]]["ood_fraction"] == 1.0
    assert entries[uid]["ood_fraction"] == ct["ood"]["fraction_flagged"]
