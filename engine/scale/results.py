"""The --results folder: one JSON per finished series, written atomically, and tables.

    DIR/run.json                   the model (name, version, classes, SHA-256 of the file)
    DIR/series/<name>~<fp>.json    a finished series: {"result": the --json series entry,
                                   "study_uid", "skipped": [...], "fingerprint", "device", ...}
    DIR/errors/<name>.json         a series that failed after its retries (tried again on a re-run)
    DIR/items.parquet              one row per slice of every finished series
    DIR/series.parquet             one row per series (finished or failed)

A series file appears in one rename (write to a temporary name, fsync, rename),
so an interrupted run (Ctrl-C, a killed driver, a lost node) leaves only whole
results.  `<fp>` is the fingerprint of the series' slices and of the options
that shape its result, so a re-run skips a series only when the same slices
were classified the same way; the tables are rebuilt from the series files at
the end of every run (also an interrupted one).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from medviewer.viewer.errors import UsageError

RUN_FILE = "run.json"
TABLE_BATCH = 20000  # rows per Parquet row group while the tables are rebuilt
_INT_COLUMNS = {"frame", "images", "skipped"}


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value


class ResultsDir:
    """Reads and writes one --results folder (the driver is its only writer)."""

    def __init__(self, root: Path, run: dict[str, Any]) -> None:
        self.root = root
        self.series_dir = root / "series"
        self.errors_dir = root / "errors"
        try:
            self.series_dir.mkdir(parents=True, exist_ok=True)
            self.errors_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{root}: cannot create the results folder ({exc.strerror})") from None
        self._check_run(run)
        self._done: dict[str, str] = {}  # series name -> fingerprint
        for path in self.series_dir.glob("*.json"):
            name, sep, fp = path.stem.rpartition("~")
            if sep:
                self._done[name] = fp

    def _check_run(self, run: dict[str, Any]) -> None:
        path = self.root / RUN_FILE
        if path.is_file():
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                old = None
            if not isinstance(old, dict) or old.get("model", {}).get("sha256") != run["model"]["sha256"]:
                was = (old or {}).get("model", {}) if isinstance(old, dict) else {}
                raise UsageError(
                    f"{self.root}: holds results of another model ({was.get('name', '?')} "
                    f"{was.get('version', '?')}, SHA-256 {str(was.get('sha256', '?'))[:12]}); "
                    f"use a new --results folder")
            return
        write_atomic(path, json.dumps(run, indent=2) + "\n")

    def add_devices(self, devices: Iterable[str]) -> list[str]:
        """Remember the devices that computed results here; returns all of them so far."""
        path = self.root / RUN_FILE
        try:
            run = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return sorted(devices)
        merged = sorted(set(run.get("devices", [])) | set(devices))
        if merged != run.get("devices"):
            write_atomic(path, json.dumps({**run, "devices": merged}, indent=2) + "\n")
        return merged

    # -- resume -------------------------------------------------------------------------
    def is_done(self, name: str, fingerprint: str) -> bool:
        return self._done.get(name) == fingerprint

    def _series_path(self, name: str, fingerprint: str) -> Path:
        return self.series_dir / f"{name}~{fingerprint}.json"

    def load(self, name: str, fingerprint: str) -> dict[str, Any]:
        """The record of a finished series."""
        return json.loads(self._series_path(name, fingerprint).read_text(encoding="utf-8"))

    # -- writing ------------------------------------------------------------------------
    def save(self, name: str, fingerprint: str, record: dict[str, Any]) -> None:
        """Store a finished series; older results of it and its error record go."""
        record = {**record, "fingerprint": fingerprint, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_atomic(self._series_path(name, fingerprint), json.dumps(record) + "\n")
        old = self._done.get(name)
        if old is not None and old != fingerprint:
            self._series_path(name, old).unlink(missing_ok=True)
        self._done[name] = fingerprint
        (self.errors_dir / f"{name}.json").unlink(missing_ok=True)

    def save_error(self, name: str, record: dict[str, Any]) -> None:
        record = {**record, "failed": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_atomic(self.errors_dir / f"{name}.json", json.dumps(record, indent=2) + "\n")

    def errors(self) -> Iterator[dict[str, Any]]:
        for path in sorted(self.errors_dir.glob("*.json")):
            try:
                yield json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue

    def finished(self) -> Iterator[dict[str, Any]]:
        for name, fp in sorted(self._done.items()):
            try:
                yield self.load(name, fp)
            except (OSError, ValueError):
                continue

    # -- tables -------------------------------------------------------------------------
    def write_tables(self) -> None:
        """Rebuild items.parquet and series.parquet from the series and error files."""

        def item_rows() -> Iterator[dict[str, Any]]:
            for rec in self.finished():
                base = {"study_uid": rec.get("study_uid", ""), "series_uid": rec["result"]["series_uid"]}
                for item in rec["result"]["items"]:
                    row = dict(base)
                    _flatten("", item, row)
                    yield row

        def series_rows() -> Iterator[dict[str, Any]]:
            for rec in self.finished():
                res = rec["result"]
                row = {"study_uid": rec.get("study_uid", ""), "series_uid": res["series_uid"], "status": "done",
                       "images": len(res["items"]), "skipped": len(rec.get("skipped", [])), "error": None}
                _flatten("aggregate", res["aggregate"], row)
                ood = res.get("ood") or {}
                row["ood.flagged"], row["ood.checked"] = ood.get("flagged"), ood.get("checked")
                row["audit_id"] = res.get("audit_id")
                yield row
            for err in self.errors():
                yield {"study_uid": err.get("study_uid", ""), "series_uid": err.get("series_uid", ""),
                       "status": "error", "images": 0, "skipped": err.get("images", 0),
                       "error": err.get("error", "")}

        _write_parquet(self.root / "items.parquet", item_rows())
        _write_parquet(self.root / "series.parquet", series_rows())


def _write_parquet(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Stream rows into a Parquet file (schema from the first batch), atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = None
    schema = None
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        nonlocal writer, schema
        if not batch:
            return
        if schema is None:
            columns: dict[str, None] = {}
            for row in batch:
                columns.update(dict.fromkeys(row))
            rows_ = [{c: r.get(c) for c in columns} for r in batch]
            inferred = pa.Table.from_pylist(rows_).schema
            schema = pa.schema([f if not pa.types.is_null(f.type) else  # all missing so far
                                pa.field(f.name, pa.int64() if f.name in _INT_COLUMNS else pa.string())
                                for f in inferred])
            table = pa.Table.from_pylist(rows_, schema=schema)
            writer = pq.ParquetWriter(tmp, schema)
        else:
            table = pa.Table.from_pylist([{c: r.get(c) for c in schema.names} for r in batch], schema=schema)
        writer.write_table(table)
        batch.clear()

    try:
        for row in rows:
            batch.append(row)
            if len(batch) >= TABLE_BATCH:
                flush()
        flush()
        if writer is None:  # nothing finished yet: an empty table
            pq.write_table(pa.table({"series_uid": pa.array([], pa.string())}), tmp)
        else:
            writer.close()
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            except Exception:
                pass
        tmp.unlink(missing_ok=True)
        raise
