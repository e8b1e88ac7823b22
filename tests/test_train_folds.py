"""``--folds K``: stratified, patient-grouped cross-validation; report.json "cv"; resume."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import dicomgen
from medviewer.engine.train.cli import main_train, parse
from medviewer.engine.train.folds import make_folds, patient_groups
from medviewer.engine.train.run import main as run_main
from medviewer.engine.train.synth import make_dataset

CLASSES = ("cavity", "nodule", "normal")


def dicom_dataset(root, patients_per_class: int = 6, images_per_patient: int = 2, test_patients: int = 1):
    """DICOM images whose class shows as a bright quadrant; each patient (Patient ID) has several."""
    rng = np.random.default_rng(0)
    pid = 0
    for c, name in enumerate(CLASSES):
        for p in range(patients_per_class + test_patients):
            pid += 1
            split = "test" if p >= patients_per_class else "train"
            for k in range(images_per_patient):
                img = rng.integers(0, 60, (32, 32)).astype(np.uint16)
                r0, c0 = (c // 2) * 16, (c % 2) * 16
                img[r0 + 3:r0 + 13, c0 + 3:c0 + 13] += 900
                ds = dicomgen.set_pixels(dicomgen.base_dataset(patient_id=f"PAT{pid:03d}"), img)
                dicomgen.save(ds, root / split / name / f"p{pid:03d}_{k}.dcm")
    return root


def test_dicom_patient_ids_group_the_images(tmp_path):
    data = dicom_dataset(tmp_path / "d", patients_per_class=2, images_per_patient=3, test_patients=0)
    paths = sorted(data.rglob("*.dcm"))
    keys, how = patient_groups(paths, data, group_regex=r"p(\d+)_")   # Patient ID wins over the regex
    assert how == {"dicom": 18, "regex": 0, "file": 0}
    assert len(set(keys)) == 6 and all(k.startswith("dicom:PAT") for k in keys)


def test_group_regex_on_the_path_and_files_alone_otherwise(tmp_path):
    data = make_dataset(tmp_path / "png", ["normal", "nodule"], n=4, size=16, seed=1)
    paths = sorted(p for p in data.rglob("*.png") if "masks" not in p.parts)
    keys, how = patient_groups(paths, data, group_regex=r"([a-z]+)_\d+\.png$")   # group 1: the class name
    assert how == {"dicom": 0, "regex": len(paths), "file": 0} and set(keys) == {"regex:normal", "regex:nodule"}
    keys, how = patient_groups(paths, data, group_regex=r"_0000[01]")              # no group: the whole match
    assert how == {"dicom": 0, "regex": 4, "file": len(paths) - 4}
    assert {k for k in keys if k.startswith("regex:")} == {"regex:_00000", "regex:_00001"}
    keys2, how2 = patient_groups(paths, data, None)
    assert how2 == {"dicom": 0, "regex": 0, "file": len(paths)} and len(set(keys2)) == len(paths)


def test_folds_are_disjoint_stratified_and_patient_grouped():
    rng = np.random.default_rng(3)
    groups, labels = [], []
    for pid in range(60):             # 60 patients, 1-4 images each, class fixed per patient
        c = pid % 3
        for _ in range(int(rng.integers(1, 5))):
            groups.append(f"P{pid}")
            labels.append(c)
    folds = make_folds(labels, groups, 5, seed=0)
    allpos = np.concatenate(folds)
    assert sorted(allpos.tolist()) == list(range(len(labels)))           # a partition: disjoint, complete
    owner = {}
    for k, f in enumerate(folds):
        for i in f:
            assert owner.setdefault(groups[i], k) == k                    # no patient in two folds
    whole = np.bincount(labels, minlength=3) / len(labels)
    for f in folds:
        share = np.bincount(np.asarray(labels)[f], minlength=3) / len(f)
        assert np.abs(share - whole).max() < 0.12, (share, whole)         # stratified
    assert [f.tolist() for f in make_folds(labels, groups, 5, seed=0)] == [f.tolist() for f in folds]


def test_too_many_folds_for_the_groups_is_one_line():
    from medviewer.viewer.errors import UsageError

    with pytest.raises(UsageError, match="only 3 patient group"):
        make_folds([0, 1, 0], ["a", "b", "c"], 4, 0)


FLAGS = ["--arch", "mobilenet_v3_small", "--image-size", "32", "--epochs", "2", "--batch-size", "8",
         "--device", "cpu", "--no-report", "--bootstrap", "200", "--window", "auto"]


@pytest.fixture(scope="module")
def cv_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    data = dicom_dataset(root / "data")
    out = root / "out"
    assert main_train(["--data", str(data), "--out", str(out), "--folds", "3", *FLAGS]) == 0
    return data, out


def test_report_cv_block_and_final_model_on_train_plus_val(cv_run):
    data, out = cv_run
    rep = json.loads((out / "report.json").read_text())
    cv = rep["cv"]
    assert len(cv["folds"]) == 3 and rep["hyperparameters"]["folds"] == 3
    assert sum(f["n_val"] for f in cv["folds"]) == 36                 # every train+val image validated once
    for key in ("accuracy", "macro_f1", "macro_roc_auc", "val_loss"):
        vals = [f[key] for f in cv["folds"]]
        assert cv["mean"][key] == pytest.approx(np.mean(vals))
        assert cv["std"][key] == pytest.approx(np.std(vals, ddof=1))
    assert all(0 <= f["accuracy"] <= 1 for f in cv["folds"])
    # the folds' validation images are whole patients, each class in each fold
    for k in range(1, 4):
        assert (out / "cv" / f"fold_{k}" / "fold.json").is_file()
        assert (out / "cv" / f"fold_{k}" / "history.csv").is_file()
    # the final model: all 36 train+val images, no validation left, tested on the untouched test split
    assert all(h["val_loss"] is None for h in rep["history"]) and len(rep["history"]) == 2
    assert sum(rep["splits"]["test"].values()) == 6 and rep["test"]["ci95"]["macro_f1"]
    hp = rep["hyperparameters"]
    assert hp["restore_best"] is True        # the user's flags are reported as given
    from medviewer.engine.modelfile import read_card

    td = read_card(out / "model.safetensors").training_data
    assert td["cross_validation"]["folds"] == 3 and td["cross_validation"]["mean"] == cv["mean"]
    assert "3-fold cross-validation, final model on train+val" in td["summary"]


def test_folds_hold_whole_patients(cv_run, monkeypatch):
    data, out = cv_run
    from medviewer.engine.train import folds as fmod

    seen = {}

    real = fmod.make_folds

    def spy(labels, groups, k, seed):
        res = real(labels, groups, k, seed)
        seen["groups"], seen["labels"], seen["folds"] = groups, labels, res
        return res

    monkeypatch.setattr(fmod, "make_folds", spy)
    args = parse(["--data", str(data), "--out", str(out / "again"), "--folds", "3", *FLAGS, "--epochs", "1"])
    assert run_main(args) == 0
    groups, labels, fl = seen["groups"], seen["labels"], seen["folds"]
    assert len(set(groups)) == 18
    for f in fl:
        in_fold = {groups[i] for i in f}
        assert all(groups[j] not in in_fold for g in fl if g is not f for j in g)
        assert set(Counter(labels[i] for i in f)) == {0, 1, 2}


def test_resume_with_folds_equals_the_uninterrupted_run(cv_run, tmp_path):
    data, full = cv_run
    out = tmp_path / "out"
    stop = {"armed": True}

    def should_stop() -> bool:          # like Ctrl-C once fold 2 has checkpointed its first epoch
        return stop["armed"] and (out / "cv" / "fold_2" / "checkpoint.pt").is_file()

    args = parse(["--data", str(data), "--out", str(out), "--folds", "3", *FLAGS])
    assert run_main(args, should_stop=should_stop) == 130
    assert (out / "cv" / "fold_1" / "fold.json").is_file() and not (out / "cv" / "fold_2" / "fold.json").exists()
    stop["armed"] = False
    assert main_train(["--data", str(data), "--out", str(out), "--folds", "3", *FLAGS, "--resume"]) == 0
    a = json.loads((full / "report.json").read_text())
    b = json.loads((out / "report.json").read_text())
    for fa, fb in zip(a["cv"]["folds"], b["cv"]["folds"]):
        for key in ("accuracy", "macro_f1", "log_loss", "val_loss"):
            assert fa[key] == pytest.approx(fb[key], abs=1e-5), key
    assert a["test"]["log_loss"] == pytest.approx(b["test"]["log_loss"], abs=1e-5)
    hist = (out / "cv" / "fold_2" / "history.csv").read_text().splitlines()
    assert len(hist) == 3                                  # header + both epochs, the first kept on resume
