"""The built-in demo study: a generated CT phantom plus pydicom's real files.

`make_demo_study()` writes, once, a 48-slice 256x256 axial CT of a thorax /
upper-abdomen phantom with realistic HU values (air -1000, lung -850, fat
-100, soft tissue 40, liver 60, contrast blood 200, bone 700/1200), full
geometry (PS3.3 C.7.6.2: Image Position / Orientation, Pixel Spacing, Slice
Thickness), CT Image module values (C.8.2.1: Rescale Intercept -1024, Slope 1,
int16) and a 40/400 window.  UIDs are derived from fixed text, so the study is
the same on every machine.  `demo_root()` is what `medviewer --demo` opens.
`make_prior_study()` writes a prior of the same patient (a year earlier, its own
study, series and frame of reference UIDs, the table 5 mm further in, new noise)
to try File > Open prior and the compare layout.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

DEMO_VERSION = 1
SLICES = 48
SIZE = 256
FOV_MM = 400.0
DZ_MM = 2.5
PATIENT_NAME = "DEMO^PHANTOM"
# Real files shipped by pydicom / pydicom-data, shown next to the phantom.
REAL_FILES = ("CT_small.dcm", "MR_small.dcm", "RG1_UNCR.dcm", "RG3_UNCR.dcm", "693_J2KR.dcm",
              "emri_small.dcm", "SC_rgb.dcm", "examples_palette.dcm", "examples_overlay.dcm")

_HU = {"air": -1000, "lung": -850, "fat": -100, "soft": 40, "liver": 60, "blood": 200,
       "heart": 45, "cancellous": 700, "cortical": 1200, "csf": 15}


def cache_dir() -> Path:
    """Where generated data lives: $MEDVIEWER_CACHE, else the user cache folder."""
    env = os.environ.get("MEDVIEWER_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or (
        os.environ.get("LOCALAPPDATA") if os.name == "nt" else None) or Path.home() / ".cache"
    return Path(base) / "medviewer"


def _uid(*parts: object) -> str:
    return generate_uid(entropy_srcs=["medviewer-demo", str(DEMO_VERSION), *map(str, parts)])


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, a: float, b: float) -> np.ndarray:
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0


def phantom_slice(z: float, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """HU values (float32) of the axial phantom at table position z (mm, -60..57.5)."""
    spacing = FOV_MM / size
    coords = (np.arange(size, dtype=np.float32) + 0.5) * spacing - FOV_MM / 2
    x, y = np.meshgrid(coords, coords)  # x: patient left (+), y: posterior (+)
    hu = np.full((size, size), _HU["air"], np.float32)
    hu[_ellipse(x, y, 0, 0, 165, 115)] = _HU["fat"]
    hu[_ellipse(x, y, 0, 0, 150, 100)] = _HU["soft"]
    if z > -15:  # thorax: lungs taper towards the bases, ribs, heart
        scale = np.sqrt(max(0.0, 1 - ((z - 40) / 70) ** 2))
        for side in (-1, 1):
            hu[_ellipse(x, y, side * 72, -5, 52 * scale + 1, 70 * scale + 1)] = _HU["lung"]
        angles = np.linspace(0.35, np.pi - 0.35, 7)
        for t in np.concatenate([angles, angles + np.pi]):
            hu[_ellipse(x, y, 142 * np.cos(t), 93 * np.sin(t), 6, 6)] = _HU["cortical"]
        if z < 35:
            hu[_ellipse(x, y, 15, -15, 48, 42)] = _HU["heart"]
    else:  # upper abdomen: liver on the patient's right (image left), stomach air
        hu[_ellipse(x, y, -55, 5, 80, 62)] = _HU["liver"]
        hu[_ellipse(x, y, 70, -30, 30, 22)] = _HU["air"] + 20
    hu[_ellipse(x, y, 18, 35, 12, 12)] = _HU["blood"]  # aorta
    hu[_ellipse(x, y, 0, 75, 20, 17)] = _HU["cortical"]  # vertebral body
    hu[_ellipse(x, y, 0, 75, 16, 13)] = _HU["cancellous"]
    hu[_ellipse(x, y, 0, 100, 8, 7)] = _HU["csf"]  # spinal canal
    rng = np.random.default_rng(seed)
    hu += rng.normal(0, 6, hu.shape).astype(np.float32) * (hu > -950)
    return hu


PRIOR_DATE = "20230105"
PRIOR_SHIFT_MM = 5.0


def _slice_dataset(k: int, z: float, prior: bool = False) -> FileDataset:
    """Header and phantom pixels of slice k at table position z (of the prior: the
    anatomy at z - PRIOR_SHIFT_MM, other noise)."""
    ds = slice_header(k, z, prior=prior)
    anatomy_z = z - PRIOR_SHIFT_MM if prior else z
    hu = phantom_slice(anatomy_z, seed=k + (1000 if prior else 0))
    stored = np.clip(np.rint(hu + 1024), -32768, 32767).astype(np.int16)
    ds.PixelData = stored.tobytes()
    return ds


def slice_header(k: int, z: float, prior: bool = False) -> FileDataset:
    """The CT header of slice k (no Pixel Data); also used by bench/bench_scan.py.
    `prior`: the header of the prior study (its own UIDs and dates)."""
    tag = "prior-" if prior else ""
    sop = _uid(f"{tag}image", k)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", Dataset(), file_meta=meta, preamble=b"\0" * 128)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, sop
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientName, ds.PatientID = PATIENT_NAME, "DEMO0001"
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = _uid(f"{tag}study"), _uid(f"{tag}series")
    ds.FrameOfReferenceUID = _uid(f"{tag}frame-of-reference")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = PRIOR_DATE if prior else "20240101"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "DEMO-PRIOR" if prior else "DEMO", ""
    ds.StudyDescription = "Demo CT phantom, prior (generated)" if prior else "Demo CT phantom (generated)"
    ds.SeriesDescription = "Thorax/abdomen phantom 2.5 mm"
    ds.Modality, ds.Manufacturer, ds.BodyPartExamined = "CT", "medviewer", "CHEST"
    ds.SeriesNumber, ds.InstanceNumber = 2, SLICES - k  # head-first: #1 is the top slice
    ds.PatientPosition = "HFS"
    ds.KVP, ds.SliceThickness = 120, DZ_MM
    spacing = FOV_MM / SIZE
    ds.PixelSpacing = [spacing, spacing]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    first = -FOV_MM / 2 + spacing / 2
    ds.ImagePositionPatient = [first, first, z]
    ds.SliceLocation = z
    ds.Rows = ds.Columns = SIZE
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = [40, -600], [400, 1500]
    ds.WindowCenterWidthExplanation = ["MEDIASTINUM", "LUNG"]
    return ds


def make_demo_study(folder: str | Path | None = None) -> Path:
    """Write the phantom series once into `folder` (default: the cache); return its folder."""
    base = Path(folder) if folder is not None else cache_dir()
    target = base / f"demo-ct-v{DEMO_VERSION}"
    marker = target / ".complete"
    if marker.exists():
        return target
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".demo-", dir=base))
    try:
        for k in range(SLICES):
            z = -60.0 + k * DZ_MM
            _slice_dataset(k, z).save_as(staging / f"CT{SLICES - k:03d}.dcm", enforce_file_format=True)
        (staging / ".complete").write_text(f"{SLICES}\n")
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            if not marker.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def make_prior_study(folder: str | Path | None = None) -> Path:
    """Write the prior study of the demo patient once into `folder` (default: the cache)."""
    base = Path(folder) if folder is not None else cache_dir()
    target = base / f"demo-ct-prior-v{DEMO_VERSION}"
    marker = target / ".complete"
    if marker.exists():
        return target
    base.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".demo-prior-", dir=base))
    try:
        for k in range(SLICES):
            z = -60.0 + PRIOR_SHIFT_MM + k * DZ_MM
            _slice_dataset(k, z, prior=True).save_as(staging / f"CT{SLICES - k:03d}.dcm",
                                                     enforce_file_format=True)
        (staging / ".complete").write_text(f"{SLICES}\n")
        try:
            staging.rename(target)
        except OSError:
            if not marker.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def real_files() -> list[Path]:
    """The real DICOM files of REAL_FILES installed with pydicom / pydicom-data (no download)."""
    try:
        from pydicom.data import get_testdata_file
    except ImportError:
        return []
    out = []
    for name in REAL_FILES:
        try:
            found = get_testdata_file(name, download=False)
        except Exception:
            found = None
        if found:
            out.append(Path(str(found)))
    return out


def demo_paths(folder: str | Path | None = None) -> list[Path]:
    """The phantom series folder, then the real files available on this machine."""
    return [make_demo_study(folder), *real_files()]


def demo_root(folder: str | Path | None = None) -> Path:
    """One folder holding the phantom and hard links (or copies) of the real files.

    Not symbolic links: the scan reads nothing a link leads to outside the opened
    folder (viewer.io.scan), so links left by earlier releases are replaced.
    """
    base = Path(folder) if folder is not None else cache_dir()
    root = base / f"demo-study-v{DEMO_VERSION}"
    make_demo_study(root)
    real = root / "pydicom"
    real.mkdir(exist_ok=True)
    for src in real_files():
        dst = real / src.name
        if dst.is_symlink():
            dst.unlink()
        if dst.exists():
            continue
        try:
            os.link(src, dst)  # no space used on one file system
        except OSError:
            shutil.copy2(src, dst)
    return root
