"""meta_from_dataset / meta_for_plain_image on generated and real headers."""

from __future__ import annotations

import struct

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

from medviewer.viewer.display import Window, find_window, meta_for_plain_image, meta_from_dataset
from medviewer.viewer.errors import DecodeError


def mono(**kw) -> Dataset:
    ds = Dataset()
    ds.Rows, ds.Columns = 4, 5
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 16, 12, 0
    ds.Modality = "MR"
    for key, value in kw.items():
        setattr(ds, key, value)
    return ds


def lut_item(desc, data, **kw) -> Dataset:
    item = Dataset()
    item.LUTDescriptor = desc
    item.LUTData = data
    for key, value in kw.items():
        setattr(item, key, value)
    return item


def test_basic_fields_and_defaults() -> None:
    meta = meta_from_dataset(mono(PixelSpacing=[0.5, 0.25]))
    assert (meta.rows, meta.columns, meta.bits_stored, meta.bits_allocated) == (4, 5, 12, 16)
    assert (meta.rescale_slope, meta.rescale_intercept) == (1.0, 0.0)
    assert meta.pixel_spacing == (0.5, 0.25)
    assert meta.windows == () and meta.voi_luts == () and meta.modality_lut is None
    assert meta.modality == "MR" and not meta.is_color and not meta.inverted


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
def test_multi_valued_windows_with_explanations_and_function() -> None:
    meta = meta_from_dataset(mono(WindowCenter=[40, 300, 50], WindowWidth=[400, 1500, 0],
                                  WindowCenterWidthExplanation=["SOFT", "BONE", "BAD"],
                                  VOILUTFunction="sigmoid"))
    # the zero-width window is invalid and dropped; the function applies to all
    assert meta.windows == (Window(40, 400, "SIGMOID", "SOFT"),
                            Window(300, 1500, "SIGMOID", "BONE"))
    assert meta.voi_lut_function == "SIGMOID"
    assert find_window(meta, "bone") == meta.windows[1]
    assert find_window(meta, "lung") is None


def test_windows_without_explanation_and_invalid_linear_width() -> None:
    meta = meta_from_dataset(mono(WindowCenter=[100, 7], WindowWidth=[0.5, 20]))
    # LINEAR needs width >= 1 (C.11.2.1.2.1): the first pair is dropped
    assert meta.windows == (Window(7, 20, "LINEAR", "Window 2"),)
    exact = meta_from_dataset(mono(WindowCenter=100, WindowWidth=0.5,
                                   VOILUTFunction="LINEAR_EXACT"))
    assert exact.windows == (Window(100, 0.5, "LINEAR_EXACT", "Window 1"),)
    unknown = meta_from_dataset(mono(WindowCenter=1, WindowWidth=2, VOILUTFunction="FOO"))
    assert unknown.windows[0].function == "LINEAR"


def test_rescale_and_units() -> None:
    ct = meta_from_dataset(mono(Modality="CT", RescaleSlope="2.5", RescaleIntercept="-1024",
                                PixelRepresentation=1))
    assert (ct.rescale_slope, ct.rescale_intercept, ct.units) == (2.5, -1024.0, "HU")
    typed = meta_from_dataset(mono(RescaleSlope=1, RescaleIntercept=0, RescaleType="US"))
    assert typed.units == "US"
    zero = meta_from_dataset(mono(RescaleSlope=0, RescaleIntercept=5))
    assert zero.rescale_slope == 1.0   # slope 0 is invalid; treated as identity slope


def test_modality_lut_sequence_list_data_wins_over_rescale() -> None:
    ds = mono(PixelRepresentation=1, RescaleSlope=2, RescaleIntercept=3)
    ds.ModalityLUTSequence = Sequence([lut_item([4, 65534, 16], [10, 20, 30, 40],
                                                ModalityLUTType="HU")])
    meta = meta_from_dataset(ds)
    # first mapped 65534 encoded as US for signed data means -2 (C.11.1.1.1)
    assert meta.modality_lut.first_mapped == -2
    assert meta.modality_lut.entries.tolist() == [10, 20, 30, 40]
    assert (meta.rescale_slope, meta.rescale_intercept, meta.units) == (1.0, 0.0, "HU")


@pytest.mark.parametrize("syntax, fmt", [(ExplicitVRLittleEndian, "<"), (ExplicitVRBigEndian, ">")])
def test_ow_lut_data_honours_byte_order(syntax, fmt) -> None:
    ds = mono()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.set_original_encoding(False, fmt == "<")
    item = lut_item([3, 0, 16], struct.pack(f"{fmt}3H", 1, 256, 65535))
    item["LUTData"].VR = "OW"
    ds.VOILUTSequence = Sequence([item])
    meta = meta_from_dataset(ds)
    assert meta.voi_luts[0].entries.tolist() == [1, 256, 65535]
    assert meta.voi_luts[0].max_output == 65535


def test_several_voi_luts_are_selectable_by_explanation() -> None:
    ds = mono(WindowCenter=10, WindowWidth=20)
    ds.VOILUTSequence = Sequence([
        lut_item([2, 0, 8], [0, 255], LUTExplanation="HARD"),
        lut_item([2, 0, 10], [0, 1023], LUTExplanation="SOFT"),
    ])
    meta = meta_from_dataset(ds)
    assert [lut.explanation for lut in meta.voi_luts] == ["HARD", "SOFT"]
    assert [lut.max_output for lut in meta.voi_luts] == [255, 1023]
    assert find_window(meta, "soft").voi_lut == 1
    assert find_window(meta, "Window 1") == Window(10, 20, "LINEAR", "Window 1")


def test_spacing_falls_back_to_imager_and_ignores_zero() -> None:
    assert meta_from_dataset(mono(ImagerPixelSpacing=[0.2, 0.2])).pixel_spacing == (0.2, 0.2)
    both = mono(PixelSpacing=[0, 0], ImagerPixelSpacing=[0.1, 0.15])
    assert meta_from_dataset(both).pixel_spacing == (0.1, 0.15)
    assert meta_from_dataset(mono(PixelSpacing=[0, 0])).pixel_spacing is None


def _fg(**groups) -> Dataset:
    item = Dataset()
    for keyword, values in groups.items():
        inner = Dataset()
        for key, value in values.items():
            setattr(inner, key, value)
        setattr(item, keyword, Sequence([inner]))
    return item


def test_enhanced_multiframe_per_frame_overrides_shared() -> None:
    ds = mono(NumberOfFrames=3, Modality="CT")
    ds.SharedFunctionalGroupsSequence = Sequence([_fg(
        PixelMeasuresSequence={"PixelSpacing": [0.7, 0.7]},
        PixelValueTransformationSequence={"RescaleSlope": 1, "RescaleIntercept": -1024},
        FrameVOILUTSequence={"WindowCenter": 40, "WindowWidth": 400},
    )])
    ds.PerFrameFunctionalGroupsSequence = Sequence([
        _fg(),
        _fg(FrameVOILUTSequence={"WindowCenter": [-600, 300], "WindowWidth": [1500, 2000],
                                 "WindowCenterWidthExplanation": ["LUNG", "BONE"]}),
        _fg(PixelValueTransformationSequence={"RescaleSlope": 2, "RescaleIntercept": 0},
            PixelMeasuresSequence={"PixelSpacing": [0.3, 0.4]}),
    ])
    m0, m1, m2 = (meta_from_dataset(ds, f) for f in range(3))
    assert m0.windows == (Window(40, 400, "LINEAR", "Window 1"),)
    assert (m0.rescale_intercept, m0.pixel_spacing) == (-1024.0, (0.7, 0.7))
    assert [w.name for w in m1.windows] == ["LUNG", "BONE"]
    assert (m2.rescale_slope, m2.rescale_intercept, m2.pixel_spacing) == (2.0, 0.0, (0.3, 0.4))
    assert meta_from_dataset(ds) == m0      # no frame given: frame 0


def test_palette_meta_scales_16_bit_entries() -> None:
    ds = mono(PhotometricInterpretation="PALETTE COLOR", BitsAllocated=8, BitsStored=8)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.set_original_encoding(False, True)
    for colour, values in (("Red", [0, 65535, 32896]), ("Green", [65535, 0, 257]),
                           ("Blue", [0, 0, 65535])):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [3, 5, 16])
        setattr(ds, f"{colour}PaletteColorLookupTableData", struct.pack("<3H", *values))
    meta = meta_from_dataset(ds)
    assert meta.is_palette and meta.palette.first_mapped == 5
    assert meta.palette.table.tolist() == [[0, 255, 0], [255, 0, 0], [128, 1, 255]]


def test_bad_headers_raise_one_line_decode_errors() -> None:
    ds = mono()
    ds.filename = "/data/x.dcm"
    del ds.Rows
    with pytest.raises(DecodeError, match=r"^/data/x.dcm: no image"):
        meta_from_dataset(ds)
    pal = mono(PhotometricInterpretation="PALETTE COLOR")
    with pytest.raises(DecodeError, match="Palette Color LUT"):
        meta_from_dataset(pal)
    bad_lut = mono()
    bad_lut.ModalityLUTSequence = Sequence([lut_item([4, 0], [1, 2, 3, 4])])
    with pytest.raises(DecodeError, match="Modality LUT Sequence"):
        meta_from_dataset(bad_lut)
    with pytest.raises(DecodeError):
        meta_from_dataset(mono(SamplesPerPixel=2))


def test_real_files() -> None:
    overlay = meta_from_dataset(pydicom.dcmread(get_testdata_file("examples_overlay.dcm"),
                                                stop_before_pixels=True))
    assert overlay.windows == (Window(450, 790, "LINEAR", "WINDOW1"),
                               Window(200, 443, "LINEAR", "WINDOW2"))
    ct = meta_from_dataset(pydicom.dcmread(get_testdata_file("CT_small.dcm")))
    assert (ct.units, ct.rescale_intercept, ct.padding) == ("HU", -1024.0, (-2000, -2000))
    assert ct.pixel_spacing == pytest.approx((0.661468, 0.661468))
    cr = meta_from_dataset(pydicom.dcmread(get_testdata_file("RG1_UNCI.dcm"),
                                           stop_before_pixels=True))
    assert cr.inverted and cr.pixel_spacing is None   # header says 0\0
    mlut = meta_from_dataset(pydicom.dcmread(get_testdata_file("mlut_18.dcm"),
                                             stop_before_pixels=True))
    assert mlut.modality_lut.first_mapped == -2048 and mlut.modality_lut.entries.size == 4096
    ect = pydicom.dcmread(get_testdata_file("eCT_Supplemental.dcm"), stop_before_pixels=True)
    assert meta_from_dataset(ect, 1).windows[0].center == 49.0
    assert meta_from_dataset(ect, 1).rescale_intercept == -1024.0


def test_meta_is_hashable_and_equal_by_value() -> None:
    ds = mono(WindowCenter=1, WindowWidth=2)
    ds.VOILUTSequence = Sequence([lut_item([2, 0, 8], [0, 255])])
    a, b = meta_from_dataset(ds), meta_from_dataset(ds)
    assert a == b and hash(a) == hash(b) and a is not b


@pytest.mark.parametrize("arr, photometric, bits, window", [
    (np.zeros((3, 4), np.uint8), "MONOCHROME2", 8, Window(128, 256, "LINEAR", "Full range")),
    (np.zeros((3, 4), np.uint16), "MONOCHROME2", 16,
     Window(32768, 65536, "LINEAR", "Full range")),
    (np.zeros((3, 4, 3), np.uint8), "RGB", 8, None),
    (np.zeros((3, 4, 4), np.uint8), "RGB", 8, None),
])
def test_meta_for_plain_image(arr, photometric, bits, window) -> None:
    meta = meta_for_plain_image(arr)
    assert (meta.photometric, meta.bits_stored, meta.rows, meta.columns) == (photometric, bits, 3, 4)
    assert meta.windows == ((window,) if window else ())


def test_meta_for_plain_image_rejects_odd_shapes() -> None:
    with pytest.raises(DecodeError, match="not displayable"):
        meta_for_plain_image(np.zeros((2, 2, 2), np.uint8))


def test_malformed_elements_give_a_one_line_decode_error() -> None:
    """pydicom converts raw elements lazily; in strict reading mode a malformed
    value raises on access.  That becomes a DecodeError naming the file."""

    class StrictDataset(Dataset):
        def get(self, key, default=None):
            if key == "WindowCenter":
                raise ValueError("Invalid value for VR DS: 'abc'")
            return super().get(key, default)

    ds = StrictDataset(mono(WindowCenter=1, WindowWidth=2))
    ds.filename = "broken.dcm"
    with pytest.raises(DecodeError, match=r"^broken.dcm: unreadable display attributes "
                                          r"\(ValueError: Invalid value"):
        meta_from_dataset(ds)


@pytest.mark.parametrize("photometric, shape, inverted", [
    ("MONOCHROME2", None, False), ("MONOCHROME2", "IDENTITY", False),
    ("MONOCHROME2", "INVERSE", True), ("MONOCHROME1", None, True),
    ("MONOCHROME1", "INVERSE", True),   # DX: MONOCHROME1 comes with INVERSE; invert once
])
def test_presentation_lut_shape(photometric, shape, inverted) -> None:
    ds = mono(PhotometricInterpretation=photometric)
    if shape:
        ds.PresentationLUTShape = shape
    assert meta_from_dataset(ds).inverted is inverted
