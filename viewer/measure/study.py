"""A study's annotations and key images on disk: what to restore when it is opened,
and saving them (Qt-free; the viewer runs these on a worker).

Restoring (`restore_study`): the TID 1500 Measurement Reports of the study that the
scan found under the opened folder or that medviewer keeps in the user data folder
(viewer.measure.report.find_reports).  Of medviewer's own reports only the newest is
read (each save writes the whole set of annotations, so older ones hold deleted
annotations); reports written by other software (OHIF...) are all read.
Annotations of images that are not in the study are left out.  With a pixel store,
the numbers of each annotation are measured again on the stored pixels of its image
(viewer.measure.stats), so what is shown is medviewer's measurement whatever wrote the
report.  Key Object Selection documents of the study give the key images.

Saving (`save_study`, `save_key_images`): next to the study when its folder is
writable, else in the user data folder (viewer.measure.report.save_location).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from medviewer.viewer.measure.keyimages import read_key_images, write_key_images
from medviewer.viewer.measure.report import (MANUFACTURER, ReportError, find_reports, read_report,
                                             save_location, write_report)
from medviewer.viewer.measure.stats import measure
from medviewer.viewer.measure.tools import Annotation

__all__ = ["RestoredStudy", "image_index", "image_label", "restore_study", "save_key_images", "save_study"]

ImageKey = tuple[str, "int | None"]
KOS_CLASS = "Key Object Selection"


def image_index(series_list: Iterable[Any]) -> dict[ImageKey, tuple[Any, Any]]:
    """(SOP Instance UID, frame) -> (series, ImageRef) of every image of the series.
    Reads the UIDs from the scanned headers without parsing them (viewer.io.tags)."""
    from medviewer.viewer.io import tags

    out: dict[ImageKey, tuple[Any, Any]] = {}
    for series in series_list:
        headers = series.headers
        entries = headers.entries() if hasattr(headers, "entries") else dict(headers)
        for ref in series.items:
            header = entries.get(ref.path)
            sop = tags.ascii_text(header, "SOPInstanceUID") if header is not None else ""
            if sop:
                out[(sop, ref.frame)] = (series, ref)
    return out


def image_label(index: dict[ImageKey, tuple[Any, Any]], annotation: Annotation) -> str:
    """'Se 2 Im 14' (the image's place in its series' display order, 1-based)."""
    found = index.get((annotation.sop_instance_uid, annotation.frame))
    if found is None:
        return ""
    series, ref = found
    number = f"Se {series.number} " if series.number is not None else ""
    return f"{number}Im {series.items.index(ref) + 1}"


@dataclass
class RestoredStudy:
    annotations: list[Annotation] = field(default_factory=list)
    key_images: list[ImageKey] = field(default_factory=list)
    reports: list[Path] = field(default_factory=list)       # the reports read
    problems: list[str] = field(default_factory=list)       # one line per report not read


def _manufacturer(path: Path) -> str:
    import pydicom

    from medviewer.viewer.io.safefile import MAX_DOCUMENT_BYTES, open_regular

    try:
        with open_regular(path, MAX_DOCUMENT_BYTES) as fp:   # no FIFO, device or huge file
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True, specific_tags=["Manufacturer"])
        return str(ds.get("Manufacturer", "") or "")
    except Exception:
        return ""


def _kos_files(result: Any, study_uid: str) -> list[Path]:
    """Key Object Selection documents of the study: found by the scan, or in medviewer's
    folder for the study; of medviewer's own only the newest (oldest first)."""
    from medviewer.viewer.measure.report import of_study

    found = [n.path for n in getattr(result, "non_image", []) if str(n.sop_class).startswith(KOS_CLASS)]
    out = of_study(found, study_uid, "*key-images*.dcm")
    own = [p for p in out if _manufacturer(p) == MANUFACTURER]
    return [p for p in out if p not in own] + own[-1:]


def restore_study(result: Any, study: Any, pixels: Any = None) -> RestoredStudy:
    """The annotations and key images saved for `study` (a viewer.io.model.Study of
    `result`); `pixels` (a PixelStore) re-measures them on the stored pixels."""
    out = RestoredStudy()
    index = image_index(study.series)
    reports = find_reports(result, study.study_uid)
    own = [p for p in reports if _manufacturer(p) == MANUFACTURER]
    chosen = [p for p in reports if p not in own] + own[-1:]
    by_uid: dict[str, Annotation] = {}
    for path in chosen:
        try:
            anns = read_report(path)
        except ReportError as exc:
            out.problems.append(str(exc))
            continue
        out.reports.append(path)
        for ann in anns:
            found = index.get((ann.sop_instance_uid, ann.frame))
            if found is None:
                continue
            series, ref = found
            ann = replace(ann, series_uid=series.series_uid)
            if pixels is not None:
                try:
                    ann = replace(ann, numbers=measure(ann.shape, pixels.get(ref), pixels.meta(ref)))
                except Exception as exc:   # one image that does not decode: keep the saved numbers
                    out.problems.append(f"{ref.path.name}: not measured again ({type(exc).__name__})")
            by_uid[ann.uid] = ann
    out.annotations = list(by_uid.values())
    for path in _kos_files(result, study.study_uid):
        try:
            keys = read_key_images(path)
        except ReportError as exc:
            out.problems.append(str(exc))
            continue
        out.key_images += [k for k in keys if k in index and k not in out.key_images]
    return out


def _sources(index: dict[ImageKey, tuple[Any, Any]], keys: Iterable[ImageKey]) -> dict[str, Any]:
    sources = {}
    for key in keys:
        found = index.get(key)
        if found is not None:
            series, ref = found
            sources[key[0]] = series.headers[ref.path]
    return sources


def save_study(root: Any, study: Any, annotations: Sequence[Annotation], when: datetime | None = None) -> Path:
    """Write the study's annotations (DICOM images only) as one TID 1500 report."""
    index = image_index(study.series)
    anns = [a for a in annotations if (a.sop_instance_uid, a.frame) in index]
    if not anns:
        raise ReportError(f"study {study.description or study.study_uid}: no annotations on DICOM images to save")
    path = save_location(root, study.study_uid, when)
    return write_report(anns, _sources(index, [(a.sop_instance_uid, a.frame) for a in anns]), path)


def save_key_images(root: Any, study: Any, keys: Sequence[ImageKey], when: datetime | None = None) -> Path:
    """Write the study's key images as a Key Object Selection document."""
    index = image_index(study.series)
    keys = [k for k in keys if k in index]
    if not keys:
        raise ReportError(f"study {study.description or study.study_uid}: no key images marked")
    sources = _sources(index, keys)
    path = save_location(root, study.study_uid, when)
    path = path.with_name(path.name.replace("measurements", "key-images"))
    return write_key_images([(sources[sop], frame) for sop, frame in keys], path)
