"""`medviewer compare`: the table equals each run's report.json; paired tests; search trials."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from medviewer.engine.train.cli import main_train
from medviewer.engine.train.synth import make_dataset
from medviewer.viewer.cli import main

BASE = ["--arch", "mobilenet_v3_small", "--image-size", "32", "--epochs", "2", "--batch-size", "8",
        "--device", "cpu", "--no-report", "--bootstrap", "300"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    data = make_dataset(root / "data", ["normal", "nodule", "cavity"], n=10, size=32, seed=5)
    variants = {"adamw": [], "sgd": ["--optimizer", "sgd", "--lr", "0.01"], "dropout": ["--dropout", "0.3"]}
    for name, extra in variants.items():
        assert main_train(["--data", str(data), "--out", str(root / "runs" / name), *BASE, *extra]) == 0
    return root


def read_csv(path):
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_compare_numbers_equal_each_runs_report(runs, capsys):
    out = runs / "cmp"
    assert main(["compare", str(runs / "runs" / "*"), "--out", str(out)]) == 0
    rows = {r["name"]: r for r in read_csv(out / "compare.csv")}
    assert set(rows) == {"adamw", "sgd", "dropout"}
    cols = list(next(iter(rows.values())))
    assert cols[:2] == ["name", "architecture"]
    assert {"optimizer", "lr", "dropout"} <= set(cols) and "seed" not in cols      # only what differs
    for name, row in rows.items():
        rep = json.loads((runs / "runs" / name / "report.json").read_text())
        t = rep["test"]
        assert row["architecture"] == "mobilenet_v3_small" and int(row["epochs"]) == len(rep["history"]) == 2
        assert float(row["training_s"]) == pytest.approx(sum(h["seconds"] for h in rep["history"]))
        for m in ("accuracy", "balanced_accuracy", "macro_f1", "macro_roc_auc"):
            assert float(row[m]) == t[m]
            assert [float(row[f"{m}_ci_low"]), float(row[f"{m}_ci_high"])] == t["ci95"][m]
        assert row["optimizer"] == rep["hyperparameters"]["optimizer"]
    best = max(rows.values(), key=lambda r: float(r["macro_f1"]))
    assert best["p_value_vs_best"] == "" and float(best["macro_f1_diff_vs_best"]) == 0
    for row in rows.values():
        if row is not best:
            assert 0 < float(row["p_value_vs_best"]) <= 1
            assert float(row["macro_f1_diff_vs_best"]) == pytest.approx(float(row["macro_f1"]) - float(best["macro_f1"]))
    html = (out / "compare.html").read_text()
    assert "onclick='sortBy(this)'" in html and "compare_curves.png" in html and "compare_roc.png" in html
    assert (out / "compare_roc.png").stat().st_size > 5000
    printed = capsys.readouterr().out
    assert "3 run(s); best by macro_f1" in printed


def test_ece_is_read_when_present_and_unpaired_runs_say_why(runs, tmp_path, capsys):
    import shutil

    for name in ("adamw", "sgd"):
        shutil.copytree(runs / "runs" / name, tmp_path / name)
    rep = json.loads((tmp_path / "sgd" / "report.json").read_text())
    rep["test"]["ece"] = 0.0421
    (tmp_path / "sgd" / "report.json").write_text(json.dumps(rep))
    old = json.loads((tmp_path / "adamw" / "report.json").read_text())   # a run from before ECE was reported
    del old["test"]["ece"]
    (tmp_path / "adamw" / "report.json").write_text(json.dumps(old))
    lines = (tmp_path / "adamw" / "predictions.csv").read_text().splitlines()
    (tmp_path / "adamw" / "predictions.csv").write_text("\n".join(lines[:-1]) + "\n")   # one image fewer
    (tmp_path / "junk").mkdir()
    code = main(["compare", str(tmp_path / "adamw"), str(tmp_path / "sgd"), str(tmp_path / "junk"),
                 "--out", str(tmp_path / "out")])
    assert code == 1
    err = capsys.readouterr().err
    assert "skipped" in err and "junk: no report.json" in err
    rows = {r["name"]: r for r in read_csv(tmp_path / "out" / "compare.csv")}
    assert float(rows["sgd"]["ece"]) == 0.0421 and rows["adamw"]["ece"] == ""
    other = [r for r in rows.values() if r["macro_f1_diff_vs_best"] != "0.0"][0]
    assert other["p_value_vs_best"] == ""
    assert "different test images" in err


def test_nothing_to_compare_is_exit_2(tmp_path, capsys):
    assert main(["compare", str(tmp_path / "nope*"), "--out", str(tmp_path / "o")]) == 2
    assert "no training run" in capsys.readouterr().err


def test_search_trials_in_the_comparison_format(tmp_path):
    data = make_dataset(tmp_path / "d", ["normal", "nodule"], n=8, size=32, seed=4)
    out = tmp_path / "out"
    assert main_train(["--data", str(data), "--out", str(out), *BASE, "--epochs", "1", "--search", "2"]) == 0
    rows = read_csv(out / "search" / "compare.csv")
    assert len(rows) == 2 and all(r["split"] == "val" for r in rows)
    assert {"lr", "optimizer", "batch_size"} <= set(rows[0]) and "state" in rows[0]
    for r in rows:
        rep = json.loads((out / "search" / r["name"] / "report.json").read_text())
        assert rep["trial"]["state"] == r["state"]
        if r["state"] == "COMPLETE":
            assert float(r["macro_f1"]) == rep["validation"]["macro_f1"]
            assert rep["test"] is None and rep["validation"]["ci95"]["accuracy"]
    assert (out / "search" / "compare.html").is_file()
    assert np.isfinite(json.loads((out / "report.json").read_text())["search"]["best_value"])
