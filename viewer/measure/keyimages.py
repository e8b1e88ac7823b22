"""Key images of a study as a Key Object Selection document (PS3.3 A.59, TID 2010), highdicom.

    write_key_images(images, path, title="Of Interest", description="...")
    read_key_images(path) -> [(SOP Instance UID, 0-based frame or None), ...]

`images` are (header, frame) pairs of the marked slices (headers without pixel
data are enough); the document references them with the frame number for
multi-frame images.  The title is a code of CID 7010 (Key Object Selection
Document Title); "Of Interest" (DCM 113000) by default.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from medviewer.viewer.measure.report import MANUFACTURER, ReportError, evidence_header, save_document

__all__ = ["read_key_images", "write_key_images"]


def write_key_images(images: Iterable[tuple[Dataset, int | None]], path: str | Path,
                     description: str = "Key images marked in medviewer",
                     series_number: int = 9902) -> Path:
    """Write a Key Object Selection document referencing the marked images."""
    import highdicom as hd

    refs: list[Dataset] = []
    evidence: list[Dataset] = []
    frames: dict[str, list[int]] = {}
    for header, frame in images:
        header = evidence_header(header)
        uid = str(header.SOPInstanceUID)
        if uid not in frames:
            frames[uid] = []
            ref = Dataset()
            for keyword in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
                setattr(ref, keyword, header.get(keyword))
            refs.append(ref)
            evidence.append(header)
        if frame is not None and frame + 1 not in frames[uid]:
            frames[uid].append(frame + 1)
    out = Path(path)
    if not refs:
        raise ReportError(f"{out.name}: no key images marked")
    observer = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=str(generate_uid()), name="medviewer", manufacturer_name=MANUFACTURER))
    content = hd.ko.KeyObjectSelection(document_title=codes.DCM.OfInterest, referenced_objects=refs,
                                       observer_device_context=observer, description=description[:1024])
    doc = hd.ko.KeyObjectSelectionDocument(
        evidence=evidence, content=content, series_instance_uid=str(generate_uid()),
        series_number=series_number, sop_instance_uid=str(generate_uid()), instance_number=1,
        manufacturer=MANUFACTURER)
    for item in doc.get("ContentSequence", []):   # frames of multi-frame images (1-based)
        for ref in item.get("ReferencedSOPSequence", []):
            numbers = frames.get(str(ref.ReferencedSOPInstanceUID))
            if numbers:
                ref.ReferencedFrameNumber = numbers if len(numbers) > 1 else numbers[0]
    return save_document(doc, out)


def read_key_images(path: str | Path) -> list[tuple[str, int | None]]:
    """(SOP Instance UID, 0-based frame or None) of each image a KOS document selects."""
    import pydicom

    from medviewer.viewer.io.safefile import MAX_DOCUMENT_BYTES, open_regular

    path = Path(path)
    try:
        with open_regular(path, MAX_DOCUMENT_BYTES) as fp:  # no FIFO, device or huge file
            ds = pydicom.dcmread(fp, force=True)
    except OSError as exc:
        raise ReportError(f"{path.name}: not readable ({exc.strerror or exc})") from None
    except Exception as exc:
        raise ReportError(f"{path.name}: not a readable DICOM file ({type(exc).__name__})") from None
    if str(ds.get("SOPClassUID", "")) != "1.2.840.10008.5.1.4.1.1.88.59":
        raise ReportError(f"{path.name}: not a Key Object Selection document")
    out = []
    for item in ds.get("ContentSequence", []):
        if str(item.get("ValueType", "")) not in ("IMAGE", "COMPOSITE"):
            continue
        for ref in item.get("ReferencedSOPSequence", []):
            frame = ref.get("ReferencedFrameNumber")
            if frame is None:
                out.append((str(ref.ReferencedSOPInstanceUID), None))
            else:
                numbers = [frame] if isinstance(frame, (int, float)) else list(frame)
                out += [(str(ref.ReferencedSOPInstanceUID), int(f) - 1) for f in numbers]
    return out
