"""An SR document as plain data: header, content tree, and the TID 1500 parts (Qt-free).

Content items follow PS3.3 C.17.3 (SR Document Content module): every item
has a Relationship Type, a Value Type and a Concept Name; values are decoded
per Value Type (TEXT, CODE, NUM with units, DATE/TIME/DATETIME, PNAME, UIDREF,
IMAGE / COMPOSITE / WAVEFORM references, SCOORD / SCOORD3D / TCOORD, CONTAINER);
by-reference relationships (Referenced Content Item Identifier) are kept as
"see item 1.2.3".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom import Dataset

from medviewer.viewer.errors import MedviewerError

MAX_DEPTH = 64          # content trees deeper than this are cut (corrupt or hostile files)
MAX_ITEMS = 200_000     # and so are trees with more items


class ReportError(MedviewerError):
    """An SR document that cannot be read (one line naming the file)."""


@dataclass(frozen=True)
class ImageLink:
    sop_class_uid: str
    sop_instance_uid: str
    frames: tuple[int, ...] = ()

    def href(self) -> str:
        return f"sop:{self.sop_instance_uid}" + (f"#{self.frames[0]}" if self.frames else "")


@dataclass
class ReportNode:
    """One content item."""

    relationship: str          # "CONTAINS", "HAS OBS CONTEXT", ... ("" for the root)
    value_type: str            # "CONTAINER", "TEXT", "NUM", ...
    concept: str               # Concept Name's Code Meaning
    value: str = ""            # the value as text (units included for NUM)
    number: float | None = None
    unit: str = ""
    link: ImageLink | None = None
    template: str = ""         # Template Identifier of a CONTAINER (e.g. "1500", "1501")
    children: list["ReportNode"] = field(default_factory=list)


@dataclass
class Measurement:
    concept: str
    value: str
    number: float | None
    unit: str
    modifiers: list[str] = field(default_factory=list)   # e.g. "Derivation: Mean"


@dataclass
class MeasurementGroup:
    """A TID 1501 / 1410 / 1411 measurement group, flattened for a table."""

    tracking: str = ""
    finding: str = ""
    measurements: list[Measurement] = field(default_factory=list)
    evaluations: list[tuple[str, str]] = field(default_factory=list)   # (concept, value)
    algorithm: list[tuple[str, str]] = field(default_factory=list)     # Algorithm Name/Version/Parameters
    images: list[ImageLink] = field(default_factory=list)


@dataclass
class ReportDocument:
    path: Path
    sop_class: str
    title: str
    template: str
    patient_name: str
    patient_id: str
    study_uid: str
    series_description: str
    content_datetime: str
    completion: str
    verification: str
    preliminary: str
    root: ReportNode
    library_images: int = 0

    @property
    def is_tid1500(self) -> bool:
        return self.template == "1500"

    def find(self, concept: str) -> list[ReportNode]:
        """Every node with this concept name (depth first)."""
        out: list[ReportNode] = []

        def walk(node: ReportNode) -> None:
            if node.concept == concept:
                out.append(node)
            for child in node.children:
                walk(child)

        walk(self.root)
        return out


SR_WORDS = ("SR Storage", "Key Object Selection", "Structured Report")


def is_report(sop_class_name: str) -> bool:
    """True for SOP Class names of SR documents (as `medviewer info` lists non-image objects)."""
    return any(w in sop_class_name for w in SR_WORDS)


def _meaning(seq) -> str:
    if not seq:
        return ""
    item = seq[0]
    return str(item.get("CodeMeaning", "") or item.get("CodeValue", "") or item.get("LongCodeValue", ""))


def _num(item: Dataset) -> tuple[str, float | None, str]:
    mv = item.get("MeasuredValueSequence")
    if not mv:
        qualifier = _meaning(item.get("NumericValueQualifierCodeSequence"))
        return (qualifier or "(no value)"), None, ""
    value = mv[0]
    unit_seq = value.get("MeasurementUnitsCodeSequence")
    unit = ""
    if unit_seq:
        u = unit_seq[0]
        code = str(u.get("CodeValue", ""))
        unit = "" if code == "1" else (code if str(u.get("CodingSchemeDesignator", "")) == "UCUM"
                                       else str(u.get("CodeMeaning", code)))
    try:
        number = float(value.get("FloatingPointValue", value.NumericValue))
    except (AttributeError, TypeError, ValueError):
        return str(value.get("NumericValue", "")), None, unit
    # dimensionless values in [0, 1] (probabilities, scores) read best with fixed decimals
    shown = f"{number:.4f}" if not unit and 0.0 <= number <= 1.0 else f"{number:.6g}"
    return shown + (f" {unit}" if unit else ""), number, unit


def _link(item: Dataset) -> ImageLink | None:
    refs = item.get("ReferencedSOPSequence")
    if not refs:
        return None
    ref = refs[0]
    frames = ref.get("ReferencedFrameNumber")
    if frames is None:
        frames = ()
    elif isinstance(frames, (list, tuple)) or hasattr(frames, "__iter__") and not isinstance(frames, str):
        frames = tuple(int(f) for f in frames)
    else:
        frames = (int(frames),)
    return ImageLink(str(ref.get("ReferencedSOPClassUID", "")), str(ref.get("ReferencedSOPInstanceUID", "")),
                     frames)


def _value(item: Dataset, vt: str) -> tuple[str, float | None, str, ImageLink | None]:
    if vt == "TEXT":
        return str(item.get("TextValue", "")), None, "", None
    if vt == "CODE":
        return _meaning(item.get("ConceptCodeSequence")), None, "", None
    if vt == "NUM":
        text, number, unit = _num(item)
        return text, number, unit, None
    if vt == "UIDREF":
        return str(item.get("UID", "")), None, "", None
    if vt == "PNAME":
        return str(item.get("PersonName", "")), None, "", None
    if vt in ("DATE", "TIME", "DATETIME"):
        key = {"DATE": "Date", "TIME": "Time", "DATETIME": "DateTime"}[vt]
        return str(item.get(key, "")), None, "", None
    if vt in ("IMAGE", "COMPOSITE", "WAVEFORM"):
        link = _link(item)
        if link is None:
            return "(no reference)", None, "", None
        name = pydicom.uid.UID(link.sop_class_uid).name if link.sop_class_uid else "object"
        frames = f", frame {', '.join(map(str, link.frames))}" if link.frames else ""
        return f"{name}{frames}", None, "", link
    if vt in ("SCOORD", "SCOORD3D"):
        data = list(item.get("GraphicData", []) or [])
        return (f"{item.get('GraphicType', '')} ({len(data) // (2 if vt == 'SCOORD' else 3)} points)",
                None, "", None)
    if vt == "TCOORD":
        return str(item.get("TemporalRangeType", "")), None, "", None
    return "", None, "", None


def _node(item: Dataset, depth: int, budget: list[int]) -> ReportNode:
    budget[0] -= 1
    vt = str(item.get("ValueType", "") or "")
    rel = str(item.get("RelationshipType", "") or "")
    if not vt and "ReferencedContentItemIdentifier" in item:
        ident = item.ReferencedContentItemIdentifier
        ident = ".".join(str(int(v)) for v in (ident if hasattr(ident, "__iter__") else [ident]))
        return ReportNode(rel, "REFERENCE", "(by reference)", f"see item {ident}")
    value, number, unit, link = _value(item, vt)
    tmpl = item.get("ContentTemplateSequence")
    node = ReportNode(rel, vt, _meaning(item.get("ConceptNameCodeSequence")), value, number, unit, link,
                      str(tmpl[0].get("TemplateIdentifier", "")) if tmpl else "")
    if depth < MAX_DEPTH:
        for child in item.get("ContentSequence", []) or []:
            if budget[0] <= 0:
                break
            node.children.append(_node(child, depth + 1, budget))
    return node


def _incomplete(path: Path, ds: Dataset) -> str | None:
    """Why the file is cut short (viewer.report.integrity), None when complete or not checkable."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    from medviewer.viewer.report.integrity import truncation

    meta = getattr(ds, "file_meta", None)
    if meta is None or meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
        return None
    from medviewer.viewer.io.safefile import MAX_DOCUMENT_BYTES, read_regular

    data = read_regular(path, MAX_DOCUMENT_BYTES)
    start = 132 if data[128:132] == b"DICM" else 0
    if start:  # the File Meta group (explicit VR little endian) comes first: its length says where it ends
        group_length = meta.get("FileMetaInformationGroupLength")
        if group_length is None:
            return None
        start += 12 + int(group_length)
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        return None
    return truncation(data, bool(implicit), bool(little), start)


def _when(date: str, time: str) -> str:
    """DA + TM (PS3.5 6.2) as 'YYYY-MM-DD HH:MM:SS'."""
    d = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) >= 8 and date[:8].isdigit() else date
    t = time.split(".")[0]
    t = ":".join(t[i:i + 2] for i in range(0, len(t), 2)) if t.isdigit() else t
    return f"{d} {t}".strip()


def read_report(path: str | Path) -> ReportDocument:
    """Read an SR document; ReportError for files that are not one or cannot be parsed."""
    from medviewer.viewer.io.safefile import MAX_DOCUMENT_BYTES, open_regular

    path = Path(path)
    try:
        with open_regular(path, MAX_DOCUMENT_BYTES) as fp:  # no FIFO, device or huge file
            ds = pydicom.dcmread(fp, force=False)
    except Exception as exc:  # pydicom raises many types on corrupt input
        text = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise ReportError(f"{path.name}: not readable as DICOM ({text})") from None
    if str(ds.get("ValueType", "")) != "CONTAINER" or "ConceptNameCodeSequence" not in ds:
        raise ReportError(f"{path.name}: not a Structured Report (no root CONTAINER content item)")
    why = _incomplete(path, ds)
    if why:
        raise ReportError(f"{path.name}: unreadable report content (file truncated: {why})")
    try:
        root = _node(ds, 0, [MAX_ITEMS])
        root.relationship = ""
    except Exception as exc:
        raise ReportError(f"{path.name}: unreadable report content ({type(exc).__name__}: "
                          f"{str(exc)[:100]})") from None
    sop = str(ds.get("SOPClassUID", ""))
    dt = _when(str(ds.get("ContentDate", "") or ""), str(ds.get("ContentTime", "") or ""))
    doc = ReportDocument(path, pydicom.uid.UID(sop).name if sop else "SR document", root.concept,
                         root.template, str(ds.get("PatientName", "")), str(ds.get("PatientID", "")),
                         str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesDescription", "")), dt,
                         str(ds.get("CompletionFlag", "")), str(ds.get("VerificationFlag", "")),
                         str(ds.get("PreliminaryFlag", "")), root)
    libs = doc.find("Image Library")
    doc.library_images = sum(1 for lib in libs for g in lib.children for c in g.children
                             if c.value_type == "IMAGE") + sum(
        1 for lib in libs for c in lib.children if c.value_type == "IMAGE")
    return doc


GROUP_CONCEPTS = ("Measurement Group", "Planar ROI Measurements", "Volumetric ROI Measurements")
ALGORITHM = ("Algorithm Name", "Algorithm Version", "Algorithm Parameters", "Algorithm Manufacturer")


def measurement_groups(doc: ReportDocument) -> list[MeasurementGroup]:
    """The measurement groups of a TID 1500 report's Imaging Measurements container."""
    out: list[MeasurementGroup] = []
    for container in doc.find("Imaging Measurements"):
        for node in container.children:
            if node.value_type != "CONTAINER":
                continue
            g = MeasurementGroup()
            for c in node.children:
                if c.concept == "Tracking Identifier":
                    g.tracking = c.value
                elif c.concept == "Finding" and c.value_type == "CODE":
                    g.finding = c.value
                elif c.concept in ALGORITHM:
                    g.algorithm.append((c.concept, c.value))
                elif c.value_type == "NUM":
                    mods = [f"{m.concept}: {m.value}" for m in c.children if m.value_type in ("CODE", "TEXT")]
                    g.measurements.append(Measurement(c.concept, c.value, c.number, c.unit, mods))
                elif c.value_type in ("CODE", "TEXT") and c.relationship == "CONTAINS":
                    g.evaluations.append((c.concept, c.value))
            # images the group was measured on, at any depth (TID 1410: IMAGE under the region's SCOORD)
            for link in _links(node):
                if link not in g.images:
                    g.images.append(link)
            out.append(g)
    return out


def _links(node: ReportNode) -> list[ImageLink]:
    out = [node.link] if node.link is not None else []
    for child in node.children:
        out.extend(_links(child))
    return out
