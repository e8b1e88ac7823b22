"""Realistic DICOM (and plain image) test data, generated on the fly.

Other tests import these helpers: every function writes into a folder the
caller owns (pytest's tmp_path) and returns what a test needs to check the
result (paths in the expected display order, UIDs...).  Pixel values encode
the slice index (`slice_value(k)`), so a test can check order from pixels.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.uid import (
    UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

ENHANCED_CT = UID("1.2.840.10008.5.1.4.1.1.2.1")
COMPREHENSIVE_SR = UID("1.2.840.10008.5.1.4.1.1.88.33")
CR_IMAGE = UID("1.2.840.10008.5.1.4.1.1.1")
SC_IMAGE = UID("1.2.840.10008.5.1.4.1.1.7")
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def slice_value(k: int) -> int:
    """Stored value that fills slice k of a generated series (k = display index)."""
    return 100 + 10 * k


def _meta(sop_class: UID, sop_uid: UID, syntax: UID) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = syntax
    return meta


def base_dataset(sop_class: UID = CTImageStorage, modality: str = "CT", *,
                 study_uid: str | None = None, series_uid: str | None = None,
                 series_number: int = 1, description: str = "Generated",
                 patient: str = "TEST^GENERATED", patient_id: str = "GEN001",
                 syntax: UID = ExplicitVRLittleEndian) -> FileDataset:
    """A header with patient/study/series modules filled in (PS3.3 C.7.1-C.7.3)."""
    sop_uid = generate_uid()
    ds = FileDataset("", Dataset(), file_meta=_meta(sop_class, sop_uid, syntax), preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = patient
    ds.PatientID = patient_id
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = "A1"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Generated study"
    ds.SeriesDescription = description
    ds.SeriesNumber = series_number
    ds.Modality = modality
    ds.FrameOfReferenceUID = generate_uid()
    return ds


def set_pixels(ds: Dataset, pixels: np.ndarray, photometric: str = "MONOCHROME2") -> Dataset:
    """Image Pixel module (PS3.3 C.7.6.3) from a numpy array (frames first if 3-D mono)."""
    arr = np.ascontiguousarray(pixels)
    colour = photometric in ("RGB", "YBR_FULL")
    if colour:
        frames = arr.shape[0] if arr.ndim == 4 else 1
        rows, cols = arr.shape[-3], arr.shape[-2]
        ds.SamplesPerPixel = 3
        ds.PlanarConfiguration = 0
    else:
        frames = arr.shape[0] if arr.ndim == 3 else 1
        rows, cols = arr.shape[-2], arr.shape[-1]
        ds.SamplesPerPixel = 1
    if frames > 1 or arr.ndim == (4 if colour else 3):
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = rows, cols
    ds.PhotometricInterpretation = photometric
    bits = arr.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    ds.PixelData = arr.tobytes()
    return ds


def save(ds: FileDataset, path: Path, preamble: bool = True) -> Path:
    """Write `ds` as a Part 10 file (or without preamble/meta when preamble=False)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    syntax = ds.file_meta.TransferSyntaxUID
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.save_as(path, implicit_vr=syntax == ImplicitVRLittleEndian, little_endian=True,
                   enforce_file_format=False)
    return path


def ct_series(folder: Path, n: int = 8, *, rows: int = 16, cols: int = 16,
              shuffle_names: bool = False, scramble_instances: bool = False,
              reverse: bool = False, tilt_deg: float = 0.0, z0: float = -20.0,
              dz: float = 2.5, series_number: int = 1, study_uid: str | None = None,
              description: str = "Axial CT", prefix: str = "IM", suffix: str = ".dcm",
              signed: bool = True, geometry: bool = True, seed: int = 0,
              frame_of_reference: str | None = None, patient: tuple[str, str] | None = None,
              study_date: str | None = None) -> tuple[list[Path], str]:
    """A CT series; returns (paths in expected display order, SeriesInstanceUID).

    Display order is the stack convention (viewer.io.sort): an axial stack runs
    from head to feet, so display index k lies at z = z0 + (n - 1 - k) * dz (the
    series covers z0 .. z0 + (n - 1) * dz) and holds `slice_value(k)`.  Instance
    numbers count from 1 in display order, as head-first scanners number them;
    `reverse` writes them against that order; `tilt_deg` tilts the gantry
    (orientation rotated about x, positions stepping along z as scanners do);
    `scramble_instances` gives random instance numbers; `shuffle_names` random
    file names, so only geometry can give the right order.  `frame_of_reference`
    shares one patient coordinate system between series (default: a new one),
    `patient` = (name, id) and `study_date` (DA) make other patients and priors.
    """
    rng = random.Random(seed)
    series_uid = generate_uid()
    study_uid = study_uid or generate_uid()
    # one patient coordinate system per series unless shared (PS3.3 C.7.4.1)
    frame_of_reference = frame_of_reference or generate_uid()
    t = math.radians(tilt_deg)
    orient = (1.0, 0.0, 0.0, 0.0, math.cos(t), math.sin(t))
    instances = list(range(1, n + 1))
    if reverse:
        instances.reverse()
    if scramble_instances:
        rng.shuffle(instances)
    names = [f"{prefix}{i + 1:04d}{suffix}" for i in range(n)]
    if shuffle_names:
        names = [f"{rng.getrandbits(48):012x}{suffix}" for _ in range(n)]
    out: list[Path] = []
    dtype = np.int16 if signed else np.uint16
    for k in range(n):
        who = {} if patient is None else {"patient": patient[0], "patient_id": patient[1]}
        ds = base_dataset(study_uid=study_uid, series_uid=series_uid, series_number=series_number,
                          description=description, **who)
        if study_date:
            ds.StudyDate = study_date
        ds.InstanceNumber = instances[k]
        ds.FrameOfReferenceUID = frame_of_reference
        if geometry:
            z = z0 + (n - 1 - k) * dz
            ds.ImageOrientationPatient = list(orient)
            ds.ImagePositionPatient = [-0.5 * cols, -0.5 * rows, z]
            ds.SliceLocation = z
        ds.PixelSpacing = [0.75, 0.75]
        ds.SliceThickness = dz
        ds.RescaleIntercept = -1024 if signed else 0
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        pix = np.full((rows, cols), slice_value(k), dtype=dtype)
        pix[0, 0] = -5 if signed else 65000  # sign matters
        set_pixels(ds, pix)
        out.append(save(ds, folder / names[k]))
    return out, str(series_uid)


def multiframe(path: Path, frames: int = 5, *, rows: int = 8, cols: int = 8,
               enhanced: bool = True, reversed_positions: bool = True) -> Path:
    """A multi-frame CT; enhanced objects carry per-frame Plane Position (PS3.3 C.7.6.16.2.3).

    With `reversed_positions`, frame i lies at z = +i, so display order (head to
    feet) is the frames reversed; frame i is filled with `slice_value(frames - 1 - i)`.
    """
    ds = base_dataset(ENHANCED_CT if enhanced else CTImageStorage, description="Multi-frame")
    zs = [float(i) if reversed_positions else -float(i) for i in range(frames)]
    order = sorted(range(frames), key=lambda i: -zs[i])
    pix = np.zeros((frames, rows, cols), np.int16)
    for display_index, i in enumerate(order):
        pix[i] = slice_value(display_index)
    set_pixels(ds, pix)
    ds.InstanceNumber = 1
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    if enhanced:
        shared = Dataset()
        po = Dataset()
        po.ImageOrientationPatient = list(AXIAL)
        shared.PlaneOrientationSequence = [po]
        pm = Dataset()
        pm.PixelSpacing = [1.0, 1.0]
        pm.SliceThickness = 1.0
        shared.PixelMeasuresSequence = [pm]
        ds.SharedFunctionalGroupsSequence = [shared]
        per = []
        for z in zs:
            item, pp = Dataset(), Dataset()
            pp.ImagePositionPatient = [0.0, 0.0, z]
            item.PlanePositionSequence = [pp]
            per.append(item)
        ds.PerFrameFunctionalGroupsSequence = per
    return save(ds, path)


def monochrome1(path: Path, rows: int = 16, cols: int = 16) -> Path:
    """A CR image with MONOCHROME1 photometric interpretation (PS3.3 C.7.6.3.1.2)."""
    ds = base_dataset(CR_IMAGE, "CR", description="Chest PA")
    pix = np.tile(np.arange(cols, dtype=np.uint16) * 256, (rows, 1))
    set_pixels(ds, pix, "MONOCHROME1")
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelData = (pix >> 4).astype(np.uint16).tobytes()
    ds.WindowCenter = 2048
    ds.WindowWidth = 4096
    return save(ds, path)


def rgb_image(path: Path, rows: int = 8, cols: int = 10) -> tuple[Path, np.ndarray]:
    """A Secondary Capture RGB image; returns (path, the RGB pixels)."""
    ds = base_dataset(SC_IMAGE, "OT", description="RGB")
    rgb = np.zeros((rows, cols, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[:, : cols // 2, 1] = 100
    set_pixels(ds, rgb, "RGB")
    return save(ds, path), rgb


def structured_report(path: Path) -> Path:
    """A Comprehensive SR (no pixel data): must be listed as non-image."""
    ds = base_dataset(COMPREHENSIVE_SR, "SR", description="Report")
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    return save(ds, path)


def no_preamble(path: Path) -> Path:
    """A CT slice written without preamble and File Meta (forced read needed)."""
    ds = base_dataset(syntax=ImplicitVRLittleEndian)
    ds.InstanceNumber = 1
    set_pixels(ds, np.full((4, 4), 7, np.int16))
    return save(ds, path, preamble=False)


def truncated(path: Path, source: Path, keep: float = 0.6) -> Path:
    """A copy of `source` cut to `keep` of its length (inside the pixel data)."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def truncated_header(path: Path, source: Path) -> Path:
    """A copy of `source` cut inside its header: after the preamble, mid-element."""
    path.write_bytes(source.read_bytes()[:200])
    return path


def garbage(path: Path, size: int = 600, seed: int = 1) -> Path:
    """Random bytes with a fake 'DICM' prefix: claims to be DICOM, is not."""
    rng = np.random.default_rng(seed)
    data = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    data[128:132] = b"DICM"
    path.write_bytes(bytes(data))
    return path


def text_file(path: Path) -> Path:
    path.write_text("This folder holds generated test images.\n")
    return path


def plain_images(folder: Path, n: int = 3, ext: str = ".png", rows: int = 12,
                 cols: int = 20, colour: bool = False) -> list[Path]:
    """PNG/JPEG/TIFF/BMP files named out of natural order; returns them in natural order."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        img = np.full((rows, cols, 3) if colour else (rows, cols), slice_value(k) % 256, np.uint8)
        if colour:
            img[..., 2] = 255  # red in OpenCV's BGR order
        path = folder / f"img{k + 1}{ext}"
        if not cv2.imwrite(str(path), img):
            raise RuntimeError(f"cannot write {path}")
        out.append(path)
    return out


def with_dicomdir(folder: Path, n: int = 3) -> tuple[Path, list[Path]]:
    """A File-set (PS3.10) with a DICOMDIR and extension-less files; returns (DICOMDIR, files)."""
    from pydicom.fileset import FileSet

    import shutil
    import tempfile

    staging = Path(tempfile.mkdtemp(prefix="fileset-"))
    try:
        paths, _ = ct_series(staging, n, shuffle_names=True)
        fs = FileSet()
        for p in paths:
            fs.add(str(p))
        fs.write(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "DICOMDIR")
    return folder / "DICOMDIR", files


def big_folder(folder: Path, n: int = 1000, corrupt: Sequence[int] = (3, 250, 777)) -> list[Path]:
    """n tiny 16x16 slices (one series); files at indices `corrupt` are damaged.

    Returns the damaged paths.  Damage alternates: truncated pixel data,
    random bytes with a DICM prefix, and a file cut inside the header.
    """
    paths, _ = ct_series(folder, n, shuffle_names=True, seed=7)
    bad = []
    for j, i in enumerate(corrupt):
        p = paths[i]
        data = p.read_bytes()
        if j % 3 == 0:
            p.write_bytes(data[:-100])
        elif j % 3 == 1:
            garbage(p)
        else:
            p.write_bytes(data[:200])
        bad.append(p)
    return bad


def two_series(folder: Path, n1: int = 4, n2: int = 6) -> tuple[list[Path], list[Path]]:
    """Two series of one study in the same folder (Series Number 1 and 2), names interleaved."""
    study = generate_uid()
    a, _ = ct_series(folder, n1, series_number=1, study_uid=study, prefix="S1_", shuffle_names=True,
                     description="Series one")
    b, _ = ct_series(folder, n2, series_number=2, study_uid=study, prefix="S2_", shuffle_names=True,
                     seed=11, description="Series two")
    return a, b


def mixed_study(folder: Path) -> dict[str, object]:
    """A realistic messy folder for UI/CLI tests: a shuffled CT series, a multi-frame,
    a MONOCHROME1 CR, an SR, a PNG folder, a truncated file, a garbage file and a text file.
    Returns what a test needs: {"ct": paths, "skipped": names, "non_image": names}."""
    ct, uid = ct_series(folder / "ct", 12, shuffle_names=True, scramble_instances=True)
    multiframe(folder / "mf" / "enhanced.dcm")
    monochrome1(folder / "cr" / "chest.dcm")
    structured_report(folder / "report.dcm")
    plain_images(folder / "photos", 2)
    truncated(folder / "cut.dcm", ct[0], keep=0.8)
    garbage(folder / "garbage.dcm")
    text_file(folder / "README.txt")
    return {"ct": ct, "ct_uid": uid, "skipped": {"cut.dcm", "garbage.dcm", "README.txt"},
            "non_image": {"report.dcm"}}
