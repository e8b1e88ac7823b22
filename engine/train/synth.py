"""Synthetic labelled dataset with known lesion masks (issue 4, section 4).

Each image is a CT-like axial chest slice (body ellipse, two dark lungs, a
spine, smooth shading, noise; or an X-ray-like radiograph with ``style="xray"``)
with at most one lesion inside a lung.  The lesion class decides its shape and
texture; ``normal`` images have none.  Masks are written as
``OUT/masks/<split>/<class>/<name>.png`` (255 inside the lesion) and every
lesion is listed in ``OUT/lesions.csv`` so that Grad-CAM pointing can be
scored.  Images are 8-bit greyscale PNG files in ``OUT/<split>/<class>/``.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from medviewer.viewer.errors import UsageError

DEFAULT_CLASSES = ("normal", "nodule", "cavity", "spiculated")
Lesion = Callable[[np.ndarray, np.ndarray, float, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def _disk(dx: np.ndarray, dy: np.ndarray, r: float, rng: np.random.Generator):
    d = np.hypot(dx, dy) / r
    mask = d <= 1.0
    return np.clip(1.15 - d ** 4, 0, 1) * 0.75, mask           # solid, smooth edge


def _ring(dx: np.ndarray, dy: np.ndarray, r: float, rng: np.random.Generator):
    d = np.hypot(dx, dy) / r
    mask = d <= 1.0
    wall = np.exp(-((d - 0.78) / 0.16) ** 2)                     # bright wall, dark centre
    return wall * 0.85 * mask, mask


def _spiculated(dx: np.ndarray, dy: np.ndarray, r: float, rng: np.random.Generator):
    ang = np.arctan2(dy, dx)
    k = int(rng.integers(5, 9))
    phase = rng.uniform(0, 2 * np.pi)
    rad = r * (0.55 + 0.45 * np.abs(np.cos(k * ang / 2 + phase)) ** 6)   # star with spikes
    d = np.hypot(dx, dy)
    mask = d <= rad
    stripes = 0.5 + 0.5 * np.cos(2 * np.pi * (dx + dy) / max(r / 2.5, 2))
    return mask * (0.45 + 0.4 * stripes), mask


def _blob(dx: np.ndarray, dy: np.ndarray, r: float, rng: np.random.Generator):
    sq = np.maximum(np.abs(dx), np.abs(dy)) / r                  # square-ish mass, speckled
    mask = sq <= 0.85
    speckle = rng.uniform(0.3, 1.0, size=dx.shape)
    return mask * speckle * 0.8, mask


SHAPES: dict[str, Lesion] = {"nodule": _disk, "cavity": _ring, "spiculated": _spiculated, "mass": _blob}
_CYCLE = (_disk, _ring, _spiculated, _blob)


def lesion_for(classes: Sequence[str]) -> dict[str, Lesion | None]:
    """Lesion renderer per class: ``normal`` has none, known names keep theirs."""
    out: dict[str, Lesion | None] = {}
    free = [f for f in _CYCLE if f not in {SHAPES.get(c.lower()) for c in classes}]
    for c in classes:
        if c.lower() in ("normal", "healthy", "none"):
            out[c] = None
        elif c.lower() in SHAPES:
            out[c] = SHAPES[c.lower()]
        else:
            out[c] = free.pop(0) if free else _CYCLE[len(out) % len(_CYCLE)]
    return out


def _background(size: int, rng: np.random.Generator, style: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (image in [0, 1], lung mask) for one CT-like or X-ray-like slice."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2
    jit = lambda s: rng.uniform(-s, s) * size  # noqa: E731
    lung = np.zeros((size, size), bool)
    for side in (-1, 1):
        lx, ly = c + side * (0.2 * size + jit(0.02)), c + jit(0.03)
        ax, ay = 0.15 * size * rng.uniform(0.9, 1.1), 0.27 * size * rng.uniform(0.9, 1.1)
        lung |= ((xx - lx) / ax) ** 2 + ((yy - ly) / ay) ** 2 <= 1
    if style == "xray":
        img = 0.55 + 0.25 * np.exp(-((xx - c) / (0.08 * size)) ** 2)      # mediastinum
        img = np.where(lung, 0.25, img)
        for k in range(5):                                                 # ribs
            y0 = c - 0.25 * size + k * 0.12 * size + jit(0.01)
            img += 0.08 * np.exp(-((yy - y0 - 0.1 * np.abs(xx - c)) / (0.015 * size)) ** 2) * lung
    else:
        body = ((xx - c) / (0.46 * size)) ** 2 + ((yy - c) / (0.36 * size)) ** 2 <= 1
        img = np.where(body, 0.5, 0.02)
        img = np.where(lung, 0.12, img)
        spine = np.hypot(xx - c, yy - (c + 0.24 * size)) <= 0.06 * size
        img = np.where(spine, 0.95, img)
    shade = 0.06 * np.sin(xx / size * rng.uniform(2, 5) + rng.uniform(0, 6)) \
        * np.cos(yy / size * rng.uniform(2, 5))
    img = img + shade
    for _ in range(int(rng.integers(3, 7))):                              # small vessels
        vx, vy = rng.uniform(0.2, 0.8, 2) * size
        img += 0.25 * np.exp(-((xx - vx) ** 2 + (yy - vy) ** 2) / (2 * (0.012 * size) ** 2)) * lung
    return img.astype(np.float32), lung


def make_image(label: str, renderer: Lesion | None, size: int, rng: np.random.Generator,
               style: str = "ct") -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """One uint8 image, its uint8 lesion mask and (cx, cy, r) (r = 0 when normal)."""
    img, lung = _background(size, rng, style)
    mask = np.zeros((size, size), bool)
    geo = (0.0, 0.0, 0.0)
    if renderer is not None:
        r = rng.uniform(0.10, 0.15) * size
        ys, xs = np.nonzero(cv2.erode(lung.astype(np.uint8), np.ones((3, 3), np.uint8),
                                      iterations=max(1, int(r * 0.6))))
        if len(xs) == 0:
            ys, xs = np.nonzero(lung)
        k = int(rng.integers(len(xs)))
        cx, cy = float(xs[k]) + rng.uniform(-.5, .5), float(ys[k]) + rng.uniform(-.5, .5)
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        value, mask = renderer(xx - cx, yy - cy, r, rng)
        img = np.where(mask, np.maximum(img, 0.12) + value, img)
        geo = (cx, cy, r)
    img = cv2.GaussianBlur(img, (0, 0), 0.6) + rng.normal(0, 0.03, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8), mask.astype(np.uint8) * 255, geo


def make_dataset(out: str | Path, classes: Sequence[str] = DEFAULT_CLASSES, n: int = 100,
                 size: int = 64, seed: int = 0, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
                 style: str = "ct") -> Path:
    """Write ``n`` images per class split into train/val/test; returns ``out``."""
    classes = [c.strip() for c in classes if c.strip()]
    if len(set(classes)) < 2:
        raise UsageError("make-dataset: give at least two distinct --classes")
    if n < 3 or size < 16:
        raise UsageError("make-dataset: --n must be >= 3 and --size >= 16")
    if style not in ("ct", "xray"):
        raise UsageError(f"make-dataset: unknown --style {style!r} (ct or xray)")
    out = Path(out)
    renderers = lesion_for(classes)
    rng = np.random.default_rng(seed)
    rows = []
    n_val, n_test = int(round(n * fractions[1])), int(round(n * fractions[2]))
    for ci, cls in enumerate(classes):
        for i in range(n):
            split = "test" if i < n_test else "val" if i < n_test + n_val else "train"
            img, mask, (cx, cy, r) = make_image(cls, renderers[cls], size, rng, style)
            name = f"{cls}_{i:05d}.png"
            ipath = out / split / cls / name
            mpath = out / "masks" / split / cls / name
            ipath.parent.mkdir(parents=True, exist_ok=True)
            mpath.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(ipath), img)
            cv2.imwrite(str(mpath), mask)
            rows.append([ipath.relative_to(out).as_posix(), mpath.relative_to(out).as_posix(),
                         cls, split, f"{cx:.2f}", f"{cy:.2f}", f"{r:.2f}"])
    with (out / "lesions.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "mask", "label", "split", "cx", "cy", "r"])
        w.writerows(rows)
    return out


def read_masks(root: str | Path) -> dict[str, np.ndarray]:
    """{absolute image path: bool mask} from ``lesions.csv`` (lesion images only)."""
    root = Path(root)
    out: dict[str, np.ndarray] = {}
    with (root / "lesions.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if float(row["r"]) > 0:
                m = cv2.imread(str(root / row["mask"]), cv2.IMREAD_GRAYSCALE)
                out[str((root / row["path"]).resolve())] = m > 127
    return out
