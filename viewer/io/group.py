"""Grouping of scanned files into Patient > Study > Series (PS3.3 A.1.2).

Series are keyed by Series Instance UID (0020,000E); plain images form one
series per folder.  `Collector.result()` builds a `ScanResult` from what has
been read so far, so partial snapshots and the final result share one path.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from medviewer.viewer.io import tags
from medviewer.viewer.io.model import ImageRef, NonImage, ScanResult, Series, SliceGeometry, Skipped, Study
from medviewer.viewer.io.sort import SliceInfo, natural_key, slice_infos, sort_slices

IMAGE_STUDY_UID = "images"


_text = tags.text_value  # character-set aware text (PN, LO, SH: PS3.5 6.1)


@dataclass
class _SeriesAcc:
    series: Series
    study_uid: str
    infos: list[SliceInfo] = field(default_factory=list)
    order_dirty: bool = True
    instances: dict[str, Path] = field(default_factory=dict)  # SOP Instance UID -> file


class Collector:
    """Accumulates files as they are read; `result()` groups and sorts them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._base = root if root.is_dir() else root.parent
        self.studies: dict[str, Study] = {}
        self.series: dict[str, _SeriesAcc] = {}
        self.non_image: list[NonImage] = []
        self.skipped: list[Skipped] = []
        self.images = 0
        self.changed = False

    def _study(self, uid: str, ds: tags.Header | None) -> None:
        if uid in self.studies:
            return
        if ds is None:
            self.studies[uid] = Study(uid, "", "", "Images", "")
        else:
            self.studies[uid] = Study(uid, _text(ds, "PatientID"), _text(ds, "PatientName"),
                                      _text(ds, "StudyDescription"), tags.ascii_text(ds, "StudyDate"))

    def add_dicom(self, path: Path, ds: tags.Header, frames: int | None) -> None:
        """Add one image file (single- or multi-frame) with its header (a pydicom
        Dataset, or a LazyHeader parsed in full only when first asked for)."""
        study_uid = tags.ascii_text(ds, "StudyInstanceUID") or "unknown-study"
        series_uid = tags.ascii_text(ds, "SeriesInstanceUID") or f"unknown-series:{path.parent.as_posix()}"
        self._study(study_uid, ds)
        acc = self.series.get(series_uid)
        if acc is None:
            series = Series(series_uid, tags.integer(ds, "SeriesNumber"),
                            tags.ascii_text(ds, "Modality") or "OT", _text(ds, "SeriesDescription"),
                            tags.unsigned(ds, "Rows") or 0, tags.unsigned(ds, "Columns") or 0,
                            kind="dicom")
            acc = self.series[series_uid] = _SeriesAcc(series, study_uid)
        sop_uid = tags.ascii_text(ds, "SOPInstanceUID")
        if sop_uid and sop_uid in acc.instances:  # the same instance twice (copies, DICOMDIR)
            first = acc.instances[sop_uid]
            self.skipped.append(Skipped(path, f"duplicate of {first.name} (same SOP Instance UID)"))
            self.changed = True
            return
        if sop_uid:
            acc.instances[sop_uid] = path
        acc.series.headers.put(path, ds)
        new = slice_infos(ds, path, frames)
        acc.infos.extend(new)
        acc.order_dirty = True
        self.images += len(new)
        self.changed = True

    def add_image(self, path: Path, rows: int | None = None, cols: int | None = None) -> None:
        """Add a PNG/JPEG/TIFF/BMP file: one series per folder, modality OT; `rows` and
        `cols` as its header declares them (read from the header when not given)."""
        folder = path.parent
        try:
            rel = folder.relative_to(self._base)
            label = rel.as_posix() if rel.parts else folder.name
        except ValueError:
            label = folder.as_posix()
        series_uid = f"images:{label}"
        self._study(IMAGE_STUDY_UID, None)
        acc = self.series.get(series_uid)
        if acc is None:
            if rows is None or cols is None:
                rows, cols = _image_size(path)
            series = Series(series_uid, None, "OT", folder.name, rows, cols, kind="image")
            acc = self.series[series_uid] = _SeriesAcc(series, IMAGE_STUDY_UID)
        acc.infos.append(SliceInfo(ImageRef(path, None)))
        acc.order_dirty = True
        self.images += 1
        self.changed = True

    def result(self, complete: bool = True) -> ScanResult:
        """Group and sort what has been collected so far."""
        by_study: dict[str, list[Series]] = {}
        for acc in self.series.values():
            if acc.order_dirty:
                if acc.series.kind == "image":
                    infos = sorted(acc.infos, key=lambda i: natural_key(i.ref.path))
                    acc.series.items = [i.ref for i in infos]
                else:
                    acc.series.items = sort_slices(acc.infos)
                    acc.series.geometry = {
                        i.ref: SliceGeometry(i.position, tuple(i.orientation))
                        for i in acc.infos if i.position is not None and i.orientation is not None}
                acc.order_dirty = False
            # copies: a snapshot handed to another thread must not change under it
            copy = replace(acc.series, items=list(acc.series.items), headers=acc.series.headers.copy())
            by_study.setdefault(acc.study_uid, []).append(copy)
        studies = []
        for uid, series_list in by_study.items():
            src = self.studies[uid]
            series_list.sort(key=lambda s: (s.number is None, s.number or 0, s.series_uid))
            studies.append(Study(src.study_uid, src.patient_id, src.patient_name,
                                 src.description, src.date, series_list))
        # newest study first (as clinical worklists), plain-image folders last
        studies.sort(key=lambda s: s.study_uid)
        studies.sort(key=lambda s: s.date, reverse=True)
        studies.sort(key=lambda s: s.study_uid == IMAGE_STUDY_UID)
        return ScanResult(self.root, studies, list(self.non_image), list(self.skipped), complete)


def _image_size(path: Path) -> tuple[int, int]:
    """(rows, columns) of a plain image from its header alone (nothing decoded)."""
    from medviewer.viewer.io.imagehead import HeaderError, from_file, plain_image
    from medviewer.viewer.io.safefile import open_regular

    try:
        with open_regular(path) as fp:
            declared = plain_image(from_file(fp))
        return declared.rows, declared.columns
    except (OSError, HeaderError):
        return 0, 0
