"""AI results as DICOM (engine.dicomout): SR (TID 1500), Secondary Capture, Parametric Map.

Every object is checked with dicom3tools' dciodvfy (no "Error" line), read back with
pydicom / highdicom and compared with what the engine computed; outputs of real
pydicom test files and generated series are covered, and `medviewer predict
--dicom-out` end to end.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import dicomgen
from medviewer.engine.cam import gradcam_images
from medviewer.engine.dicomout import parse_slices, write_series_outputs
from medviewer.engine.dicomout.sc import scale_for
from medviewer.engine.infer import aggregate
from medviewer.engine.modelfile import load_model
from medviewer.engine.overlay import blend
from medviewer.engine.series import predict_series
from medviewer.viewer.cli import main
from medviewer.viewer.display import render
from medviewer.viewer.errors import UsageError
from medviewer.viewer.io.pixels import PixelStore
from medviewer.viewer.io.scan import scan
from test_engine_modelfile import make_model_file

DCIODVFY = Path("/usr/bin/dciodvfy")
CLASSES = ("normal", "lesion", "other")


def dciodvfy_errors(path: Path) -> list[str]:
    """dicom3tools' IOD verifier: the lines that report errors (warnings are allowed)."""
    out = subprocess.run([str(DCIODVFY), str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    make_model_file(p, arch="resnet18", classes=CLASSES, size=64, window={"center": 40, "width": 400})
    return p


@pytest.fixture(scope="module")
def model(model_file):
    return load_model(model_file, device="cpu")


def analyse(model, root: Path, out: Path, **kw):
    """Scan `root`, predict every series and write its DICOM results; {series_uid: (series, pred, paths)}."""
    res = scan(root)
    store = PixelStore(workers=1)
    done = {}
    for s in res.all_series():
        store.add_headers(s.headers)
        pred = predict_series(model, store, s.items, (s.rows, s.columns))
        done[s.series_uid] = (s, pred, write_series_outputs(model, s, pred, store, out, **kw))
    return res, store, done


def sr_items(ds, value_type: str) -> list:
    """Every content item of `value_type` in an SR tree (depth first)."""
    found = []

    def walk(items):
        for it in items:
            if it.ValueType == value_type:
                found.append(it)
            walk(it.get("ContentSequence", []))

    walk(ds.ContentSequence)
    return found


def groups(ds) -> list:
    """The TID 1501 Measurement Groups of an SR (first: the series result)."""
    root = ds.ContentSequence
    measurements = next(i for i in root if i.ConceptNameCodeSequence[0].CodeMeaning == "Imaging Measurements")
    return [g for g in measurements.ContentSequence if g.ConceptNameCodeSequence[0].CodeMeaning == "Measurement Group"]


def nums(group) -> dict[str, tuple[float, str, str]]:
    """{concept meaning: (value, unit code, unit scheme)} of a group's NUM items."""
    out = {}
    for it in group.ContentSequence:
        if it.ValueType == "NUM":
            mv = it.MeasuredValueSequence[0]
            unit = mv.MeasurementUnitsCodeSequence[0]
            out[it.ConceptNameCodeSequence[0].CodeMeaning] = (float(mv.NumericValue), unit.CodeValue,
                                                              unit.CodingSchemeDesignator)
    return out


def textured_series(folder: Path, n: int, rows: int, cols: int) -> tuple[list[Path], str]:
    """A generated CT series whose slices differ in structure (so their Grad-CAMs differ)."""
    paths, uid = dicomgen.ct_series(folder, n=n, rows=rows, cols=cols, shuffle_names=True)
    rng = np.random.default_rng(3)
    for k, p in enumerate(paths):
        ds = pydicom.dcmread(p)
        pix = (1024 + rng.normal(0, 60, (rows, cols))).astype(np.int16)
        r, c = rng.integers(4, rows - 4), rng.integers(4, cols - 4)
        pix[r - 3:r + 3, c - 3:c + 3] += 400 + 40 * k  # a bright blob moving from slice to slice
        ds.PixelData = pix.tobytes()
        ds.save_as(p)
    return paths, uid


@pytest.fixture(scope="module")
def ct_outputs(tmp_path_factory, model):
    root = tmp_path_factory.mktemp("ct")
    paths, uid = textured_series(root / "study", n=6, rows=24, cols=20)
    out = root / "out"
    res, store, done = analyse(model, root / "study", out=out, maps=True)
    series, pred, written = done[uid]
    return {"root": root, "paths": paths, "uid": uid, "series": series, "pred": pred, "written": written,
            "store": store, "out": out}


def test_every_object_passes_dciodvfy(ct_outputs):
    written = ct_outputs["written"]
    names = [p.name for p in written]
    assert names[0].endswith("-sr.dcm") and names[-1].endswith("-pm.dcm")
    assert sum("-sc-" in n for n in names) == 3
    for p in written:
        assert dciodvfy_errors(p) == [], p.name


def test_sr_follows_tid1500_with_model_probabilities_and_references(ct_outputs, model, model_file):
    sr_path = ct_outputs["written"][0]
    ds = pydicom.dcmread(sr_path)
    src = [pydicom.dcmread(p, stop_before_pixels=True) for p in ct_outputs["paths"]]
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    assert ds.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    assert (ds.StudyInstanceUID, ds.PatientID, ds.PatientName) == (src[0].StudyInstanceUID, src[0].PatientID,
                                                                   src[0].PatientName)
    assert ds.SeriesInstanceUID != src[0].SeriesInstanceUID and "tiny" in ds.SeriesDescription
    assert hd.sr.ComprehensiveSR.from_dataset(ds).content.__class__.__name__ == "MeasurementReport"
    texts = {it.ConceptNameCodeSequence[0].CodeMeaning: it.TextValue for it in sr_items(ds, "TEXT")}
    assert texts["Algorithm Name"] == "tiny" and texts["Algorithm Version"] == "1.0"
    params = [it.TextValue for it in sr_items(ds, "TEXT")
              if it.ConceptNameCodeSequence[0].CodeMeaning == "Algorithm Parameters"]
    sha = hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert f"model file SHA-256: {sha}" in params
    assert any(p.startswith("series aggregation: mean over 6 of 6") for p in params)
    assert texts["Intended use of the AI model"] == "research"
    assert texts["Regulatory notice"].startswith("Not validated for clinical use")

    probs = ct_outputs["pred"].probs
    series_group, *image_groups = groups(ds)
    agg = aggregate(probs, "mean")
    top = CLASSES[int(agg.argmax())]
    got = nums(series_group)
    for c, v in zip(CLASSES, agg):
        value, unit, scheme = got[f"Probability of {c}"]
        assert (unit, scheme) == ("1", "UCUM") and value == pytest.approx(float(v), rel=1e-5, abs=1e-7)
    codes = {it.ConceptNameCodeSequence[0].CodeMeaning: it.ConceptCodeSequence[0].CodeMeaning
             for it in series_group.ContentSequence if it.ValueType == "CODE"}
    assert codes == {"Finding": top, "Saliency map method": "Grad-CAM", "Saliency map class": top,
                     "Out-of-distribution check": "No out-of-distribution check"}   # an older model file
    derivations = {it.ContentSequence[0].ConceptCodeSequence[0].CodeMeaning
                   for it in series_group.ContentSequence if it.ValueType == "NUM"}
    assert derivations == {"Mean"}

    assert len(image_groups) == 6
    for k, (group, s) in enumerate(zip(image_groups, src)):
        image = next(it for it in group.ContentSequence if it.ValueType == "IMAGE")
        ref = image.ReferencedSOPSequence[0]
        assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (s.SOPClassUID, s.SOPInstanceUID)
        values = nums(group)
        for c, v in zip(CLASSES, probs[k]):
            assert values[f"Probability of {c}"][0] == pytest.approx(float(v), rel=1e-5, abs=1e-7)
        finding = next(it for it in group.ContentSequence if it.ValueType == "CODE")
        assert finding.ConceptCodeSequence[0].CodeMeaning == CLASSES[int(probs[k].argmax())]
    # the report's evidence lists every source instance
    evidence = {r.ReferencedSOPInstanceUID for st in ds.CurrentRequestedProcedureEvidenceSequence
                for se in st.ReferencedSeriesSequence for r in se.ReferencedSOPSequence}
    assert evidence == {s.SOPInstanceUID for s in src}


def test_secondary_capture_burns_displayed_grey_levels_overlay_and_banner(ct_outputs, model):
    series, pred, store = ct_outputs["series"], ct_outputs["pred"], ct_outputs["store"]
    sc_paths = [p for p in ct_outputs["written"] if "-sc-" in p.name]
    top = int(aggregate(pred.probs).argmax())
    expected = sorted(np.argsort(-pred.probs[:, top], kind="stable")[:3])
    assert [int(p.stem.rsplit("-", 1)[1]) - 1 for p in sc_paths] == list(expected)
    for number, (path, i) in enumerate(zip(sc_paths, expected), 1):
        ds = pydicom.dcmread(path)
        src = pydicom.dcmread(ct_outputs["paths"][i], stop_before_pixels=True)
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and ds.BurnedInAnnotation == "YES"
        assert ds.PhotometricInterpretation == "RGB" and ds.InstanceNumber == number
        assert ds.StudyInstanceUID == src.StudyInstanceUID and "tiny" in ds.SeriesDescription
        ref = ds.SourceImageSequence[0]
        assert (ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID) == (src.SOPClassUID, src.SOPInstanceUID)
        assert list(ds.PatientOrientation) == ["L", "P"]
        item = series.items[i]
        cam = gradcam_images(model, [(store.get(item), store.meta(item))], class_index=top)[0]
        shown = blend(render(store.get(item), store.meta(item)), cam)
        k = scale_for(20)
        want = np.kron(shown, np.ones((k, k, 1), np.uint8))
        pixels = ds.pixel_array
        band = pixels.shape[0] - want.shape[0]
        assert pixels.shape[1] == want.shape[1] and band > 40
        assert np.abs(pixels[band:].astype(int) - want).max() <= 1  # the same grey levels and heat map
        banner = pixels[:band]
        assert ((banner[..., 0] > 200) & (banner[..., 1] > 180) & (banner[..., 2] < 60)).sum() > 50  # yellow text
        assert ((banner[..., 0] > 200) & (banner[..., 1] < 170) & (banner[..., 1] > 100)).sum() > 50  # orange notice
        assert float(ds.PixelSpacing[0]) == pytest.approx(0.75 / k)


def test_parametric_map_holds_the_cams_on_the_source_geometry(ct_outputs, model):
    pm_path = ct_outputs["written"][-1]
    ds = pydicom.dcmread(pm_path)
    series, pred, store = ct_outputs["series"], ct_outputs["pred"], ct_outputs["store"]
    top = int(aggregate(pred.probs).argmax())
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30"
    arr = ds.pixel_array
    assert arr.dtype == np.float32 and arr.shape == (6, 24, 20) and 0 <= arr.min() and arr.max() <= 1
    images = [(store.get(r), store.meta(r)) for r in series.items]
    cams = gradcam_images(model, images, class_index=top)
    assert max(np.abs(cams[0] - c).max() for c in cams[1:]) > 0.05  # the maps differ from slice to slice
    headers = {pydicom.dcmread(r.path, stop_before_pixels=True).SOPInstanceUID: (i, r.path)
               for i, r in enumerate(series.items)}
    seen = []
    for frame, group in zip(arr, ds.PerFrameFunctionalGroupsSequence):
        sop = group.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        i, path = headers[sop]
        seen.append(i)
        np.testing.assert_allclose(frame, cams[i], atol=1e-5)  # each frame is its source's map
        src_pos = [float(v) for v in pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient]
        assert [float(v) for v in group.PlanePositionSequence[0].ImagePositionPatient] == src_pos
    assert sorted(seen) == list(range(6))
    rwv = ds.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    assert rwv.MeasurementUnitsCodeSequence[0].CodeValue == "1"


def test_uids_are_deterministic_and_change_with_model_or_options(ct_outputs, model, tmp_path, model_file):
    series, pred, store = ct_outputs["series"], ct_outputs["pred"], ct_outputs["store"]

    def uids(paths):
        return [(pydicom.dcmread(p, stop_before_pixels=True).SeriesInstanceUID,
                 pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in paths]

    first = uids(ct_outputs["written"])
    again = write_series_outputs(model, series, pred, store, tmp_path / "again", maps=True)
    assert uids(again) == first
    assert len({u for pair in first for u in pair}) == len(first) + 3  # 3 output series, unique instances
    other_opts = write_series_outputs(model, series, pred, store, tmp_path / "max", aggregate="max")
    assert uids(other_opts)[0][0] != first[0][0]
    copy = tmp_path / "retrained.safetensors"
    make_model_file(copy, arch="resnet18", classes=CLASSES, size=64, window={"center": 40, "width": 401})
    other_model = load_model(copy, device="cpu")
    assert uids(write_series_outputs(other_model, series, pred, store, tmp_path / "m2"))[0][0] != first[0][0]


def test_slice_choices_and_bad_specs(ct_outputs, model, tmp_path):
    series, pred, store = ct_outputs["series"], ct_outputs["pred"], ct_outputs["store"]
    every = write_series_outputs(model, series, pred, store, tmp_path / "all", slices="all")
    assert [p.name.rsplit("-", 1)[1] for p in every[1:]] == [f"{k:04d}.dcm" for k in range(1, 7)]
    two = write_series_outputs(model, series, pred, store, tmp_path / "two", slices="5,2")
    assert [p.name.rsplit("-", 1)[1] for p in two[1:]] == ["0002.dcm", "0005.dcm"]
    for bad in ("0", "top0", "x", "1,,2", "-3"):
        with pytest.raises(UsageError):
            parse_slices(bad)
    with pytest.raises(UsageError, match="outside the series"):
        write_series_outputs(model, series, pred, store, tmp_path / "bad", slices="7")


def test_real_files_multiframe_monochrome1_and_colour(tmp_path, model):
    root = tmp_path / "real"
    root.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "SC_rgb.dcm"):
        shutil.copy(get_testdata_file(name), root / name)
    dicomgen.multiframe(root / "mf.dcm", frames=4)
    dicomgen.monochrome1(root / "cr.dcm")
    notes: list[str] = []
    res = scan(root)
    store = PixelStore(workers=1)
    written = {}
    for s in res.all_series():
        store.add_headers(s.headers)
        pred = predict_series(model, store, s.items, (s.rows, s.columns))
        written[s.modality + str(len(s.items))] = write_series_outputs(
            model, s, pred, store, tmp_path / "out", maps=True, notify=notes.append)
    for paths in written.values():
        for p in paths:
            assert dciodvfy_errors(p) == [], p
    # the multi-frame CT: frames referenced by number, no map (one line says why)
    mf = written["CT4"]
    assert not any(p.name.endswith("-pm.dcm") for p in mf)
    assert any("multi-frame" in n for n in notes)
    refs = [pydicom.dcmread(p).SourceImageSequence[0] for p in mf if "-sc-" in p.name]
    assert sorted(int(r.ReferencedFrameNumber) for r in refs) == sorted(set(int(r.ReferencedFrameNumber) for r in refs))
    # projection CR without patient geometry: SR and SC, map left out with a reason
    assert any("no ImagePositionPatient" in n or "no ImageOrientationPatient" in n for n in notes)
    cr_sc = pydicom.dcmread(next(p for p in written["CR1"] if "-sc-" in p.name)).pixel_array
    # MONOCHROME1: low stored values are shown white, as on screen (left columns are low)
    band = cr_sc.shape[0] - 16 * scale_for(16)
    assert cr_sc[band:, :16].mean() > cr_sc[band:, -16:].mean()
    # CT_small, a real CT, gets all three objects, all on the source study
    ct = written["CT1"]
    assert [p.name[-6:] for p in ct] == ["sr.dcm", "01.dcm", "pm.dcm"]
    src = pydicom.dcmread(get_testdata_file("CT_small.dcm"), stop_before_pixels=True)
    for p in ct:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.PatientID == src.PatientID


def test_opened_in_medviewer_sc_is_a_series_of_the_study(ct_outputs):
    res = scan(ct_outputs["root"])
    study = next(st for st in res.studies if any(s.series_uid == ct_outputs["uid"] for s in st.series))
    sc = [s for s in study.series if s.description.startswith("AI Grad-CAM: tiny")]
    assert len(sc) == 1 and len(sc[0].items) == 3 and sc[0].modality == "OT"
    pm = [s for s in study.series if s.description.startswith("AI Grad-CAM map: tiny")]
    assert len(pm) == 1 and len(pm[0].items) == 6  # the map's frames, displayable too
    store = PixelStore(workers=1)
    store.add_headers(pm[0].headers)
    ref = pm[0].items[3]
    meta = store.meta(ref)  # from the header read without pixels: Float Pixel Data still recognised
    assert meta.float_pixels and meta.windows[0].function == "LINEAR_EXACT"
    grey = render(store.get(ref), meta)
    assert grey.dtype == np.uint8 and grey.shape == (24, 20)
    assert np.abs(grey.astype(float) - store.get(ref) * 255.0).max() <= 0.51  # [0, 1] -> 0..255
    assert [n.sop_class for n in res.non_image if n.path.name.endswith("-sr.dcm")] == ["Comprehensive SR Storage"]


def test_predict_cli_dicom_out(tmp_path, capsys, model_file):
    root = tmp_path / "study"
    dicomgen.ct_series(root / "ct", n=4, rows=16, cols=16)
    dicomgen.plain_images(root / "photos", 2)
    out = tmp_path / "dcm"
    code = main(["predict", str(root), "--model", str(model_file), "--device", "cpu", "--dicom-out", str(out),
                 "--dicom-out-slices", "all"])
    captured = capsys.readouterr()
    assert code == 1  # the PNG series cannot get DICOM results: said in one line
    assert "(1 SR, 4 Secondary Capture, 0 Parametric Map)" in captured.out
    lines = [ln for ln in captured.err.splitlines() if "no DICOM results" in ln]
    assert len(lines) == 1 and "not DICOM images" in lines[0]
    assert len(list(out.rglob("*.dcm"))) == 5
    code = main(["predict", str(root), "--model", str(model_file), "--dicom-out-maps"])
    assert code == 2 and "need --dicom-out" in capsys.readouterr().err
    code = main(["predict", str(root), "--model", str(model_file), "--dicom-out", str(out),
                 "--dicom-out-slices", "zero"])
    assert code == 2 and "--dicom-out-slices" in capsys.readouterr().err
