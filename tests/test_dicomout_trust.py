"""Trust signals in the AI report SR (engine.dicomout.trust): the out-of-distribution
summary, input-check warnings, the audit-log entry and the reader's verdict, written by
`write_series_outputs` and by `medviewer predict --dicom-out`, read back with pydicom and
checked with dciodvfy.  (The viewer's Save AI results as DICOM with a recorded verdict is
in tests/test_ui_trust.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

import dicomgen
from medviewer.engine.dicomout import write_series_outputs
from medviewer.engine.dicomout.trust import TrustInfo
from medviewer.engine.modelfile import load_model
from medviewer.engine.series import predict_series
from medviewer.viewer.cli import main
from medviewer.viewer.display import meta_from_dataset
from medviewer.viewer.io.pixels import PixelStore
from medviewer.viewer.io.scan import scan
from test_dicomout import DCIODVFY, dciodvfy_errors, groups, nums, sr_items
from test_engine_ood import make_ood_model_file

N = 8
NOISY = (5, 6)


def _disk(k: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:32, 0:32]
    disk = np.hypot(yy - 16 + k % 3, xx - 16 - k % 2) < 6 + k % 4
    return (1024 + 40 + disk * 300 + rng.normal(0, 6, (32, 32))).astype(np.int16)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A CT series of disks (like the model's training images) with two noise slices."""
    root = tmp_path_factory.mktemp("trustsr")
    paths, uid = dicomgen.ct_series(root / "ct", n=N, rows=32, cols=32)
    rng = np.random.default_rng(3)
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        px = rng.integers(0, 2400, (32, 32)).astype(np.int16) if k in NOISY else _disk(k, rng)
        ds.PixelData = px.tobytes()
        ds.save_as(p)
    return root, paths, uid


@pytest.fixture(scope="module")
def model_file(tmp_path_factory, study):
    _, paths, _ = study
    meta = meta_from_dataset(pydicom.dcmread(paths[0]))
    rng = np.random.default_rng(0)
    imgs = [(_disk(k, rng), meta) for k in range(60)]
    path = tmp_path_factory.mktemp("trustsrmodel") / "ood.safetensors"
    make_ood_model_file(path, imgs[:30], [k % 2 for k in range(30)], temperature=1.3, calib_images=imgs[30:],
                        window={"center": 40, "width": 400}, trained_on={"modality": ["MR"]})
    return path


def _texts(ds) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for it in sr_items(ds, "TEXT"):
        out.setdefault(it.ConceptNameCodeSequence[0].CodeMeaning, []).append(it.TextValue)
    return out


def _codes(items) -> dict[str, str]:
    return {it.ConceptNameCodeSequence[0].CodeMeaning: it.ConceptCodeSequence[0].CodeMeaning
            for it in items if it.ValueType == "CODE"}


def test_sr_carries_ood_summary_input_warnings_audit_entry_and_verdict(tmp_path, study, model_file):
    root, _, uid = study
    model = load_model(model_file, device="cpu")
    series = scan(root).all_series()[0]
    store = PixelStore(workers=1)
    store.add_headers(series.headers)
    pred = predict_series(model, store, series.items, (32, 32))
    flags = pred.flags
    assert flags[list(NOISY)].all() and flags.sum() < N     # the noise slices are flagged, not all
    info = TrustInfo.from_prediction(
        pred, input_warnings=["modality CT; the model was trained on MR"], audit_id="f" * 32,
        verdict="modified", verdict_comment="nodule, not normal", verdict_user="reader1",
        verdict_time="2026-01-02T03:04:05Z")
    paths = write_series_outputs(model, series, pred, store, tmp_path, trust=info)
    store.close()
    sr_path = next(p for p in paths if p.name.endswith("-sr.dcm"))
    ds = pydicom.dcmread(sr_path)
    series_group = groups(ds)[0]
    got = nums(series_group)
    value, unit, scheme = got["Fraction of images out-of-distribution"]
    assert (unit, scheme) == ("1", "UCUM") and value == pytest.approx(flags.mean())
    value, unit, _ = got["Images out-of-distribution"]
    assert unit == "{images}" and value == int(flags.sum())
    assert _codes(series_group.ContentSequence)["Out-of-distribution check"] == "Images unlike the training images"
    texts = _texts(ds)
    assert texts["Out-of-distribution summary"] == [
        f"{int(flags.sum())} of {N} analysed image(s) unlike the images this model was trained on "
        f"(score threshold {model.ood.threshold:.3f})"]
    assert texts["Input check warning"] == ["modality CT; the model was trained on MR"]
    assert texts["Audit log entry"] == ["f" * 32]
    assert texts["Assessed by"] == ["reader1"] and texts["Assessment time (UTC)"] == ["2026-01-02T03:04:05Z"]
    assert texts["Assessment comment"] == ["nodule, not normal"]
    assessment = [it for it in sr_items(ds, "CODE")
                  if it.ConceptNameCodeSequence[0].CodeMeaning == "AI result assessment"]
    assert len(assessment) == 1
    code = assessment[0].ConceptCodeSequence[0]
    assert (code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning) == ("MODIFIED", "99MEDVIEWER", "Modified")
    if DCIODVFY.exists():
        assert dciodvfy_errors(sr_path) == []


def test_bad_verdict_is_refused(tmp_path, study, model_file):
    root, _, _ = study
    model = load_model(model_file, device="cpu")
    series = scan(root).all_series()[0]
    store = PixelStore(workers=1)
    store.add_headers(series.headers)
    pred = predict_series(model, store, series.items, (32, 32))
    with pytest.raises(ValueError, match="verdict"):
        write_series_outputs(model, series, pred, store, tmp_path, trust=TrustInfo(verdict="maybe"))
    store.close()


def test_predict_dicom_out_sr_names_the_audit_entry_and_ood_fraction(tmp_path, capsys, study, model_file):
    root, _, uid = study
    out = tmp_path / "dicom"
    assert main(["predict", str(root), "--model", str(model_file), "--json", "-", "--dicom-out", str(out)]) == 0
    doc = json.loads(capsys.readouterr().out)
    (s,) = doc["series"]
    sr_path = next(Path(out).rglob("*-sr.dcm"))
    ds = pydicom.dcmread(sr_path)
    texts = _texts(ds)
    assert texts["Audit log entry"] == [s["audit_id"]]
    assert texts["Input check warning"] == [w["message"] for w in s["input_warnings"]]
    assert texts["Input check warning"] == ["modality CT; the model was trained on MR"]
    value, _, _ = nums(groups(ds)[0])["Fraction of images out-of-distribution"]
    assert value == pytest.approx(s["ood"]["fraction_flagged"])
    assert "AI result assessment" not in {it.ConceptNameCodeSequence[0].CodeMeaning
                                          for it in sr_items(ds, "CODE")}   # no reader on the command line
