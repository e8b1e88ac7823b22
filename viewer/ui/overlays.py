"""Text for the four corner overlays (what a reading radiologist expects).

Pure functions over the view state and the header, so they are easy to test;
`paint_corner_texts` draws them.  Attributes follow PS3.3: Patient (C.7.1.1),
General Study (C.7.2.1), General Series (C.7.3.1), Image Plane (C.7.6.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CursorValue:
    """Pixel under the cursor: image coordinates and its displayed value text."""

    col: int
    row: int
    text: str


def _get(ds: Any, keyword: str, default: str = "") -> str:
    if ds is None:
        return default
    try:
        v = ds.get(keyword, None)
    except Exception:
        return default
    if v is None or v == "":
        return default
    return str(v)


def format_date(da: str) -> str:
    """DICOM DA (YYYYMMDD, PS3.5 6.2) to YYYY-MM-DD; other text unchanged."""
    da = da.strip()
    if len(da) == 8 and da.isdigit():
        return f"{da[:4]}-{da[4:6]}-{da[6:]}"
    return da


def format_person_name(pn: str) -> str:
    """PN components are '^'-separated (PS3.5 6.2): 'Doe^John' -> 'Doe, John'."""
    parts = [p for p in pn.split("^") if p]
    if len(parts) >= 2:
        return f"{parts[0]}, {' '.join(parts[1:])}"
    return parts[0] if parts else ""


def slice_location(ds: Any) -> float | None:
    """The slice's position along the patient axis closest to its normal (z for an
    axial slice), from Image Position (Patient) (viewer.display.orientation);
    Slice Location (0020,1041) only for images without an Image Plane module."""
    if ds is None:
        return None
    from medviewer.viewer.display.orientation import slice_location as location

    try:
        loc = location(ds.get("ImagePositionPatient", None), ds.get("ImageOrientationPatient", None))
    except Exception:
        loc = None
    if loc is not None:
        return loc.mm
    value = ds.get("SliceLocation", None) if hasattr(ds, "get") else None
    if value not in (None, ""):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    return None


def pixel_value_text(stored: np.ndarray, meta: Any, col: int, row: int) -> str:
    """Value at (row, col): modality value (HU for CT, PS3.3 C.11.1), RGB or index."""
    from medviewer.viewer.display import value_at

    v = value_at(stored, meta, row, col)
    if v is None:
        return ""
    if isinstance(v, tuple):
        return "RGB " + ",".join(str(x) for x in v)
    if getattr(meta, "is_palette", False):
        return f"index {int(v)}"
    unit = " HU" if str(getattr(meta, "modality", "")) == "CT" else ""
    if abs(v - round(v)) < 1e-3:
        return f"{int(round(v))}{unit}"
    return f"{v:.2f}{unit}"


def corner_texts(state: Any, header: Any, window: Any, scale: float,
                 cursor: CursorValue | None) -> dict[str, list[str]]:
    """Lines for 'tl', 'tr', 'bl', 'br' corners of the canvas."""
    series = state.series
    study = state.study_of(series)
    name = format_person_name(_get(header, "PatientName", getattr(study, "patient_name", "") or ""))
    pid = _get(header, "PatientID", getattr(study, "patient_id", "") or "")
    date = format_date(_get(header, "StudyDate", getattr(study, "date", "") or ""))
    sdesc = _get(header, "StudyDescription", getattr(study, "description", "") or "")
    tl = [x for x in (name, f"ID: {pid}" if pid else "") if x]
    tr = [x for x in (date, sdesc) if x]
    bl: list[str] = []
    br: list[str] = []
    if series is not None:
        num = getattr(series, "number", None)
        desc = getattr(series, "description", "") or ""
        head = f"Se {num}" if num is not None else "Se"
        tl.append(f"{head}: {desc}".strip().rstrip(":"))
        tl.append(f"{getattr(series, 'modality', '')}  {series.columns}x{series.rows}")
        n = state.count()
        line = f"Im {state.index + 1}/{n}"
        ref = state.ref()
        if ref is not None and ref.frame is not None:
            line += f"  (frame {ref.frame + 1})"
        bl.append(line)
        where = series.location(ref) if ref is not None and hasattr(series, "location") else None
        loc = where.mm if where is not None else slice_location(header)
        if loc is not None:
            bl.append(f"Loc: {loc + 0.0:.2f} mm")  # no "-0.00"
    if window is not None:
        label = f"W: {window.width:g}  L: {window.center:g}"
        wname = getattr(window, "name", "")
        if wname:
            label += f"  ({wname})"
        br.append(label)
    br.append(f"Zoom: {scale * 100:.0f}%")
    if cursor is not None:
        br.append(f"({cursor.col}, {cursor.row})  {cursor.text}")
    return {"tl": tl, "tr": tr, "bl": bl, "br": br}


def paint_corner_texts(p: Any, width: int, height: int, texts: dict[str, list[str]],
                       opacity: float = 1.0) -> None:
    """Draw the corner lines (QPainter `p`) with a dark shadow so they read on any grey."""
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QColor, QFont

    font = QFont(p.font())
    font.setPointSize(max(8, font.pointSize()))
    p.setFont(font)
    fm = p.fontMetrics()
    lh = fm.height()
    m = 6
    p.setOpacity(opacity)
    shadow, ink = QColor(0, 0, 0), QColor(235, 235, 160)
    for corner, lines in texts.items():
        for i, line in enumerate(lines):
            w = fm.horizontalAdvance(line)
            x = m if corner in ("tl", "bl") else width - m - w
            if corner in ("tl", "tr"):
                y = m + fm.ascent() + i * lh
            else:
                y = height - m - fm.descent() - (len(lines) - 1 - i) * lh
            p.setPen(shadow)
            p.drawText(QPointF(x + 1, y + 1), line)
            p.setPen(ink)
            p.drawText(QPointF(x, y), line)
    p.setOpacity(1.0)
