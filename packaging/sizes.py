"""Print a bundle's size by component: `python packaging/sizes.py dist/medviewer`."""

from __future__ import annotations

import sys
from pathlib import Path

# component -> path prefixes inside _internal/ (first match wins)
COMPONENTS: list[tuple[str, tuple[str, ...]]] = [
    ("NVIDIA CUDA libraries", ("nvidia/", "torchvision.libs/libcudart", "torchvision.libs/libnvjpeg")),
    ("torch", ("torch/", "functorch/", "torchgen/")),
    ("torchvision", ("torchvision/", "torchvision.libs/")),
    ("Qt (PySide6 + shiboken6)", ("PySide6/", "shiboken6/")),
    ("OpenCV", ("cv2/", "opencv_python_headless")),
    ("numpy/scipy/sklearn", ("numpy/", "numpy.libs/", "scipy/", "scipy.libs/", "sklearn/", "scikit_learn")),
    ("pydicom + decoders", ("pydicom/", "pylibjpeg", "libjpeg/", "openjpeg/", "rle/", "_libjpeg", "_openjpeg")),
    ("matplotlib + Pillow", ("matplotlib/", "PIL/", "pillow", "fontTools/", "kiwisolver", "contourpy")),
    ("optuna + sqlalchemy", ("optuna/", "sqlalchemy/", "alembic/")),
    ("medviewer resources", ("medviewer/resources/", "selftest_data/")),
    ("Python runtime + stdlib", ("base_library.zip", "libpython", "lib-dynload/", "python3")),
]


def component(rel: str) -> str:
    for name, prefixes in COMPONENTS:
        if rel.startswith(prefixes):
            return name
    return "other"


def sizes(bundle: Path) -> dict[str, int]:
    """Bytes per component; symlinks are not counted twice."""
    internal = bundle / "_internal"
    base = internal if internal.is_dir() else bundle
    out: dict[str, int] = {}
    for path in bundle.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            rel = path.relative_to(base).as_posix()
        except ValueError:
            rel = path.name
        key = "executable + PYZ (Python code)" if path.parent == bundle else component(rel)
        out[key] = out.get(key, 0) + path.stat().st_size
    return out


def report(bundle: Path) -> str:
    data = sizes(bundle)
    total = sum(data.values())
    lines = [f"bundle size by component ({bundle}):"]
    for name, size in sorted(data.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {name:32s} {size / 2**20:9.1f} MiB  {100 * size / max(total, 1):5.1f} %")
    lines.append(f"  {'TOTAL':32s} {total / 2**20:9.1f} MiB")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        print("usage: python packaging/sizes.py BUNDLE_DIR", file=sys.stderr)
        sys.exit(2)
    print(report(Path(sys.argv[1])))
