"""The viewer's trust signals with pytest-qt (offscreen): OOD warnings on flagged slices and
series, the flagged cells of the per-slice strip, the input check, "no out-of-distribution
check" for older models, calibration and operating point with the card, and the reader's
verdict written to the audit log next to the analysis entry."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

import dicomgen
from medviewer.engine.audit import AuditLog
from medviewer.viewer.display import meta_from_dataset
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.window import MainWindow
from test_engine_modelfile import make_model_file
from test_engine_ood import make_ood_model_file

N = 10
NOISY = (6, 7, 8)   # slices filled with noise: unlike the training images


def _disk_slice(k: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:32, 0:32]
    disk = np.hypot(yy - 16 + k % 3, xx - 16 - k % 2) < 6 + k % 4
    return (1024 + 40 + disk * 300 + rng.normal(0, 6, (32, 32))).astype(np.int16)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A CT series of disks with three noise slices, and an MR file."""
    root = tmp_path_factory.mktemp("truststudy")
    paths, uid = dicomgen.ct_series(root / "ct", n=N, rows=32, cols=32, series_number=1)
    rng = np.random.default_rng(5)
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        px = rng.integers(0, 2400, (32, 32)).astype(np.int16) if k in NOISY else _disk_slice(k, rng)
        ds.PixelData = px.tobytes()
        ds.BodyPartExamined = "CHEST"
        ds.save_as(p)
    from pydicom.data import get_testdata_file
    import shutil

    (root / "mr").mkdir()
    shutil.copy(get_testdata_file("MR_small.dcm"), root / "mr" / "mr.dcm")
    return root, paths, uid


@pytest.fixture(scope="module")
def models(tmp_path_factory, study):
    root, paths, _ = study
    d = tmp_path_factory.mktemp("trustmodels")
    template = pydicom.dcmread(paths[0])
    meta = meta_from_dataset(template)
    rng = np.random.default_rng(0)
    imgs = [(_disk_slice(k, rng), meta) for k in range(80)]
    make_ood_model_file(d / "ood.safetensors", imgs[:40], [k % 2 for k in range(40)], size=32, temperature=1.4,
                        calib_images=imgs[40:],
                        window={"center": 40, "width": 400},
                        trained_on={"modality": ["CT"], "photometric": ["MONOCHROME2"], "body_part": ["CHEST"]},
                        metrics={"ece": 0.021, "ece_uncalibrated": 0.064},
                        operating_point={"rule": "top class", "images": 88, "accuracy": 0.93,
                                         "sensitivity": {"normal": 0.9, "lesion": 0.95},
                                         "specificity": {"normal": 0.95, "lesion": 0.9}})
    make_model_file(d / "old.safetensors", classes=("normal", "lesion"), size=32)
    return d


@pytest.fixture()
def win(qtbot, tmp_path, monkeypatch, models, study):
    monkeypatch.setenv("MEDVIEWER_SETTINGS_DIR", str(tmp_path / "settings"))
    monkeypatch.setenv("MEDVIEWER_MODELS_DIR", str(models))
    monkeypatch.setenv("MEDVIEWER_AUDIT_FILE", str(tmp_path / "audit.sqlite"))
    from medviewer.viewer.ui.ai import install

    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.show()
    ai = install(w)
    w.open_path(study[0])
    qtbot.waitUntil(lambda: w.scan_result is not None and not w.is_scanning(), timeout=30000)
    yield w, ai
    ai.shutdown()
    w.shutdown()


def _load(qtbot, ai, path):
    ai.load_model(str(path))
    qtbot.waitUntil(lambda: ai.model is not None and ai.model.path == path, timeout=30000)


def _show(qtbot, w, uid=None, modality=None):
    series = next(s for s in w.scan_result.all_series() if s.series_uid == uid or s.modality == modality)
    w.state.set_series(series)
    qtbot.waitUntil(lambda: w.state.series is series)
    return series


def _analyse(qtbot, ai, n):
    ai.analyze_series()
    qtbot.waitUntil(lambda: ai.strip.filled() == n and not ai.panel.progress.isVisible(), timeout=60000)


def test_flagged_slices_warn_in_panel_and_strip_and_series_is_audited(qtbot, win, models, study, tmp_path):
    w, ai = win
    _, _, uid = study
    _load(qtbot, ai, models / "ood.safetensors")
    trust = ai.panel.trust
    assert trust.no_check.isHidden()
    facts = trust.model_facts.text()
    assert "ECE 0.021 (0.064 uncalibrated), temperature 1.40" in facts
    assert "test accuracy 0.930" in facts and "trained on CT CHEST" in facts
    from medviewer.viewer.ui.ai.widgets import card_html

    card = card_html(ai.model.card)      # the model list shows the card in full
    assert "ECE 0.021 (0.064 before calibration)" in card and "trained on: modality CT" in card
    assert "lesion sens 0.95 / spec 0.90" in card and "temperature 1.40" in card
    _show(qtbot, w, uid=uid)
    _analyse(qtbot, ai, N)
    flags = ai.ood > ai.model.ood.threshold
    assert flags[list(NOISY)].all() and not flags[[0, 1, 2, 3]].any()
    assert ai.strip.flags.tolist() == flags.tolist() and ai.strip.flagged() == int(flags.sum())
    assert trust.input_warning.isHidden()          # CT, MONOCHROME2, CHEST: as trained
    w.state.set_slice(NOISY[0])
    assert not trust.slice_warning.isHidden()
    assert "unlike the images this model was trained on" in trust.slice_warning.text()
    assert f"slice {NOISY[0] + 1}" in trust.slice_warning.text().lower()
    w.state.set_slice(0)
    assert trust.slice_warning.isHidden()
    assert not trust.series_warning.isHidden()
    assert f"{int(flags.sum())} of {N} analysed slice(s)" in trust.series_warning.text()
    # the analysis is in the audit log; the reader accepts it with a comment
    qtbot.waitUntil(lambda: ai.analysis_id is not None, timeout=30000)
    (entry,) = AuditLog().analyses()
    assert entry["id"] == ai.analysis_id and entry["source"] == "viewer" and entry["series_uid"] == uid
    assert entry["n_items"] == N and entry["ood_checked"] and entry["ood_flagged"] == int(flags.sum())
    assert entry["ood_fraction"] == pytest.approx(flags.mean())
    assert len(entry["sop_uids"]) == N and entry["model_sha256"] == ai.model.sha256
    bar = ai.panel.verdict
    assert bar.buttons["accepted"].isEnabled()
    bar.comment.setText("noise slices are artefacts")
    bar.buttons["rejected"].click()
    qtbot.waitUntil(lambda: "Rejected" in bar.status.text(), timeout=30000)
    bar.buttons["modified"].click()                       # no comment: asks for one, records nothing
    assert "comment" in bar.status.text()
    bar.comment.setText("lesion, not normal")
    bar.buttons["modified"].click()
    qtbot.waitUntil(lambda: "Modified" in bar.status.text(), timeout=30000)
    (entry,) = AuditLog().analyses()
    assert [(v["verdict"], v["comment"], v["source"]) for v in entry["verdicts"]] == [
        ("rejected", "noise slices are artefacts", "viewer"), ("modified", "lesion, not normal", "viewer")]
    assert AuditLog().verify() == []
    # AI > Save AI results as DICOM: the SR carries the OOD fraction, the entry and the last verdict
    ai.dicom_saver.save(tmp_path / "dicom")
    qtbot.waitUntil(lambda: bool(ai.last_dicom_outputs) and not ai.dicom_saver.busy, timeout=60000)
    sr = pydicom.dcmread(next(p for p in ai.last_dicom_outputs if p.name.endswith("-sr.dcm")))
    texts, codes, fraction = {}, {}, None

    def walk(items):
        nonlocal fraction
        for it in items:
            name = it.ConceptNameCodeSequence[0].CodeMeaning
            if it.ValueType == "TEXT":
                texts[name] = it.TextValue
            elif it.ValueType == "CODE":
                codes[name] = it.ConceptCodeSequence[0].CodeMeaning
            elif it.ValueType == "NUM" and name == "Fraction of images out-of-distribution":
                fraction = float(it.MeasuredValueSequence[0].NumericValue)
            walk(it.get("ContentSequence", []))

    walk(sr.ContentSequence)
    assert codes["AI result assessment"] == "Modified" and texts["Assessment comment"] == "lesion, not normal"
    assert texts["Audit log entry"] == entry["id"] and texts["Assessed by"] == entry["verdicts"][-1]["os_user"]
    assert fraction == pytest.approx(flags.mean(), abs=1e-6)


def test_input_check_warns_on_another_modality(qtbot, win, models):
    w, ai = win
    _load(qtbot, ai, models / "ood.safetensors")
    _show(qtbot, w, modality="MR")
    _analyse(qtbot, ai, 1)
    trust = ai.panel.trust
    assert not trust.input_warning.isHidden()
    assert "modality MR; the model was trained on CT" in trust.input_warning.text()
    assert not trust.slice_warning.isHidden()      # and the MR image itself is flagged
    qtbot.waitUntil(lambda: ai.analysis_id is not None, timeout=30000)
    assert AuditLog().analyses()[-1]["input_warnings"] == ["modality MR; the model was trained on CT"]


def test_old_model_says_no_out_of_distribution_check(qtbot, win, models, study):
    w, ai = win
    _, _, uid = study
    _load(qtbot, ai, models / "old.safetensors")
    trust = ai.panel.trust
    assert not trust.no_check.isHidden() and "no out-of-distribution check" in trust.no_check.text()
    assert "no out-of-distribution check" in trust.model_facts.toolTip()
    _show(qtbot, w, uid=uid)
    _analyse(qtbot, ai, N)
    assert ai.ood is None and ai.strip.flagged() == 0
    assert trust.slice_warning.isHidden() and trust.series_warning.isHidden()
    qtbot.waitUntil(lambda: ai.analysis_id is not None, timeout=30000)
    entry = AuditLog().analyses()[-1]
    assert entry["ood_checked"] is False and entry["ood_fraction"] is None
