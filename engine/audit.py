"""The audit trail of AI analyses and readers' verdicts: an append-only SQLite log.

Every analysis, from the viewer or `medviewer predict`, appends one `analysis` row:
time (UTC), OS user, host, medviewer version, the model (name, version, SHA-256 of
its file), the device, study / series / SOP Instance UIDs, the number of images,
the series result, the fraction flagged out-of-distribution and the input check's
warnings.  A reader's verdict on a result (IHE AI Results Assessment, AIRAI:
accepted / rejected / modified, with a comment) is a new `verdict` row that names
the analysis; nothing is ever changed in place.  No patient names or IDs are
written: UIDs are what a site needs to trace a result to its images.

Append-only, three ways: this module has no UPDATE or DELETE statement; triggers
make SQLite refuse both on every table; and each row carries the SHA-256 of its
content chained to the previous row of its table (`verify()` recomputes the
chains, so an edit made with another tool that dropped the triggers shows).
Crash-safe: write-ahead log with synchronous=FULL, one transaction per row, so a
process killed mid-write leaves the committed rows and nothing half-written.
Writers in several processes (the viewer and a CLI run) wait for each other
(`BEGIN IMMEDIATE`, busy timeout).  Plain data in, plain data out: no Qt.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medviewer.viewer.errors import MedviewerError

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.viewer.io.model import ImageRef, Series

SCHEMA_VERSION = 1
VERDICTS = ("accepted", "rejected", "modified")
SOURCES = ("viewer", "cli", "cli-ray", "api")  # cli-ray: `predict --engine ray`
BUSY_TIMEOUT_S = 10.0
GENESIS = "0" * 64

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS analysis (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    time TEXT NOT NULL,
    source TEXT NOT NULL,
    os_user TEXT NOT NULL,
    host TEXT NOT NULL,
    medviewer_version TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version TEXT NOT NULL,
    model_sha256 TEXT,
    device TEXT NOT NULL,
    study_uid TEXT,
    series_uid TEXT,
    sop_uids TEXT NOT NULL,
    n_items INTEGER NOT NULL,
    n_failed INTEGER NOT NULL,
    status TEXT NOT NULL,
    result TEXT NOT NULL,
    ood_checked INTEGER NOT NULL,
    ood_flagged INTEGER,
    ood_fraction REAL,
    input_warnings TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS verdict (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    analysis_id TEXT NOT NULL REFERENCES analysis(id),
    time TEXT NOT NULL,
    source TEXT NOT NULL,
    os_user TEXT NOT NULL,
    host TEXT NOT NULL,
    medviewer_version TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('accepted', 'rejected', 'modified')),
    comment TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
)""",
    """CREATE INDEX IF NOT EXISTS analysis_time ON analysis(time)""",
    """CREATE INDEX IF NOT EXISTS verdict_analysis ON verdict(analysis_id)""",
    """CREATE TRIGGER IF NOT EXISTS analysis_no_update BEFORE UPDATE ON analysis
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS analysis_no_delete BEFORE DELETE ON analysis
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS verdict_no_update BEFORE UPDATE ON verdict
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS verdict_no_delete BEFORE DELETE ON verdict
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END""",
)

ANALYSIS_FIELDS = ("id", "time", "source", "os_user", "host", "medviewer_version", "model_name",
                   "model_version", "model_sha256", "device", "study_uid", "series_uid", "sop_uids",
                   "n_items", "n_failed", "status", "result", "ood_checked", "ood_flagged", "ood_fraction",
                   "input_warnings")
VERDICT_FIELDS = ("id", "analysis_id", "time", "source", "os_user", "host", "medviewer_version", "verdict",
                  "comment")
JSON_FIELDS = ("sop_uids", "result", "input_warnings")


class AuditError(MedviewerError):
    """The audit log cannot be written or read (one line, names the file)."""


def now_utc() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:   # no login name (containers, services)
        return "unknown"


def _version() -> str:
    import sys

    root = sys.modules.get(__name__.split(".")[0])   # the medviewer package, imported before us
    return str(getattr(root, "__version__", "unknown"))


@dataclass
class Analysis:
    """One analysis row; `id` is made here so that a verdict (or a DICOM SR) can name it
    before the row is written."""

    model_name: str
    model_version: str
    model_sha256: str | None
    device: str
    study_uid: str | None
    series_uid: str | None
    n_items: int
    result: dict[str, Any]
    sop_uids: list[str] = field(default_factory=list)
    n_failed: int = 0
    status: str = "complete"               # complete | cancelled | failed
    ood_checked: bool = False
    ood_flagged: int | None = None
    ood_fraction: float | None = None
    input_warnings: list[str] = field(default_factory=list)
    source: str = "api"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    time: str = field(default_factory=now_utc)
    os_user: str = field(default_factory=_os_user)
    host: str = field(default_factory=socket.gethostname)
    medviewer_version: str = field(default_factory=_version)

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d["ood_checked"] = int(bool(d["ood_checked"]))
        return {k: d[k] for k in ANALYSIS_FIELDS}


@dataclass
class Verdict:
    """A reader's verdict on one analysis (IHE AIRAI): accepted, rejected or modified."""

    analysis_id: str
    verdict: str
    comment: str = ""
    source: str = "viewer"
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    time: str = field(default_factory=now_utc)
    os_user: str = field(default_factory=_os_user)
    host: str = field(default_factory=socket.gethostname)
    medviewer_version: str = field(default_factory=_version)

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: d[k] for k in VERDICT_FIELDS}


def _canonical(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def row_hash(prev: str, row: dict[str, Any]) -> str:
    return hashlib.sha256((prev + "\n" + _canonical(row)).encode("ascii")).hexdigest()


def default_path() -> Path:
    from medviewer.viewer.userdata import audit_file

    return audit_file()


class AuditLog:
    """The append-only log in one SQLite file (default: `<user data>/audit.sqlite`).

    Each call opens its own connection, so an AuditLog may be used from any thread.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()

    # -- connection ---------------------------------------------------------------------
    def _connect(self, create: bool = True) -> sqlite3.Connection:
        if not create and not self.path.is_file():
            raise AuditError(f"{self.path}: no audit log yet (nothing has been analysed)")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise AuditError(f"{self.path}: cannot open the audit log ({exc})") from None
        try:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA foreign_keys=ON")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise AuditError(f"{self.path}: audit log schema {version} is newer than this medviewer "
                                 f"({SCHEMA_VERSION}); update medviewer")
            if version < SCHEMA_VERSION and create:
                con.execute("BEGIN IMMEDIATE")   # another process may be creating it too
                try:
                    if con.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                        for statement in _SCHEMA:
                            con.execute(statement)
                        con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
        except sqlite3.DatabaseError as exc:
            con.close()
            raise AuditError(f"{self.path}: not a readable audit log ({exc})") from None
        except BaseException:
            con.close()
            raise
        return con

    def _append(self, table: str, row: dict[str, Any]) -> None:
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")   # the write lock before reading the chain's end
            last = con.execute(f"SELECT hash FROM {table} ORDER BY seq DESC LIMIT 1").fetchone()
            prev = last[0] if last else GENESIS
            stored = {k: (json.dumps(v, sort_keys=True, allow_nan=False) if k in JSON_FIELDS else v)
                      for k, v in row.items()}
            stored["prev_hash"] = prev
            stored["hash"] = row_hash(prev, {k: stored[k] for k in row})
            cols = ", ".join(stored)
            marks = ", ".join(f":{k}" for k in stored)
            con.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", stored)
            con.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise AuditError(f"{self.path}: audit entry refused ({exc})") from None
        except sqlite3.Error as exc:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise AuditError(f"{self.path}: cannot write the audit log ({exc})") from None
        finally:
            con.close()

    # -- writing --------------------------------------------------------------------------
    def record_analysis(self, entry: Analysis) -> str:
        """Append an analysis; returns its id."""
        if entry.source not in SOURCES:
            raise ValueError(f"unknown audit source {entry.source!r}")
        self._append("analysis", entry.row())
        return entry.id

    def record_verdict(self, entry: Verdict) -> str:
        """Append a reader's verdict on an analysis already in the log; returns its id."""
        if entry.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}, got {entry.verdict!r}")
        self._append("verdict", entry.row())
        return entry.id

    # -- reading ------------------------------------------------------------------------------
    def analyses(self, since: str | None = None, model: str | None = None) -> list[dict[str, Any]]:
        """Analyses (oldest first) with their verdicts (oldest first) under "verdicts".

        since: an ISO date or date-time (UTC), inclusive; model: a model name (case-insensitive).
        """
        if not self.path.is_file():
            return []
        con = self._connect(create=False)
        con.row_factory = sqlite3.Row
        try:
            sql = f"SELECT seq, {', '.join(ANALYSIS_FIELDS)} FROM analysis WHERE 1=1"
            args: list[Any] = []
            if since:
                sql += " AND time >= ?"
                args.append(since)
            if model:
                sql += " AND lower(model_name) = lower(?)"
                args.append(model)
            rows = [_decode(dict(r)) for r in con.execute(sql + " ORDER BY seq", args)]
            by_id = {r["id"]: r for r in rows}
            for r in rows:
                r["verdicts"] = []
            if by_id:
                for v in con.execute(f"SELECT seq, {', '.join(VERDICT_FIELDS)} FROM verdict ORDER BY seq"):
                    v = dict(v)
                    if v["analysis_id"] in by_id:
                        by_id[v["analysis_id"]]["verdicts"].append(v)
            return rows
        except sqlite3.Error as exc:
            raise AuditError(f"{self.path}: cannot read the audit log ({exc})") from None
        finally:
            con.close()

    def analysis(self, analysis_id: str) -> dict[str, Any] | None:
        return next((a for a in self.analyses() if a["id"] == analysis_id), None)

    def verify(self) -> list[str]:
        """Problems found (empty = intact): SQLite's integrity check, the append-only
        triggers, the hash chains and verdicts naming unknown analyses."""
        problems: list[str] = []
        con = self._connect(create=False)
        try:
            check = con.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                problems.append(f"SQLite integrity check: {check}")
            triggers = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'")}
            for name in ("analysis_no_update", "analysis_no_delete", "verdict_no_update", "verdict_no_delete"):
                if name not in triggers:
                    problems.append(f"trigger {name} is missing: the log could have been edited")
            for table, fields in (("analysis", ANALYSIS_FIELDS), ("verdict", VERDICT_FIELDS)):
                prev = GENESIS
                for r in con.execute(f"SELECT seq, {', '.join(fields)}, prev_hash, hash FROM {table} ORDER BY seq"):
                    seq, values, stored_prev, stored_hash = r[0], r[1:-2], r[-2], r[-1]
                    row = dict(zip(fields, values))
                    if stored_prev != prev or row_hash(prev, row) != stored_hash:
                        problems.append(f"{table} row {seq} does not match its hash chain (edited or removed rows)")
                        break
                    prev = stored_hash
            orphans = con.execute("SELECT COUNT(*) FROM verdict WHERE analysis_id NOT IN "
                                  "(SELECT id FROM analysis)").fetchone()[0]
            if orphans:
                problems.append(f"{orphans} verdict(s) name analyses that are not in the log")
        except sqlite3.Error as exc:
            problems.append(f"cannot read: {exc}")
        finally:
            con.close()
        return problems


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for k in JSON_FIELDS:
        try:
            row[k] = json.loads(row[k])
        except (TypeError, ValueError):
            pass
    row["ood_checked"] = bool(row["ood_checked"])
    return row


def latest_verdict(entry: dict[str, Any]) -> dict[str, Any] | None:
    verdicts = entry.get("verdicts") or []
    return verdicts[-1] if verdicts else None


# -- building entries from what the engine produced -----------------------------------------------
def sop_uids(series: "Series", refs: Iterable["ImageRef"]) -> list[str]:
    """SOP Instance UIDs (0008,0018) of the files behind `refs` (each once, in order),
    read from the scan's kept header bytes where possible."""
    return [uid for uid in dict.fromkeys(sop_uid_per_item(series, refs)) if uid]


def sop_uid_per_item(series: "Series", refs: Iterable["ImageRef"]) -> list[str]:
    """The SOP Instance UID of each of `refs` ("" where none; frames of one file share it)."""
    from medviewer.viewer.io.rawheader import LazyHeader

    refs = list(refs)
    if series.kind != "dicom":
        return [""] * len(refs)
    entries = series.headers.entries()
    uid_of: dict[Path, str] = {}
    for ref in refs:
        if ref.path in uid_of:
            continue
        entry = entries.get(ref.path)
        uid = ""
        if isinstance(entry, LazyHeader):
            raw = entry.raw.raw(0x00080018)
            uid = raw.decode("ascii", "replace").strip("\x00 ") if raw is not None else ""
        elif entry is not None:
            uid = str(entry.get("SOPInstanceUID", "") or "")
        uid_of[ref.path] = uid
    return [uid_of[ref.path] for ref in refs]


def series_result(classes: Sequence[str], probs: Any, method: str) -> dict[str, Any]:
    """{"method", "top", "probability", "probabilities"} of an aggregated (C,) vector."""
    import numpy as np

    if probs is None or len(probs) == 0:
        return {"method": method, "top": None, "probability": None, "probabilities": {}}
    p = np.asarray(probs, dtype=float)
    top = int(np.argmax(p))
    return {"method": method, "top": classes[top], "probability": float(p[top]),
            "probabilities": {c: float(v) for c, v in zip(classes, p)}}
