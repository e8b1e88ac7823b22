"""The local folder retrieved instances go to: one file per SOP Instance, resumable.

Layout: `<root>/<Study Instance UID>/<Series Instance UID>/<SOP Instance UID>.dcm`
(UIDs are digits and dots, safe as file names on every platform).  An instance
already in the folder, under this layout or any other file name, is not
fetched again.  Every received instance is checked as the scan would check it
(`viewer.io.header.read_header`: readable header, pixel data all there) before
it is kept; a corrupt one is reported and not written.
"""

from __future__ import annotations

import io
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom import Dataset

from medviewer.viewer.io.safefile import open_regular
from medviewer.viewer.pacs.nodes import PacsError

UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass
class RetrieveReport:
    """What a retrieval did: counts, the instances that failed and why."""

    study_uid: str
    expected: int | None = None                 # instances the PACS listed (None: unknown)
    received: list[Path] = field(default_factory=list)
    already_here: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)   # (instance / item, reason)
    remote_failed: int = 0                       # sub-operations the PACS reported as failed
    refused: int = 0                             # of those, instances we refused (corrupt): in `failed` too
    remote_warning: int = 0
    cancelled: bool = False
    note: str = ""

    @property
    def remote_only_failed(self) -> int:
        """Failed sub-operations the node reported that are not our own refusals."""
        return max(0, self.remote_failed - self.refused)

    @property
    def failed_count(self) -> int:
        return len(self.failed) + self.remote_only_failed

    @property
    def complete(self) -> bool:
        return not self.failed_count and not self.cancelled and (
            self.expected is None or len(self.received) + self.already_here >= self.expected)

    def summary(self) -> str:
        total = f" of {self.expected}" if self.expected is not None else ""
        parts = [f"{len(self.received)} instance(s) received{total}"]
        if self.already_here:
            parts.append(f"{self.already_here} already here")
        if self.failed_count:
            parts.append(f"{self.failed_count} failed")
        missing = (self.expected or 0) - len(self.received) - self.already_here - self.failed_count
        if self.expected is not None and missing > 0 and not self.cancelled:
            parts.append(f"{missing} not sent by the node")
        if self.cancelled:
            parts.append("cancelled")
        if self.note:
            parts.append(self.note)
        return ", ".join(parts)


class LocalStore:
    """Writes received instances under `root`; knows which instances are there."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._lock = threading.Lock()
        self._known: set[str] | None = None

    def known(self) -> set[str]:
        """SOP Instance UIDs of the DICOM files under root (file names first, else headers)."""
        with self._lock:
            if self._known is None:
                self._known = _instances_under(self.root)
            return set(self._known)

    def has(self, sop_uid: str) -> bool:
        return sop_uid in self.known()

    def path_for(self, study_uid: str, series_uid: str, sop_uid: str) -> Path:
        for uid in (study_uid, series_uid, sop_uid):
            if not UID_RE.match(uid or ""):
                raise PacsError(f"received an instance with an invalid UID {uid!r}")
        return self.root / study_uid / series_uid / f"{sop_uid}.dcm"

    def save_encoded(self, data: bytes, expect_study: str | None = None) -> Path:
        """Check one received Part 10 file (bytes) and write it; PacsError (one line) when corrupt."""
        ds = check_instance(data, expect_study)
        path = self.path_for(str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.SOPInstanceUID))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise PacsError(f"{path}: cannot write ({exc.strerror or type(exc).__name__})") from None
        with self._lock:
            if self._known is not None:
                self._known.add(str(ds.SOPInstanceUID))
        return path

    def save_dataset(self, ds: Dataset, file_meta: Dataset | None = None,
                     expect_study: str | None = None) -> Path:
        """Encode a received dataset as a Part 10 file, then as `save_encoded`."""
        return self.save_encoded(encode(ds, file_meta), expect_study)


def encode(ds: Dataset, file_meta: Dataset | None = None) -> bytes:
    """A dataset as Part 10 bytes (PS3.10 7.1), with the transfer syntax it arrived in."""
    from pydicom.dataset import FileMetaDataset

    meta = FileMetaDataset(file_meta) if file_meta is not None else FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID",
                                         pydicom.uid.ExplicitVRLittleEndian)
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta = meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def check_instance(data: bytes, expect_study: str | None = None) -> Dataset:
    """The header of a received file; PacsError with the reason when it is not usable."""
    from medviewer.viewer.io.header import HEAD_CHUNK, read_header

    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # pydicom raises many types on corrupt input
        text = str(exc).splitlines()[0][:100] if str(exc) else type(exc).__name__
        raise PacsError(f"corrupt instance: not readable as DICOM ({text})") from None
    sop = str(ds.get("SOPInstanceUID", "") or "")
    for key in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        if not str(ds.get(key, "") or ""):
            raise PacsError(f"corrupt instance {sop or '(no SOP Instance UID)'}: no {key}")
    if expect_study and str(ds.StudyInstanceUID) != expect_study:
        raise PacsError(f"instance {sop}: belongs to study {ds.StudyInstanceUID}, not the one asked for")
    kind, value = read_header(Path(f"{sop}.dcm"), (data[:HEAD_CHUNK], len(data)))
    if kind == "skip":
        raise PacsError(f"corrupt instance {sop}: {value}")
    return ds


def _instances_under(root: Path) -> set[str]:
    found: set[str] = set()
    if not root.is_dir():
        return found
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            stem, _, ext = name.rpartition(".")
            if ext.lower() == "dcm" and UID_RE.match(stem):
                found.add(stem)
                continue
            try:
                with open_regular(Path(folder) / name) as fp:
                    ds = pydicom.dcmread(fp, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
                uid = str(ds.get("SOPInstanceUID", "") or "")
            except Exception:
                continue
            if uid:
                found.add(uid)
    return found
