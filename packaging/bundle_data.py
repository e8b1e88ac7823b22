"""Helpers for packaging/medviewer.spec: what goes into the bundle, what stays out.

Kept out of the spec so that tests/test_packaging.py can check the rules
without running PyInstaller.  PyInstaller TOC entries are (dest, src, typecode).
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

#: destination folder of the self-test DICOM files inside the bundle
SELFTEST_DEST = "selftest_data"

# data files nobody needs at run time
_UNWANTED_DATA = (
    "*/tests/*", "*/test/*", "*/testing/_internal/*", "*.h", "*.hpp", "*.cuh", "*.cpp",
    "*.pyi", "*.cmake", "*.a", "*.lib", "*/__pycache__/*", "*/include/*",
    "pydicom/data/test_files/*", "triton/*",
)
# Qt parts the app never uses; hooks can still drag them in through plugins
_UNWANTED_QT = (
    "*Qt6WebEngine*", "*QtWebEngineProcess*", "*Qt63D*", "*Qt6Quick3D*", "*Qt6Multimedia*",
    "*Qt6SpatialAudio*", "*Qt6Charts*", "*Qt6DataVisualization*", "*Qt6Graphs*", "*Qt6Pdf*",
    "*Qt6Designer*", "*Qt6Location*", "*Qt6Bluetooth*", "*Qt6Nfc*", "*Qt6Sensors*",
    "*Qt6TextToSpeech*", "*Qt6RemoteObjects*", "*Qt6Scxml*", "*Qt6SerialBus*",
    "*Qt6Qml*", "*Qt6Quick*", "*Qt6VirtualKeyboard*", "*/platforminputcontexts/*virtualkeyboard*",
    "*/imageformats/libqpdf*", "*/qml/*", "*/resources/qtwebengine*", "*/translations/qtwebengine*",
    "*/plugins/multimedia/*", "*/plugins/sceneparsers/*", "*/plugins/geometryloaders/*",
    "*/plugins/renderers/*", "*/plugins/position/*", "*/plugins/sensors/*",
    "*/plugins/texttospeech/*", "*/plugins/designer/*", "*/plugins/sqldrivers/*",
)
# libraries that torch only dlopen()s for CUDA work, never at import
_CUDA_LAZY = ("torch/lib/libtorch_cuda_linalg.so",)


def _posix(name: str) -> str:
    return str(PurePosixPath(*Path(name).parts))


def is_unwanted_data(dest: str) -> bool:
    """True for headers, test suites and caches that a hook collected as data."""
    d = _posix(dest)
    return any(fnmatch.fnmatch(d, p) or fnmatch.fnmatch("/" + d, p) for p in _UNWANTED_DATA)


def drop_dangling_symlinks(*tocs: list) -> list[list]:
    """Remove SYMLINK entries (dest, relative target, 'SYMLINK') whose target was excluded.

    PyInstaller puts the links to libraries in sub-folders into the *datas* TOC,
    so pass every TOC (binaries, datas); they are returned in the same order.
    """
    dests = {_posix(t[0]) for toc in tocs for t in toc if t[2] != "SYMLINK"}

    def alive(t: tuple) -> bool:
        if t[2] != "SYMLINK":
            return True
        target = os.path.normpath(os.path.join(os.path.dirname(_posix(t[0])), _posix(t[1])))
        return _posix(target) in dests

    return [[t for t in toc if alive(t)] for toc in tocs]


def is_unwanted_binary(dest: str, src: str = "") -> bool:
    """True for Qt libraries and plugins (WebEngine, 3D, Multimedia...) and triton."""
    d = _posix(dest)
    if d.startswith("triton/") or "/triton/" in _posix(src):
        return True
    return any(fnmatch.fnmatch(d, p) or fnmatch.fnmatch("/" + d, p) for p in _UNWANTED_QT)


def _is_nvidia(dest: str, src: str) -> bool:
    d, s = _posix(dest), _posix(src)
    return d.startswith("nvidia/") or "/site-packages/nvidia/" in s


def needed_closure(
    roots: Iterable[str], nvidia: dict[str, str], get_imports: Callable[[str], Iterable]
) -> set[str]:
    """Basenames of the NVIDIA libraries reachable from `roots` through DT_NEEDED.

    `nvidia` maps basename -> source path; `get_imports(path)` yields (name, path)
    pairs like PyInstaller's bindepend.get_imports.
    """
    keep: set[str] = set()
    todo = list(roots)
    seen: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        try:
            imports = get_imports(path)
        except Exception:  # unreadable file: keep going, PyInstaller already vetted it
            continue
        for name, _full in imports:
            base = os.path.basename(name)
            if base in nvidia and base not in keep:
                keep.add(base)
                todo.append(nvidia[base])
    return keep


def cpu_only_binaries(binaries: list, bindepend) -> list:
    """Keep only the NVIDIA libraries torch links at load time (the CPU flavour).

    The PyPI torch wheel for Linux links libtorch_cuda.so against cudart, cuBLAS,
    cuFFT, cuSPARSE, NCCL, cuDNN... so `import torch` needs those files even on a
    machine without a GPU; the cuDNN engines, cusolver, cupti and the like are only
    dlopen()ed for GPU work and are dropped here.
    """
    nvidia = {os.path.basename(t[0]): t[1] for t in binaries
              if t[2] != "SYMLINK" and _is_nvidia(t[0], t[1])}
    if not nvidia:
        return [t for t in binaries if _posix(t[0]) not in _CUDA_LAZY]
    roots = [t[1] for t in binaries
             if t[2] != "SYMLINK" and not _is_nvidia(t[0], t[1]) and _posix(t[0]) not in _CUDA_LAZY
             and (_posix(t[0]).startswith(("torch/", "torchvision")))]
    keep = needed_closure(roots, nvidia, bindepend.get_imports)
    return [t for t in binaries
            if _posix(t[0]) not in _CUDA_LAZY
            and (t[2] == "SYMLINK" or not _is_nvidia(t[0], t[1]) or os.path.basename(t[0]) in keep)]


def resource_datas(root: Path) -> list[tuple[str, str]]:
    """(src, dest) pairs for resources/ (icons, bundled models) as medviewer.resources data."""
    out: list[tuple[str, str]] = []
    res = root / "resources"
    if not res.is_dir():
        return out
    for path in sorted(res.rglob("*")):
        if (path.is_file() and "__pycache__" not in path.parts
                and path.suffix not in (".pt", ".pth", ".pkl", ".py", ".sh") and path.name != "screenshot.png"):
            out.append((str(path), str(Path("medviewer") / "resources" / path.parent.relative_to(res))))
    return out


def selftest_datas() -> list[tuple[str, str]]:
    """(src, dest) pairs for the few real DICOM files the self-test decodes.

    They come from pydicom's own test files at build time and are never
    committed to the repository.
    """
    from medviewer.viewer.selftest import SELFTEST_FILES, find_selftest_file

    out = []
    for name in SELFTEST_FILES.values():
        path = find_selftest_file(name, bundle_first=False)
        if path is None:
            raise SystemExit(f"medviewer.spec: self-test file {name} not found in pydicom's test data")
        out.append((str(path), SELFTEST_DEST))
    return out


def write_build_info(workpath: Path, flavor: str) -> str:
    """Write medviewer_build.json (flavour, versions) and return its path."""
    import json
    import platform
    import time

    import torch

    workpath.mkdir(parents=True, exist_ok=True)
    path = workpath / "medviewer_build.json"
    info = {
        "flavor": flavor,
        "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
    }
    path.write_text(json.dumps(info, indent=1), encoding="utf-8")
    return str(path)


def exe_icon(root: Path) -> str | None:
    """The executable's icon where the platform embeds one (Windows, macOS)."""
    import sys

    icons = root / "resources" / "icons"
    name = {"win32": "medviewer.ico", "darwin": "medviewer.icns"}.get(sys.platform)
    if name and (icons / name).exists():
        return str(icons / name)
    return None
