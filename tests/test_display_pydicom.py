"""Acceptance: our grey levels vs pydicom on every real test file.

For every monochrome image in pydicom's bundled test files and pydicom-data,
`viewer.display.render` must agree within one grey level with pydicom's
`apply_modality_lut` + `apply_voi_lut`, followed by the linear map of the VOI
output range to 0..255 (inverted for MONOCHROME1).  Images without a window
are compared with our auto window written into a copy of the dataset.
Colour files are compared with pydicom's `apply_color_lut` / pixel_array.
Each file is decoded once; multi-frame files are compared on a few frames.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
from pydicom.pixels.processing import apply_windowing

from medviewer.viewer.display import default_window, meta_from_dataset, render

MAX_FRAMES = 3


def _headers() -> list[tuple[str, pydicom.Dataset]]:
    out = []
    for path in sorted(get_testdata_files()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:
            continue
        if "Rows" in ds and "PhotometricInterpretation" in ds:
            out.append((path, ds))
    return out


HEADERS = _headers()


def _decode(path: str) -> tuple[pydicom.Dataset | None, np.ndarray | None, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            arr = ds.pixel_array
    except Exception as exc:  # pydicom itself cannot decode it: skipped, with reason
        detail = " ".join(str(exc).split())
        return None, None, f"pydicom cannot decode: {type(exc).__name__}: {detail}"[:200]
    return ds, arr, ""


def _frames(ds: pydicom.Dataset, arr: np.ndarray, colour: bool) -> list[tuple[int | None, np.ndarray]]:
    n = int(ds.get("NumberOfFrames", 1) or 1)
    if n <= 1:
        return [(None, arr)]
    picks = sorted({0, n // 2, n - 1})[:MAX_FRAMES]
    return [(i, arr[i]) for i in picks]


def _group(ds: pydicom.Dataset, frame: int, keyword: str):
    """Per-frame, else shared functional group item (test's own simple lookup)."""
    for seq, idx in (("PerFrameFunctionalGroupsSequence", frame),
                     ("SharedFunctionalGroupsSequence", 0)):
        items = ds.get(seq)
        if items and idx < len(items) and items[idx].get(keyword):
            return items[idx][keyword][0]
    return None


def _reference(ds: pydicom.Dataset, frame: int | None, stored: np.ndarray,
               window, meta) -> np.ndarray:
    """pydicom's grey levels; `ds` is a header-only dataset we may modify."""
    ref = copy.deepcopy(ds)
    if frame is not None or "SharedFunctionalGroupsSequence" in ds:
        pvt = _group(ds, frame or 0, "PixelValueTransformationSequence")
        voi = _group(ds, frame or 0, "FrameVOILUTSequence")
        if pvt is not None and "RescaleSlope" in pvt:
            ref.RescaleSlope, ref.RescaleIntercept = pvt.RescaleSlope, pvt.RescaleIntercept
        if voi is not None and "WindowCenter" in voi:
            ref.WindowCenter, ref.WindowWidth = voi.WindowCenter, voi.WindowWidth
    from_header = window.voi_lut is not None or window in meta.windows
    if not from_header:   # auto window: write it into the copy
        for kw in ("VOILUTSequence", "WindowCenter", "WindowWidth"):
            if kw in ref:
                delattr(ref, kw)
        ref.WindowCenter, ref.WindowWidth = window.center, window.width
        ref.VOILUTFunction = window.function
    out = apply_voi_lut(apply_modality_lut(stored, ref), ref).astype(np.float64)
    if ref.get("VOILUTSequence"):
        lo, hi = 0.0, 2.0 ** int(ref.VOILUTSequence[0].LUTDescriptor[2]) - 1
    else:  # the windowing output range, from pydicom itself
        lo, hi = apply_windowing(np.array([-1e300, 1e300]), ref)
    grey = np.rint((out - lo) * (255.0 / (hi - lo)))
    if ds.PhotometricInterpretation == "MONOCHROME1":
        grey = 255.0 - grey
    return grey


KEY_MONOCHROME = {"CT_small.dcm", "MR_small.dcm", "RG1_UNCI.dcm", "RG3_J2KR.dcm",
                  "693_J2KR.dcm", "JPEG-LL.dcm", "emri_small.dcm", "mlut_18.dcm",
                  "vlut_04.dcm", "examples_overlay.dcm", "eCT_Supplemental.dcm",
                  "MR2_J2KI.dcm", "rtdose.dcm", "liver.dcm"}


def _report(capsys, lines: list[str]) -> None:
    """Show the summary in the test output even without -s."""
    with capsys.disabled():
        print("\n" + "\n".join(lines))


def _decoded(colour: bool, skipped: list[tuple[str, str]]):
    """(name, header, dataset, pixel_array) of every monochrome (or colour) test file
    that pydicom decodes; the others go to `skipped` with pydicom's reason."""
    for path, header in HEADERS:
        name = path.split("/")[-1]
        if (header.PhotometricInterpretation in ("MONOCHROME1", "MONOCHROME2")) == colour:
            continue
        ds, arr, reason = _decode(path)
        if ds is None:
            skipped.append((name, reason))
            continue
        yield name, header, ds, arr


def test_monochrome_agrees_with_pydicom_on_every_test_file(capsys) -> None:
    compared, frames_done, skipped, worst = [], 0, [], 0
    for name, header, ds, arr in _decoded(colour=False, skipped=skipped):
        for frame, stored in _frames(ds, arr, colour=False):
            meta = meta_from_dataset(ds, frame)
            window = default_window(meta, stored)
            ours = render(stored, meta, window)
            ref = _reference(header, frame, stored, window, meta)
            diff = int(np.abs(ours.astype(np.float64) - ref).max())
            assert ours.shape == stored.shape and ours.dtype == np.uint8
            assert diff <= 1, f"{name} frame {frame}: {diff} grey levels off ({window})"
            worst = max(worst, diff)
            frames_done += 1
        compared.append(name)
    _report(capsys, [f"display vs pydicom: compared {len(compared)} monochrome files "
                     f"({frames_done} frames), worst difference {worst} grey level(s)"]
            + [f"  skipped {name}: {reason}" for name, reason in skipped])
    assert len(compared) >= 60, f"only {len(compared)} files compared"
    assert KEY_MONOCHROME <= set(compared), KEY_MONOCHROME - set(compared)


def _palette_ref(ds: pydicom.Dataset) -> pydicom.Dataset:
    """pydicom's apply_color_lut reads plain OW LUT Data as little endian even
    in big-endian files; give it a copy with the words swapped."""
    if ds.original_encoding[1] is not False or "RedPaletteColorLookupTableData" not in ds:
        return ds
    ref = copy.deepcopy(ds)
    for colour in ("Red", "Green", "Blue"):
        kw = f"{colour}PaletteColorLookupTableData"
        setattr(ref, kw, np.frombuffer(ds[kw].value, ">u2").astype("<u2").tobytes())
    return ref


def test_colour_agrees_with_pydicom_on_every_test_file(capsys) -> None:
    compared, skipped = [], []
    for name, header, ds, arr in _decoded(colour=True, skipped=skipped):
        photometric = header.PhotometricInterpretation
        for frame, stored in _frames(ds, arr, colour=True):
            meta = meta_from_dataset(ds, frame)
            ours = render(stored, meta)
            assert ours.dtype == np.uint8 and ours.shape == stored.shape[:2] + (3,), name
            if photometric == "PALETTE COLOR":
                rgb = apply_color_lut(stored, _palette_ref(header))[..., :3].astype(np.float64)
                if rgb.max() > 255:
                    rgb = rgb * (255.0 / 65535.0)
                expected = np.rint(rgb)
            else:
                top = 2.0 ** int(ds.BitsStored) - 1
                expected = np.rint(stored.astype(np.float64) * (255.0 / top))
            diff = np.abs(ours.astype(np.float64) - expected).max()
            assert diff <= 1, f"{name} frame {frame}: {diff} levels off"
        compared.append(name)
    _report(capsys, [f"display vs pydicom: compared {len(compared)} colour files"]
            + [f"  skipped {name}: {reason}" for name, reason in skipped])
    assert len(compared) >= 40
    assert {"SC_rgb.dcm", "OBXXXX1A.dcm", "gdcm-US-ALOKA-16.dcm"} <= set(compared)


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "RG1_UNCI.dcm"])
def test_known_files_are_not_blank(name: str) -> None:
    """Guard against a comparison that passes because both sides are flat."""
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file(name))
    meta = meta_from_dataset(ds)
    grey = render(ds.pixel_array, meta)
    assert len(np.unique(grey)) > 50
