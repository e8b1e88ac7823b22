"""Packaging: the spec's rules (fast), then a real PyInstaller bundle that must pass
its own `--self-test` offscreen (slow: builds the CPU flavour, several minutes)."""

from __future__ import annotations

import ast
import configparser
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGING = ROOT / "packaging"
sys.path.insert(0, str(PACKAGING))

import bundle_data  # noqa: E402
import sizes  # noqa: E402


# -- fast checks of the rules -----------------------------------------------------------
def test_spec_and_scripts_are_well_formed():
    ast.parse((PACKAGING / "medviewer.spec").read_text(encoding="utf-8"))
    for script in ("build.sh", "install-desktop.sh"):
        res = subprocess.run(["bash", "-n", str(PACKAGING / script)], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert os.access(PACKAGING / script, os.X_OK)
    spec = (PACKAGING / "medviewer.spec").read_text(encoding="utf-8")
    # the torchvision 0.29 trap and the entry-point metadata of the decoders
    assert "_C_stable.so" in spec and "image_stable.so" in spec
    assert "copy_metadata" in spec and "pylibjpeg-libjpeg" in spec and '"triton"' in spec


def test_pyinstaller_is_pinned_in_the_package_extra():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"pyinstaller==6.22.3"' in text and '"pyinstaller-hooks-contrib==2026.9"' in text


def test_desktop_file_is_valid():
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str
    cp.read(PACKAGING / "medviewer.desktop", encoding="utf-8")
    entry = cp["Desktop Entry"]
    assert entry["Type"] == "Application" and entry["Exec"].split()[0] == "medviewer"
    assert entry["Icon"] == "medviewer" and entry["Categories"].endswith(";")
    assert "application/dicom" in entry["MimeType"]
    validator = shutil.which("desktop-file-validate")
    if validator:
        res = subprocess.run([validator, str(PACKAGING / "medviewer.desktop")], capture_output=True, text=True)
        assert res.returncode == 0 and "error" not in res.stdout, res.stdout


def test_icons_exist_at_every_size():
    from PySide6.QtGui import QImage

    icons = ROOT / "resources" / "icons"
    for size in (16, 24, 32, 48, 64, 128, 256):
        img = QImage(str(icons / f"medviewer-{size}.png"))
        assert (img.width(), img.height()) == (size, size)
    assert (icons / "medviewer.svg").read_text().lstrip().startswith("<svg")
    ico = (icons / "medviewer.ico").read_bytes()
    assert ico[:4] == b"\0\0\1\0" and int.from_bytes(ico[4:6], "little") == 7


def test_unwanted_files_are_recognised():
    assert bundle_data.is_unwanted_data("torch/include/ATen/core/Tensor.h")
    assert bundle_data.is_unwanted_data("numpy/_core/tests/data/x.csv")
    assert bundle_data.is_unwanted_data("torch/testing/_internal/common_utils.py")
    assert not bundle_data.is_unwanted_data("pydicom/data/charset_files/chrH31.dcm")
    assert not bundle_data.is_unwanted_data("medviewer/resources/icons/medviewer-256.png")
    assert bundle_data.is_unwanted_binary("PySide6/Qt/lib/libQt6WebEngineCore.so.6")
    assert bundle_data.is_unwanted_binary("PySide6/Qt/plugins/multimedia/libffmpegmediaplugin.so")
    assert bundle_data.is_unwanted_binary("triton/_C/libtriton.so")
    assert not bundle_data.is_unwanted_binary("PySide6/Qt/lib/libQt6Widgets.so.6")
    assert not bundle_data.is_unwanted_binary("PySide6/Qt/plugins/platforms/libqoffscreen.so")


def test_cpu_flavour_keeps_only_linked_nvidia_libraries():
    site = "/venv/lib/python3.11/site-packages"
    toc = [
        ("torch/lib/libtorch_cuda.so", f"{site}/torch/lib/libtorch_cuda.so", "BINARY"),
        ("torch/lib/libtorch_cuda_linalg.so", f"{site}/torch/lib/libtorch_cuda_linalg.so", "BINARY"),
        ("nvidia/cu13/lib/libcublas.so.13", f"{site}/nvidia/cu13/lib/libcublas.so.13", "BINARY"),
        ("nvidia/cu13/lib/libcublasLt.so.13", f"{site}/nvidia/cu13/lib/libcublasLt.so.13", "BINARY"),
        ("nvidia/cudnn/lib/libcudnn.so.9", f"{site}/nvidia/cudnn/lib/libcudnn.so.9", "BINARY"),
        ("nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9",
         f"{site}/nvidia/cudnn/lib/libcudnn_engines_precompiled.so.9", "BINARY"),
        ("nvidia/cu13/lib/libcusolver.so.12", f"{site}/nvidia/cu13/lib/libcusolver.so.12", "BINARY"),
        ("cv2/cv2.abi3.so", f"{site}/cv2/cv2.abi3.so", "EXTENSION"),
    ]
    links = {
        "libtorch_cuda.so": [("libcublas.so.13", None), ("libcudnn.so.9", None), ("libc.so.6", None)],
        "libcublas.so.13": [("libcublasLt.so.13", None)],
    }

    class FakeBindepend:
        @staticmethod
        def get_imports(path):
            return links.get(Path(path).name, [])

    kept = {t[0] for t in bundle_data.cpu_only_binaries(toc, FakeBindepend)}
    assert kept == {"torch/lib/libtorch_cuda.so", "nvidia/cu13/lib/libcublas.so.13",
                    "nvidia/cu13/lib/libcublasLt.so.13", "nvidia/cudnn/lib/libcudnn.so.9",
                    "cv2/cv2.abi3.so"}


def test_real_torch_links_are_resolved():
    """On this machine's CUDA torch, the closure holds cudart and cuBLAS but no cuDNN engines."""
    import torch

    lib = Path(torch.__file__).parent / "lib" / "libtorch_cuda.so"
    if not lib.exists() or not sys.platform.startswith("linux"):
        pytest.skip("needs the Linux CUDA build of torch")
    pyinstaller = pytest.importorskip("PyInstaller.depend.bindepend")
    site = Path(torch.__file__).parent.parent
    nvidia = {p.name: str(p) for p in (site / "nvidia").rglob("lib*.so*")} if (site / "nvidia").is_dir() else {}
    if not nvidia:
        pytest.skip("torch without nvidia-* wheels")
    keep = bundle_data.needed_closure([str(lib)], nvidia, pyinstaller.get_imports)
    assert any(n.startswith("libcudart") for n in keep) and any(n.startswith("libcublas") for n in keep)
    assert not any(n.startswith("libcudnn_engines") for n in keep)


def test_selftest_files_are_few_and_small():
    pairs = bundle_data.selftest_datas()
    total = sum(Path(src).stat().st_size for src, _ in pairs)
    assert len(pairs) == 5 and total < 300_000
    assert all(dest == bundle_data.SELFTEST_DEST for _, dest in pairs)
    names = {Path(src).name for src, _ in pairs}
    assert {"MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm"} <= names


def test_resources_are_bundled_without_pickles(tmp_path):
    (tmp_path / "resources" / "models").mkdir(parents=True)
    (tmp_path / "resources" / "models" / "demo.safetensors").write_bytes(b"x")
    (tmp_path / "resources" / "models" / "old.pt").write_bytes(b"x")
    (tmp_path / "resources" / "icons").mkdir()
    (tmp_path / "resources" / "icons" / "a.png").write_bytes(b"x")
    got = sorted((Path(s).name, d) for s, d in bundle_data.resource_datas(tmp_path))
    assert got == [("a.png", str(Path("medviewer/resources/icons"))),
                   ("demo.safetensors", str(Path("medviewer/resources/models")))]


def test_size_report_groups_components(tmp_path):
    internal = tmp_path / "medviewer" / "_internal"
    for rel, size in {"torch/lib/libtorch_cpu.so": 3000, "nvidia/cu13/lib/libcublas.so.13": 5000,
                      "PySide6/Qt/lib/libQt6Core.so.6": 1000, "weird/x.bin": 10}.items():
        (internal / rel).parent.mkdir(parents=True, exist_ok=True)
        (internal / rel).write_bytes(b"\0" * size)
    (tmp_path / "medviewer" / "medviewer").write_bytes(b"\0" * 7)
    got = sizes.sizes(tmp_path / "medviewer")
    assert got == {"torch": 3000, "NVIDIA CUDA libraries": 5000, "Qt (PySide6 + shiboken6)": 1000,
                   "other": 10, "executable + PYZ (Python code)": 7}
    report = sizes.report(tmp_path / "medviewer")
    assert report.splitlines()[1].lstrip().startswith("NVIDIA CUDA libraries")
    assert "TOTAL" in report.splitlines()[-1]


def test_startup_probe_quits_after_the_first_window(tmp_path):
    """The entry point with MEDVIEWER_STARTUP_PROBE=1 shows the window, prints the time, exits 0."""
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "MEDVIEWER_STARTUP_PROBE": "1",
           "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "MEDVIEWER_LOG_DIR": str(tmp_path / "logs"), "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, str(PACKAGING / "medviewer_main.py")], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    line = next(l for l in res.stdout.splitlines() if l.startswith("medviewer-startup:"))
    seconds = float(line.split("after ")[1].split()[0])
    assert 0 < seconds < 300


# -- the real bundle ----------------------------------------------------------------------
@pytest.mark.slow
def test_bundle_builds_and_passes_its_self_test(tmp_path):
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("PyInstaller missing in CI: .ci/run must install the `package` extra")
        pytest.skip("PyInstaller not installed (pip install -e '.[package]')")
    dist, work = tmp_path / "dist", tmp_path / "work"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "MEDVIEWER_FLAVOR": "cpu", "PYTHON": sys.executable}
    t0 = time.monotonic()
    build = subprocess.run(["bash", str(PACKAGING / "build.sh"), "--dist", str(dist), "--work", str(work)],
                           capture_output=True, text=True, env=env, timeout=3000)
    build_s = time.monotonic() - t0
    try:
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-5000:]
        assert "bundle size by component" in build.stdout and "TOTAL" in build.stdout
        exe = dist / "medviewer" / "medviewer"
        assert exe.is_file()
        # the bundle must not find the checkout or site-packages: run from an empty folder
        run_env = {k: v for k, v in env.items() if not k.startswith(("PYTHON", "MEDVIEWER_RESOURCES"))}
        run_env["HOME"] = str(tmp_path / "home")
        run_env["MEDVIEWER_LOG_DIR"] = str(tmp_path / "logs")
        # the demo model travels as medviewer.resources package data
        assert (dist / "medviewer" / "_internal" / "medviewer" / "resources" / "models" / "demo.safetensors").is_file()
        args = [str(exe), "--self-test"]
        t1 = time.monotonic()
        st = subprocess.run(args, capture_output=True, text=True, env=run_env, cwd=tmp_path, timeout=600)
        selftest_s = time.monotonic() - t1
        assert st.returncode == 0, st.stdout[-4000:] + st.stderr[-4000:]
        assert "FAIL" not in st.stdout and "decode JPEG 2000 Lossless" in st.stdout
        assert "exact on a ramp" in st.stdout     # the compiled MPR kernels run frozen
        # ... and numba cached them for the next start (their source ships for that)
        cached = [*(dist / "medviewer").rglob("_kernels*.nbi"), *(tmp_path / "home").rglob("_kernels*.nbi")]
        assert cached, "numba wrote no cache index for viewer/display/_kernels.py"
        # a bundled model found by name, on a real DICOM file shipped in the bundle
        ct = next((dist / "medviewer" / "_internal" / bundle_data.SELFTEST_DEST).glob("*.dcm"))
        pr = subprocess.run([str(exe), "predict", str(ct), "--model", "demo", "--json", str(tmp_path / "p.json")],
                            capture_output=True, text=True, env=run_env, cwd=tmp_path, timeout=300)
        assert pr.returncode == 0, pr.stderr[-2000:]
        assert json.loads((tmp_path / "p.json").read_text())["model"]["name"]
        probe = subprocess.run([str(exe)], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                               env={**run_env, "MEDVIEWER_STARTUP_PROBE": "1"})
        assert probe.returncode == 0, probe.stdout[-2000:] + probe.stderr[-2000:]
        assert "first window shown after" in probe.stdout
        print(st.stdout)
        print(f"\nbundle build {build_s:.0f} s, self-test {selftest_s:.1f} s, "
              f"{probe.stdout.strip().splitlines()[-1]}\n{build.stdout[build.stdout.find('bundle size'):]}")
    finally:
        shutil.rmtree(tmp_path / "dist", ignore_errors=True)  # several GB
        shutil.rmtree(tmp_path / "work", ignore_errors=True)
