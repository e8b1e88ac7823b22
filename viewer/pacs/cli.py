"""`medviewer pacs echo|find|get|send`: the same code as the viewer's Query/Retrieve and Send.

    medviewer pacs echo (--node AET@HOST:PORT | --dicomweb URL)
    medviewer pacs find (--node AET@HOST:PORT | --dicomweb URL) [--patient-id ID] [--patient-name PAT]
                        [--study-date RANGE] [--modality MOD] [--accession N] [--json]
    medviewer pacs get (--node ... | --dicomweb URL) STUDY_UID [--series SERIES_UID] --to DIR
                       [--move --aet AET --port PORT]
    medviewer pacs send (--node ... | --dicomweb URL) PATH...

Every sub-command also takes --aet (our AE title, default from the PACS settings
or MEDVIEWER) and --timeout S.  --node also accepts the name of a node saved in
the PACS settings (<user data>/pacs.json).  DICOMweb credentials come from
MEDVIEWER_DICOMWEB_USER / MEDVIEWER_DICOMWEB_PASSWORD or MEDVIEWER_DICOMWEB_TOKEN.
Exit codes as for `info`: 0 done, 1 done with failed items, 2 nothing done.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from medviewer.viewer.clikit import EXIT_FAIL, EXIT_OK, EXIT_PARTIAL, Parser
from medviewer.viewer.errors import UsageError
from medviewer.viewer.pacs.nodes import Timeouts, WebNode, check_aet, check_port, load_config, parse_node

SUBCOMMANDS = ("echo", "find", "get", "send")


def _parser(cmd: str) -> Parser:
    p = Parser(prog=f"medviewer pacs {cmd}", description={
        "echo": "Check that a node answers (C-ECHO, or a DICOMweb QIDO-RS request).",
        "find": "List the studies of a node that match the filters.",
        "get": "Retrieve a study (or one series) into a folder; instances already there are not fetched again.",
        "send": "Store DICOM files (and folders of them) on a node, with the status of each file.",
    }[cmd])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--node", metavar="AET@HOST:PORT", help="a DIMSE node (or the name of a saved node)")
    where.add_argument("--dicomweb", metavar="URL", help="a DICOMweb service's base URL")
    p.add_argument("--aet", metavar="AET", help="our AE title (default: the PACS settings', else MEDVIEWER)")
    p.add_argument("--timeout", type=float, metavar="S", help="network timeout in seconds")
    return p


def _client(args: Any) -> Any:
    from medviewer.viewer.pacs.client import PacsClient

    config = load_config()
    node = WebNode.parse(args.dicomweb) if args.dicomweb else parse_node(args.node, config)
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    timeouts = Timeouts.scaled(args.timeout) if args.timeout else config.timeouts()
    return PacsClient(node, check_aet(args.aet or config.aet, "--aet"), timeouts)


def _progress(prog: str):
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        print(f"\r{prog}: {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)

    return show


def main_echo(argv: list[str]) -> int:
    args = _parser("echo").parse_args(argv)
    print(_client(args).echo())
    return EXIT_OK


def main_find(argv: list[str]) -> int:
    from medviewer.viewer.pacs.dimse import StudyQuery

    p = _parser("find")
    p.add_argument("--patient-id", default="", metavar="ID")
    p.add_argument("--patient-name", default="", metavar="PAT", help="with * and ? wildcards, e.g. 'DOE^*'")
    p.add_argument("--study-date", default="", metavar="RANGE", help="YYYYMMDD or YYYYMMDD-YYYYMMDD")
    p.add_argument("--modality", default="", metavar="MOD", help="e.g. CT")
    p.add_argument("--accession", default="", metavar="N")
    p.add_argument("--json", action="store_true", help="print the matches as JSON")
    args = p.parse_args(argv)
    _check_date(args.study_date)
    client = _client(args)
    matches = client.find(StudyQuery(args.patient_id, args.patient_name, args.study_date, args.modality.upper(),
                                      args.accession))
    if args.json:
        print(json.dumps({"node": str(client.node), "studies": [m.to_json() for m in matches]}, indent=2))
        return EXIT_OK
    print(f"{len(matches)} stud{'y' if len(matches) == 1 else 'ies'} on {client.node}")
    for m in matches:
        counts = f"{m.series if m.series is not None else '?'} series, " \
                 f"{m.instances if m.instances is not None else '?'} instances"
        print(f"{m.study_uid}\t{m.patient_id}\t{m.patient_name}\t{m.date}\t{m.description}\t"
              f"{'/'.join(m.modalities)}\t{counts}")
    return EXIT_OK


def _check_date(text: str) -> None:
    import re

    if text and not re.match(r"^(\d{8})?(-(\d{8})?)?$", text):
        raise UsageError(f"--study-date {text!r}: use YYYYMMDD, YYYYMMDD-YYYYMMDD, -YYYYMMDD or YYYYMMDD-")


def main_get(argv: list[str]) -> int:
    p = _parser("get")
    p.add_argument("study", metavar="STUDY_UID")
    p.add_argument("--series", metavar="SERIES_UID", help="only this series")
    p.add_argument("--to", required=True, metavar="DIR", help="folder to write into (DIR/<study>/<series>/)")
    p.add_argument("--move", action="store_true",
                   help="C-MOVE to our own Storage SCP (listening on --port for the duration) instead of C-GET")
    p.add_argument("--port", type=int, metavar="PORT", help="the port our Storage SCP listens on for --move")
    args = p.parse_args(argv)
    if args.move and args.port is None:
        raise UsageError("--move needs --port PORT (and the node must know our AE title, host and port)")
    if args.port is not None and not args.move:
        raise UsageError("--port is for --move")
    if args.move:
        check_port(args.port, "--port")
    if args.dicomweb and args.move:
        raise UsageError("--move is a DIMSE retrieval; with --dicomweb, WADO-RS is used")
    dest = Path(args.to)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{dest}: cannot create the folder ({exc.strerror})") from None
    client = _client(args)
    report = client.retrieve(args.study, dest, series_uid=args.series, move_port=args.port if args.move else None,
                             progress=_progress("medviewer pacs get"))
    for item, reason in report.failed:
        print(f"medviewer pacs get: {item}: {reason}", file=sys.stderr)
    if report.remote_only_failed:
        print(f"medviewer pacs get: the node reported {report.remote_only_failed} failed sub-operation(s)",
              file=sys.stderr)
    print(f"{args.study}: {report.summary()} -> {dest / args.study}")
    if report.complete:
        return EXIT_OK
    return EXIT_PARTIAL if report.received or report.already_here else EXIT_FAIL


def main_send(argv: list[str]) -> int:
    p = _parser("send")
    p.add_argument("paths", nargs="+", metavar="PATH", help="DICOM files or folders (searched recursively)")
    args = p.parse_args(argv)
    client = _client(args)
    results = client.send(args.paths, progress=_progress("medviewer pacs send"))
    for r in results:
        print(f"{r.path}: {r.message}" if r.ok else f"{r.path}: FAILED: {r.message}")
    ok = sum(r.ok for r in results)
    print(f"{ok} of {len(results)} file(s) stored on {client.node}", file=sys.stderr)
    if ok == len(results) and results:
        return EXIT_OK
    return EXIT_PARTIAL if ok else EXIT_FAIL


def main_pacs(argv: list[str]) -> int:
    """`medviewer pacs SUBCOMMAND ...`."""
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.split("\n\n")[1] if __doc__ else "")
        return EXIT_OK if argv else EXIT_FAIL
    cmd, rest = argv[0], argv[1:]
    if cmd not in SUBCOMMANDS:
        raise UsageError(f"medviewer pacs: unknown sub-command {cmd!r} (use {', '.join(SUBCOMMANDS)})")
    return {"echo": main_echo, "find": main_find, "get": main_get, "send": main_send}[cmd](rest)
