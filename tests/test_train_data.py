"""Data discovery and decoding for the trainer (issue 4, section 1)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from medviewer.engine.preprocess import PreprocessSpec
from medviewer.engine.train.data import discover, match_class_folders, stratified_assign
from medviewer.engine.train.images import load_images, summary
from medviewer.viewer.errors import DatasetError, UsageError


def png(path: Path, value: int = 100, size: tuple[int, int] = (20, 24), rgb: bool = False, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + value)
    img = rng.integers(0, 255, size + ((3,) if rgb else ()), dtype=np.uint8)
    img[0, 0] = value
    cv2.imwrite(str(path), img)
    return path


def tree(root: Path, layout: dict[str, int]) -> None:
    """layout: relative class folder -> number of PNG files."""
    for k, (folder, n) in enumerate(layout.items()):
        for i in range(n):
            png(root / folder / f"img_{i}.png", value=i, seed=k * 100)


def test_split_folders_any_case_and_long_short_class_names(tmp_path):
    tree(tmp_path, {"TRAIN/adenocarcinoma_left.lower.lobe_T2_N0_M0_lb": 4,
                    "TRAIN/normal": 4, "Valid/adenocarcinoma": 2, "Valid/normal": 2,
                    "testing/adenocarcinoma": 2, "testing/normal": 1})
    ix = discover(tmp_path)
    assert ix.classes == ["adenocarcinoma", "normal"]
    assert ix.class_map["adenocarcinoma_left.lower.lobe_T2_N0_M0_lb"] == "adenocarcinoma"
    assert any("adenocarcinoma_left" in n and "-> class 'adenocarcinoma'" in n for n in ix.notes)
    c = ix.counts()
    assert c["train"] == {"adenocarcinoma": 4, "normal": 4}
    assert c["val"] == {"adenocarcinoma": 2, "normal": 2}
    assert c["test"] == {"adenocarcinoma": 2, "normal": 1}


def test_match_class_folders_chains_and_case():
    m = match_class_folders(["Normal", "normal_extra", "large.cell.carcinoma_left.hilum_T2_N2_M0_IIIa",
                             "large.cell.carcinoma", "squamous"])
    assert m["normal_extra"] == "Normal"
    assert m["large.cell.carcinoma_left.hilum_T2_N2_M0_IIIa"] == "large.cell.carcinoma"
    assert m["squamous"] == "squamous"


def test_folder_names_with_spaces_and_missing_splits_are_stratified(tmp_path):
    tree(tmp_path, {"brain tumour": 20, "no tumour": 10})
    ix = discover(tmp_path, val_fraction=0.2, test_fraction=0.2, seed=1)
    c = ix.counts()
    assert c["val"] == {"brain tumour": 4, "no tumour": 2}
    assert c["test"] == {"brain tumour": 4, "no tumour": 2}
    assert c["train"] == {"brain tumour": 12, "no tumour": 6}
    again = discover(tmp_path, val_fraction=0.2, test_fraction=0.2, seed=1)
    assert [s.split for s in again.samples] == [s.split for s in ix.samples]
    other = discover(tmp_path, val_fraction=0.2, test_fraction=0.2, seed=2)
    assert [s.split for s in other.samples] != [s.split for s in ix.samples]


def test_only_train_and_test_folders_gets_val_from_train(tmp_path):
    tree(tmp_path, {"train/a": 10, "train/b": 10, "test/a": 3, "test/b": 3})
    c = discover(tmp_path, val_fraction=0.2).counts()
    assert c["test"] == {"a": 3, "b": 3}
    assert c["val"] == {"a": 2, "b": 2} and c["train"] == {"a": 8, "b": 8}


def test_stratified_assign_keeps_one_training_item_per_class():
    out = stratified_assign([0, 1, 2], ["a", "a", "b"], {"val": 0.5, "test": 0.5}, seed=0)
    assert Counter(out[i] for i in (0, 1))["train"] >= 1 and out[2] == "train"


def test_label_from_name_regex_gives_three_classes(tmp_path):
    for i in range(3):
        png(tmp_path / "train" / "NORMAL" / f"IM-{i}.jpeg", i)
        png(tmp_path / "train" / "PNEUMONIA" / f"person{i}_bacteria_{i}.jpeg", i + 10)
        png(tmp_path / "train" / "PNEUMONIA" / f"person{i}_VIRUS_{i}.jpeg", i + 20)
    ix = discover(tmp_path, label_regex="bacteria|virus", val_fraction=0, test_fraction=0)
    assert ix.classes == ["NORMAL", "bacteria", "virus"]
    assert ix.counts()["train"] == {"NORMAL": 3, "bacteria": 3, "virus": 3}


def test_bad_regex_is_a_usage_error(tmp_path):
    tree(tmp_path, {"a": 2, "b": 2})
    with pytest.raises(UsageError, match="invalid regular expression"):
        discover(tmp_path, label_regex="bacteria(")


def test_labels_csv_overrides_folders_and_sets_splits(tmp_path):
    tree(tmp_path, {"x": 4, "y": 4})
    rows = ["path,label,split"] + [f"x/img_{i}.png,cat,{'train' if i < 3 else 'test'}" for i in range(4)] \
        + [f"y/img_{i}.png,dog,{'training' if i < 3 else 'Validation'}" for i in range(4)]
    (tmp_path / "labels.csv").write_text("\n".join(rows))
    ix = discover(tmp_path, labels_csv=tmp_path / "labels.csv")
    assert ix.classes == ["cat", "dog"] and ix.class_map == {}
    c = ix.counts()
    assert c["train"] == {"cat": 3, "dog": 3} and c["test"] == {"cat": 1, "dog": 0}
    assert c["val"] == {"cat": 0, "dog": 1}


def test_labels_csv_errors(tmp_path):
    (tmp_path / "l.csv").write_text("a.png,cat,holdout\n")
    with pytest.raises(DatasetError, match="unknown split 'holdout'"):
        discover(tmp_path, labels_csv=tmp_path / "l.csv")
    with pytest.raises(DatasetError, match="not found"):
        discover(tmp_path, labels_csv=tmp_path / "missing.csv")


def test_missing_folder_and_single_class(tmp_path):
    with pytest.raises(DatasetError, match="data folder not found"):
        discover(tmp_path / "nope")
    tree(tmp_path, {"only": 3})
    with pytest.raises(DatasetError, match="only one class"):
        discover(tmp_path)


def test_dicom_png_grey_rgb_any_size_and_bad_files_skipped(tmp_path):
    png(tmp_path / "a" / "grey.png", size=(30, 50))
    png(tmp_path / "a" / "rgb.jpg", size=(40, 20), rgb=True)
    (tmp_path / "b").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "b" / "ct.dcm")
    shutil.copy(get_testdata_file("MR_small.dcm"), tmp_path / "b" / "1.2.840.5")   # extension-less DICOM
    (tmp_path / "b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (tmp_path / "b" / "truncated.dcm").write_bytes(Path(get_testdata_file("CT_small.dcm")).read_bytes()[:600])
    (tmp_path / "b" / "notes.txt").write_text("ignored, not an image")
    ix = discover(tmp_path, val_fraction=0, test_fraction=0)
    assert len(ix.samples) == 6
    spec = PreprocessSpec(input_size=32)
    imgs = load_images(ix.samples, ix.classes, spec)
    assert imgs.x.shape == (4, 3, 32, 32)
    assert sorted(p.name for p, _ in imgs.skipped) == ["broken.png", "truncated.dcm"]
    assert all(reason for _, reason in imgs.skipped)
    sizes = dict(zip((s.path.name for s in imgs.samples), imgs.sizes))
    assert sizes["grey.png"] == (30, 50) and sizes["rgb.jpg"] == (40, 20) and sizes["ct.dcm"] == (128, 128)
    assert np.isfinite(imgs.x.float().numpy()).all()
    summ = summary(imgs, ix.classes)
    assert summ["image_sizes"]["max"] == [128, 128] and len(summ["skipped"]) == 2


def test_duplicates_across_splits_are_flagged_as_leakage(tmp_path):
    tree(tmp_path, {"train/a": 3, "train/b": 3, "test/a": 1, "test/b": 1})
    shutil.copy(tmp_path / "train" / "a" / "img_0.png", tmp_path / "test" / "a" / "copy.png")
    ix = discover(tmp_path, val_fraction=0)
    summ = summary(load_images(ix.samples, ix.classes, PreprocessSpec(input_size=16)), ix.classes)
    dups = summ["duplicates_across_splits"]
    assert len(dups) == 1 and dups[0]["splits"] == ["test", "train"]
    assert {Path(p).name for p in dups[0]["paths"]} == {"img_0.png", "copy.png"}
