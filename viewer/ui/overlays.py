"""Text for the four corner overlays (what a reading radiologist expects).

Pure functions over the view state and the header, so they are easy to test;
`paint_corner_texts` draws them, with a dark outline (`draw_outlined_text`) so they
read on bone as on air.  Attributes follow PS3.3: Patient (C.7.1.1), General Study
(C.7.2.1), General Series (C.7.3.1), Image Plane (C.7.6.2).  `anonymize` leaves the
patient's name, ID and birth date out (exported views).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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


def location_line(series: Any, ref: Any, header: Any) -> str:
    """'Loc: z 27.00 mm': the slice's Image Position (Patient) coordinate along the patient
    axis closest to its normal (z for axial, y for coronal, x for sagittal; LPS, PS3.3
    C.7.6.2.1.1); 'Loc: 3.25 mm' from Slice Location when the image has no Image Plane
    geometry; '' when neither is known."""
    from medviewer.viewer.display.orientation import slice_location as location

    where = series.location(ref) if ref is not None and hasattr(series, "location") else None
    if where is None and header is not None:
        try:
            where = location(header.get("ImagePositionPatient", None), header.get("ImageOrientationPatient", None))
        except Exception:
            where = None
    if where is not None:
        return f"Loc: {where.axis_name} {where.text()}"
    loc = slice_location(header)
    return f"Loc: {loc + 0.0:.2f} mm" if loc is not None else ""   # no "-0.00"


def orientation_labels(series: Any, ref: Any) -> Any:
    """Edge letters (viewer.display.orientation.EdgeLabels) of image `ref` of `series`: from
    its Image Orientation (Patient) (the scan's per-frame geometry, else the header), else
    Patient Orientation (projection images, PS3.3 C.7.6.1.1.1); None when neither is known."""
    from medviewer.viewer.display.orientation import image_edge_labels, patient_orientation_labels

    if ref is None or series is None:
        return None
    geo = getattr(series, "geometry", {}).get(ref)
    labels = image_edge_labels(geo.orientation) if geo is not None else None
    header = getattr(series, "headers", {}).get(ref.path) if labels is None else None
    if header is not None:
        try:
            iop = header.get("ImageOrientationPatient", None)
            labels = image_edge_labels([float(v) for v in iop]) if iop else None
            if labels is None:
                labels = patient_orientation_labels(header.get("PatientOrientation", None))
        except (TypeError, ValueError):
            labels = None
    return labels


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
                 cursor: CursorValue | None, meta: Any = None,
                 anonymize: bool = False) -> dict[str, list[str]]:
    """Lines for 'tl', 'tr', 'bl', 'br' corners of the canvas.

    `meta` (the image's ImageMeta) lets the window be rounded as its data allows;
    `anonymize` drops the patient's name, ID and birth date."""
    from medviewer.viewer.display.text import size_text, window_text

    series = state.series
    study = state.study_of(series)
    date = format_date(_get(header, "StudyDate", getattr(study, "date", "") or ""))
    sdesc = _get(header, "StudyDescription", getattr(study, "description", "") or "")
    tl: list[str] = []
    if not anonymize:
        name = format_person_name(_get(header, "PatientName", getattr(study, "patient_name", "") or ""))
        pid = _get(header, "PatientID", getattr(study, "patient_id", "") or "")
        birth = format_date(_get(header, "PatientBirthDate"))
        tl = [x for x in (name, f"ID: {pid}" if pid else "", f"Born: {birth}" if birth else "") if x]
    tr = [x for x in (date, sdesc) if x]
    bl: list[str] = []
    br: list[str] = []
    if series is not None:
        num = getattr(series, "number", None)
        desc = getattr(series, "description", "") or ""
        head = f"Se {num}" if num is not None else "Se"
        tl.append(f"{head}: {desc}".strip().rstrip(":"))
        tl.append(f"{getattr(series, 'modality', '')}  {size_text(series.rows, series.columns)}")
        n = state.count()
        line = f"Im {state.index + 1}/{n}"
        ref = state.ref()
        if ref is not None and ref.frame is not None:
            line += f"  (frame {ref.frame + 1})"
        bl.append(line)
        line = location_line(series, ref, header)
        if line:
            bl.append(line)
    if window is not None:
        label = window_text(window.center, window.width, meta)
        wname = getattr(window, "name", "")
        if wname:
            label += f"  ({wname})"
        br.append(label)
    br.append(f"Zoom: {scale * 100:.0f}%")
    if cursor is not None:
        br.append(f"({cursor.col}, {cursor.row})  {cursor.text}")
    return {"tl": tl, "tr": tr, "bl": bl, "br": br}


_TEXT_CACHE: dict[tuple, Any] = {}
TEXT_CACHE_SIZE = 512


def draw_outlined_text(p: Any, x: float, y: float, text: str, ink: Any = None,
                       outline: float = 2.5) -> None:
    """Draw `text` with its baseline at (x, y) in `ink`, outlined in black so it reads
    on any grey (bone, contrast, air): the glyph outlines are stroked, then filled.

    Stroking glyph outlines costs about 2 ms a line, so each (text, font, ink, pixel
    ratio) is drawn once into a transparent image and that image is drawn afterwards
    (the corner texts of a viewport repaint on every mouse move)."""
    from PySide6.QtCore import QPointF, Qt
    from PySide6.QtGui import QColor, QFontMetricsF, QImage, QPainter, QPainterPath, QPen

    ink = ink if ink is not None else QColor(235, 235, 160)
    font = p.font()
    device = p.device()
    ratio = float(device.devicePixelRatioF()) if device is not None else 1.0
    key = (text, font.key(), ink.rgba(), outline, ratio)
    fm = QFontMetricsF(font)
    pad = int(math.ceil(outline)) + 1
    img = _TEXT_CACHE.pop(key, None)
    if img is None:
        width = fm.horizontalAdvance(text) + 2 * pad
        height = fm.height() + 2 * pad
        img = QImage(max(1, math.ceil(width * ratio)), max(1, math.ceil(height * ratio)),
                     QImage.Format.Format_ARGB32_Premultiplied)
        img.setDevicePixelRatio(ratio)
        img.fill(Qt.GlobalColor.transparent)
        q = QPainter(img)
        q.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        path = QPainterPath()
        path.addText(pad, pad + fm.ascent(), font, text)
        q.strokePath(path, QPen(QColor(0, 0, 0, 230), outline, Qt.PenStyle.SolidLine,
                                Qt.PenCapStyle.RoundCap, Qt.PenJoinStyle.RoundJoin))
        q.fillPath(path, ink)
        q.end()
        if len(_TEXT_CACHE) >= TEXT_CACHE_SIZE:
            _TEXT_CACHE.pop(next(iter(_TEXT_CACHE)))
    _TEXT_CACHE[key] = img       # most recently used last
    p.drawImage(QPointF(round(x) - pad, round(y - fm.ascent()) - pad), img)


def fit_corner_texts(fm: Any, texts: dict[str, list[str]], width: float, margin: float = 6.0,
                     gap: float = 12.0) -> dict[str, list[str]]:
    """`texts` with each right-hand line shortened ("...") where it would run into the
    left-hand line of its row (narrow viewports); a line with no room left is dropped
    (kept as an empty line, so the rows stay in place).  Rows count from the top for
    tl / tr and from the bottom for bl / br, as `paint_corner_texts` draws them."""
    from PySide6.QtCore import Qt

    out = {k: list(v) for k, v in texts.items()}
    room = width - 2 * margin
    for left_key, right_key, from_top in (("tl", "tr", True), ("bl", "br", False)):
        left, right = out.get(left_key) or [], out.get(right_key) or []
        for k in range(len(right)):
            i = k if from_top else len(right) - 1 - k            # index into right
            j = k if from_top else len(left) - 1 - k             # the left line of that row
            line = right[i]
            if not line or not 0 <= j < len(left) or not left[j]:
                continue
            avail = room - fm.horizontalAdvance(left[j]) - gap
            if fm.horizontalAdvance(line) <= avail:
                continue
            short = fm.elidedText(line, Qt.TextElideMode.ElideRight, int(max(0.0, avail)))
            right[i] = short if short.rstrip("\u2026.") else ""
        if right_key in out:
            out[right_key] = right
    return out


def paint_corner_texts(p: Any, width: int, height: int, texts: dict[str, list[str]],
                       opacity: float = 1.0) -> None:
    """Draw the corner lines (QPainter `p`), outlined so they read on any grey; a
    right-hand line that would run into its row's left-hand line is shortened."""
    from PySide6.QtGui import QColor

    p.setFont(_corner_font(p))
    fm = p.fontMetrics()
    lh = fm.height()
    m = 6
    p.setOpacity(opacity)
    ink = QColor(235, 235, 160)
    for corner, lines in fit_corner_texts(fm, texts, width, m).items():
        for i, line in enumerate(lines):
            if not line:
                continue
            w = fm.horizontalAdvance(line)
            x = m if corner in ("tl", "bl") else width - m - w
            if corner in ("tl", "tr"):
                y = m + fm.ascent() + i * lh
            else:
                y = height - m - fm.descent() - (len(lines) - 1 - i) * lh
            draw_outlined_text(p, x, y, line, ink)
    p.setOpacity(1.0)


def _corner_font(p: Any) -> Any:
    from PySide6.QtGui import QFont

    font = QFont(p.font())
    font.setPointSize(max(9, font.pointSize()))
    return font


def _letter_font(p: Any) -> Any:
    from PySide6.QtGui import QFont

    font = QFont(p.font())
    font.setPointSize(max(11, font.pointSize() + 3))
    font.setBold(True)
    return font


def corner_text_boxes(p: Any, texts: dict[str, list[str]], width: float, height: float) -> list[Any]:
    """The screen rectangles (QRectF) the corner lines of `texts` cover, as
    `paint_corner_texts` draws them (with 2 px for the outline)."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QFontMetricsF

    fm = QFontMetricsF(_corner_font(p))
    m, lh = 6.0, fm.height()
    boxes = []
    for corner, lines in fit_corner_texts(fm, texts, width, m).items():
        if not any(lines):
            continue
        w = max(fm.horizontalAdvance(line) for line in lines) + 4
        h = len(lines) * lh + 4
        x = m - 2 if corner in ("tl", "bl") else width - m - w + 2
        y = m - 2 if corner in ("tl", "tr") else height - m - h + 2
        boxes.append(QRectF(x, y, w, h))
    return boxes


def edge_label_boxes(p: Any, anchors: dict[str, tuple[float, float]], labels: dict[str, str],
                     width: float, height: float, avoid: Sequence[Any] = (),
                     margin: float = 6.0) -> dict[str, Any]:
    """Where each orientation letter goes (edge -> QRectF of its glyphs): at the middle
    of its image edge (`anchors`, viewer.state.ViewGeometry.edge_anchors), outside the
    image when the view has room there (the letters stay off the anatomy), else just
    inside it; a top / bottom letter that would cover something in `avoid` (corner
    text, badges: QRectFs) moves down / up past it, a side letter to its other side."""
    from PySide6.QtCore import QRectF
    from PySide6.QtGui import QFontMetricsF

    fm = QFontMetricsF(_letter_font(p))
    h = fm.ascent() + fm.descent()
    view = QRectF(0, 0, width, height)

    def free(box: Any) -> bool:
        return view.contains(box) and not any(box.intersects(r) for r in avoid)

    def pushed(box: Any, down: bool) -> Any:
        """`box` moved down (or up) past what it covers, a few times at most."""
        for _ in range(len(avoid) + 1):
            hit = [r for r in avoid if box.intersects(r)]
            if not hit:
                break
            if down:
                box.moveTop(max(r.bottom() for r in hit) + 2)
            else:
                box.moveBottom(min(r.top() for r in hit) - 2)
        return box

    out: dict[str, Any] = {}
    for edge, (x, y) in anchors.items():
        text = labels.get(edge, "")
        if not text:
            continue
        w = fm.horizontalAdvance(text)
        if edge in ("top", "bottom"):
            bx = min(max(x - w / 2, 0.0), max(0.0, width - w))
            out_y, in_y = (y - margin - h, y + margin) if edge == "top" else (y + margin, y - margin - h)
            outside = QRectF(bx, out_y, w, h)
            out[edge] = outside if free(outside) else pushed(QRectF(bx, in_y, w, h), down=edge == "top")
        else:
            by = y - h / 2
            out_x, in_x = (x - margin - w, x + margin) if edge == "left" else (x + margin, x - margin - w)
            outside, inside = QRectF(out_x, by, w, h), QRectF(in_x, by, w, h)
            out[edge] = outside if free(outside) else inside
    return out


def paint_edge_labels(p: Any, anchors: dict[str, tuple[float, float]], labels: dict[str, str],
                      opacity: float = 1.0, margin: float = 6.0, width: float | None = None,
                      height: float | None = None, avoid: Sequence[Any] = ()) -> None:
    """Orientation letters (A/P, R/L, H/F) in the middle of each image edge; `anchors`
    from medviewer.viewer.state.view.ViewGeometry.edge_anchors, `labels` from
    medviewer.viewer.display.orientation
    (EdgeLabels.as_dict()).  With the view's `width` and `height` they are placed by
    `edge_label_boxes` (outside the image where there is room, clear of `avoid`); without,
    just inside the image edge."""
    from PySide6.QtGui import QColor

    p.save()   # the corner text keeps its own font
    font = _letter_font(p)
    p.setFont(font)
    fm = p.fontMetrics()
    p.setOpacity(opacity)
    ink = QColor(255, 255, 255)
    if width is not None and height is not None:
        for edge, box in edge_label_boxes(p, anchors, labels, width, height, avoid, margin).items():
            draw_outlined_text(p, box.left(), box.top() + fm.ascent(), labels[edge], ink)
        p.restore()
        return
    for edge, (x, y) in anchors.items():
        text = labels.get(edge, "")
        if not text:
            continue
        w = fm.horizontalAdvance(text)
        if edge == "left":
            tx, ty = x + margin, y + (fm.ascent() - fm.descent()) / 2
        elif edge == "right":
            tx, ty = x - margin - w, y + (fm.ascent() - fm.descent()) / 2
        elif edge == "top":
            tx, ty = x - w / 2, y + margin + fm.ascent()
        else:
            tx, ty = x - w / 2, y - margin - fm.descent()
        draw_outlined_text(p, tx, ty, text, ink)
    p.restore()