"""What the AI result objects need from the source series: patient, study and instance refs.

Headers come from the scan (`Series.headers`, no pixel data).  Result objects
keep the source Patient and Study (PS3.3 C.7.1.1, C.7.2.1: same Study Instance
UID) and reference each source image by SOP Class / SOP Instance UID and, for
a multi-frame image, frame number (PS3.3 10.3 "SOP Instance Reference Macro").
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydicom import Dataset

from medviewer.viewer.errors import MedviewerError

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.viewer.io.model import ImageRef, Series

#: Patient, study and equipment-independent attributes copied from the source (PS3.3 C.7.1.1,
#: C.7.2.1, C.7.1.3 clinical trial subject and patient study modules are left out).
PATIENT_STUDY = ("SpecificCharacterSet", "PatientName", "PatientID", "IssuerOfPatientID",
                 "PatientBirthDate", "PatientSex", "PatientAge", "StudyInstanceUID", "StudyDate",
                 "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber",
                 "StudyDescription")
#: Type 2 attributes that must be present (possibly empty) in every output (PS3.3 C.7.1.1, C.7.2.1).
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
         "ReferringPhysicianName", "StudyID", "AccessionNumber")


class DicomOutputError(MedviewerError):
    """AI results cannot be written as DICOM for this series (one line, names it)."""


@dataclass(frozen=True)
class SourceImage:
    """One analysed image: its place in the series and how to reference it."""

    index: int                 # position in Series.items (display order)
    sop_class_uid: str
    sop_instance_uid: str
    frame: int | None          # 1-based Referenced Frame Number for multi-frame images
    header: Dataset            # the file's header (no pixel data)

    @property
    def label(self) -> str:
        """'image 12' / 'image 12 (frame 3)' for banners and reports."""
        return f"image {self.index + 1}" + (f" (frame {self.frame})" if self.frame else "")


def series_label(series: "Series") -> str:
    """How a message names the series: number and description, else its UID."""
    if series.number is not None:
        return f"series {series.number}" + (f" ({series.description})" if series.description else "")
    return f"series {series.series_uid}"


def source_images(series: "Series") -> list[SourceImage]:
    """One SourceImage per item; DicomOutputError for series that are not DICOM."""
    if series.kind != "dicom" or not series.headers:
        raise DicomOutputError(f"{series_label(series)}: not DICOM images (no patient or study to "
                               f"attach DICOM results to)")
    out: list[SourceImage] = []
    for i, ref in enumerate(series.items):
        out.append(_source(i, ref, series))
    return out


def _source(i: int, ref: "ImageRef", series: "Series") -> SourceImage:
    ds = series.headers[ref.path]
    sop_class = str(ds.get("SOPClassUID", "") or getattr(getattr(ds, "file_meta", None),
                                                          "MediaStorageSOPClassUID", "") or "")
    sop_uid = str(ds.get("SOPInstanceUID", "") or "")
    if not sop_class or not sop_uid:
        raise DicomOutputError(f"{ref.path.name}: no SOP Class / SOP Instance UID to reference")
    if not str(ds.get("StudyInstanceUID", "") or ""):
        raise DicomOutputError(f"{ref.path.name}: no Study Instance UID")
    return SourceImage(i, sop_class, sop_uid, None if ref.frame is None else ref.frame + 1, ds)


def patient_study(header: Dataset) -> Dataset:
    """The Patient and Study attributes of a source header, Type 2 ones present."""
    out = Dataset()
    for key in PATIENT_STUDY:
        if key in header:
            out[key] = copy.deepcopy(header[key])
    for key in TYPE2:
        if key not in out:
            setattr(out, key, "")
    return out


def evidence_dataset(src: SourceImage) -> Dataset:
    """A header for highdicom's evidence lists: patient/study plus the instance identity."""
    ds = patient_study(src.header)
    ds.SeriesInstanceUID = str(src.header.get("SeriesInstanceUID", ""))
    ds.SOPClassUID = src.sop_class_uid
    ds.SOPInstanceUID = src.sop_instance_uid
    return ds


def ascii_text(text: str, limit: int | None = None) -> str:
    """Text for burned-in banners (the Hershey fonts draw ASCII only)."""
    out = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in str(text))
    return out if limit is None else out[:limit]


def series_label_text(number: int | None, description: str, uid: str) -> str:
    """As `series_label`, from the parts kept in a SeriesResult."""
    if number is not None:
        return f"series {number}" + (f" ({description})" if description else "")
    return f"series {uid}"


def laterality(header: Dataset) -> str:
    """General Series Laterality (PS3.3 C.7.3.1, Type 2C): the source's, else empty."""
    for key in ("Laterality", "ImageLaterality"):
        value = str(header.get(key, "") or "")
        if value in ("L", "R"):
            return value
    return ""
