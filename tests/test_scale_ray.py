"""`medviewer predict --engine ray` on a real local Ray (2 CPUs, a small object store).

The module's Ray instance is started by the fixture (`ray.init`) and shut down
at the end; every process it started is checked to be gone, by PID.  The CLI,
run in this process, uses that instance; runs in a subprocess start their own
private instance (as a user's command does) or join this one by address.
"""

from __future__ import annotations

import json
import re
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import psutil
import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on the loopback interface only
ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")

import archivegen  # noqa: E402
from medviewer.viewer.cli import main  # noqa: E402

STORE = 80 * 2**20  # the object store limit of this module's Ray (Ray's minimum is 75 MiB)
TOL = 1e-4


@pytest.fixture(scope="module")
def cluster():
    """A local Ray with 2 CPUs; afterwards every process it started must be gone."""
    ray.init(num_cpus=2, object_store_memory=STORE, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    me = psutil.Process()
    seen = {p.pid: p for p in me.children(recursive=True)}
    address = ray.get_runtime_context().gcs_address
    assert address.startswith("127.0.0.1:")
    try:
        yield address
    finally:
        seen.update({p.pid: p for p in me.children(recursive=True)})
        ray.shutdown()
        _, alive = psutil.wait_procs(list(seen.values()), timeout=20)
        for p in alive:
            p.kill()
        assert not alive, f"Ray processes outlived the test: {[p.pid for p in alive]}"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    series = archivegen.archive(root, studies=4, series_per_study=2, slices=6)
    return root, series


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def local_doc(archive, tmp_path_factory):
    """The local engine's --json on the archive: the reference."""
    root, _ = archive
    out = tmp_path_factory.mktemp("local") / "local.json"
    assert main(["predict", str(root), "--model", "demo", "--json", str(out), "--device", "cpu"]) == 0
    return json.loads(out.read_text())


def assert_same(local: dict, other: dict, tol: float = TOL) -> None:
    """Same schema, series, slices and classes; probabilities within `tol`."""
    assert set(other) == set(local)
    assert other["model"] == local["model"]  # the demo model has an OOD check: both engines run it
    assert local["model"]["ood_check"] is True
    assert [s["series_uid"] for s in other["series"]] == [s["series_uid"] for s in local["series"]]
    for a, b in zip(local["series"], other["series"]):
        assert set(b) == set(a)
        assert b["aggregate"]["method"] == a["aggregate"]["method"]
        # trust signals: the same OOD summary and input check; each engine its own audit entry
        assert b["ood"] is not None and \
            {k: b["ood"][k] for k in ("flagged", "checked")} == {k: a["ood"][k] for k in ("flagged", "checked")}
        assert b["input_warnings"] == a["input_warnings"]
        assert a["audit_id"] and b["audit_id"] and a["audit_id"] != b["audit_id"]
        for c, v in a["aggregate"]["probabilities"].items():
            assert abs(b["aggregate"]["probabilities"][c] - v) <= tol
        assert [(i["path"], i["frame"], i["cam"]) for i in b["items"]] == \
            [(i["path"], i["frame"], i["cam"]) for i in a["items"]]
        for ia, ib in zip(a["items"], b["items"]):
            assert set(ib) == set(ia)
            assert max(abs(ib["probabilities"][c] - v) for c, v in ia["probabilities"].items()) <= tol
            assert ib["top"] == ia["top"]
            assert ib["ood"]["flag"] == ia["ood"]["flag"]
            assert abs(ib["ood"]["score"] - ia["ood"]["score"]) <= 1e-3 * max(1.0, abs(ia["ood"]["score"]))


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "medviewer", *args]


# -- without Ray running ---------------------------------------------------------------------
def test_missing_ray_says_how_to_install(archive, tmp_path):
    root, _ = archive
    code = ("import sys; sys.modules['ray'] = None\n"
            "from medviewer.viewer.cli import main\n"
            f"sys.exit(main(['predict', {str(root)!r}, '--model', 'demo', '--engine', 'ray']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "medviewer[scale]"' in lines[0], proc.stderr


def test_ray_options_need_the_ray_engine(archive, capsys):
    root, _ = archive
    code, _, err = _run(capsys, ["predict", str(root), "--model", "demo", "--workers", "2", "--results", "x"])
    assert code == 2 and "--workers, --results need(s) --engine ray" in err


def test_results_of_another_model_are_not_mixed(archive, tmp_path, capsys):
    root, _ = archive
    res = tmp_path / "res"
    res.mkdir()
    (res / "run.json").write_text(json.dumps({"model": {"name": "other", "version": "2", "sha256": "ab" * 32}}))
    code, _, err = _run(capsys, ["predict", str(root), "--model", "demo", "--engine", "ray",
                                 "--results", str(res)])
    assert code == 2 and "holds results of another model (other 2" in err
    assert err.count("\n") == 1


# -- on the module's Ray ---------------------------------------------------------------------
def test_equal_to_local_engine_with_results_folder(cluster, archive, local_doc, tmp_path, capsys):
    root, series = archive
    res, out = tmp_path / "res", tmp_path / "ray.json"
    code, stdout, err = _run(capsys, ["predict", str(root), "--model", "demo", "--engine", "ray", "--workers", "2",
                                      "--device", "cpu", "--batch-size", "4", "--results", str(res),
                                      "--json", str(out)])
    assert code == 0, err
    assert "Traceback" not in err and "8 of 8 series finished" in err
    assert "series/s" in err and "images/s" in err  # the progress line
    doc = json.loads(out.read_text())
    assert_same(local_doc, doc)
    assert doc["device"].startswith("cpu")
    # one JSON per series, holding exactly the --json entry
    files = sorted((res / "series").glob("*.json"))
    assert len(files) == 8
    by_uid = {s["series_uid"]: s for s in doc["series"]}
    for f in files:
        rec = json.loads(f.read_text())
        assert rec["result"] == by_uid[rec["result"]["series_uid"]] and rec["skipped"] == []
    # the tables hold every slice, with the same numbers
    items = pq.read_table(res / "items.parquet").to_pylist()
    assert len(items) == sum(len(p) for p in series.values()) == 48
    want = {(s["series_uid"], i["path"]): i for s in doc["series"] for i in s["items"]}
    for row in items:
        item = want[(row["series_uid"], row["path"])]
        assert row["top"] == item["top"] and row["frame"] is None
        assert row["probabilities.nodule"] == item["probabilities"]["nodule"]
        assert (row["ood.score"], row["ood.flag"]) == (item["ood"]["score"], item["ood"]["flag"])
    table = pq.read_table(res / "series.parquet").to_pylist()
    assert {r["status"] for r in table} == {"done"} and sum(r["images"] for r in table) == 48
    assert sum(r["ood.checked"] for r in table) == 48
    # every series analysed on Ray is in the audit log, as the local engine's are
    from medviewer.engine.audit import AuditLog

    logged = {a["id"]: a for a in AuditLog().analyses() if a["source"] == "cli-ray"}
    for s in doc["series"]:
        a = logged[s["audit_id"]]
        assert a["series_uid"] == s["series_uid"] and a["n_items"] == len(s["items"]) == 6
        assert a["ood_checked"] and a["ood_flagged"] == s["ood"]["flagged"] and len(a["sop_uids"]) == 6
        assert a["model_name"] == doc["model"]["name"] and a["status"] == "complete"
    # a second run finds everything done and writes the same document
    out2 = tmp_path / "again.json"
    code, _, err = _run(capsys, ["predict", str(root), "--model", "demo", "--engine", "ray", "--results", str(res),
                                 "--json", str(out2)])
    assert code == 0 and "8 of 8 series already finished" in err and "resuming with 0" in err
    assert json.loads(out2.read_text())["series"] == doc["series"]


def test_csv_of_paths_and_grad_cam_files_as_local(cluster, archive, tmp_path, capsys):
    root, series = archive
    csv = tmp_path / "list.csv"
    first, second = sorted(root.iterdir())[:2]
    # a study folder, and the files of another study listed one by one (any order, one missing)
    files = sorted(second.rglob("*.dcm"), reverse=True)
    csv.write_text("path,note\n" + f"{first},study\n" + "".join(f"{p},file\n" for p in files) + "gone.dcm,x\n")
    local_out, ray_out = tmp_path / "local.json", tmp_path / "ray.json"
    code, _, err = _run(capsys, ["predict", str(csv), "--model", "demo", "--device", "cpu", "--json", str(local_out),
                                 "--cam-dir", str(tmp_path / "cams_local")])
    assert code == 1  # a listed path is missing
    code, _, err = _run(capsys, ["predict", str(csv), "--model", "demo", "--engine", "ray", "--device", "cpu",
                                 "--json", str(ray_out), "--cam-dir", str(tmp_path / "cams_ray")])
    assert code == 1 and "gone.dcm: listed but not found" in err, err
    local, doc = json.loads(local_out.read_text()), json.loads(ray_out.read_text())
    assert len(doc["series"]) == 4  # two studies, two series each, grouped as a folder scan groups them
    assert_same(local, doc)
    for s in doc["series"]:
        for it in s["items"]:
            a = np.load(tmp_path / "cams_local" / it["cam"])
            b = np.load(tmp_path / "cams_ray" / it["cam"])
            assert a.shape == b.shape == (48, 48) and np.abs(a - b).max() <= TOL
            assert (tmp_path / "cams_ray" / it["cam"]).with_suffix(".png").is_file()


def test_corrupt_series_is_reported_and_the_rest_finishes(cluster, tmp_path, capsys):
    root = tmp_path / "archive"
    archivegen.archive(root, studies=2, series_per_study=1, slices=4, seed=3)
    _, bad_uid = archivegen.undecodable_series(root / "damaged", n=3)
    partly, partly_uid = archivegen.series(root / "partly", 4, rows=40, cols=40, study_uid="1.2.3.4",
                                           number=2, seed=9)
    archivegen.damage_pixels(partly[1])  # one slice of an otherwise good series
    local_out = tmp_path / "local.json"
    assert main(["predict", str(root), "--model", "demo", "--device", "cpu", "--json", str(local_out)]) == 1
    capsys.readouterr()
    res, out = tmp_path / "res", tmp_path / "ray.json"
    code, _, err = _run(capsys, ["predict", str(root), "--model", "demo", "--engine", "ray", "--retries", "1",
                                 "--results", str(res), "--json", str(out)])
    assert code == 1, err
    assert "Traceback" not in err
    # the first slice in display order (head to feet) names its file and the decoder's reason
    assert re.search(f"series {re.escape(bad_uid)} failed: no slice could be used \\(3 of 3 failed after "
                     r"2 attempt\(s\); first: bad0[0-2]\.dcm: codestream unreadable", err), err
    skipped = [line for line in err.splitlines() if "skipped partly/" in line]
    assert len(skipped) == 1 and skipped[0].count(".dcm") == 1, skipped  # the name once
    assert "3 of 4 series finished" in err
    doc, local = json.loads(out.read_text()), json.loads(local_out.read_text())
    failed = next(s for s in doc["series"] if s["series_uid"] == bad_uid)
    assert failed["items"] == [] and "codestream unreadable" in failed["error"]
    # everything else as the local engine (which also leaves the damaged slice out)
    assert_same({**local, "series": [s for s in local["series"] if s["series_uid"] != bad_uid]},
                {**doc, "series": [s for s in doc["series"] if s["series_uid"] != bad_uid]})
    part = next(s for s in doc["series"] if s["series_uid"] == partly_uid)
    assert len(part["items"]) == 3
    errors = list((res / "errors").glob("*.json"))
    assert len(errors) == 1 and json.loads(errors[0].read_text())["series_uid"] == bad_uid
    rows = {r["series_uid"]: r for r in pq.read_table(res / "series.parquet").to_pylist()}
    assert rows[bad_uid]["status"] == "error" and rows[partly_uid]["skipped"] == 1
    # a re-run tries the failed series again, and only that one
    code, _, err = _run(capsys, ["predict", str(root), "--model", "demo", "--engine", "ray", "--retries", "0",
                                 "--results", str(res)])
    assert code == 1 and "3 of 4 series already finished" in err and "resuming with 1" in err
    assert f"series {bad_uid} failed" in err


@pytest.mark.slow
def test_interrupted_run_resumes(cluster, tmp_path, capsys):
    """Ctrl-C in the middle (SIGINT to the whole process group, as a terminal sends it):
    exit 130, one line, whole results only, no Ray process left; the re-run (joining
    the module's Ray by address) finishes and equals the local engine."""
    root = tmp_path / "archive"
    archivegen.archive(root, studies=10, series_per_study=2, slices=8, rows=160, cols=160, seed=4)
    local_out = tmp_path / "local.json"
    assert main(["predict", str(root), "--model", "demo", "--device", "cpu", "--json", str(local_out)]) == 0
    capsys.readouterr()
    res = tmp_path / "res"
    proc = subprocess.Popen(_cli("predict", str(root), "--model", "demo", "--engine", "ray", "--workers", "1",
                                 "--batch-size", "2", "--results", str(res)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen: dict[int, psutil.Process] = {}
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        seen.update({p.pid: p for p in _descendants(proc.pid)})
        if len(list((res / "series").glob("*.json"))) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    seen.update({p.pid: p for p in _descendants(proc.pid)})
    # the private Ray instance listens on the loopback interface only
    tree = set(seen) | {proc.pid}
    listening = [c.laddr for c in psutil.net_connections("inet") if c.status == "LISTEN" and c.pid in tree]
    assert listening and all(a.ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1") for a in listening), listening
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "medviewer: interrupted" in err
    assert "run the same command to resume" in err
    _, alive = psutil.wait_procs(list(seen.values()), timeout=30)
    for p in alive:
        p.kill()
    assert not alive, f"processes left after Ctrl-C: {[(p.pid, p.name()) for p in alive]}"
    done = sorted((res / "series").glob("*.json"))
    assert 3 <= len(done) < 20
    for f in done:  # whole files only
        assert json.loads(f.read_text())["result"]["items"]
    assert not list((res / "series").glob(".*.tmp"))
    assert len(pq.read_table(res / "items.parquet")) == 8 * len(done)
    # resume on the module's cluster, joined by address from another process
    out_json = tmp_path / "ray.json"
    proc = subprocess.run(_cli("predict", str(root), "--model", "demo", "--engine", "ray", "--ray-address", cluster,
                               "--results", str(res), "--json", str(out_json)),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(done)} of 20 series already finished" in proc.stderr
    assert_same(json.loads(local_out.read_text()), json.loads(out_json.read_text()))
    assert len(pq.read_table(res / "items.parquet")) == 160
    assert ray.is_initialized() and all(n["Alive"] for n in ray.nodes())  # a joined cluster stays up


@pytest.mark.slow
def test_memory_stays_bounded_on_an_archive_larger_than_the_object_store(cluster, tmp_path, capsys):
    """About 150 MB of input tensors (and 100 MB of DICOM) through an 80 MiB object store:
    the store never fills, nothing spills, the driver does not hold the tensors."""
    from ray._private.internal_api import get_memory_info_reply, get_state_from_address

    import test_engine_modelfile

    model = tmp_path / "wide.safetensors"  # 224 px input: 602 KB of float32 per slice
    test_engine_modelfile.make_model_file(model, arch="mobilenet_v3_small", classes=("a", "b"), size=224,
                                          window={"center": 40, "width": 400})
    root = tmp_path / "archive"
    archivegen.archive(root, studies=25, series_per_study=1, slices=10, rows=512, cols=512, seed=6)
    disk = sum(p.stat().st_size for p in root.rglob("*.dcm"))
    tensors = 250 * 3 * 224 * 224 * 4
    assert disk > STORE and tensors > 1.5 * STORE
    warm = tmp_path / "warm"  # Ray Data's and pyarrow's imports are not what is measured
    archivegen.archive(warm, studies=1, series_per_study=1, slices=2, rows=64, cols=64)
    assert main(["predict", str(warm), "--model", str(model), "--engine", "ray", "--workers", "1"]) == 0
    capsys.readouterr()
    state = get_state_from_address(cluster)
    before = get_memory_info_reply(state).store_stats
    me = psutil.Process()
    peak = {"store": 0, "rss": me.memory_info().rss}
    rss0 = peak["rss"]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            stats = get_memory_info_reply(state).store_stats
            peak["store"] = max(peak["store"], stats.object_store_bytes_used)
            peak["rss"] = max(peak["rss"], me.memory_info().rss)
            stop.wait(0.1)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    try:
        code, _, err = _run(capsys, ["predict", str(root), "--model", str(model), "--engine", "ray",
                                     "--workers", "1", "--batch-size", "8", "--results", str(tmp_path / "res")])
    finally:
        stop.set()
        watcher.join()
    assert code == 0, err
    after = get_memory_info_reply(state).store_stats
    created = after.cumulative_created_bytes - before.cumulative_created_bytes
    assert created > tensors  # every tensor went through the store ...
    assert peak["store"] < STORE  # ... which never filled up
    assert after.spilled_bytes_total == before.spilled_bytes_total  # nor spilled to disk
    assert peak["rss"] - rss0 < tensors / 3  # the driver keeps results, not tensors
    assert len(pq.read_table(tmp_path / "res" / "items.parquet")) == 250


@pytest.mark.slow
def test_a_killed_model_worker_is_replaced_and_nothing_is_lost(cluster, archive, local_doc, tmp_path, capsys):
    """The model actor's process is killed (SIGKILL, as the OOM killer or a lost node does)
    while it works: Ray starts a new one, retries its tasks, and the results are complete."""
    root, _ = archive
    out = tmp_path / "ray.json"
    result: dict[str, int] = {}
    runner = threading.Thread(target=lambda: result.update(code=main(
        ["predict", str(root), "--model", "demo", "--engine", "ray", "--workers", "1", "--batch-size", "2",
         "--results", str(tmp_path / "res"), "--json", str(out)])))
    runner.start()
    killed = None
    done_then = 0
    deadline = time.monotonic() + 180
    while killed is None and runner.is_alive() and time.monotonic() < deadline:
        done_then = len(list((tmp_path / "res" / "series").glob("*.json")))
        if done_then:
            for p in psutil.Process().children(recursive=True):
                try:
                    if "InferActor" in " ".join(p.cmdline()):
                        p.kill()
                        killed = p.pid
                        break
                except psutil.Error:
                    continue
        time.sleep(0.02)
    runner.join(timeout=300)
    _, err = capsys.readouterr()
    assert killed is not None, "no model worker was found to kill"
    assert done_then < 8, "the run had finished before the worker was killed"
    assert result.get("code") == 0, err
    doc = json.loads(out.read_text())
    assert_same(local_doc, doc)
    assert len(list((tmp_path / "res" / "series").glob("*.json"))) == 8


def test_dicom_out_written_by_the_workers_equals_the_local_engine(cluster, tmp_path, capsys):
    """--dicom-out: the same SR, Secondary Capture and Parametric Map objects (same UIDs,
    values within 1e-4, burned-in grey levels within 1) as the local engine, valid per dciodvfy."""
    import pydicom

    from test_dicomout import DCIODVFY, dciodvfy_errors

    root = tmp_path / "archive"
    archivegen.archive(root, studies=1, series_per_study=2, slices=4, rows=40, cols=40, seed=8)
    local, remote = tmp_path / "dicom_local", tmp_path / "dicom_ray"
    common = ["--model", "demo", "--device", "cpu", "--dicom-out-maps", "--dicom-out-slices", "top2"]
    assert main(["predict", str(root), *common, "--dicom-out", str(local)]) == 0
    capsys.readouterr()
    res = tmp_path / "res"
    code, _, err = _run(capsys, ["predict", str(root), *common, "--engine", "ray", "--dicom-out", str(remote),
                                 "--results", str(res)])
    assert code == 0, err
    assert err.count("DICOM results in") == 2
    files = sorted(p.relative_to(local) for p in local.rglob("*.dcm"))
    assert files == sorted(p.relative_to(remote) for p in remote.rglob("*.dcm"))
    assert sum(f.name.endswith("-sr.dcm") for f in files) == 2 and sum(f.name.endswith("-pm.dcm") for f in files) == 2
    assert len(files) == 2 * (1 + 2 + 1)  # per series: SR, 2 SC images, Parametric Map
    for rel in files:
        a, b = pydicom.dcmread(local / rel), pydicom.dcmread(remote / rel)
        assert (a.SOPInstanceUID, a.SeriesInstanceUID, a.StudyInstanceUID) == \
            (b.SOPInstanceUID, b.SeriesInstanceUID, b.StudyInstanceUID)  # same model hash and options
        if "PixelData" in a and a.get("BitsAllocated") == 8:  # Secondary Capture: grey levels
            assert np.abs(a.pixel_array.astype(int) - b.pixel_array.astype(int)).max() <= 1
        elif "FloatPixelData" in a or "PixelData" in a:  # Parametric Map
            assert np.abs(a.pixel_array.astype(float) - b.pixel_array.astype(float)).max() <= TOL
        if rel.name.endswith("-sr.dcm"):
            # every NUM item (class probabilities, OOD fraction and count) and the OOD summary agree
            nums_a = [float(i.MeasuredValueSequence[0].NumericValue) for i in _num_items(a)]
            nums_b = [float(i.MeasuredValueSequence[0].NumericValue) for i in _num_items(b)]
            assert len(nums_a) == len(nums_b) > 0 and np.abs(np.subtract(nums_a, nums_b)).max() <= TOL
            summary = [i.TextValue for i in _text_items(b, "Out-of-distribution summary")]
            assert summary == [i.TextValue for i in _text_items(a, "Out-of-distribution summary")]
            assert summary and "not run" not in summary[0]
        if DCIODVFY.exists():
            assert dciodvfy_errors(remote / rel) == [], rel
    records = [json.loads(p.read_text()) for p in (res / "series").glob("*.json")]
    assert len(records) == 2 and all(len(r["dicom"]) == 4 for r in records)


def _text_items(ds, name: str) -> list:
    """TEXT content items named `name` anywhere in an SR tree."""
    found = []

    def walk(items):
        for it in items:
            if it.ValueType == "TEXT" and it.ConceptNameCodeSequence[0].CodeMeaning == name:
                found.append(it)
            walk(it.get("ContentSequence", []))

    walk(ds.ContentSequence)
    return found


def _num_items(ds) -> list:
    found = []

    def walk(items):
        for it in items:
            if it.ValueType == "NUM":
                found.append(it)
            walk(it.get("ContentSequence", []))

    walk(ds.ContentSequence)
    return found
