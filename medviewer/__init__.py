"""medviewer: a desktop DICOM viewer with a built-in AI engine.

One import root for the whole product:

    medviewer.viewer      study I/O, display pipeline (Qt-free) and the Qt UI (viewer/ui)
    medviewer.engine      models, inference, Grad-CAM, trainer (Qt-free)
    medviewer.resources   icons and bundled models (package data)

The repository keeps the product's folders at the top (``viewer/``, ``engine/``,
``resources/``); ``pyproject.toml`` maps them under this package with setuptools'
``package-dir``, so a wheel installs ``medviewer/viewer``, ``medviewer/engine`` and
``medviewer/resources`` and nothing else at the top level.  In a source checkout that
is not installed (or is imported from a second work tree) the same names resolve
through this package's ``__path__``, which then also lists the checkout's root, the
standard mechanism for a package whose parts live in more than one folder.

Public API (no Qt needed)::

    from medviewer import engine
    model = engine.load_model("demo")          # a path, or a bundled / user model's name
    model = medviewer.load_model("demo")       # the same
"""

from __future__ import annotations

from pathlib import Path as _Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_here = _Path(__file__).resolve().parent
if not (_here / "viewer").is_dir():
    _root = _here.parent
    if (_root / "viewer" / "__init__.py").is_file() and (_root / "engine" / "__init__.py").is_file():
        __path__.append(str(_root))  # noqa: F821  (the package's own __path__)

if TYPE_CHECKING:  # pragma: no cover
    from medviewer.engine.modelfile import LoadedModel


def load_model(path_or_name: Any, device: str | None = None) -> "LoadedModel":
    """Load a model file, or a bundled / user model by name: see `medviewer.engine.load_model`."""
    from medviewer.engine import load_model as _load

    return _load(path_or_name, device=device)


def __getattr__(name: str) -> Any:
    # `medviewer.engine` / `medviewer.viewer` without an explicit import (both are cheap:
    # torch and Qt are imported only when used).
    if name in ("engine", "viewer"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", "load_model"]
