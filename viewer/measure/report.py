"""Annotations <-> DICOM Measurement Report SR (PS3.16 TID 1500), written with highdicom.

Writing (`write_report`): one Comprehensive SR per study whose Imaging Measurements
hold one measurement group per annotation, with a Tracking Identifier and a
Tracking Unique Identifier (kept across saves) and image references (SCOORD
SELECTED FROM IMAGE, with the frame number for multi-frame images):

* ellipse / rectangle / freehand ROIs: TID 1410 Planar ROI groups, the Image Region
  as SCOORD ELLIPSE or closed POLYLINE, measurements Area (mm2), Mean, Standard
  Deviation, Minimum and Maximum in modality units (UCUM [hnsf'U] for CT);
* distance, angle, Cobb angle, point probe, arrow: TID 1501 groups whose NUM
  measurement (Length mm, Angle deg, Cobb angle deg, ...) is INFERRED FROM a SCOORD
  (POLYLINE / POINT) -- the structure OHIF / dcmjs write; an arrow's text is kept
  as OHIF keeps it, in the group's Finding (code meaning, CST4 CORNERSTONEFREETEXT).

SCOORD Graphic Data use the image coordinates of viewer.measure.geometry
(PS3.3 C.18.6.1.2: the top left corner of the image is 0\\0).

Reading (`read_report`) walks the content tree with pydicom rather than typed
template parsers, so reports of this kind written by other software (OHIF,
dcmjs, highdicom) come back as annotations too: any measurement group with a
SCOORD, TID 1410 or TID 1501 style.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from medviewer.viewer.errors import MedviewerError
from medviewer.viewer.io.safefile import MAX_DOCUMENT_BYTES, atomic_output, open_regular
from medviewer.viewer.measure.geometry import (Angle, Arrow, CobbAngle, Distance, Ellipse, Freehand,
                                               PointProbe, Rectangle, Shape)
from medviewer.viewer.measure.tools import Annotation

__all__ = ["ReportError", "evidence_header", "find_reports", "read_report", "report_folder", "save_location",
           "write_report"]

LABEL = Code("111010", "DCM", "Label")
FREETEXT = ("CORNERSTONEFREETEXT", "CST4")       # OHIF's free-text finding code
MANUFACTURER = "medviewer"
_LENGTH = ("410668003", "G-D7FE")    # SCT / SRT codes of Length
_AREA = ("42798000", "G-A166")
_ANGLE = ("1483009", "4000022", "110859")
_COBB = ("285285000",)
_MEAN, _SD, _MIN, _MAX = ("373098007", "R-00317"), ("386136009", "R-10047", "113061"), \
    ("255605001", "R-404FB"), ("56851009", "G-A437")


class ReportError(MedviewerError):
    """An SR cannot be written or read (one line naming the file)."""


def report_folder(study_uid: str) -> Path:
    """Where annotations of a study go when its folder is not writable:
    <user data folder>/annotations/<Study Instance UID>/."""
    from medviewer.viewer.userdata import user_data_dir

    safe = "".join(c for c in study_uid if c.isdigit() or c == ".").strip(".")
    if not safe:                # '..' or no UID at all: never a path outside the folder
        safe = "unknown-study"
    return user_data_dir() / "annotations" / safe


def save_location(study_root: str | Path | None, study_uid: str, when: datetime | None = None) -> Path:
    """Where to save a study's report: next to the study (the folder the user opened)
    when it is writable, else in `report_folder(study_uid)`."""
    import os

    stamp = (when or datetime.now()).strftime("%Y%m%d-%H%M%S")
    name = f"medviewer-measurements-{stamp}.dcm"
    if study_root is not None:
        root = Path(study_root)
        folder = root if root.is_dir() else root.parent
        if os.access(folder, os.W_OK | os.X_OK):
            return folder / name
    return report_folder(study_uid) / name


_SR_CLASSES = ("Comprehensive SR", "Comprehensive 3D SR", "Enhanced SR")


def find_reports(result, study_uid: str) -> list[Path]:
    """Measurement reports to restore for a study: SR objects the scan found under the
    opened folder (ours or other software's) and those in `report_folder(study_uid)`,
    oldest first.  Only files the scan listed or medviewer's own folder are read."""
    found = [n.path for n in getattr(result, "non_image", [])
             if any(n.sop_class.startswith(c) for c in _SR_CLASSES)]
    return of_study(found, study_uid, "*.dcm")


def of_study(found: list[Path], study_uid: str, pattern: str) -> list[Path]:
    """`found` plus the files matching `pattern` in `report_folder(study_uid)` (links not
    followed) whose Study Instance UID is `study_uid`, each once, oldest first.  Documents
    are read as regular files of at most MAX_DOCUMENT_BYTES; unreadable ones are passed over."""
    import pydicom

    folder = report_folder(study_uid)
    if folder.is_dir():
        found = found + sorted(p for p in folder.glob(pattern) if p.is_file() and not p.is_symlink())
    out = []
    for path in dict.fromkeys(found):
        try:
            with open_regular(path, MAX_DOCUMENT_BYTES) as fp:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True, specific_tags=["StudyInstanceUID"])
        except Exception:
            continue
        if str(ds.get("StudyInstanceUID", "")) == study_uid:
            out.append(path)
    return sorted(out, key=lambda p: (p.stat().st_mtime, str(p)))


def _unit(units: str):
    """UCUM code of modality units (PS3.16 CID 7181 / 83)."""
    if units == "HU":
        return codes.UCUM.HounsfieldUnit
    return Code("[arb'U]", "UCUM", "arbitrary unit")


def _hd():
    import highdicom as hd

    return hd


_COPIED = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
           "FrameOfReferenceUID", "NumberOfFrames", "Rows", "Columns", "SeriesNumber", "InstanceNumber",
           "SpecificCharacterSet")
_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
          "ReferringPhysicianName", "AccessionNumber", "StudyID")


def evidence_header(header: Dataset) -> Dataset:
    """The attributes an SR / KOS takes from a referenced image (UIDs, patient and study
    module, PS3.3 C.7.1.1 / C.7.2.1), with Type 2 ones present (empty) when the image
    lacks them -- as the SR's own patient and study modules require."""
    out = Dataset()
    for keyword in _COPIED + _TYPE2:
        value = header.get(keyword)
        if value is not None:
            setattr(out, keyword, value)
        elif keyword in _TYPE2:
            setattr(out, keyword, "")
    return out


def _coordinates(shape: Shape) -> tuple[str, np.ndarray]:
    """(graphic type, (N, 2) Graphic Data) of a shape (PS3.3 C.18.6.1.2)."""
    if isinstance(shape, Ellipse):
        return "ELLIPSE", np.asarray(shape.axes_points(), np.float32)
    if isinstance(shape, (Rectangle, Freehand)):
        return "POLYLINE", np.asarray(shape.outline(), np.float32)   # closed: last == first
    if isinstance(shape, PointProbe):
        return "POINT", np.asarray([shape.p], np.float32)
    return "POLYLINE", np.asarray(shape.points(), np.float32)


def _group(hd, annotation: Annotation, source: Dataset, numbers: Mapping[str, Any]):
    shape = annotation.shape
    frames = None if annotation.frame is None else [annotation.frame + 1]
    tracking = hd.sr.TrackingIdentifier(uid=annotation.uid or str(generate_uid()),
                                        identifier=(annotation.label or shape.kind)[:64])
    gtype, data = _coordinates(shape)
    if shape.is_roi:
        region = hd.sr.ImageRegion(graphic_type=gtype, graphic_data=data,
                                   source_image=hd.sr.SourceImageForRegion.from_source_image(
                                       source, referenced_frame_numbers=frames))
        values = []
        if numbers.get("area_mm2") is not None:
            values.append((codes.SCT.Area, numbers["area_mm2"], codes.UCUM.SquareMillimeter))
        unit = _unit(str(numbers.get("units", "")))
        for key, code in (("mean", codes.SCT.Mean), ("std", codes.SCT.StandardDeviation),
                          ("min", codes.SCT.Minimum), ("max", codes.SCT.Maximum)):
            if numbers.get(key) is not None:
                values.append((code, numbers[key], unit))
        return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking, referenced_region=region,
            measurements=[hd.sr.Measurement(name=n, value=float(v), unit=u) for n, v, u in values] or None)
    coords = hd.sr.CoordinatesForMeasurement(
        graphic_type=gtype, graphic_data=data,
        source_image=hd.sr.SourceImageForRegion.from_source_image(source, referenced_frame_numbers=frames))
    finding = None
    mm = numbers.get("unit") == "mm"
    if isinstance(shape, Distance):
        name, value, unit = codes.SCT.Length, numbers["length"], (
            codes.UCUM.Millimeter if mm else Code("1", "UCUM", "px"))
    elif isinstance(shape, CobbAngle):
        name, value, unit = codes.SCT.CobbAngle, numbers["angle"], codes.UCUM.Degree
    elif isinstance(shape, Angle):
        name, value, unit = codes.SCT.Angle, numbers["angle"], codes.UCUM.Degree
    elif isinstance(shape, PointProbe):   # the mean over one pixel: its value
        value = numbers.get("value")
        name, unit = codes.SCT.Mean, _unit(str(numbers.get("units", "")))
        value = 0.0 if not isinstance(value, (int, float)) or value is None else value
    else:  # Arrow: as OHIF writes ArrowAnnotate
        name, value, unit = LABEL, 0.0, Code("1", "UCUM", "no units")
        text = (getattr(shape, "text", "") or "")[:64]
        finding = Code(FREETEXT[0], FREETEXT[1], text) if text else None
    measurement = hd.sr.Measurement(name=name, value=float(value), unit=unit,
                                    referenced_coordinates=[coords])
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, measurements=[measurement], finding_type=finding)


def write_report(annotations: Iterable[Annotation], sources: Mapping[str, Dataset], path: str | Path,
                 numbers: Mapping[str, Mapping[str, Any]] | None = None, *, series_number: int = 9901,
                 description: str = "medviewer measurements") -> Path:
    """Write the annotations of one study as a TID 1500 Comprehensive SR at `path`.

    `sources` maps SOP Instance UID -> header (pixel data not needed) of every
    referenced image; `numbers` maps an annotation's uid -> its measured values
    (viewer.measure.stats.measure), default `annotation.numbers`.
    """
    hd = _hd()
    annotations = list(annotations)
    if not annotations:
        raise ReportError(f"{Path(path).name}: no annotations to save")
    groups, evidence, seen = [], [], set()
    for ann in annotations:
        src = sources.get(ann.sop_instance_uid)
        if src is None:
            raise ReportError(f"{Path(path).name}: image {ann.sop_instance_uid} is not in the study")
        src = evidence_header(src)
        if ann.sop_instance_uid not in seen:
            seen.add(ann.sop_instance_uid)
            evidence.append(src)
        vals = (numbers or {}).get(ann.uid, ann.numbers) if numbers is not None else ann.numbers
        groups.append(_group(hd, ann, src, vals or {}))
    observer = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=str(generate_uid()), name="medviewer", manufacturer_name=MANUFACTURER))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion if str(evidence[0].get("Modality", "")) == "CT"
        else Code("P0-099A0", "SRT", "Imaging procedure"),
        imaging_measurements=groups)
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence, content=report, series_instance_uid=str(generate_uid()),
        series_number=series_number, sop_instance_uid=str(generate_uid()), instance_number=1,
        manufacturer=MANUFACTURER, series_description=description)
    now = datetime.now()
    sr.ContentDate, sr.ContentTime = now.strftime("%Y%m%d"), now.strftime("%H%M%S")
    return save_document(sr, path)


def save_document(doc: Dataset, path: str | Path) -> Path:
    """Write a DICOM document atomically (safefile.atomic_output: a full disk or a
    failed write leaves neither a partial file nor a temporary one); ReportError otherwise."""
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(out) as tmp:
            doc.save_as(tmp, enforce_file_format=True)
    except OSError as exc:
        raise ReportError(f"{out}: cannot write ({exc.strerror or type(exc).__name__})") from None
    return out


# ------------------------------------------------------------------------------
# reading

@dataclass
class _Scoord:
    graphic_type: str
    data: np.ndarray               # (N, 2)
    sop_instance_uid: str
    sop_class_uid: str
    frame: int | None              # 0-based


def _code(item: Dataset, keyword: str = "ConceptNameCodeSequence") -> tuple[str, str, str]:
    seq = item.get(keyword)
    if not seq:
        return ("", "", "")
    c = seq[0]
    return (str(c.get("CodeValue", "") or c.get("LongCodeValue", "") or ""),
            str(c.get("CodingSchemeDesignator", "")), str(c.get("CodeMeaning", "")))


def _scoord(item: Dataset) -> _Scoord | None:
    if str(item.get("ValueType", "")) != "SCOORD":
        return None
    data = np.asarray([float(v) for v in item.get("GraphicData", [])], np.float64).reshape(-1, 2)
    for child in item.get("ContentSequence", []):
        for ref in child.get("ReferencedSOPSequence", []):
            frames = ref.get("ReferencedFrameNumber")
            if frames is not None and not isinstance(frames, (int, float)) and len(frames):
                frames = frames[0]
            frame = int(frames) - 1 if frames not in (None, "") else None
            return _Scoord(str(item.get("GraphicType", "")), data,
                           str(ref.get("ReferencedSOPInstanceUID", "")),
                           str(ref.get("ReferencedSOPClassUID", "")), frame)
    return None


def _num(item: Dataset) -> tuple[str, float, str] | None:
    seq = item.get("MeasuredValueSequence")
    if str(item.get("ValueType", "")) != "NUM" or not seq:
        return None
    try:
        value = float(seq[0].NumericValue)
    except (AttributeError, TypeError, ValueError):
        return None
    unit = _code(seq[0], "MeasurementUnitsCodeSequence")[0]
    code, _, meaning = _code(item)
    if meaning.strip().lower() == "area":   # dcmjs writes Area with the code of Length
        code = _AREA[0]
    return code, value, unit


def _shape(sc: _Scoord, names: set[str], text: str) -> Shape | None:
    """The shape a SCOORD stands for, helped by the measurement names around it."""
    pts = [(float(x), float(y)) for x, y in sc.data]
    gt = sc.graphic_type
    if gt == "POINT" and pts:
        return Arrow(pts[0], (pts[0][0] + 20, pts[0][1] - 20), text) if text else PointProbe(pts[0])
    if gt == "CIRCLE" and len(pts) == 2:
        (cx, cy), (ex, ey) = pts
        r = math.hypot(ex - cx, ey - cy)
        return Ellipse(cx - r, cy - r, cx + r, cy + r)
    if gt == "ELLIPSE" and len(pts) == 4:
        (ax, ay), (bx, by), (cx2, cy2), (dx, dy) = pts
        cx, cy = (ax + bx) / 2, (ay + by) / 2
        major = math.hypot(bx - ax, by - ay) / 2
        minor = math.hypot(dx - cx2, dy - cy2) / 2
        theta = math.atan2(by - ay, bx - ax)
        if abs(math.sin(2 * theta)) < 1e-6:   # axes along the image axes: the box is exact
            hx, hy = (major, minor) if abs(math.cos(theta)) > 0.5 else (minor, major)
            return Ellipse(cx - hx, cy - hy, cx + hx, cy + hy)
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)   # turned ellipse: its outline
        ct, st = math.cos(theta), math.sin(theta)
        return Freehand(tuple((float(cx + major * math.cos(v) * ct - minor * math.sin(v) * st),
                               float(cy + major * math.cos(v) * st + minor * math.sin(v) * ct))
                              for v in t))
    if gt == "POLYLINE" and pts:
        closed = len(pts) >= 4 and pts[0] == pts[-1]
        if closed:
            ring = pts[:-1]
            xs, ys = sorted({p[0] for p in ring}), sorted({p[1] for p in ring})
            if len(ring) == 4 and len(xs) == 2 and len(ys) == 2:
                return Rectangle(xs[0], ys[0], xs[1], ys[1])
            return Freehand(tuple(ring))
        if names & set(_COBB) and len(pts) == 4:
            return CobbAngle(*pts)
        if len(pts) == 3 and (names & set(_ANGLE) or not names & set(_LENGTH)):
            return Angle(*pts)
        if len(pts) == 2:
            if LABEL.value in names or text:
                return Arrow(pts[0], pts[1], text)
            return Distance(pts[0], pts[1])
        if len(pts) == 4 and names & set(_ANGLE):
            return CobbAngle(*pts)
        if len(pts) >= 3 and names & set(_AREA):
            return Freehand(tuple(pts))
    return None


_NUMBER_KEYS = {**{c: "area_mm2" for c in _AREA}, **{c: "mean" for c in _MEAN}, **{c: "std" for c in _SD},
                **{c: "min" for c in _MIN}, **{c: "max" for c in _MAX}, **{c: "length" for c in _LENGTH},
                **{c: "angle" for c in _ANGLE + _COBB}}


def _groups(ds: Dataset) -> Iterable[Dataset]:
    """Measurement Group containers (DCM 125007) anywhere under the root."""
    stack = list(ds.get("ContentSequence", []))
    while stack:
        item = stack.pop(0)
        if str(item.get("ValueType", "")) == "CONTAINER" and _code(item)[0] == "125007":
            yield item
            continue
        stack.extend(item.get("ContentSequence", []))


def read_report(path: str | Path) -> list[Annotation]:
    """Annotations of a TID 1500 Measurement Report (ours, OHIF's, dcmjs', highdicom's).
    Groups without a usable SCOORD are skipped; ReportError names the file otherwise."""
    import pydicom

    path = Path(path)
    try:
        with open_regular(path, MAX_DOCUMENT_BYTES) as fp:  # no FIFO, device or huge file
            ds = pydicom.dcmread(fp, force=True)
    except OSError as exc:
        raise ReportError(f"{path.name}: not readable ({exc.strerror or exc})") from None
    except Exception as exc:
        raise ReportError(f"{path.name}: not a readable DICOM file ({type(exc).__name__})") from None
    template = ""
    for item in ds.get("ContentTemplateSequence", []):
        template = str(item.get("TemplateIdentifier", ""))
    if _code(ds)[0] != "126000" and template != "1500":
        raise ReportError(f"{path.name}: not a TID 1500 Measurement Report")
    out: list[Annotation] = []
    for group in _groups(ds):
        label, uid, text = "", "", ""
        region: _Scoord | None = None
        nums: list[tuple[tuple[str, float, str], _Scoord | None]] = []
        for item in group.get("ContentSequence", []):
            name = _code(item)[0]
            if name == "112039":
                label = str(item.get("TextValue", ""))
            elif name == "112040":
                uid = str(item.get("UID", ""))
            elif name in ("121071", "404684003"):
                value, scheme, meaning = _code(item, "ConceptCodeSequence")
                if (value, scheme) == FREETEXT or scheme.startswith("99"):
                    text = meaning
            elif name == "111030":
                region = _scoord(item)
            num = _num(item)
            if num is not None:
                child = next((s for s in map(_scoord, item.get("ContentSequence", [])) if s), None)
                nums.append((num, child))
        names = {n[0] for n, _ in nums}
        numbers: dict[str, Any] = {}
        for (code, value, unit), _ in nums:
            key = _NUMBER_KEYS.get(code)
            if key:
                numbers[key] = value
                if key in ("mean", "std", "min", "max"):
                    numbers["units"] = "HU" if unit == "[hnsf'U]" else unit
        scoords = [region] if region is not None else []
        for _, sc in nums:
            if sc is not None and not any(np.array_equal(sc.data, s.data) for s in scoords):
                scoords.append(sc)
        kind_hint = label.rsplit(":", 1)[-1].lower()
        for sc in scoords:
            if "arrow" in kind_hint and not text:
                text = " "
            shape = _shape(sc, names, text.strip() if text != " " else "")
            if shape is None:
                continue
            if "arrow" in kind_hint and not isinstance(shape, Arrow) and len(sc.data) >= 1:
                pts = [tuple(map(float, p)) for p in sc.data]
                shape = Arrow(pts[0], pts[1] if len(pts) > 1 else (pts[0][0] + 20, pts[0][1] - 20),
                              text.strip())
            values = dict(numbers)
            if isinstance(shape, PointProbe) and "mean" in values:
                values["value"] = values.pop("mean")
            out.append(Annotation(shape, sc.sop_instance_uid, sc.frame, sc.sop_class_uid,
                                  uid=uid or str(generate_uid()), label=label, numbers=values))
    return out


def restore(annotations: Sequence[Annotation], known: Mapping[str, object]) -> list[Annotation]:
    """The annotations whose images are in the open study (`known`: SOP Instance UIDs)."""
    return [a for a in annotations if a.sop_instance_uid in known]


def with_numbers(annotation: Annotation, numbers: Mapping[str, Any]) -> Annotation:
    return replace(annotation, numbers=dict(numbers))
