"""Annotations as DICOM: TID 1500 SR round trip (read back with highdicom), an SR built
the way OHIF / dcmjs write it, Key Object Selection, CSV table, dciodvfy."""

from __future__ import annotations

import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import dicomgen as g
from medviewer.viewer.io.pixels import PixelStore
from medviewer.viewer.io.scan import scan
from medviewer.viewer.measure import geometry as geo
from medviewer.viewer.measure.keyimages import read_key_images, write_key_images
from medviewer.viewer.measure.report import ReportError, read_report, report_folder, write_report
from medviewer.viewer.measure.stats import measure
from medviewer.viewer.measure.table import write_table
from medviewer.viewer.measure.tools import Annotation

DCIODVFY = shutil.which("dciodvfy") or ("/usr/bin/dciodvfy" if Path("/usr/bin/dciodvfy").exists() else None)

SHAPES = [geo.Ellipse(3.5, 2.0, 12.25, 9.0), geo.Rectangle(1.0, 1.5, 6.0, 8.0),
          geo.Freehand(((2.0, 2.0), (12.0, 3.0), (7.0, 13.0))), geo.Distance((1.0, 2.0), (14.0, 11.5)),
          geo.Angle((2.0, 2.0), (8.0, 8.0), (14.0, 2.0)), geo.CobbAngle((1, 1), (10, 3), (2, 9), (12, 14)),
          geo.PointProbe((5.5, 6.5)), geo.Arrow((4.0, 4.0), (10.0, 1.0), "nodule")]


@pytest.fixture()
def study(tmp_path: Path):
    paths, _ = g.ct_series(tmp_path / "ct", 6)
    mf_path = g.multiframe(tmp_path / "mf.dcm", frames=4)
    ds = pydicom.dcmread(mf_path)   # one study: the multi-frame image joins the CT's study
    first = pydicom.dcmread(paths[0], stop_before_pixels=True)
    ds.StudyInstanceUID, ds.PatientID, ds.PatientName = first.StudyInstanceUID, first.PatientID, first.PatientName
    ds.save_as(mf_path)
    res = scan(tmp_path)
    ct = next(s for s in res.all_series() if len(s.items) == 6)
    mf = next(s for s in res.all_series() if len(s.items) == 4)
    return tmp_path, ct, mf


def _annotations(ct, mf) -> tuple[list[Annotation], dict]:
    anns, sources = [], {}
    with PixelStore() as store:
        for i, shape in enumerate(SHAPES):
            series = mf if i % 3 == 2 else ct
            ref = series.items[i % len(series.items)]
            header = series.headers[ref.path]
            sources[str(header.SOPInstanceUID)] = header
            numbers = measure(shape, store.get(ref), store.meta(ref))
            anns.append(Annotation(shape, str(header.SOPInstanceUID), ref.frame, str(header.SOPClassUID),
                                   series.series_uid, uid=str(generate_uid()), label=f"M{i}",
                                   numbers=numbers))
    return anns, sources


def _same_numbers(a: dict, b: dict) -> None:
    for key, value in a.items():
        if isinstance(value, float):
            assert b[key] == pytest.approx(value, rel=1e-9), key


def test_round_trip_geometry_values_references(study) -> None:
    root, ct, mf = study
    anns, sources = _annotations(ct, mf)
    out = write_report(anns, sources, root / "sr" / "measurements.dcm")
    back = read_report(out)
    assert len(back) == len(anns)
    for a, b in zip(anns, back):
        assert b.shape == a.shape                       # the same geometry, to float32 precision
        assert (b.sop_instance_uid, b.frame, b.uid, b.label) == (a.sop_instance_uid, a.frame, a.uid, a.label)
        _same_numbers({k: v for k, v in a.numbers.items() if k != "n_pixels"}, b.numbers)
    assert any(a.frame is not None for a in back)       # multi-frame references keep their frame


def test_highdicom_reads_the_report(study) -> None:
    import highdicom as hd

    root, ct, mf = study
    anns, sources = _annotations(ct, mf)
    out = write_report(anns, sources, root / "m.dcm")
    sr = hd.sr.srread(out)
    assert isinstance(sr, hd.sr.ComprehensiveSR)
    report = sr.content
    rois = report.get_planar_roi_measurement_groups()
    assert len(rois) == 3
    ellipse = rois[0]
    np.testing.assert_allclose(ellipse.roi.value, SHAPES[0].axes_points())
    assert ellipse.roi.graphic_type == hd.sr.GraphicTypeValues.ELLIPSE
    names = {m.name.meaning: m.value for m in ellipse.get_measurements()}
    assert names["Area"] == pytest.approx(anns[0].numbers["area_mm2"])
    assert names["Mean"] == pytest.approx(anns[0].numbers["mean"])
    assert ellipse.get_measurements()[1].unit.value == "[hnsf'U]"
    assert str(ellipse.tracking_uid) == anns[0].uid
    groups = report.get_image_measurement_groups()
    assert len(groups) == 5
    length = groups[0].get_measurements()[0]
    assert length.name.meaning == "Length" and length.unit.value == "mm"
    assert length.value == pytest.approx(anns[3].numbers["length"])
    evidence = {str(item.ReferencedSOPInstanceUID) for st in sr.CurrentRequestedProcedureEvidenceSequence
                for se in st.ReferencedSeriesSequence for item in se.ReferencedSOPSequence}
    assert evidence == set(sources)


@pytest.mark.skipif(DCIODVFY is None, reason="dicom3tools' dciodvfy is not installed")
def test_sr_and_kos_pass_dciodvfy(study) -> None:
    root, ct, mf = study
    anns, sources = _annotations(ct, mf)
    sr = write_report(anns, sources, root / "sr.dcm")
    kos = write_key_images([(ct.headers[ct.items[1].path], None), (mf.headers[mf.items[0].path], 2)],
                           root / "kos.dcm")
    for path in (sr, kos):
        run = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
        errors = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.startswith("Error")]
        assert not errors, errors


def _ohif_item(value_type: str, relationship: str, code: tuple[str, str, str], **values) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    name = Dataset()
    name.CodeValue, name.CodingSchemeDesignator, name.CodeMeaning = code
    item.ConceptNameCodeSequence = Sequence([name])
    for key, value in values.items():
        setattr(item, key, value)
    return item


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    c = Dataset()
    c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning = value, scheme, meaning
    return c


def _scoord(graphic_type: str, data: list[float], sop_class: str, sop_uid: str) -> Dataset:
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = sop_class, sop_uid
    image = Dataset()
    image.RelationshipType, image.ValueType = "SELECTED FROM", "IMAGE"
    image.ReferencedSOPSequence = Sequence([ref])
    sc = Dataset()
    sc.RelationshipType, sc.ValueType = "INFERRED FROM", "SCOORD"
    sc.GraphicType, sc.GraphicData = graphic_type, data
    sc.ContentSequence = Sequence([image])
    return sc


def _num(code, value: float, unit: tuple[str, str, str], scoord: Dataset | None) -> Dataset:
    mv = Dataset()
    mv.NumericValue = value
    mv.MeasurementUnitsCodeSequence = Sequence([_code(*unit)])
    item = _ohif_item("NUM", "CONTAINS", code, MeasuredValueSequence=Sequence([mv]))
    if scoord is not None:
        item.ContentSequence = Sequence([scoord])
    return item


def ohif_report(path: Path, image: Dataset) -> Path:
    """A Comprehensive 3D SR built as OHIF's dcmjs adapters write one (TID 1500 with
    TID 1501 groups whose NUMs are INFERRED FROM SCOORDs, tool names in the tracking
    identifier, free text as a CST4 finding)."""
    cls, uid = str(image.SOPClassUID), str(image.SOPInstanceUID)
    HU = ("[hnsf'U]", "UCUM", "Hounsfield unit")

    def group(tool: str, items: list[Dataset], finding: str | None = None) -> Dataset:
        content = [_ohif_item("TEXT", "HAS OBS CONTEXT", ("112039", "DCM", "Tracking Identifier"),
                              TextValue=f"Cornerstone3DTools@^0.1.0:{tool}"),
                   _ohif_item("UIDREF", "HAS OBS CONTEXT", ("112040", "DCM", "Tracking Unique Identifier"),
                              UID=generate_uid())]
        if finding:
            content.append(_ohif_item("CODE", "CONTAINS", ("121071", "DCM", "Finding"),
                                      ConceptCodeSequence=Sequence([_code("CORNERSTONEFREETEXT", "CST4",
                                                                          finding)])))
        g_ = _ohif_item("CONTAINER", "CONTAINS", ("125007", "DCM", "Measurement Group"),
                        ContinuityOfContent="SEPARATE")
        g_.ContentSequence = Sequence(content + items)
        return g_

    ellipse = group("EllipticalROI", [
        _num(("G-D7FE", "SRT", "AREA"), 120.5, ("mm2", "UCUM", "mm2"),
             _scoord("ELLIPSE", [2.0, 6.0, 12.0, 6.0, 7.0, 3.0, 7.0, 9.0], cls, uid)),
        _num(("56851009", "SCT", "Maximum"), 200.0, HU, None),
        _num(("373098007", "SCT", "Mean"), 41.5, HU, None)])
    length = group("Length", [_num(("G-D7FE", "SRT", "Length"), 23.4, ("mm", "UCUM", "mm"),
                                   _scoord("POLYLINE", [1.0, 1.0, 11.0, 9.0], cls, uid))])
    angle = group("Angle", [_num(("4000022", "99PDL-rad", "Angle"), 90.0, ("deg", "UCUM", "degree"),
                                 _scoord("POLYLINE", [1.0, 5.0, 5.0, 5.0, 5.0, 1.0], cls, uid))])
    arrow = group("ArrowAnnotate", [_num(("111010", "DCM", "label"), 0, ("1", "UCUM", "no units"),
                                         _scoord("POLYLINE", [6.0, 6.0, 12.0, 2.0], cls, uid))],
                  finding="Liver lesion")
    measurements = _ohif_item("CONTAINER", "CONTAINS", ("126010", "DCM", "Imaging Measurements"),
                              ContinuityOfContent="SEPARATE")
    measurements.ContentSequence = Sequence([ellipse, length, angle, arrow])
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.34"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.Modality, ds.StudyInstanceUID = "SR", image.StudyInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = Sequence([_code("126000", "DCM", "Imaging Measurement Report")])
    tpl = Dataset()
    tpl.MappingResource, tpl.TemplateIdentifier = "DCMR", "1500"
    ds.ContentTemplateSequence = Sequence([tpl])
    ds.ContentSequence = Sequence([measurements])
    ds.save_as(path, enforce_file_format=True)
    return path


def test_reads_an_ohif_style_report(study) -> None:
    root, ct, _ = study
    header = ct.headers[ct.items[2].path]
    anns = read_report(ohif_report(root / "ohif.dcm", header))
    kinds = [a.shape for a in anns]
    assert kinds[0] == geo.Ellipse(2.0, 3.0, 12.0, 9.0)
    assert anns[0].numbers["area_mm2"] == 120.5 and anns[0].numbers["mean"] == 41.5
    assert anns[0].numbers["units"] == "HU"
    assert kinds[1] == geo.Distance((1.0, 1.0), (11.0, 9.0)) and anns[1].numbers["length"] == 23.4
    assert kinds[2] == geo.Angle((1.0, 5.0), (5.0, 5.0), (5.0, 1.0)) and anns[2].numbers["angle"] == 90.0
    assert kinds[3] == geo.Arrow((6.0, 6.0), (12.0, 2.0), "Liver lesion")
    assert all(a.sop_instance_uid == str(header.SOPInstanceUID) and a.frame is None for a in anns)
    assert anns[1].label.endswith(":Length")


def test_rotated_ellipse_from_other_software_becomes_its_outline(study) -> None:
    root, ct, _ = study
    anns, sources = _annotations(ct, ct)
    header = next(iter(sources.values()))
    path = ohif_report(root / "o.dcm", header)
    ds = pydicom.dcmread(path)
    sc = ds.ContentSequence[0].ContentSequence[0].ContentSequence[2].ContentSequence[0]
    sc.GraphicData = [2.0, 2.0, 10.0, 10.0, 4.0, 8.0, 8.0, 4.0]   # axes at 45 degrees
    ds.save_as(path)
    shape = read_report(path)[0].shape
    assert isinstance(shape, geo.Freehand) and len(shape.vertices) == 64
    assert shape.area(None) == pytest.approx(np.pi * np.hypot(4, 4) * np.hypot(2, 2), rel=0.01)


def test_key_images_round_trip(study) -> None:
    root, ct, mf = study
    marked = [(ct.headers[ct.items[0].path], None), (ct.headers[ct.items[4].path], None),
              (mf.headers[mf.items[1].path], mf.items[1].frame), (mf.headers[mf.items[3].path], mf.items[3].frame)]
    out = write_key_images(marked, root / "kos.dcm")
    got = read_key_images(out)
    expected = [(str(h.SOPInstanceUID), f) for h, f in marked]
    assert sorted(got, key=str) == sorted(expected, key=str)
    import highdicom as hd

    doc = hd.ko.KeyObjectSelectionDocument.from_dataset(pydicom.dcmread(out))
    assert doc.Modality == "KO"


def test_csv_table(study, tmp_path: Path) -> None:
    root, ct, mf = study
    anns, _ = _annotations(ct, mf)
    out = write_table(anns, tmp_path / "table.csv", image_label=lambda a: f"im {a.sop_instance_uid[-4:]}")
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["kind"] for r in rows] == [s.kind for s in SHAPES]
    assert float(rows[0]["area_mm2"]) == pytest.approx(anns[0].numbers["area_mm2"], rel=1e-4)
    assert rows[0]["units"] == "HU" and rows[3]["length_mm"] and rows[7]["text"] == "nodule"
    assert rows[0]["n_pixels"] == str(anns[0].numbers["n_pixels"])


def test_bad_inputs_raise_one_line(study, tmp_path: Path) -> None:
    root, ct, mf = study
    with pytest.raises(ReportError, match="no annotations"):
        write_report([], {}, tmp_path / "x.dcm")
    anns, _ = _annotations(ct, mf)
    with pytest.raises(ReportError, match="not in the study"):
        write_report(anns, {}, tmp_path / "x.dcm")
    (tmp_path / "junk.dcm").write_bytes(b"nope")
    with pytest.raises(ReportError):
        read_report(tmp_path / "junk.dcm")
    with pytest.raises(ReportError, match="not a TID 1500"):
        read_report(ct.items[0].path)
    folder = report_folder("1.2.3/../x")    # never a path outside the user data folder
    assert folder.name == "1.2.3" and folder.parent.name == "annotations"
    assert report_folder("..").name == "unknown-study" and report_folder("").name == "unknown-study"


def test_saved_next_to_the_study_then_found_when_it_is_opened_again(study, tmp_path: Path) -> None:
    from medviewer.viewer.measure.report import find_reports, save_location

    root, ct, mf = study
    anns, sources = _annotations(ct, mf)
    study_uid = str(ct.headers[ct.items[0].path].StudyInstanceUID)
    path = save_location(root, study_uid)
    assert path.parent == root and path.name.startswith("medviewer-measurements-")
    write_report(anns, sources, path)
    again = scan(root)                                  # the study opened again
    (found,) = find_reports(again, study_uid)
    assert found == path and [a.shape for a in read_report(found)] == [a.shape for a in anns]
    assert find_reports(again, "1.2.3.4") == []         # another study's reports stay out
    # no writable study folder (a CD, a PACS cache; root may write anywhere, so the
    # folder is simply not given here): the user data folder
    elsewhere = save_location(None, study_uid)
    assert elsewhere.parent == report_folder(study_uid)
    write_report(anns, sources, elsewhere)
    assert find_reports(again, study_uid) == [path, elsewhere]
