"""A generated multi-study CT archive (tests of `predict --engine ray`, bench/bench_ray.py).

Each slice is a body ellipse in HU with noise and, on some slices, bright or
dark round lesions at random places, so a classifier's probabilities differ
from slice to slice and from series to series (flat test images would make
every result the same and hide mix-ups).  Layout: ROOT/patientNNN/seriesK/*.dcm,
one study per patient, file names shuffled (display order comes from geometry).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, generate_uid

import dicomgen


def ct_slice(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Stored values (int16, intercept -1024) of one synthetic axial CT slice."""
    r, c = np.mgrid[0:rows, 0:cols].astype(np.float32)
    body = ((r - rows / 2) / (0.42 * rows)) ** 2 + ((c - cols / 2) / (0.46 * cols)) ** 2 < 1
    hu = np.where(body, 40.0, -1000.0) + rng.normal(0, 15, (rows, cols))
    for _ in range(int(rng.integers(0, 4))):
        cy, cx = rng.uniform(0.3, 0.7) * rows, rng.uniform(0.3, 0.7) * cols
        rad = rng.uniform(0.03, 0.12) * min(rows, cols)
        hu[(r - cy) ** 2 + (c - cx) ** 2 < rad ** 2] = rng.choice([-700.0, 300.0, 900.0])
    return np.clip(hu + 1024, -2048, 4095).astype(np.int16)


def series(folder: Path, n: int, *, rows: int, cols: int, study_uid: str, number: int, seed: int,
           description: str = "Axial CT") -> tuple[list[Path], str]:
    """One CT series (geometry along z, shuffled names); returns (paths in display order, UID)."""
    rng = np.random.default_rng(seed)
    names = random.Random(seed).sample(range(10 ** 6), n)
    series_uid = str(generate_uid())
    frame_of_reference = str(generate_uid())  # one patient coordinate system per series
    out = []
    for k in range(n):
        ds = dicomgen.base_dataset(study_uid=study_uid, series_uid=series_uid, series_number=number,
                                   description=description, patient=f"ARCHIVE^{study_uid[-4:]}",
                                   patient_id=f"A{study_uid[-6:]}")
        ds.FrameOfReferenceUID = frame_of_reference
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = list(dicomgen.AXIAL)
        ds.ImagePositionPatient = [-0.5 * cols, -0.5 * rows, -40.0 + 2.5 * k]
        ds.PixelSpacing = [0.7, 0.7]
        ds.SliceThickness = 2.5
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
        ds.WindowCenter, ds.WindowWidth = 40, 400
        dicomgen.set_pixels(ds, ct_slice(rng, rows, cols))
        out.append(dicomgen.save(ds, folder / f"{names[k]:06d}.dcm"))
    return out, series_uid


def archive(root: Path, studies: int = 4, series_per_study: int = 2, slices: int = 6, rows: int = 48,
            cols: int = 48, seed: int = 0) -> dict[str, list[Path]]:
    """studies x series_per_study series; returns {series UID: paths in display order}."""
    out: dict[str, list[Path]] = {}
    for s in range(studies):
        study_uid = str(generate_uid())
        for k in range(series_per_study):
            paths, uid = series(root / f"patient{s:03d}" / f"series{k}", slices, rows=rows, cols=cols,
                                study_uid=study_uid, number=k + 1, seed=seed * 1000 + s * 10 + k)
            out[uid] = paths
    return out


def damage_pixels(path: Path, seed: int = 5) -> Path:
    """Replace a slice's pixel data by garbage JPEG Baseline fragments, header kept (same series)."""
    import pydicom

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    garbage = np.random.default_rng(seed).integers(0, 256, 400, dtype=np.uint8).tobytes()
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xdb" + garbage])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def undecodable_series(folder: Path, n: int = 3, rows: int = 32, cols: int = 32) -> tuple[list[Path], str]:
    """A series whose headers are fine but whose JPEG Baseline pixel data is garbage:
    the scan accepts it and every slice fails to decode (a damaged archive)."""
    study_uid = str(generate_uid())
    series_uid = str(generate_uid())
    rng = np.random.default_rng(5)
    out = []
    for k in range(n):
        ds = dicomgen.base_dataset(study_uid=study_uid, series_uid=series_uid, series_number=9,
                                   description="Damaged", syntax=JPEGBaseline8Bit)
        ds.InstanceNumber = k + 1
        ds.ImageOrientationPatient = list(dicomgen.AXIAL)
        ds.ImagePositionPatient = [0.0, 0.0, float(k)]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = encapsulate([b"\xff\xd8\xff\xdb" + rng.integers(0, 256, 400, dtype=np.uint8).tobytes()])
        ds["PixelData"].VR = "OB"
        out.append(dicomgen.save(ds, folder / f"bad{k:02d}.dcm"))
    return out, series_uid
