"""DIMSE service class user: C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE (PS3.4 Annex A, B, C; PS3.7).

Queries use the Study Root information model (PS3.4 C.6.2).  A retrieval first
lists the study's instances (C-FIND at SERIES and IMAGE level) so that only
the missing ones are asked for (resumable) and only their SOP classes are
proposed as storage contexts with the SCP role (C-GET, PS3.4 C.4.3.1); every
received instance is checked before it is kept (`local.check_instance`).
Every association has connect, ACSE, DIMSE and network timeouts; a refused or
rejected association, a dropped connection and failed sub-operations become
one line naming the node and the reason.
"""

from __future__ import annotations

import errno
import logging
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from pydicom import Dataset
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                         JPEG2000, JPEG2000Lossless, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless,
                         JPEGLosslessSV1, JPEGLSLossless, JPEGLSNearLossless, RLELossless)

from medviewer.viewer.pacs.local import LocalStore, RetrieveReport
from medviewer.viewer.pacs.nodes import DimseNode, PacsError, Timeouts, check_aet

log = logging.getLogger("medviewer.pacs")

#: transfer syntaxes we accept for received instances: native first, then what PACS store compressed
RECEIVE_SYNTAXES = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                    JPEGLossless, JPEGLosslessSV1, JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSLossless,
                    JPEGLSNearLossless, JPEG2000Lossless, JPEG2000, RLELossless]
MAX_CONTEXTS = 127   # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1..255

Progress = Callable[[int, int], None]
StopFlag = Callable[[], bool]

STATUS_TEXT = {
    0xA700: "out of resources", 0xA701: "out of resources (matches)", 0xA702: "out of resources (sub-operations)",
    0xA801: "move destination unknown", 0xA900: "identifier does not match SOP class",
    0xC000: "unable to process", 0xFE00: "cancelled", 0x0122: "SOP class not supported",
    0x0124: "not authorized", 0xB000: "sub-operations complete with failures or warnings",
    0x0106: "invalid attribute value",
}


def status_text(code: int) -> str:
    text = STATUS_TEXT.get(code)
    if text is None and 0xA700 <= code <= 0xA7FF:
        text = "out of resources"
    if text is None and 0xC000 <= code <= 0xCFFF:
        text = "unable to process"
    return f"0x{code:04X}" + (f" {text}" if text else "")


def _os_reason(exc: OSError, node: DimseNode, t: Timeouts) -> str:
    if isinstance(exc, socket.gaierror):
        return f"unknown host {node.host!r}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"no answer within {t.connect:g} s (host down or port filtered)"
    if exc.errno == errno.ECONNREFUSED:
        return f"connection refused (nothing listens on port {node.port})"
    return exc.strerror or type(exc).__name__


def probe(node: DimseNode, t: Timeouts) -> None:
    """A TCP connect with timeout, for a precise reason when the node cannot be reached."""
    try:
        with socket.create_connection((node.host, node.port), timeout=t.connect):
            pass
    except OSError as exc:
        raise PacsError(f"{node}: cannot connect: {_os_reason(exc, node, t)}") from None


def make_ae(aet: str, t: Timeouts) -> Any:
    from pynetdicom import AE

    ae = AE(ae_title=check_aet(aet, "our AE title"))
    ae.acse_timeout = t.acse
    ae.dimse_timeout = t.dimse
    ae.network_timeout = t.network
    ae.connection_timeout = t.connect
    return ae


@contextmanager
def association(node: DimseNode, aet: str, t: Timeouts, contexts: Sequence[Any],
                ext_neg: Sequence[Any] | None = None,
                handlers: Sequence[tuple[Any, Callable]] = ()) -> Iterator[Any]:
    """An established association (released or aborted on exit); PacsError when refused."""
    from pynetdicom import evt

    probe(node, t)
    ae = make_ae(aet, t)
    ae.requested_contexts = list(contexts)[:MAX_CONTEXTS]
    seen: dict[str, Any] = {}

    def on_acse(event: Any) -> None:
        prim = getattr(event, "primitive", None)
        if getattr(prim, "result", None) in (1, 2):
            seen["reject"] = prim
        elif type(prim).__name__ in ("A_ABORT", "A_P_ABORT"):
            seen["abort"] = prim

    assoc = ae.associate(node.host, node.port, ae_title=node.aet, ext_neg=list(ext_neg or []),
                         evt_handlers=[(evt.EVT_ACSE_RECV, on_acse), *handlers])
    if not assoc.is_established:
        raise PacsError(f"{node}: {_refusal(seen.get('reject'), node, aet, assoc, t, 'abort' in seen)}")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()
        ae.shutdown()


def _refusal(prim: Any, node: DimseNode, aet: str, assoc: Any, t: Timeouts, aborted: bool) -> str:
    if prim is not None:
        reason = prim.reason_str
        hint = ""
        if "Called AE" in reason:
            hint = f"; is {node.aet!r} the node's AE title?"
        elif "Calling AE" in reason:
            hint = f"; the node does not accept our AE title {aet!r} (ask for it to be configured there)"
        return f"association rejected ({prim.result_str.lower()}: {reason}{hint})"
    if aborted:
        return "association aborted by the node (wrong AE title, or no common SOP class / transfer syntax?)"
    if assoc.is_aborted and assoc.accepted_contexts == [] and assoc.rejected_contexts:
        return "the node accepts none of the proposed SOP classes / transfer syntaxes"
    return f"no association answer within {t.acse:g} s"


def echo(node: DimseNode, aet: str, t: Timeouts | None = None) -> float:
    """C-ECHO (PS3.7 9.1.5); returns the round trip in milliseconds."""
    import time

    from pynetdicom import build_context
    from pynetdicom.sop_class import Verification

    t = t or Timeouts()
    start = time.perf_counter()
    with association(node, aet, t, [build_context(Verification)]) as assoc:
        status = assoc.send_c_echo()
        if not status or "Status" not in status:
            raise PacsError(lost(node, assoc, "C-ECHO", t))
        if status.Status != 0:
            raise PacsError(f"{node}: C-ECHO failed ({status_text(status.Status)})")
    return (time.perf_counter() - start) * 1000.0


# -- C-FIND -----------------------------------------------------------------------------
@dataclass
class StudyQuery:
    """Study-level matching keys (PS3.4 C.6.2.1.2); empty means 'any'."""

    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""       # YYYYMMDD or a range YYYYMMDD-YYYYMMDD (open ends allowed)
    modality: str = ""
    accession: str = ""
    study_uid: str = ""


@dataclass
class StudyMatch:
    study_uid: str
    patient_id: str = ""
    patient_name: str = ""
    date: str = ""
    time: str = ""
    description: str = ""
    accession: str = ""
    modalities: list[str] = field(default_factory=list)
    series: int | None = None
    instances: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"study_uid": self.study_uid, "patient_id": self.patient_id, "patient_name": self.patient_name,
                "date": self.date, "time": self.time, "description": self.description,
                "accession": self.accession, "modalities": self.modalities, "series": self.series,
                "instances": self.instances}


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def study_identifier(q: StudyQuery) -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyInstanceUID = q.study_uid
    ds.PatientID = q.patient_id
    ds.PatientName = q.patient_name
    ds.StudyDate = q.study_date
    ds.StudyTime = ""
    ds.AccessionNumber = q.accession
    ds.StudyDescription = ""
    ds.ModalitiesInStudy = q.modality
    ds.NumberOfStudyRelatedSeries = ""
    ds.NumberOfStudyRelatedInstances = ""
    return ds


def match_from(ds: Dataset) -> StudyMatch:
    mods = ds.get("ModalitiesInStudy", "")
    mods = [str(m) for m in mods] if isinstance(mods, (list, tuple)) or hasattr(mods, "__iter__") and not \
        isinstance(mods, str) else [m for m in str(mods).split("\\") if m]
    return StudyMatch(str(ds.get("StudyInstanceUID", "")), str(ds.get("PatientID", "")),
                      str(ds.get("PatientName", "")), str(ds.get("StudyDate", "")), str(ds.get("StudyTime", "")),
                      str(ds.get("StudyDescription", "")), str(ds.get("AccessionNumber", "")), mods,
                      _int(ds.get("NumberOfStudyRelatedSeries")), _int(ds.get("NumberOfStudyRelatedInstances")))


def lost(node: DimseNode, assoc: Any, what: str, t: Timeouts) -> str:
    """Why a DIMSE request got no response: the node aborted, or it did not answer in time."""
    import time

    aet = str(getattr(getattr(assoc, "requestor", None), "ae_title", "") or "")
    for _ in range(10):  # the A-ABORT may still be on its way through pynetdicom's state machine
        if getattr(assoc, "is_aborted", False) or not getattr(assoc, "is_established", True):
            break
        time.sleep(0.05)
    if getattr(assoc, "is_aborted", False) or not getattr(assoc, "is_established", True):
        return (f"{node}: {what}: the node aborted the association (does it accept our AE title {aet!r} "
                f"for this service?)")
    return f"{node}: {what}: connection lost or no response within {t.dimse:g} s"


def _find(assoc: Any, node: DimseNode, identifier: Dataset, t: Timeouts,
          should_stop: StopFlag | None = None, limit: int = 100_000) -> list[Dataset]:
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    out: list[Dataset] = []
    for status, ident in assoc.send_c_find(identifier, FIND):
        if not status or "Status" not in status:
            raise PacsError(lost(node, assoc, "C-FIND", t))
        code = int(status.Status)
        if code in (0xFF00, 0xFF01):
            if ident is not None:
                out.append(ident)
            if (should_stop and should_stop()) or len(out) >= limit:
                assoc.abort()
                break
        elif code == 0x0000:
            break
        else:
            raise PacsError(f"{node}: C-FIND failed ({status_text(code)})")
    return out


def find_studies(node: DimseNode, query: StudyQuery, aet: str, t: Timeouts | None = None,
                 should_stop: StopFlag | None = None) -> list[StudyMatch]:
    """Matching studies (C-FIND, Study Root, STUDY level)."""
    from pynetdicom import build_context
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    t = t or Timeouts()
    with association(node, aet, t, [build_context(FIND)]) as assoc:
        found = _find(assoc, node, study_identifier(query), t, should_stop)
    return [match_from(ds) for ds in found]


@dataclass(frozen=True)
class InstanceRef:
    series_uid: str
    sop_uid: str
    sop_class_uid: str


def _list_instances(assoc: Any, node: DimseNode, study_uid: str, series_uid: str | None, t: Timeouts,
                    should_stop: StopFlag | None) -> list[InstanceRef]:
    """SERIES then IMAGE level C-FIND (hierarchical, PS3.4 C.4.1.3.1)."""
    if series_uid:
        series = [series_uid]
    else:
        q = Dataset()
        q.QueryRetrieveLevel = "SERIES"
        q.StudyInstanceUID = study_uid
        q.SeriesInstanceUID = ""
        series = [str(d.SeriesInstanceUID) for d in _find(assoc, node, q, t, should_stop)
                  if d.get("SeriesInstanceUID")]
    out: list[InstanceRef] = []
    for uid in series:
        q = Dataset()
        q.QueryRetrieveLevel = "IMAGE"
        q.StudyInstanceUID = study_uid
        q.SeriesInstanceUID = uid
        q.SOPInstanceUID = ""
        q.SOPClassUID = ""
        for d in _find(assoc, node, q, t, should_stop):
            if d.get("SOPInstanceUID"):
                out.append(InstanceRef(uid, str(d.SOPInstanceUID), str(d.get("SOPClassUID", "") or "")))
    return out


def list_instances(node: DimseNode, study_uid: str, series_uid: str | None, aet: str,
                   t: Timeouts | None = None, should_stop: StopFlag | None = None) -> list[InstanceRef]:
    from pynetdicom import build_context
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind as FIND

    t = t or Timeouts()
    with association(node, aet, t, [build_context(FIND)]) as assoc:
        return _list_instances(assoc, node, study_uid, series_uid, t, should_stop)


# -- C-GET / C-MOVE ---------------------------------------------------------------------------
def storage_handler(store: LocalStore, report: RetrieveReport, lock: threading.Lock,
                    progress: Callable[[], None] | None = None) -> Callable[[Any], int]:
    """EVT_C_STORE handler: check and keep each instance; corrupt ones are refused (0xC210)."""

    def handle(event: Any) -> int:
        try:
            data = event.encoded_dataset(include_meta=True)
        except Exception as exc:
            with lock:
                report.failed.append(("(unreadable C-STORE request)", type(exc).__name__))
                report.refused += 1
            return 0xC210
        try:
            path = store.save_encoded(data, expect_study=report.study_uid)
        except PacsError as exc:
            sop = str(getattr(event.request, "AffectedSOPInstanceUID", "") or "?")
            with lock:
                report.failed.append((sop, str(exc)))
                report.refused += 1
            log.warning("instance refused: %s", exc)
            return 0xA700 if "cannot write" in str(exc) else 0xC210
        with lock:
            report.received.append(path)
        if progress:
            progress()
        return 0x0000

    return handle


def _retrieve_plan(node: DimseNode, study_uid: str, series_uid: str | None, aet: str, t: Timeouts,
                   store: LocalStore, report: RetrieveReport,
                   should_stop: StopFlag | None) -> list[tuple[str, list[InstanceRef]]]:
    """[(series uid, missing instances)] (all of a series: empty list = whole series)."""
    listed = list_instances(node, study_uid, series_uid, aet, t, should_stop)
    if not listed:
        what = f"series {series_uid} of study {study_uid}" if series_uid else f"study {study_uid}"
        raise PacsError(f"{node}: no {what} there")
    known = store.known()
    report.expected = len(listed)
    report.already_here = sum(1 for i in listed if i.sop_uid in known)
    plan: dict[str, list[InstanceRef]] = {}
    for inst in listed:
        if inst.sop_uid not in known:
            plan.setdefault(inst.series_uid, []).append(inst)
    return list(plan.items())


UIDS_PER_REQUEST = 400   # an explicit VR UI element holds at most 65534 bytes (PS3.5 7.1.2)


def identifiers(study_uid: str, plan: Sequence[tuple[str, list[InstanceRef]]], whole: bool) -> list[Dataset]:
    """Retrieve identifiers: whole series (SERIES level) or the missing instances (IMAGE level, UID lists)."""
    out = []
    for series_uid, insts in plan:
        chunks = [insts] if whole else [insts[i:i + UIDS_PER_REQUEST] for i in range(0, len(insts), UIDS_PER_REQUEST)]
        for chunk in chunks:
            ds = Dataset()
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            if whole:
                ds.QueryRetrieveLevel = "SERIES"
            else:
                ds.QueryRetrieveLevel = "IMAGE"
                ds.SOPInstanceUID = [i.sop_uid for i in chunk]
            out.append(ds)
    return out


def _final_counts(node: DimseNode, responses: Iterable[tuple[Any, Any]], report: RetrieveReport, t: Timeouts,
                  assoc: Any, should_stop: StopFlag | None, what: str) -> None:
    """Follow C-GET / C-MOVE responses to the end; failures become `report.note` (what arrived is kept)."""
    for status, _ident in responses:
        if not status or "Status" not in status:
            report.note = lost(node, assoc, what, t).split(": ", 1)[1]
            return
        code = int(status.Status)
        if code == 0xFF00:
            if should_stop and should_stop():
                report.cancelled = True
                assoc.abort()
                return
            continue
        report.remote_failed += int(status.get("NumberOfFailedSuboperations", 0) or 0)
        report.remote_warning += int(status.get("NumberOfWarningSuboperations", 0) or 0)
        if code in (0x0000, 0xB000):
            return
        if code == 0xFE00:
            report.cancelled = True
            return
        if code == 0xA801:
            raise PacsError(f"{node}: {what} refused: move destination unknown (add our AE title, host and "
                            f"port to the node's modalities)")
        report.note = f"{what} failed ({status_text(code)})"
        return


def get_study(node: DimseNode, study_uid: str, dest: str | Path, *, series_uid: str | None = None,
              aet: str, t: Timeouts | None = None, progress: Progress | None = None,
              should_stop: StopFlag | None = None) -> RetrieveReport:
    """C-GET the study (or one series) into `dest`; instances already there are skipped."""
    from pynetdicom import build_context, build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

    t = t or Timeouts()
    store = LocalStore(dest)
    report = RetrieveReport(study_uid)
    plan = _retrieve_plan(node, study_uid, series_uid, aet, t, store, report, should_stop)
    if not plan:
        report.note = "nothing to fetch"
        return report
    classes = sorted({i.sop_class_uid for _s, insts in plan for i in insts if i.sop_class_uid})
    if not classes or len(classes) >= MAX_CONTEXTS:
        raise PacsError(f"{node}: cannot plan C-GET: the node did not list the SOP classes of the instances")
    lock = threading.Lock()
    todo = sum(len(v) for _s, v in plan)
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress:
            progress(done[0], todo)

    contexts = [build_context(GET)] + [build_context(c, RECEIVE_SYNTAXES) for c in classes]
    roles = [build_role(c, scp_role=True) for c in classes]
    handlers = [(evt.EVT_C_STORE, storage_handler(store, report, lock, tick))]
    if progress:
        progress(0, todo)
    with association(node, aet, t, contexts, roles, handlers) as assoc:
        for ident in identifiers(study_uid, plan, whole=report.already_here == 0):
            _final_counts(node, assoc.send_c_get(ident, GET), report, t, assoc, should_stop, "C-GET")
            if report.cancelled or not assoc.is_established:
                break
    return report


def move_study(node: DimseNode, study_uid: str, dest: str | Path, *, series_uid: str | None = None,
               aet: str, port: int, bind: str = "0.0.0.0", t: Timeouts | None = None,
               progress: Progress | None = None, should_stop: StopFlag | None = None) -> RetrieveReport:
    """C-MOVE the study to our own Storage SCP, listening on `port` for the duration only.

    The node must know our AE title with this machine's address and `port`;
    the SCP accepts only associations whose calling AE title is the node's.
    """
    from pynetdicom import build_context
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

    from medviewer.viewer.pacs.scp import StorageSCP

    t = t or Timeouts()
    store = LocalStore(dest)
    report = RetrieveReport(study_uid)
    plan = _retrieve_plan(node, study_uid, series_uid, aet, t, store, report, should_stop)
    if not plan:
        report.note = "nothing to fetch"
        return report
    lock = threading.Lock()
    todo = sum(len(v) for _s, v in plan)
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress:
            progress(done[0], todo)

    if progress:
        progress(0, todo)
    scp = StorageSCP(store.root, aet=aet, port=port, bind=bind, allowed=[node.aet], t=t,
                     handler=storage_handler(store, report, lock, tick))
    scp.start()
    try:
        with association(node, aet, t, [build_context(MOVE)]) as assoc:
            for ident in identifiers(study_uid, plan, whole=report.already_here == 0):
                _final_counts(node, assoc.send_c_move(ident, aet, MOVE), report, t, assoc, should_stop, "C-MOVE")
                if report.cancelled or not assoc.is_established:
                    break
    finally:
        scp.stop()
    return report


# -- C-STORE -------------------------------------------------------------------------------------
@dataclass
class SendResult:
    path: Path
    ok: bool
    message: str
    sop_uid: str = ""


def dicom_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[SendResult]]:
    """Files under the given files/folders (folders recursively; hidden ones skipped)."""
    import os

    files: list[Path] = []
    missing: list[SendResult] = []
    for p in map(Path, paths):
        if p.is_dir():
            for folder, dirs, names in os.walk(p):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files.extend(Path(folder) / n for n in sorted(names) if not n.startswith("."))
        elif p.is_file():
            files.append(p)
        else:
            missing.append(SendResult(p, False, "no such file or folder"))
    return files, missing


def read_for_send(path: Path, pixels: bool = False) -> tuple[Dataset | None, str]:
    """(dataset, "") or (None, reason): the header (or, with `pixels`, the whole file) to send."""
    import pydicom

    from medviewer.viewer.io.safefile import open_regular

    try:
        with open_regular(path) as fp:  # a regular file: never block on a FIFO or read a device
            ds = pydicom.dcmread(fp, stop_before_pixels=not pixels)
    except OSError as exc:
        return None, f"not readable ({exc.strerror or exc})"
    except Exception as exc:
        return None, f"not a DICOM file ({(str(exc).splitlines() or [type(exc).__name__])[0][:80]})"
    for key in ("SOPClassUID", "SOPInstanceUID"):
        if not ds.get(key):
            return None, f"no {key}"
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        return None, "no transfer syntax (not a DICOM Part 10 file)"
    return ds, ""


def send_files(node: DimseNode, paths: Sequence[str | Path], aet: str, t: Timeouts | None = None,
               progress: Progress | None = None, should_stop: StopFlag | None = None) -> list[SendResult]:
    """C-STORE each DICOM file (PS3.4 B.2); one result per file, in order.

    Files are planned from their headers and sent from disk one at a time (pynetdicom
    streams a file path as stored), so memory does not grow with the number of files.
    """
    from pynetdicom import build_context

    t = t or Timeouts()
    files, results = dicom_files(paths)
    planned: list[tuple[Path, str, str, str]] = []   # path, SOP class, transfer syntax, SOP instance
    for f in files:
        ds, why = read_for_send(f)
        if ds is None:
            results.append(SendResult(f, False, why))
        else:
            planned.append((f, str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID), str(ds.SOPInstanceUID)))
    if not planned:
        return results
    keys = sorted({(c, ts) for _f, c, ts, _s in planned})
    done = len(results)
    for start in range(0, len(keys), MAX_CONTEXTS):
        chunk = keys[start:start + MAX_CONTEXTS]
        wanted = set(chunk)
        batch = [p for p in planned if (p[1], p[2]) in wanted]
        contexts = [build_context(c, [ts] + [s for s in (ExplicitVRLittleEndian, ImplicitVRLittleEndian) if s != ts])
                    for c, ts in chunk]
        with association(node, aet, t, contexts) as assoc:
            for f, sop_class, syntax, sop in batch:
                if should_stop and should_stop():
                    results.append(SendResult(f, False, "cancelled", sop))
                elif not assoc.is_established:
                    results.append(SendResult(f, False, "association lost", sop))
                else:
                    results.append(_store_one(assoc, node, f, sop_class, syntax, sop, t))
                done += 1
                if progress:
                    progress(done, len(files))
    return _in_order(results, files)


def _in_order(results: list[SendResult], files: Sequence[Path]) -> list[SendResult]:
    """Results in the order of the files (missing paths first)."""
    order = {f: i for i, f in enumerate(files)}
    return sorted(results, key=lambda r: order.get(r.path, -1))


def _store_one(assoc: Any, node: DimseNode, path: Path, sop_class: str, syntax: str, sop: str,
               t: Timeouts) -> SendResult:
    from pydicom.uid import UID

    accepted = {cx.transfer_syntax[0] for cx in assoc.accepted_contexts if cx.abstract_syntax == sop_class}
    if not accepted:
        return SendResult(path, False, f"the node does not accept {UID(sop_class).name}", sop)
    payload: Any = path
    if syntax not in accepted:  # e.g. a compressed file and a node that takes native data only
        ds, why = read_for_send(path, pixels=True)
        if ds is None:
            return SendResult(path, False, why, sop)
        try:
            ds.decompress()
        except Exception as exc:
            return SendResult(path, False, f"the node does not accept its transfer syntax and it cannot be "
                                           f"decompressed ({type(exc).__name__})", sop)
        payload = ds
    try:
        status = assoc.send_c_store(payload)
    except (OSError, ValueError, AttributeError) as exc:
        return SendResult(path, False, f"cannot send ({type(exc).__name__}: {str(exc)[:80]})", sop)
    if not status or "Status" not in status:
        return SendResult(path, False, lost(node, assoc, "C-STORE", t).split(": ", 1)[1], sop)
    code = int(status.Status)
    if code == 0:
        return SendResult(path, True, "stored", sop)
    if code in (0xB000, 0xB006, 0xB007):
        return SendResult(path, True, f"stored with warning {status_text(code)}", sop)
    return SendResult(path, False, f"refused ({status_text(code)})", sop)
