"""`medviewer audit`: list the audit log of AI analyses and readers' verdicts.

    medviewer audit [--since DATE] [--model NAME] [--json | --csv OUT] [--verify] [--log FILE]

Text (default): one line per analysis with its latest verdict.  --json: every
analysis with all its fields and every verdict ("verdicts", oldest first).  --csv:
one row per analysis with the latest verdict and the number of verdicts.
--verify checks the file (SQLite integrity, append-only triggers, hash chains) and
exits 2 when anything is wrong.  Times are UTC.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from medviewer.viewer.clikit import EXIT_FAIL, EXIT_OK, Parser
from medviewer.viewer.errors import UsageError

CSV_FIELDS = ("id", "time", "source", "os_user", "host", "medviewer_version", "model_name", "model_version",
              "model_sha256", "device", "study_uid", "series_uid", "n_items", "n_failed", "status",
              "result_top", "result_probability", "result_method", "ood_checked", "ood_flagged", "ood_fraction",
              "input_warnings", "verdict", "verdict_comment", "verdict_time", "verdict_user", "verdicts")


def parse_since(text: str) -> str:
    """An ISO date or date-time -> the log's UTC time format (naive times are UTC)."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since: expected a date such as 2026-11-30 or 2026-11-30T08:00, got {text!r}") from None
    if when.tzinfo is not None:
        when = when.astimezone(timezone.utc).replace(tzinfo=None)
    return when.isoformat(timespec="milliseconds") + "Z" if "T" in text or " " in text.strip() \
        else when.date().isoformat()


def _latest(entry: dict[str, Any]) -> dict[str, Any] | None:
    return entry["verdicts"][-1] if entry.get("verdicts") else None


def csv_row(entry: dict[str, Any]) -> dict[str, Any]:
    res = entry.get("result") or {}
    v = _latest(entry)
    return {**{k: entry.get(k) for k in CSV_FIELDS if k in entry},
            "result_top": res.get("top"), "result_probability": res.get("probability"),
            "result_method": res.get("method"),
            "input_warnings": "; ".join(entry.get("input_warnings") or []),
            "verdict": v["verdict"] if v else "", "verdict_comment": v["comment"] if v else "",
            "verdict_time": v["time"] if v else "", "verdict_user": v["os_user"] if v else "",
            "verdicts": len(entry.get("verdicts") or [])}


def text_line(entry: dict[str, Any]) -> str:
    res = entry.get("result") or {}
    top = f"{res.get('top')} {res['probability']:.3f}" if res.get("top") and res.get("probability") is not None \
        else "-"
    ood = "no OOD check" if not entry["ood_checked"] else \
        f"OOD {entry['ood_fraction'] * 100:.0f}% flagged" if entry.get("ood_fraction") is not None else "OOD -"
    v = _latest(entry)
    verdict = f"{v['verdict']} by {v['os_user']}" + (f" ({v['comment']})" if v["comment"] else "") if v else "no verdict"
    warn = " [input: " + "; ".join(entry["input_warnings"]) + "]" if entry.get("input_warnings") else ""
    return (f"{entry['time'][:19].replace('T', ' ')}Z  {entry['source']:<6} {entry['os_user']:<10} "
            f"{entry['model_name']} {entry['model_version']}  series ...{(entry.get('series_uid') or '-')[-16:]}  "
            f"{entry['n_items']} image(s)  {top}  {ood}  {verdict}{warn}  [{entry['id'][:8]}]")


def main_audit(argv: list[str]) -> int:
    """List (or verify) the audit log."""
    from medviewer.engine.audit import AuditLog

    p = Parser(prog="medviewer audit", description="List the audit log of AI analyses and readers' verdicts.")
    p.add_argument("--since", metavar="DATE", help="only analyses at or after this UTC date/time (ISO 8601)")
    p.add_argument("--model", metavar="NAME", help="only analyses by this model (name, case-insensitive)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print JSON (every field, every verdict)")
    out.add_argument("--csv", metavar="OUT", help="write a CSV file, one row per analysis ('-' for stdout)")
    p.add_argument("--verify", action="store_true", help="check integrity, triggers and hash chains")
    p.add_argument("--log", metavar="FILE", help="the audit log file (default: the user data folder's)")
    args = p.parse_args(argv)
    log = AuditLog(args.log)
    if args.verify:
        problems = log.verify()
        for line in problems:
            print(f"medviewer audit: {log.path}: {line}", file=sys.stderr)
        if not problems:
            print(f"{log.path}: intact ({len(log.analyses())} analyses)", file=sys.stderr)
        return EXIT_FAIL if problems else EXIT_OK
    entries = log.analyses(since=parse_since(args.since) if args.since else None, model=args.model)
    if args.json:
        print(json.dumps(entries, indent=2))
    elif args.csv:
        rows = [csv_row(e) for e in entries]
        if args.csv == "-":
            _write_csv(sys.stdout, rows)
        else:
            path = Path(args.csv)
            if not path.parent.exists():
                raise UsageError(f"{path}: folder {path.parent} does not exist")
            try:
                with path.open("w", newline="", encoding="utf-8") as fh:
                    _write_csv(fh, rows)
            except OSError as exc:
                raise UsageError(f"{path}: cannot write ({exc.strerror})") from None
            print(f"wrote {len(rows)} analyses to {path}", file=sys.stderr)
    else:
        if not entries:
            print(f"no analyses in {log.path}" + (" matching the filters" if args.since or args.model else ""))
        for e in entries:
            print(text_line(e))
    return EXIT_OK


def _write_csv(fh: Any, rows: list[dict[str, Any]]) -> None:
    w = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
