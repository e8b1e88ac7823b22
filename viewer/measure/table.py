"""A study's measurement table as CSV (one row per annotation), Qt-free."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from pathlib import Path

from medviewer.viewer.measure.tools import Annotation

COLUMNS = ["series_uid", "sop_instance_uid", "frame", "image", "kind", "label", "length_mm", "angle_deg",
           "area_mm2", "mean", "std", "min", "max", "n_pixels", "value", "units", "text", "points"]


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4f}".rstrip("0").rstrip(".") if v == v else ""
    return str(v)


def table_rows(annotations: Iterable[Annotation],
               image_label: Callable[[Annotation], str] | None = None) -> list[dict[str, str]]:
    """One dict per annotation with the COLUMNS (values as text, '' when not applicable)."""
    rows = []
    for a in annotations:
        n = a.numbers or {}
        length = n.get("length") if n.get("unit") == "mm" else None
        rows.append({
            "series_uid": a.series_uid, "sop_instance_uid": a.sop_instance_uid,
            "frame": "" if a.frame is None else str(a.frame),
            "image": image_label(a) if image_label else "", "kind": a.shape.kind, "label": a.label,
            "length_mm": _fmt(length), "angle_deg": _fmt(n.get("angle")),
            "area_mm2": _fmt(n.get("area_mm2")), "mean": _fmt(n.get("mean")), "std": _fmt(n.get("std")),
            "min": _fmt(n.get("min")), "max": _fmt(n.get("max")), "n_pixels": _fmt(n.get("n_pixels")),
            "value": _fmt(n.get("value")), "units": str(n.get("units", "") or ""),
            "text": getattr(a.shape, "text", ""),
            "points": " ".join(f"{x:.2f},{y:.2f}" for x, y in a.shape.points()),
        })
    return rows


def write_table(annotations: Iterable[Annotation], path: str | Path,
                image_label: Callable[[Annotation], str] | None = None) -> Path:
    """Write the measurement table (UTF-8 CSV with a header row)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table_rows(annotations, image_label))
    out = Path(path)
    out.write_text(buf.getvalue(), encoding="utf-8")
    return out
