"""viewer.report: SR documents read and rendered for reading (Qt-free).

medviewer's own AI report, a TID 1500 report of another producer (built with highdicom:
planar ROI with a polyline, a measurement in mm2, qualitative evaluations) and pydicom's
test-SR.dcm (a content tree with by-reference items, multi-line text, frames).
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.sr.codedict import codes

import dicomgen
from medviewer.viewer.report import ReportError, is_report, read_report, to_html, to_text
from medviewer.viewer.report.model import measurement_groups


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    """medviewer's AI report of a generated 4-image series (engine.dicomout.sr, no model run)."""
    from medviewer.engine.dicomout.result import ModelInfo, SeriesResult
    from medviewer.engine.dicomout.source import source_images
    from medviewer.engine.dicomout.sr import ReportBuilder
    from medviewer.engine.infer import aggregate
    from medviewer.viewer.io.scan import scan

    root = tmp_path_factory.mktemp("report")
    paths, _ = dicomgen.ct_series(root / "ct", n=4, rows=16, cols=16)
    series = scan(root / "ct").all_series()[0]
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.1, 0.9]], np.float32)
    images = source_images(series)
    result = SeriesResult(series.series_uid, str(images[0].header.StudyInstanceUID), 1, "Axial CT", images, 4,
                          probs, "mean", 3, aggregate(probs), "gradcam")
    info = ModelInfo("tiny", "1.0", "resnet18", ("normal", "lesion"), "research", "ab" * 32, 32)
    sr = ReportBuilder(info, result).build(series_uid=hd.UID(), sop_uid=hd.UID(), series_number=9011)
    path = root / "sr.dcm"
    sr.save_as(path)
    return path, paths


def test_own_ai_report_is_read_as_tid1500(ours):
    path, sources = ours
    doc = read_report(path)
    assert doc.is_tid1500 and doc.title == "Imaging Measurement Report" and doc.sop_class == "Comprehensive SR Storage"
    assert doc.completion == "COMPLETE" and doc.verification == "UNVERIFIED" and doc.library_images == 4
    assert len(doc.content_datetime) == 19 and doc.content_datetime[4] == "-"
    groups = measurement_groups(doc)
    assert [g.tracking for g in groups] == ["AI series result", "image 1 of 4", "image 2 of 4", "image 3 of 4",
                                            "image 4 of 4"]
    series = groups[0]
    assert series.finding == "lesion"  # mean over the 4 images: normal 0.45, lesion 0.55
    values = {m.concept: m.number for m in series.measurements}
    assert values == pytest.approx({"Probability of normal": 0.45, "Probability of lesion": 0.55})
    assert all(m.modifiers == ["Derivation: Mean"] for m in series.measurements)
    assert ("Saliency map method", "Grad-CAM") in series.evaluations
    assert any(v.startswith("model file SHA-256: ") for _k, v in series.algorithm)
    sops = [str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in sources]
    assert [g.images[0].sop_instance_uid for g in groups[1:]] == sops
    assert [g.finding for g in groups[1:]] == ["normal", "lesion", "normal", "lesion"]
    html = to_html(doc)
    for text in ("Observation context", "Measurements (5 groups)", "Probability of lesion", "0.8000",
                 "Qualitative evaluations", "Not validated for clinical use", f'href="sop:{sops[2]}"'):
        assert text in html, text
    assert html.count("<tr><td>image ") == 4  # the per-image groups share one table


def test_series_result_finding_is_the_top_class(ours):
    doc = read_report(ours[0])
    series = measurement_groups(doc)[0]
    top = max(series.measurements, key=lambda m: m.number)
    assert series.finding == top.concept.replace("Probability of ", "")


def test_other_producers_tid1500_report(tmp_path):
    paths, _ = dicomgen.ct_series(tmp_path / "ct", n=2, rows=16, cols=16)
    src = pydicom.dcmread(paths[0])
    src.PatientBirthDate, src.PatientSex = "", ""
    region = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                               graphic_data=np.array([[1.0, 1.0], [8.0, 1.0], [8.0, 8.0], [1.0, 1.0]]),
                               source_image=hd.sr.SourceImageForRegion(src.SOPClassUID, src.SOPInstanceUID))
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="Nodule 1"),
        referenced_region=region, finding_type=codes.SCT.Nodule,
        measurements=[hd.sr.Measurement(name=codes.SCT.Area, value=12.5,
                                        unit=hd.sr.CodedConcept("mm2", "UCUM", "square millimeter"))],
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(
            hd.sr.CodedConcept("RID5", "RADLEX", "Margin"), hd.sr.CodedConcept("RID5713", "RADLEX", "Spiculated"))])
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="Doe^Jane"))),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion, imaging_measurements=[group])
    sr = hd.sr.Comprehensive3DSR(evidence=[src], content=report[0], series_instance_uid=hd.UID(), series_number=5,
                                 sop_instance_uid=hd.UID(), instance_number=1, manufacturer="Other Vendor")
    path = tmp_path / "other.dcm"
    sr.save_as(path)
    doc = read_report(path)
    assert doc.is_tid1500 and doc.sop_class == "Comprehensive 3D SR Storage"
    g = measurement_groups(doc)[0]
    assert (g.tracking, g.finding) == ("Nodule 1", "Nodule")
    assert [(m.concept, m.value) for m in g.measurements] == [("Area", "12.5 mm2")]
    assert ("Margin", "Spiculated") in g.evaluations
    assert g.images and g.images[0].sop_instance_uid == src.SOPInstanceUID
    html = to_html(doc)
    assert "Doe^Jane" in html and "12.5 mm2" in html and "Spiculated" in html and "Nodule 1" in html


def test_generic_content_tree_of_pydicom_test_sr():
    doc = read_report(get_testdata_file("test-SR.dcm"))
    assert not doc.is_tid1500 and doc.title == "Diagnosis"
    text = to_text(doc)
    assert "has obs context Some UID: 1.2.3.4.5" in text
    assert "selected from (by reference): see item 1.3.2" in text
    assert "CT Image Storage, frame 5, 2" in text
    html = to_html(doc)
    assert "A mass of" in html and "Sample Text<br>A<br>B<br>C" in html  # line breaks kept (CR, LF, CRLF)
    assert "&amp;%$§&quot;!()&lt;&gt;{}/;" in html  # escaped
    assert 'href="sop:' in html


def test_not_a_report_and_corrupt_files_are_one_line(tmp_path):
    ct = dicomgen.ct_series(tmp_path, n=1)[0][0]
    with pytest.raises(ReportError, match="not a Structured Report"):
        read_report(ct)
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\xff\xff")
    with pytest.raises(ReportError, match="bad.dcm: not"):
        read_report(bad)
    whole = get_testdata_file("test-SR.dcm")
    cut = tmp_path / "cut.dcm"
    data = open(whole, "rb").read()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReportError, match="^cut.dcm: (not readable|unreadable)"):
        read_report(cut)
    assert is_report("Comprehensive SR Storage") and is_report("Key Object Selection Document Storage")
    assert not is_report("CT Image Storage")


def test_deep_or_huge_trees_are_cut_not_crashing(tmp_path):
    ds = pydicom.dcmread(dicomgen.structured_report(tmp_path / "sr.dcm"))
    ds.ConceptNameCodeSequence = [pydicom.Dataset()]
    ds.ConceptNameCodeSequence[0].CodeValue, ds.ConceptNameCodeSequence[0].CodingSchemeDesignator = "1", "99X"
    ds.ConceptNameCodeSequence[0].CodeMeaning = "Deep"
    node = ds
    for _ in range(100):
        child = pydicom.Dataset()
        child.RelationshipType, child.ValueType = "CONTAINS", "CONTAINER"
        child.ConceptNameCodeSequence = ds.ConceptNameCodeSequence
        node.ContentSequence = [child]
        node = child
    ds.save_as(tmp_path / "deep.dcm")
    doc = read_report(tmp_path / "deep.dcm")
    depth, n = 0, doc.root
    while n.children:
        n, depth = n.children[0], depth + 1
    assert depth == 64 and to_html(doc)


def test_report_builder_extension_points_for_other_results(ours, tmp_path):
    """A reader's verdict and an out-of-distribution score go where TID 1500 puts them."""
    from medviewer.engine.dicomout import codes
    from medviewer.engine.dicomout.result import ModelInfo, SeriesResult
    from medviewer.engine.dicomout.source import source_images
    from medviewer.engine.dicomout.sr import ReportBuilder
    from medviewer.viewer.io.scan import scan

    series = scan(ours[1][0].parent).all_series()[0]
    images = source_images(series)
    probs = np.array([[0.7, 0.3]] * 4, np.float32)
    result = SeriesResult(series.series_uid, str(images[0].header.StudyInstanceUID), 1, "", images, 4, probs,
                          "max", 3, probs.max(0), "gradcampp")
    builder = ReportBuilder(ModelInfo("tiny", "1.0", "resnet18", ("normal", "lesion"), "validated", None), result)
    builder.add_report_code(codes.private("VERDICT", "Reader verdict"), codes.private("ACCEPTED", "Accepted"))
    builder.add_series_measurement(codes.private("OOD", "Out-of-distribution score"), 0.12)
    path = tmp_path / "ext.dcm"
    builder.build(series_uid=hd.UID(), sop_uid=hd.UID(), series_number=1).save_as(path)
    doc = read_report(path)
    series_group = measurement_groups(doc)[0]
    assert ("Out-of-distribution score", 0.12) in [(m.concept, m.number) for m in series_group.measurements]
    assert all(m.modifiers == ["Derivation: Maximum"] for m in series_group.measurements[:2])
    assert ("Saliency map method", "Grad-CAM++") in series_group.evaluations
    html = to_html(doc)
    assert "Reader verdict" in html and "Accepted" in html
    assert "Regulatory notice" not in html  # a validated model: no "not validated" statement
    assert any(v == "model file SHA-256: unknown (no model file)" for _k, v in series_group.algorithm)


@pytest.mark.parametrize("reader", ["report", "measurements", "key_images", "send"])
def test_documents_that_are_not_regular_files_are_refused_without_blocking(tmp_path, reader):
    """An SR path that is a named pipe (or a device) is refused at once with one line:
    opening a FIFO for reading would block until a writer appears."""
    import os
    import threading

    from medviewer.viewer.measure.keyimages import read_key_images
    from medviewer.viewer.measure.report import ReportError as MeasureReportError
    from medviewer.viewer.measure.report import read_report as read_measurements
    from medviewer.viewer.pacs.dimse import read_for_send

    fifo = tmp_path / "report.dcm"
    os.mkfifo(fifo)
    outcome: list[str] = []

    def run() -> None:
        try:
            if reader == "send":
                ds, why = read_for_send(fifo)
                outcome.append(f"refused: {why}" if ds is None else "read")
            else:
                func = {"report": read_report, "measurements": read_measurements, "key_images": read_key_images}
                func[reader](fifo)
                outcome.append("read")
        except (ReportError, MeasureReportError) as exc:
            outcome.append(f"refused: {exc}")

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(10)
    if t.is_alive():  # unblock the reader so the test process can end
        with open(fifo, "wb"):
            pass
        pytest.fail(f"{reader}: blocked on a FIFO")
    assert len(outcome) == 1 and outcome[0].startswith("refused: "), outcome
    assert "regular file" in outcome[0] and "\n" not in outcome[0]
