"""The scan's fast header walker (viewer.io.rawheader) against pydicom.

On every real file that ships with pydicom and pydicom-data the walker either
declines (None: pydicom reads the file) or finds exactly the elements, values
and pixel data offset that `dcmread(stop_before_pixels=True)` finds, and the
lazily parsed Dataset equals pydicom's.  Scans with and without the walker
give the same studies, series, order, texts and skipped reasons.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

import dicomgen as g
import medviewer.viewer.io.header as header_mod
from medviewer.viewer.io.header import HEAD_CHUNK, read_header
from medviewer.viewer.io.model import HeaderMap
from medviewer.viewer.io.pixels import PixelStore
from medviewer.viewer.io.rawheader import LazyHeader, walk
from medviewer.viewer.io.scan import scan


def _real_files() -> list[Path]:
    return sorted({Path(p) for p in get_testdata_files() if Path(p).is_file()})


REAL = _real_files()
ROOTS = sorted({p.parent for p in REAL if p.suffix == ".dcm"})


def _pydicom(path: Path) -> tuple[Dataset, int]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open(path, "rb") as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
            return ds, fp.tell()


@pytest.mark.filterwarnings("ignore::UserWarning")  # odd values in pydicom's test files
def test_walker_agrees_with_pydicom_on_every_real_file() -> None:
    walked = declined = 0
    for path in REAL:
        buf = path.read_bytes()[:HEAD_CHUNK]
        raw = walk(buf)  # must never raise, whatever the file
        if raw is None:
            declined += 1
            continue
        walked += 1
        ref, stop = _pydicom(path)
        assert raw.pixel_at == stop, path.name
        assert raw.pixel_head == buf[stop:stop + 12]
        assert raw.original_encoding == ref.original_encoding, path.name
        for tag, (a, b) in raw.values.items():
            if tag >> 16 == 0x0002:
                continue
            elem = ref.get_item(tag)
            assert elem is not None, (path.name, hex(tag))
            if isinstance(elem.value, bytes):  # still raw in pydicom: byte-identical
                assert elem.value == buf[a:b], (path.name, hex(tag))
        top = {int(t) for t in ref.keys()}
        sequences = {int(t) for t in ref.keys() if ref[t].VR == "SQ"}
        assert top - sequences <= set(raw.values), path.name  # undefined-length SQ are skipped
        lazy = LazyHeader(path, raw).dataset()
        assert lazy == ref and lazy.file_meta == ref.file_meta, path.name
        assert lazy.filename == str(path)
    # most real files take the fast path; big endian, deflated, preamble-less,
    # mislabelled VR and pixel-less objects are left to pydicom
    assert walked >= 120 and declined >= 20, (walked, declined)


@pytest.mark.parametrize("name", ["MR_small_bigendian.dcm", "image_dfl.dcm", "no_meta.dcm",
                                  "SC_rgb_jpeg.dcm", "ExplVR_LitEndNoMeta.dcm"])
def test_walker_declines_what_it_cannot_read(name: str) -> None:
    (path,) = [p for p in REAL if p.name == name][:1]
    assert walk(path.read_bytes()[:HEAD_CHUNK]) is None


def _nested_file(path: Path, syntax: str) -> Path:
    """A CT slice with undefined-length sequences nested three deep before the pixels."""
    (src,), _ = g.ct_series(path.parent / "src", 1)
    ds = pydicom.dcmread(src)
    inner = Dataset()
    inner.CodeValue, inner.CodeMeaning = "113691", "IEC Body Dosimetry Phantom"
    middle = Dataset()
    middle.ConceptNameCodeSequence = Sequence([inner, inner])
    outer = Dataset()
    outer.ContentSequence = Sequence([middle])
    outer.TextValue = "undefined lengths all the way down"
    ds.ContentSequence = Sequence([outer, Dataset()])
    for holder, keyword in ((ds, "ContentSequence"), (outer, "ContentSequence"),
                            (middle, "ConceptNameCodeSequence")):
        holder[keyword].is_undefined_length = True
        for item in holder[keyword].value:
            item.is_undefined_length_sequence_item = True
    ds.file_meta = FileMetaDataset(ds.file_meta)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.save_as(path, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True)
    return path


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
def test_nested_undefined_length_sequences(tmp_path: Path, syntax: str) -> None:
    path = _nested_file(tmp_path / "nested.dcm", syntax)
    data = path.read_bytes()
    assert b"\xfe\xff\xdd\xe0" in data  # pydicom wrote undefined-length sequences
    raw = walk(data[:HEAD_CHUNK])
    assert raw is not None
    ref, stop = _pydicom(path)
    assert raw.pixel_at == stop and raw.implicit == (syntax == ImplicitVRLittleEndian)
    assert 0x0040A730 not in raw.values  # the sequence was skipped, not kept
    assert LazyHeader(path, raw).dataset() == ref
    kind, (header, frames) = read_header(path)
    assert kind == "dicom" and frames is None and isinstance(header, LazyHeader)
    assert header.dataset().ContentSequence[0].ContentSequence[0].ConceptNameCodeSequence[1] \
        .CodeMeaning == "IEC Body Dosimetry Phantom"


def test_walker_never_raises_on_cut_or_damaged_headers(tmp_path: Path) -> None:
    path = _nested_file(tmp_path / "nested.dcm", ExplicitVRLittleEndian)
    data = path.read_bytes()
    raw = walk(data)
    assert raw is not None
    for end in range(0, raw.pixel_at + 8):  # every cut inside the header: declined
        assert walk(data[:end]) is None, end
    rng = random.Random(7)
    for _ in range(400):  # flipped bytes: declined or walked, never an exception
        damaged = bytearray(data[:raw.pixel_at + 64])
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(132, raw.pixel_at)] = rng.randrange(256)
        walk(bytes(damaged))


def _summary(root: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = scan(root)
    doc = res.to_json()
    texts = [(st.patient_name, st.patient_id, st.description, se.description)
             for st in res.studies for se in st.series]
    return {"json": doc, "texts": texts}


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: p.name)
def test_scan_is_the_same_with_and_without_the_walker(root: Path, monkeypatch) -> None:
    fast = _summary(root)
    monkeypatch.setattr(header_mod, "FAST_HEADERS", False)
    slow = _summary(root)
    assert fast == slow


def test_mixed_study_same_with_and_without_the_walker(tmp_path: Path, monkeypatch) -> None:
    g.mixed_study(tmp_path)
    fast = _summary(tmp_path)
    monkeypatch.setattr(header_mod, "FAST_HEADERS", False)
    assert _summary(tmp_path) == fast


def test_headers_are_parsed_only_when_asked_for(tmp_path: Path) -> None:
    paths, _ = g.ct_series(tmp_path, 6, shuffle_names=True)
    (series,) = scan(tmp_path).all_series()
    assert isinstance(series.headers, HeaderMap)
    entries = series.headers.entries()
    assert all(isinstance(e, LazyHeader) and not e.parsed for e in entries.values())
    with PixelStore(headers=series.headers) as store:
        assert not any(e.parsed for e in entries.values())  # handing over parses nothing
        ref = series.items[2]
        store.get(ref)
        parsed = [p for p, e in entries.items() if e.parsed]
        assert parsed == [ref.path]
        assert store.header(ref) is series.headers[ref.path]  # one Dataset, shared
    assert [r.path for r in series.items] == paths
    assert series.headers[paths[0]].SOPInstanceUID == pydicom.dcmread(paths[0]).SOPInstanceUID


def test_text_values_follow_the_character_set(tmp_path: Path) -> None:
    """Latin-1, UTF-8 and an ISO 2022 (Japanese) name read the same as pydicom reads them."""
    cases = [("ISO_IR 100", "Müller^Jürgen"), ("ISO_IR 192", "Ηλίας^Ζωή"),
             (["", "ISO 2022 IR 87"], "Yamada^Tarou=山田^太郎")]
    for i, (charset, name) in enumerate(cases):
        (path,), _ = g.ct_series(tmp_path / f"cs{i}", 1)
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet = charset
        ds.PatientName = name
        ds.StudyDescription = name.split("^")[0]
        ds.save_as(path)
        (study,) = scan(path.parent).studies
        ref = pydicom.dcmread(path)
        assert study.patient_name == str(ref.PatientName) == name
        assert study.description == ref.StudyDescription
