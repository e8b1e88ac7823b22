"""engine.audit and `medviewer audit`: entries from `medviewer predict`, verdicts, filters,
JSON/CSV, append-only (no UPDATE/DELETE path, triggers, hash chains) and crash safety
(a writer process killed mid-write)."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import dicomgen
from medviewer.engine import audit
from medviewer.engine.audit import Analysis, AuditError, AuditLog, Verdict
from medviewer.viewer.cli import main
from test_engine_modelfile import make_model_file


@pytest.fixture()
def log_path(tmp_path, monkeypatch):
    path = tmp_path / "home" / "audit.sqlite"
    monkeypatch.setenv("MEDVIEWER_AUDIT_FILE", str(path))
    return path


def _analysis(**kw) -> Analysis:
    base = dict(model_name="tiny", model_version="1.0", model_sha256="ab" * 32, device="cpu",
                study_uid="1.2.3", series_uid="1.2.3.4", n_items=3, sop_uids=["1.2.3.4.1"],
                result={"method": "mean", "top": "lesion", "probability": 0.8, "probabilities": {}},
                source="api")
    base.update(kw)
    return Analysis(**base)


def test_predict_appends_one_entry_per_series_without_patient_data(tmp_path, capsys, log_path):
    root = tmp_path / "study"
    paths, uid = dicomgen.ct_series(root / "ct", n=4, rows=16, cols=16)
    model = tmp_path / "tiny.safetensors"
    make_model_file(model)
    assert main(["predict", str(root), "--model", str(model), "--json", str(tmp_path / "p.json")]) == 0
    doc = json.loads((tmp_path / "p.json").read_text())
    (entry,) = AuditLog().analyses()
    assert doc["series"][0]["audit_id"] == entry["id"]
    import pydicom

    first = pydicom.dcmread(paths[0])
    assert entry["source"] == "cli" and entry["series_uid"] == uid and entry["study_uid"] == first.StudyInstanceUID
    assert entry["n_items"] == 4 and entry["n_failed"] == 0 and entry["status"] == "complete"
    assert entry["sop_uids"] == [pydicom.dcmread(p).SOPInstanceUID for p in paths]
    assert entry["model_name"] == "tiny" and entry["model_sha256"] == __import__("hashlib").sha256(
        model.read_bytes()).hexdigest()
    assert entry["device"].startswith("cpu") and entry["os_user"] and entry["host"]
    assert entry["result"]["top"] in ("normal", "lesion") and entry["result"]["method"] == "mean"
    assert entry["ood_checked"] is False and entry["ood_fraction"] is None
    raw = log_path.read_bytes() + (log_path.with_name(log_path.name + "-wal").read_bytes()
                                   if log_path.with_name(log_path.name + "-wal").exists() else b"")
    assert first.PatientName.encode() not in raw and first.PatientID.encode() not in raw


def test_verdicts_filters_and_the_audit_command(tmp_path, capsys, log_path):
    log = AuditLog()
    a = log.record_analysis(_analysis(time="2026-01-02T10:00:00.000Z", model_name="alpha"))
    b = log.record_analysis(_analysis(time="2026-03-04T10:00:00.000Z", model_name="beta", ood_checked=True,
                                      ood_flagged=2, ood_fraction=0.5, input_warnings=["modality MR; ..."]))
    log.record_verdict(Verdict(a, "rejected", "nodule is a vessel"))
    log.record_verdict(Verdict(a, "accepted", "on second look"))
    with pytest.raises(ValueError):
        log.record_verdict(Verdict(b, "maybe"))
    with pytest.raises(AuditError, match="refused"):
        log.record_verdict(Verdict("no-such-analysis", "accepted"))
    entries = log.analyses()
    assert [e["id"] for e in entries] == [a, b]
    assert [v["verdict"] for v in entries[0]["verdicts"]] == ["rejected", "accepted"]
    assert audit.latest_verdict(entries[0])["comment"] == "on second look"
    assert [e["id"] for e in log.analyses(since="2026-02-01")] == [b]
    assert [e["id"] for e in log.analyses(model="ALPHA")] == [a]

    assert main(["audit", "--json", "--since", "2026-02-01"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [e["id"] for e in out] == [b] and out[0]["ood_fraction"] == 0.5
    csv_path = tmp_path / "audit.csv"
    assert main(["audit", "--csv", str(csv_path), "--model", "alpha"]) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert len(rows) == 1 and rows[0]["verdict"] == "accepted" and rows[0]["verdicts"] == "2"
    assert rows[0]["result_top"] == "lesion"
    assert main(["audit"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert len(text) == 2 and "accepted by" in text[0] and "OOD 50% flagged" in text[1] and "input:" in text[1]
    assert main(["audit", "--since", "yesterday"]) == 2
    assert "--since" in capsys.readouterr().err
    assert main(["audit", "--verify"]) == 0


def test_append_only_no_update_or_delete_path(log_path):
    log = AuditLog()
    a = log.record_analysis(_analysis())
    log.record_verdict(Verdict(a, "accepted"))
    con = sqlite3.connect(log_path, isolation_level=None)
    for sql in ("UPDATE analysis SET n_items = 99", "DELETE FROM analysis", "UPDATE verdict SET verdict = 'rejected'",
                "DELETE FROM verdict"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            con.execute(sql)
    con.close()
    assert log.analyses()[0]["n_items"] == 3 and log.verify() == []
    # the code has no statement that changes or removes rows
    for module in ("audit.py", "audit_cli.py"):
        src = (Path(audit.__file__).parent / module).read_text()
        assert not re.search(r"\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b|\bDROP\s+TABLE\b|\bREPLACE\s+INTO\b",
                             src, re.IGNORECASE)


def test_hash_chain_shows_an_edit_made_around_the_triggers(log_path):
    log = AuditLog()
    for k in range(3):
        log.record_analysis(_analysis(n_items=k + 1))
    con = sqlite3.connect(log_path, isolation_level=None)
    con.execute("DROP TRIGGER analysis_no_update")
    con.execute("UPDATE analysis SET result = '{\"top\": \"normal\"}' WHERE seq = 2")
    con.close()
    problems = log.verify()
    assert any("trigger analysis_no_update is missing" in p for p in problems)
    assert any("analysis row 2 does not match its hash chain" in p for p in problems)


_WRITER = r"""
import sys
from medviewer.engine.audit import Analysis, AuditLog, Verdict
log = AuditLog(sys.argv[1])
i = 0
while True:
    a = Analysis(model_name="m", model_version="1", model_sha256=None, device="cpu", study_uid="1.2",
                 series_uid=f"1.2.{i}", n_items=500, sop_uids=[f"1.2.{i}.{k}" for k in range(500)],
                 result={"top": "x", "method": "mean", "probability": 0.5, "probabilities": {}}, source="api")
    log.record_analysis(a)
    log.record_verdict(Verdict(a.id, "accepted", "c" * 200))
    i += 1
    if i == 3:
        print("writing", flush=True)
"""


def test_log_survives_a_writer_killed_mid_write(tmp_path):
    path = tmp_path / "crash" / "audit.sqlite"
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE,
                                env={**os.environ})
        try:
            assert proc.stdout.readline().strip() == b"writing"
            time.sleep(0.2 + 0.15 * attempt)       # somewhere inside a transaction, most likely
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        log = AuditLog(path)
        assert log.verify() == []
        entries = [e for e in log.analyses() if e["model_name"] == "m"]
        assert len(entries) >= 3
        verdicts = [v for e in entries for v in e["verdicts"]]
        # each killed writer may have died between an analysis and its verdict
        assert len(entries) - (attempt + 1) <= len(verdicts) <= len(entries)
        for e in entries:   # every committed row is whole
            assert len(e["sop_uids"]) == 500 and e["n_items"] == 500
        # the writer after a crash continues the same chain
        log.record_analysis(_analysis())
        assert log.verify() == []
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
