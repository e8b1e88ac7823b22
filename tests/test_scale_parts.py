"""The parts of `predict --engine ray` that need no running Ray: CSV roots, the worker plan,
the --results folder, the streamed JSON and the work list."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import archivegen
import dicomgen
from medviewer.engine.scale.cluster import Cluster, plan
from medviewer.engine.scale.results import ResultsDir, write_atomic
from medviewer.engine.scale.run import _write_json
from medviewer.engine.scale.work import chunk_rows, work_list
from medviewer.viewer.errors import NothingToShowError, UsageError
from medviewer.viewer.io.pathlist import open_root, read_path_list
from medviewer.viewer.io.scan import scan


# -- a CSV of paths as the root ------------------------------------------------------------------
def test_path_list_formats(tmp_path):
    (tmp_path / "sub").mkdir()
    header = tmp_path / "a.csv"
    header.write_text("Patient,PATH\nx,sub/one.dcm\n# a comment\ny,/abs/two.dcm\n\n", encoding="utf-8")
    assert read_path_list(header) == [tmp_path / "sub" / "one.dcm", Path("/abs/two.dcm")]
    single = tmp_path / "b.csv"
    single.write_text("sub\n", encoding="utf-8")
    assert read_path_list(single) == [tmp_path / "sub"]
    empty = tmp_path / "c.csv"
    empty.write_text("path\n\n", encoding="utf-8")
    with pytest.raises(NothingToShowError, match="list of paths is empty"):
        read_path_list(empty)
    wide = tmp_path / "d.csv"
    wide.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(UsageError, match="no 'path' column"):
        read_path_list(wide)
    binary = tmp_path / "e.csv"
    binary.write_bytes(b"\xff\xfe\x00p\x00a")
    with pytest.raises(UsageError, match="not a UTF-8 CSV"):
        read_path_list(binary)


def test_csv_root_groups_like_a_folder_scan(tmp_path):
    root = tmp_path / "arch"
    a, b = dicomgen.two_series(root / "study")
    csv = tmp_path / "list.csv"
    # the files of one folder listed one by one, in reverse, plus a missing one
    csv.write_text("path\n" + "".join(f"{p}\n" for p in sorted(a + b, reverse=True)) + "missing.dcm\n")
    listed, folder = open_root(csv), scan(root)
    assert [(s.series_uid, s.items) for s in listed.all_series()] == \
        [(s.series_uid, s.items) for s in folder.all_series()]
    assert [(s.path.name, s.reason) for s in listed.skipped] == [("missing.dcm", "listed but not found")]


# -- how many actors, and what they ask of Ray --------------------------------------------------
def _cluster(cpus: float, gpus: float) -> Cluster:
    return Cluster(owned=True, address="127.0.0.1:1", cpus=cpus, gpus=gpus, nodes=1)


def test_plan_cpu_and_gpu_clusters():
    p = plan(_cluster(2, 0), None, None, "auto")
    assert (p.workers, p.gpus_per_worker, p.cpus_per_worker, p.decode_cpus) == (1, 0.0, 1.0, 1.0)
    p = plan(_cluster(2, 0), 2, None, "cpu")
    assert p.workers == 2 and p.cpus_per_worker == 0.5 and p.threads_per_worker == 1
    p = plan(_cluster(16, 0), 1, None, "auto")
    assert p.cpus_per_worker == 15 and p.threads_per_worker == 15
    p = plan(_cluster(64, 8), None, None, "auto")  # one worker per GPU, a core each
    assert (p.workers, p.gpus_per_worker, p.cpus_per_worker) == (8, 1.0, 1.0)
    p = plan(_cluster(64, 8), None, 0.5, "auto")  # two workers share a GPU
    assert (p.workers, p.gpus_per_worker) == (16, 0.5)
    assert plan(_cluster(64, 8), 3, 0, "auto").gpus_per_worker == 0.0


@pytest.mark.parametrize("workers,gpw,device,message", [
    (None, 1, "auto", "has no GPU: use --gpus-per-worker 0"),
    (None, None, "cuda", "--device cuda but the Ray cluster has no GPU"),
    (3, 1, "auto", None),
])
def test_plan_refuses_what_the_cluster_cannot_do(workers, gpw, device, message):
    if message is None:  # 3 workers x 1 GPU on a 2-GPU cluster
        with pytest.raises(UsageError, match="need 3 GPUs; the Ray cluster has 2"):
            plan(_cluster(8, 2), workers, gpw, device)
    else:
        with pytest.raises(UsageError, match=message.replace("(", r"\(")):
            plan(_cluster(8, 0), workers, gpw, device)


# -- the --results folder -----------------------------------------------------------------------
RUN = {"model": {"name": "m", "version": "1", "sha256": "a" * 64}}


def test_results_folder_resume_and_tables(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    res = ResultsDir(tmp_path / "r", RUN)
    entry = {"series_uid": "1.2", "aggregate": {"method": "mean", "probabilities": {"a": 0.25, "b": 0.75}},
             "items": [{"path": "x/1.dcm", "frame": None, "probabilities": {"a": 0.25, "b": 0.75},
                        "top": "b", "cam": None},
                       {"path": "x/2.dcm", "frame": 3, "probabilities": {"a": 0.5, "b": 0.5},
                        "top": "a", "cam": None, "ood": {"score": 1.5, "flag": False}}]}
    res.save("s1", "fp1", {"result": entry, "study_uid": "9", "skipped": []})
    res.save_error("s2", {"series_uid": "1.3", "study_uid": "9", "images": 4, "error": "boom"})
    again = ResultsDir(tmp_path / "r", RUN)  # a new run finds what the last one finished
    assert again.is_done("s1", "fp1") and not again.is_done("s1", "other") and not again.is_done("s2", "fp")
    assert again.load("s1", "fp1")["result"] == entry
    again.write_tables()
    items = pq.read_table(tmp_path / "r" / "items.parquet").to_pylist()
    assert [(r["path"], r["frame"], r["probabilities.b"]) for r in items] == [("x/1.dcm", None, 0.75),
                                                                             ("x/2.dcm", 3, 0.5)]
    assert items[1]["ood.score"] == 1.5  # keys added to items by other features reach the table
    series = {r["series_uid"]: r for r in pq.read_table(tmp_path / "r" / "series.parquet").to_pylist()}
    assert series["1.2"]["status"] == "done" and series["1.2"]["aggregate.probabilities.b"] == 0.75
    assert series["1.3"]["status"] == "error" and series["1.3"]["error"] == "boom"
    # the series changed (new fingerprint): the old result goes when the new one is stored
    again.save("s1", "fp2", {"result": entry, "study_uid": "9", "skipped": []})
    assert [p.name for p in (tmp_path / "r" / "series").iterdir()] == ["s1~fp2.json"]
    # a success clears the error record
    again.save("s2", "fp3", {"result": {**entry, "series_uid": "1.3"}, "study_uid": "9", "skipped": []})
    assert list(again.errors()) == []
    with pytest.raises(UsageError, match="holds results of another model"):
        ResultsDir(tmp_path / "r", {"model": {"sha256": "b" * 64}})
    assert not [p for p in (tmp_path / "r").rglob("*") if p.name.endswith(".tmp")]


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    write_atomic(target, "old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        write_atomic(target, "new")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.json"]


# -- the JSON document and the work list --------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 3])
def test_streamed_json_is_what_json_dumps_writes(n):
    import io

    head = {"model": {"name": "m", "classes": ["a", "b"]}, "device": "cpu (1 threads)"}
    entries = [{"series_uid": f"1.{i}", "aggregate": {"method": "mean", "probabilities": {"a": 0.5}},
                "items": [{"path": "p", "frame": None, "probabilities": {"a": 0.5}, "top": "a", "cam": None}]}
               for i in range(n)]
    out = io.StringIO()
    _write_json(out, head, iter(entries))
    assert out.getvalue() == json.dumps({**head, "series": entries}, indent=2) + "\n"


def test_work_list_and_chunks(tmp_path):
    archivegen.archive(tmp_path / "a", studies=2, series_per_study=2, slices=5, rows=16, cols=16)
    result = scan(tmp_path / "a")
    work = work_list(result, result.all_series())
    assert [len(w) for w in work] == [5, 5, 5, 5]
    study_of = {se.series_uid: st.study_uid for st in result.studies for se in st.series}
    for w, se in zip(work, result.all_series()):
        assert w.series_uid == se.series_uid and w.study_uid == study_of[se.series_uid]
        assert list(w.rel) == [r.path.relative_to(tmp_path / "a").as_posix() for r in se.items]
    assert len({w.name for w in work}) == 4
    rows = [json.loads(r["items"]) for r in chunk_rows(work, cams=True, chunk=8)]
    assert [len(r) for r in rows] == [8, 8, 4]  # small series share a chunk
    flat = [item for r in rows for item in r]
    assert [(k, i) for k, i, *_ in flat] == [(k, i) for k in range(4) for i in range(5)]
    assert flat[6][4] == f"01_{work[1].series_uid}/0001.npy"  # the local engine's CAM names
    settings = {"model": "x"}
    fp = work[0].fingerprint(settings)
    assert fp == work[0].fingerprint({"model": "x"}) != work[0].fingerprint({"model": "y"})
    assert work[1].fingerprint(settings) != fp
    assert np.unique([w.cam_prefix for w in work]).size == 4


def _messy_archive(root: Path) -> None:
    """Series split across folders and scan parts, a DICOMDIR file-set, plain images,
    a duplicate instance, a multi-frame object, studies of several dates, damaged files."""
    import shutil

    import pydicom

    dicomgen.two_series(root / "a")  # two series, file names interleaved in one folder
    dicomgen.mixed_study(root / "b")
    dicomgen.with_dicomdir(root / "c", n=4)
    paths, _ = archivegen.series(root / "d" / "part1", 6, rows=16, cols=16, study_uid="1.2.840.99.1",
                                 number=3, seed=2)
    (root / "e").mkdir()
    for p in paths[3:]:  # the same series continued in another folder
        p.rename(root / "e" / p.name)
    shutil.copy(root / "e" / paths[4].name, root / "d" / "dup.dcm")  # one instance twice
    for p in (root / "a").iterdir():  # an older study: listed after the newer ones
        ds = pydicom.dcmread(p)
        ds.StudyDate = "19990101"
        ds.save_as(p)


@pytest.mark.parametrize("part_files", [1, 5, 20000])
def test_archive_scan_in_parts_equals_the_scan(tmp_path, part_files):
    from medviewer.engine.scale.work import scan_archive

    root = tmp_path / "arch"
    _messy_archive(root)
    result = open_root(root)
    want = work_list(result, [s for s in result.all_series() if s.items])
    got = scan_archive(root, part_files=part_files)
    assert got.series == want
    assert len(got.series) >= 8
    assert sorted((s.path, s.reason) for s in got.skipped) == sorted((s.path, s.reason) for s in result.skipped)
    assert got.non_image == len(result.non_image)
    # the same through a CSV listing the folders
    csv = tmp_path / "list.csv"
    csv.write_text("path\n" + "".join(f"arch/{p.name}\n" for p in sorted(root.iterdir())))
    result = open_root(csv)
    assert scan_archive(csv, part_files=part_files).series == \
        work_list(result, [s for s in result.all_series() if s.items])
    assert got.pick(want[1].series_uid) == want[1]
    with pytest.raises(UsageError, match="no series '777'"):
        got.pick("777")
