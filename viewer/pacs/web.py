"""DICOMweb client (PS3.18): ping, QIDO-RS search, WADO-RS retrieve, STOW-RS store.

Built on dicomweb-client with a requests session of our own: TLS certificates
are verified (optionally against the node's own CA bundle), credentials
(HTTP basic or bearer) are sent only over https or to this machine, every
request has a timeout, and dicomweb-client's retry loop is off so that an
unreachable node is one line at once.  Retrieval lists the instances first
(QIDO-RS) and fetches only the missing ones, one WADO-RS request each, so a
failure or a corrupt instance costs that instance only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from medviewer.viewer.pacs.dimse import (InstanceRef, SendResult, StudyMatch, StudyQuery, _in_order, dicom_files,
                                         read_for_send)
from medviewer.viewer.pacs.local import UID_RE, LocalStore, RetrieveReport, encode
from medviewer.viewer.pacs.nodes import PacsError, Timeouts, WebNode

log = logging.getLogger("medviewer.pacs")

Progress = Callable[[int, int], None]
StopFlag = Callable[[], bool]
STUDY_FIELDS = ["StudyInstanceUID", "PatientID", "PatientName", "StudyDate", "StudyTime", "StudyDescription",
                "AccessionNumber", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
                "NumberOfStudyRelatedInstances"]
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
STOW_BATCH = 16
PAGE = 500             # QIDO-RS results per request
MAX_RESULTS = 20_000   # a search stops here (and so does a server that ignores offset)


def _reason(exc: BaseException, node: WebNode, t: Timeouts) -> str:
    """One line for a requests / HTTP error."""
    import requests

    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS certificate not trusted (give the node's CA bundle, never turn verification off)"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return f"no answer within {t.http:g} s"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"no response within {t.http:g} s"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if "Name or service not known" in text or "nodename nor servname" in text or "getaddrinfo" in text:
            return f"unknown host {urlsplit(node.url).hostname!r}"
        if "refused" in text.lower():
            return "connection refused"
        return "cannot connect"
    if isinstance(exc, requests.exceptions.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        hint = {401: " (credentials missing or wrong)", 403: " (not allowed)", 404: " (not found: check the URL)"}
        return f"HTTP {code} {exc.response.reason}{hint.get(code, '')}"
    return f"{type(exc).__name__}: {str(exc)[:120]}"


def session(node: WebNode) -> Any:
    """A requests session: TLS verified, credentials only over https (or to localhost)."""
    import requests

    node = node.with_env_credentials()
    s = requests.Session()
    s.verify = node.ca_bundle or True
    parts = urlsplit(node.url)
    secure = parts.scheme == "https" or (parts.hostname or "") in LOCAL_HOSTS
    if node.auth != "none" and not secure:
        raise PacsError(f"{node}: refusing to send credentials over plain http (use https)")
    if node.auth == "basic":
        s.auth = (node.username, node.password)
    elif node.auth == "bearer":
        s.headers["Authorization"] = f"Bearer {node.token}"
    return s


def client(node: WebNode, t: Timeouts | None = None) -> Any:
    from dicomweb_client.api import DICOMwebClient

    t = t or Timeouts()
    c = DICOMwebClient(url=node.url, session=session(node), timeout=(t.connect, t.http))
    c.set_http_retry_params(retry=False)
    return c


def _call(node: WebNode, t: Timeouts, what: str, func: Callable[[], Any]) -> Any:
    import requests

    try:
        return func()
    except requests.exceptions.RequestException as exc:
        raise PacsError(f"{node}: {what}: {_reason(exc, node, t)}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise PacsError(f"{node}: {what}: unexpected answer ({str(exc)[:120]})") from None


def qido(node: WebNode, t: Timeouts, path: str, params: dict[str, Any], http: Any = None) -> list[dict]:
    """One QIDO-RS request (PS3.18 10.6); matching characters * and ? are sent as they are.

    dicomweb-client percent-encodes them (%2A), which is legal but which some servers
    (Orthanc 1.10) then match literally; RFC 3986 allows both characters in a query.
    """
    from urllib.parse import quote

    query = "&".join(f"{quote(str(k), safe='')}={quote(str(v), safe='*?,')}"
                     for k, values in params.items()
                     for v in (values if isinstance(values, (list, tuple)) else [values]))
    http = http or session(node)
    rsp = http.get(f"{node.url}/{path}?{query}", headers={"Accept": "application/dicom+json, application/json"},
                   timeout=(t.connect, t.http))
    if rsp.status_code == 204:
        return []
    rsp.raise_for_status()
    data = rsp.json() if rsp.content else []
    return [data] if isinstance(data, dict) else list(data)


def paged(node: WebNode, t: Timeouts, path: str, params: dict[str, Any]) -> list[dict]:
    """All results of a QIDO-RS search, PAGE at a time (limit/offset, PS3.18 8.3.4.4).

    Stops at a short page, at MAX_RESULTS, or when a page repeats the previous one
    (a server that ignores offset): never loops for ever.
    """
    http = session(node)
    out: list[dict] = []
    previous: list[dict] | None = None
    while len(out) < MAX_RESULTS:
        page = qido(node, t, path, {**params, "limit": PAGE, "offset": len(out)}, http)
        if not page or page == previous:
            break
        out.extend(page)
        if len(page) < PAGE:
            break
        previous = page
    return out[:MAX_RESULTS]


def ping(node: WebNode, t: Timeouts | None = None) -> float:
    """A QIDO-RS search for one study: the DICOMweb counterpart of C-ECHO; ms."""
    import time

    t = t or Timeouts()
    start = time.perf_counter()
    _call(node, t, "QIDO-RS", lambda: qido(node, t, "studies", {"limit": 1}))
    return (time.perf_counter() - start) * 1000.0


def _value(item: dict, keyword: str) -> Any:
    from pydicom.datadict import tag_for_keyword

    tag = f"{tag_for_keyword(keyword):08X}"
    values = (item.get(tag) or {}).get("Value") or []
    if not values:
        return ""
    v = values[0]
    if isinstance(v, dict):  # PN in JSON (PS3.18 F.2.2)
        return v.get("Alphabetic", "")
    if keyword == "ModalitiesInStudy":
        return [str(x) for x in values]
    return v


def find_studies(node: WebNode, query: StudyQuery, t: Timeouts | None = None) -> list[StudyMatch]:
    """QIDO-RS /studies with the same matching keys as C-FIND."""
    t = t or Timeouts()
    filters = {k: v for k, v in {"PatientID": query.patient_id, "PatientName": query.patient_name,
                                 "StudyDate": query.study_date, "ModalitiesInStudy": query.modality,
                                 "AccessionNumber": query.accession,
                                 "StudyInstanceUID": query.study_uid}.items() if v}
    found = _call(node, t, "QIDO-RS", lambda: paged(node, t, "studies", {**filters, "includefield": STUDY_FIELDS}))
    out = []
    for item in found:
        mods = _value(item, "ModalitiesInStudy")
        out.append(StudyMatch(
            str(_value(item, "StudyInstanceUID")), str(_value(item, "PatientID")), str(_value(item, "PatientName")),
            str(_value(item, "StudyDate")), str(_value(item, "StudyTime")), str(_value(item, "StudyDescription")),
            str(_value(item, "AccessionNumber")), mods if isinstance(mods, list) else ([mods] if mods else []),
            _int(_value(item, "NumberOfStudyRelatedSeries")), _int(_value(item, "NumberOfStudyRelatedInstances"))))
    return out


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def list_instances(node: WebNode, study_uid: str, series_uid: str | None = None,
                   t: Timeouts | None = None) -> list[InstanceRef]:
    import requests

    t = t or Timeouts()
    for uid in (study_uid, series_uid or "1"):
        if not UID_RE.match(uid):
            raise PacsError(f"{uid!r} is not a UID (digits and dots)")
    path = f"studies/{study_uid}" + (f"/series/{series_uid}" if series_uid else "") + "/instances"
    try:
        found = paged(node, t, path, {"includefield": ["SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"]})
    except requests.exceptions.HTTPError as exc:
        if exc.response is not None and exc.response.status_code == 404:
            found = []
        else:
            raise PacsError(f"{node}: QIDO-RS: {_reason(exc, node, t)}") from None
    except requests.exceptions.RequestException as exc:
        raise PacsError(f"{node}: QIDO-RS: {_reason(exc, node, t)}") from None
    return [InstanceRef(str(_value(i, "SeriesInstanceUID")), str(_value(i, "SOPInstanceUID")),
                        str(_value(i, "SOPClassUID"))) for i in found if _value(i, "SOPInstanceUID")]


def get_study(node: WebNode, study_uid: str, dest: str | Path, *, series_uid: str | None = None,
              t: Timeouts | None = None, progress: Progress | None = None,
              should_stop: StopFlag | None = None) -> RetrieveReport:
    """WADO-RS the missing instances of a study (or series) into `dest`."""
    import requests

    t = t or Timeouts()
    store = LocalStore(dest)
    report = RetrieveReport(study_uid)
    listed = list_instances(node, study_uid, series_uid, t)
    if not listed:
        what = f"series {series_uid} of study {study_uid}" if series_uid else f"study {study_uid}"
        raise PacsError(f"{node}: no {what} there")
    known = store.known()
    todo = [i for i in listed if i.sop_uid not in known]
    report.expected, report.already_here = len(listed), len(listed) - len(todo)
    c = client(node, t)
    if progress:
        progress(0, len(todo))
    for n, inst in enumerate(todo, 1):
        if should_stop and should_stop():
            report.cancelled = True
            break
        try:
            ds = c.retrieve_instance(study_uid, inst.series_uid, inst.sop_uid,
                                     media_types=(("application/dicom", "*"),))
            report.received.append(store.save_encoded(encode(ds), expect_study=study_uid))
        except requests.exceptions.RequestException as exc:
            report.failed.append((inst.sop_uid, _reason(exc, node, t)))
            if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
                report.note = "connection lost"
                break
        except PacsError as exc:
            report.failed.append((inst.sop_uid, str(exc)))
        except Exception as exc:  # a corrupt part: pydicom cannot parse it
            report.failed.append((inst.sop_uid, f"corrupt instance: {type(exc).__name__}: {str(exc)[:100]}"))
        if progress:
            progress(n, len(todo))
    return report


def send_files(node: WebNode, paths: Sequence[str | Path], t: Timeouts | None = None,
               progress: Progress | None = None, should_stop: StopFlag | None = None) -> list[SendResult]:
    """STOW-RS the DICOM files in batches; one result per file from the server's answer."""
    import requests

    t = t or Timeouts()
    files, results = dicom_files(paths)
    c = client(node, t) if files else None
    for start in range(0, len(files), STOW_BATCH):  # at most STOW_BATCH files in memory
        batch = []
        for f in files[start:start + STOW_BATCH]:
            ds, why = read_for_send(f, pixels=True)
            if ds is None:
                results.append(SendResult(f, False, why))
            else:
                batch.append((f, ds))
        if not batch:
            continue
        if should_stop and should_stop():
            results.extend(SendResult(f, False, "cancelled", str(ds.SOPInstanceUID)) for f, ds in batch)
            continue
        try:
            answer = c.store_instances(datasets=[ds for _f, ds in batch])
        except requests.exceptions.RequestException as exc:
            why = _reason(exc, node, t)
            results.extend(SendResult(f, False, f"STOW-RS: {why}", str(ds.SOPInstanceUID)) for f, ds in batch)
            continue
        ok = {str(r.ReferencedSOPInstanceUID) for r in answer.get("ReferencedSOPSequence", [])}
        failed = {str(r.ReferencedSOPInstanceUID): int(r.get("FailureReason", 0) or 0)
                  for r in answer.get("FailedSOPSequence", [])}
        for f, ds in batch:
            sop = str(ds.SOPInstanceUID)
            if sop in failed:
                results.append(SendResult(f, False, f"refused (failure reason 0x{failed[sop]:04X})", sop))
            elif sop in ok:
                results.append(SendResult(f, True, "stored", sop))
            else:
                results.append(SendResult(f, False, "not confirmed by the server", sop))
        if progress:
            progress(min(start + STOW_BATCH, len(files)), len(files))
    return _in_order(results, files)
