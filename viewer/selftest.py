"""`medviewer --self-test`: the first thing support runs when something looks wrong.

Checks, in order, each isolated so that a failure prints its reason and the run
goes on:  versions (Python, Qt, torch), compute device (GPU or CPU fallback),
decoding of one real file per compressed transfer syntax (PS3.5 Annex A.4:
JPEG Lossless 1.2.840.10008.1.2.4.70, JPEG-LS Lossless .4.80, JPEG 2000
Lossless .4.90, RLE Lossless 1.2.840.10008.1.2.5) checked bit-exact against a
reference, MONOCHROME1 inversion (PS3.3 C.7.6.3.1.2) through the display
pipeline, the demo model (probabilities and a Grad-CAM map) and the time of one
inference.  Exit code 0 only if every check passes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medviewer import engine

#: transfer syntax -> pydicom test file decoded by the self-test (bundled by the spec)
SELFTEST_FILES: dict[str, str] = {
    "JPEG Lossless": "SC_rgb_jpeg_gdcm.dcm",
    "JPEG-LS Lossless": "MR_small_jpeg_ls_lossless.dcm",
    "JPEG 2000 Lossless": "MR_small_jp2klossless.dcm",
    "RLE Lossless": "MR_small_RLE.dcm",
    "reference (uncompressed)": "MR_small.dcm",
}
#: expected RGB of the colour bands of SC_rgb_*.dcm, rows 5, 15, ... 95 at column 50
_SC_RGB_BANDS = [
    (255, 0, 0), (255, 128, 128), (0, 255, 0), (128, 255, 128), (0, 0, 255),
    (128, 128, 255), (0, 0, 0), (64, 64, 64), (192, 192, 192), (255, 255, 255),
]
BUNDLE_DATA = "selftest_data"


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    seconds: float


class CheckFailed(Exception):
    """A check ran but its result is wrong; str() is the one-line reason."""


def find_selftest_file(name: str, bundle_first: bool = True) -> Path | None:
    """Locate a self-test file: the bundle's copy, $MEDVIEWER_SELFTEST_DATA, pydicom's data."""
    places = []
    meipass = getattr(sys, "_MEIPASS", None)
    if bundle_first and meipass:
        places.append(Path(meipass) / BUNDLE_DATA / name)
    env = os.environ.get("MEDVIEWER_SELFTEST_DATA")
    if env:
        places.append(Path(env) / name)
    for p in places:
        if p.is_file():
            return p
    try:
        from pydicom.data import get_testdata_file

        found = get_testdata_file(name, download=False)
    except Exception:
        return None
    return Path(found) if found else None


def bundle_info() -> dict[str, Any]:
    """medviewer_build.json of a PyInstaller bundle (flavour, build date), else {}."""
    meipass = getattr(sys, "_MEIPASS", None)
    if not meipass:
        return {}
    try:
        return json.loads((Path(meipass) / "medviewer_build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _decode(path: Path) -> tuple[np.ndarray, str]:
    """Decode with pydicom's default plugin order; return pixels and the transfer syntax."""
    from pydicom import dcmread

    ds = dcmread(path)
    ts = ds.file_meta.TransferSyntaxUID
    return ds.pixel_array, f"{ts.keyword or ts}"


class SelfTest:
    """Runs the checks; state (the demo model, the demo image) is shared between them."""

    def __init__(self, model_path: str | Path | None = None) -> None:
        self.model_path = model_path
        self.results: list[CheckResult] = []
        self.model: Any = None
        self.image: tuple[np.ndarray, Any] | None = None
        self.device: str = "cpu"

    # -- plumbing ---------------------------------------------------------------
    def run(self, name: str, check: Callable[[], str]) -> CheckResult:
        t0 = time.perf_counter()
        try:
            detail, ok = check(), True
        except CheckFailed as exc:
            detail, ok = str(exc), False
        except Exception as exc:  # any failure is a result, never a traceback
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            detail, ok = f"{type(exc).__name__}: {first}"[:300], False
        res = CheckResult(name, ok, detail, time.perf_counter() - t0)
        self.results.append(res)
        return res

    # -- checks -----------------------------------------------------------------
    def versions(self) -> str:
        import pydicom
        import PySide6
        import torch
        import torchvision
        from PySide6 import QtCore

        text = (f"Python {platform.python_version()}, Qt {QtCore.qVersion()} (PySide6 "
                f"{PySide6.__version__}), torch {torch.__version__}, torchvision "
                f"{torchvision.__version__}, pydicom {pydicom.__version__}")
        build = bundle_info()
        if build:
            text += f"; {build.get('flavor', '?')} bundle built {build.get('built', '?')}"
        return text

    def compute_device(self) -> str:
        import torch

        from medviewer.engine.device import pick_device

        self.device = str(pick_device())
        if self.device.startswith("cuda"):
            name = torch.cuda.get_device_name(torch.device(self.device))
            return f"GPU detected: {name} (CUDA {torch.version.cuda}), using {self.device}"
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "CPU build"
        why = "no usable GPU"
        if bundle_info().get("flavor") == "cpu":
            why = "CPU bundle (GPUs hidden; use the cuda bundle for a GPU)"
        return f"{why}, CPU fallback ({build} of torch, {torch.get_num_threads()} threads)"

    def decode(self, syntax: str) -> str:
        name = SELFTEST_FILES[syntax]
        path = find_selftest_file(name)
        if path is None:
            raise CheckFailed(f"{name}: test file not found (pydicom test data missing)")
        arr, ts = _decode(path)
        if name.startswith("SC_rgb"):
            got = [tuple(int(v) for v in arr[r, 50]) for r in range(5, 100, 10)]
            if arr.shape != (100, 100, 3) or got != _SC_RGB_BANDS:
                raise CheckFailed(f"{name}: decoded colours differ from the reference bands")
        else:
            ref_path = find_selftest_file(SELFTEST_FILES["reference (uncompressed)"])
            if ref_path is None:
                raise CheckFailed("MR_small.dcm reference not found")
            ref, _ = _decode(ref_path)
            if arr.shape != ref.shape or not np.array_equal(arr, ref):
                diff = int(np.count_nonzero(arr != ref)) if arr.shape == ref.shape else -1
                raise CheckFailed(f"{name}: not bit-exact vs MR_small.dcm ({diff} pixels differ)")
        return f"{name} ({ts}): {'x'.join(map(str, arr.shape))} {arr.dtype}, bit-exact"

    def monochrome1(self) -> str:
        from medviewer.viewer.display import meta_from_dataset, render

        mono2 = _ramp_dataset("MONOCHROME2")
        mono1 = _ramp_dataset("MONOCHROME1")
        stored = mono1.pixel_array
        g1 = render(stored, meta_from_dataset(mono1))
        g2 = render(stored, meta_from_dataset(mono2))
        if g1.dtype != np.uint8 or g1.shape != stored.shape:
            raise CheckFailed(f"render returned {g1.dtype} {g1.shape}, expected uint8 {stored.shape}")
        lo, hi = np.unravel_index(stored.argmin(), stored.shape), np.unravel_index(stored.argmax(), stored.shape)
        if not (g1[lo] == 255 and g1[hi] == 0):
            raise CheckFailed(f"MONOCHROME1 not inverted: min stored -> {g1[lo]}, max -> {g1[hi]}")
        if not np.array_equal(g1.astype(int), 255 - g2.astype(int)):
            raise CheckFailed("MONOCHROME1 is not the exact inverse of MONOCHROME2")
        return "lowest stored value white, highest black; exact inverse of MONOCHROME2"

    def oblique_reformat(self) -> str:
        """The compiled MPR kernels (numba) on a linear ramp volume: trilinear
        interpolation is exact there, so a double-oblique plane must give the ramp's
        value at every pixel (rounded), and a MIP slab the value at its highest
        crossing."""
        from medviewer.viewer.display import jit
        from medviewer.viewer.display.slab import Lattice, Slab

        k, r, c = np.meshgrid(np.arange(12), np.arange(20), np.arange(24), indexing="ij")
        ramp = (40 * k + 7 * r + 3 * c).astype(np.int16)
        lat = Lattice(np.array([1.2, 2.3, 3.1]), np.array([0.11, 0.42, 0.73]), np.array([0.52, 0.61, -0.19]),
                      np.array([0.8, -0.5, 0.2]), ramp.shape, 16, 14)
        t0 = time.perf_counter()
        values, valid = jit.thin_plane(ramp, lat)
        compiled = time.perf_counter() - t0
        j, i = np.mgrid[0:lat.height, 0:lat.width]
        q = [lat.o[a] + i * lat.du[a] + j * lat.dv[a] for a in range(3)]
        expected = np.floor(40 * q[0] + 7 * q[1] + 3 * q[2] + 0.5)
        if valid.sum() < 50 or np.abs(values[valid] - expected[valid]).max() > 1:
            raise CheckFailed(f"oblique plane off the ramp by {np.abs(values[valid] - expected[valid]).max()}")
        slab = Slab.of(lat, 1.5)
        mip, inside = jit.slab_lines(ramp, lat, slab, "mip")
        first, last = slab.first_last(q[slab.d], ramp.shape[slab.d])
        for a in range(3):
            if a != slab.d:
                first, last = slab.bound(first, last, q[a], q[slab.d], a, ramp.shape[a])
        rise = 40 * slab.rho[0] + 7 * slab.rho[1] + 3 * slab.rho[2]   # per sheet along the line
        top = np.where(rise > 0, last, first) - q[slab.d]
        expected = np.floor(40 * q[0] + 7 * q[1] + 3 * q[2] + top * rise + 0.5)
        if not np.array_equal(inside, last >= first) or inside.sum() < 50:
            raise CheckFailed("MIP slab: pixels inside the volume differ from the crossing rule")
        if np.abs(mip[inside] - expected[inside]).max() > 1:
            raise CheckFailed(f"MIP slab off the ramp by {np.abs(mip[inside] - expected[inside]).max()}")
        return (f"double-oblique plane {lat.width}x{lat.height} exact on a ramp; MIP slab over "
                f"{slab.count} crossings; kernels ready in {compiled:.2f} s")

    def demo_model(self) -> str:
        from medviewer.viewer.resources import resource

        if self.model_path:
            from medviewer.engine.catalog import resolve_model

            path = resolve_model(self.model_path)
        else:
            path = resource("models", "demo.safetensors")
        if not path.is_file():
            raise CheckFailed(f"{path}: model file missing from this install")
        self.model = engine.load_model(path, device=self.device)
        self.image = _demo_image()
        probs = np.asarray(engine.predict(self.model, [self.image]))
        classes = list(self.model.classes)
        if probs.shape != (1, len(classes)) or not np.all(np.isfinite(probs)):
            raise CheckFailed(f"predict gave shape {probs.shape} for {len(classes)} classes")
        if not np.all((probs >= 0) & (probs <= 1)):  # softmax or sigmoid: each in [0, 1]
            raise CheckFailed(f"predict returned values outside [0, 1]: {probs.min():.3g}..{probs.max():.3g}")
        cams = engine.gradcam(self.model, [self.image])
        cam = np.asarray(cams[0])
        stored = self.image[0]
        if cam.shape != stored.shape[:2] or not np.all(np.isfinite(cam)):
            raise CheckFailed(f"Grad-CAM map {cam.shape} does not match the image {stored.shape[:2]}")
        top = int(np.argmax(probs[0]))
        ood = "OOD check" if getattr(self.model, "ood", None) is not None else "no OOD check"
        return (f"{path.name}: {getattr(self.model.card, 'architecture', 'model')}, "
                f"p({classes[top]})={probs[0, top]:.3f}, CAM {cam.shape[0]}x{cam.shape[1]} "
                f"range {cam.min():.2f}..{cam.max():.2f}, {ood}, "
                f"temperature {getattr(self.model, 'temperature', 1.0):.2f}")

    def inference_time(self) -> str:
        if self.model is None or self.image is None:
            raise CheckFailed("skipped: the demo model did not load")
        import torch

        engine.predict(self.model, [self.image])  # warm-up
        times = []
        for _ in range(5):
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            engine.predict(self.model, [self.image])
            if self.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return (f"one image on {self.device}: median {1000 * float(np.median(times)):.1f} ms, "
                f"best {1000 * min(times):.1f} ms (5 runs)")

    def all(self) -> list[CheckResult]:
        self.run("versions", self.versions)
        self.run("compute device", self.compute_device)
        for syntax in list(SELFTEST_FILES)[:4]:
            self.run(f"decode {syntax}", lambda s=syntax: self.decode(s))
        self.run("MONOCHROME1 inverted", self.monochrome1)
        self.run("oblique reformat", self.oblique_reformat)
        self.run("model + Grad-CAM", self.demo_model)
        self.run("inference time", self.inference_time)
        return self.results


def _ramp_dataset(photometric: str):
    """A small 12-bit MONOCHROME image with a horizontal ramp (PS3.3 C.7.6.3)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    arr = np.tile(np.linspace(0, 4095, 32).astype(np.uint16), (8, 1))
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "OT"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = arr.tobytes()
    return ds


def _demo_image() -> tuple[np.ndarray, Any]:
    """(stored pixels, ImageMeta) of the middle slice of the generated demo CT study,
    written to a temporary folder and read back as a DICOM file."""
    import tempfile

    from pydicom import dcmread

    from medviewer.viewer.display import meta_from_dataset
    from medviewer.viewer.io import demo

    with tempfile.TemporaryDirectory(prefix="medviewer-selftest-") as tmp:
        folder = demo.make_demo_study(tmp)
        files = sorted(folder.glob("*.dcm"))
        if not files:
            raise CheckFailed("the demo study generator wrote no slices")
        ds = dcmread(files[len(files) // 2])
        return ds.pixel_array, meta_from_dataset(ds)


def format_table(results: list[CheckResult]) -> str:
    """Fixed-width table: check, PASS/FAIL, seconds, detail."""
    width = max([len(r.name) for r in results] + [5])
    lines = [f"{'check'.ljust(width)}  result  time     detail", "-" * (width + 60)]
    for r in results:
        lines.append(f"{r.name.ljust(width)}  {'PASS' if r.ok else 'FAIL'}    "
                     f"{r.seconds:6.2f}s  {r.detail}")
    failed = sum(not r.ok for r in results)
    lines.append("-" * (width + 60))
    lines.append(f"self-test: {len(results) - failed} of {len(results)} checks passed")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`medviewer --self-test [--json]`: 0 if every check passes, else 1."""
    parser = argparse.ArgumentParser(prog="medviewer --self-test", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--model", default=None, metavar="FILE|NAME",
                        help="model file or name to check instead of the bundled demo model")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    results = SelfTest(args.model).all()
    total = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in results], "seconds": total}, indent=1))
    else:
        print(format_table(results))
        print(f"self-test took {total:.1f} s")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
