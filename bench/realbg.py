"""A lesion classification set on REAL CT and MR backgrounds (for bench_trainer_defaults.py).

Backgrounds are the CT and MR slices that ship with pydicom and pydicom-data
(``pip install pydicom-data``; read offline), rendered to grey levels by the
viewer's own display pipeline (modality LUT + the file's window, PS3.3 C.11),
then cut into many 128 px squares: random crop size and position, a random
turn and flip, area/linear resampling and a random gamma (0.7-1.4, another
window).  Each square gets at most one
synthetic lesion whose class decides its shape (the renderers of
``engine.train.synth``), placed on tissue (neither air nor bone), with a
random contrast.  Masks and ``lesions.csv`` have the layout of
``medviewer make-dataset``, so ``synth.read_masks`` scores Grad-CAM pointing.

Splits are made BY SOURCE FILE: every background of one DICOM file (or one
set of files holding the same image in other transfer syntaxes) lies in one
split only, so the test set is made of anatomy the model never saw.
Images are 8-bit greyscale PNG files in ``OUT/<split>/<class>/``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from medviewer.engine.train.synth import lesion_for

CLASSES = ("normal", "nodule", "cavity", "spiculated")


@dataclass(frozen=True)
class Source:
    name: str                  # pydicom test file
    split: str
    frames: tuple[int, ...] = (0,)


# one entry per distinct image (693_J2KI/J2KR/UNCI/UNCR, MR2_* and MR_small_* are the
# same images in other transfer syntaxes: one of each is used, in one split only)
SOURCES = (
    Source("693_UNCR.dcm", "train"),                      # CT head, haemorrhage, 512 px
    Source("explicit_VR-UN.dcm", "train"),                # CT abdomen (pancreas), 512 px
    Source("eCT_Supplemental.dcm", "train", (0, 1)),      # CT brain (enhanced CT), 512 px
    Source("MR2_UNCR.dcm", "train"),                      # MR shoulder, 1024 px
    Source("emri_small.dcm", "train", tuple(range(10))),  # MR head, 10 frames of 64 px
    Source("MR_small.dcm", "train"),                      # MR, 64 px
    Source("J2K_pixelrep_mismatch.dcm", "val"),           # CT head (skull base), 512 px
    Source("bad_sequence.dcm", "val"),                    # CT neck, 512 px
    Source("CT_small.dcm", "test"),                       # CT spine, 128 px
    Source("MR-SIEMENS-DICOM-WithOverlays.dcm", "test"),  # MR abdomen (liver), 484 px
)
COUNTS = {"train": 450, "val": 90, "test": 111}           # the 450/90/111


def source_slices(src: Source) -> list[np.ndarray]:
    """The source's frames as float32 grey levels in [0, 1] (the viewer's rendering)."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.pixels import pixel_array

    from medviewer.viewer.display import meta_from_dataset, render

    path = get_testdata_file(src.name)
    if path is None:
        raise SystemExit(f"{src.name}: not found; install the test extra (pydicom-data)")
    ds = pydicom.dcmread(path)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    out = []
    for f in src.frames:
        arr = pixel_array(ds, index=f) if n > 1 else ds.pixel_array
        grey = render(arr, meta_from_dataset(ds, f if n > 1 else None))
        out.append(grey.astype(np.float32) / 255.0)
    return out


def _crop(grey: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A random square of the slice with enough tissue, turned/flipped, resampled to size."""
    rows, cols = grey.shape
    side_min = min(rows, cols)
    for _ in range(50):
        lo = 0.3 if side_min >= 256 else 0.6
        side = int(round(rng.uniform(lo, 0.95) * side_min))
        r0 = int(rng.integers(0, rows - side + 1))
        c0 = int(rng.integers(0, cols - side + 1))
        patch = grey[r0:r0 + side, c0:c0 + side]
        tissue = ((patch > 0.08) & (patch < 0.8)).mean()
        if tissue >= 0.35:
            break
    interp = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
    out = cv2.resize(patch, (size, size), interpolation=interp)
    turn = cv2.getRotationMatrix2D((size / 2 - 0.5, size / 2 - 0.5), float(rng.uniform(0, 360)), 1.0)
    out = cv2.warpAffine(out, turn, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        out = out[:, ::-1]
    out = np.clip(out, 0, 1) ** rng.uniform(0.7, 1.4)       # another window / contrast per crop
    return np.ascontiguousarray(out, dtype=np.float32)


def _insert(img: np.ndarray, renderer, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Add one lesion on tissue; returns (image, bool mask, (cx, cy, r))."""
    size = img.shape[0]
    r = rng.uniform(0.12, 0.17) * size
    local = cv2.blur(img, (int(2 * r) | 1, int(2 * r) | 1))
    margin = int(r) + 2
    ok = np.zeros_like(img, bool)
    ok[margin:size - margin, margin:size - margin] = True
    ys, xs = np.nonzero(ok & (local > 0.1) & (local < 0.65))
    if len(xs) == 0:
        ys, xs = np.nonzero(ok)
    k = int(rng.integers(len(xs)))
    cx, cy = float(xs[k]) + rng.uniform(-.5, .5), float(ys[k]) + rng.uniform(-.5, .5)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    value, mask = renderer(xx - cx, yy - cy, r, rng)
    contrast = rng.uniform(0.50, 0.80) / 0.85            # renderers peak near 0.85
    img = np.where(mask, img + contrast * value, img)
    return img, mask.astype(bool), (cx, cy, r)


def make_realbg_dataset(out: str | Path, size: int = 128, seed: int = 0,
                        counts: dict[str, int] | None = None) -> Path:
    """Write the set under ``out`` (PNG + masks + lesions.csv); returns ``out``."""
    out = Path(out)
    counts = counts or COUNTS
    rng = np.random.default_rng(seed)
    renderers = lesion_for(CLASSES)
    slices = {s.name: source_slices(s) for s in SOURCES}
    rows = []
    for split, total in counts.items():
        srcs = [s for s in SOURCES if s.split == split]
        for i in range(total):
            src = srcs[i % len(srcs)]                      # sources evenly over the split
            cls = CLASSES[(i // len(srcs)) % len(CLASSES)]  # classes evenly over each source
            frames = slices[src.name]
            img = _crop(frames[int(rng.integers(len(frames)))], size, rng)
            mask = np.zeros((size, size), bool)
            geo = (0.0, 0.0, 0.0)
            if renderers[cls] is not None:
                img, mask, geo = _insert(img, renderers[cls], rng)
            img = cv2.GaussianBlur(img, (0, 0), 0.6) + rng.normal(0, 0.02, img.shape).astype(np.float32)
            png = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
            name = f"{cls}_{Path(src.name).stem}_{i:04d}.png"
            ipath, mpath = out / split / cls / name, out / "masks" / split / cls / name
            ipath.parent.mkdir(parents=True, exist_ok=True)
            mpath.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(ipath), png)
            cv2.imwrite(str(mpath), mask.astype(np.uint8) * 255)
            rows.append([ipath.relative_to(out).as_posix(), mpath.relative_to(out).as_posix(), cls, split,
                         f"{geo[0]:.2f}", f"{geo[1]:.2f}", f"{geo[2]:.2f}", src.name])
    with (out / "lesions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "mask", "label", "split", "cx", "cy", "r", "source"])
        w.writerows(rows)
    by_source: dict[str, set[str]] = {}
    for row in rows:
        by_source.setdefault(row[7], set()).add(row[3])
    assert all(len(v) == 1 for v in by_source.values()), by_source   # no source straddles splits
    return out


if __name__ == "__main__":
    import argparse

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=128)
    a = p.parse_args()
    print(make_realbg_dataset(a.out, a.size, a.seed))
