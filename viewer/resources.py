"""Locate medviewer's package data (icons, bundled models) with importlib.resources.

The data live in the `medviewer.resources` package (the repository's `resources/`
folder), so the same lookup works in a source checkout, an editable install, a wheel
install and the PyInstaller bundle (whose frozen importer serves package data from
the bundle folder).
"""

from __future__ import annotations

import os
from importlib import resources as _ilr
from pathlib import Path

PACKAGE = "medviewer.resources"


def resources_dir() -> Path:
    """The folder holding icons and bundled models ($MEDVIEWER_RESOURCES overrides it)."""
    env = os.environ.get("MEDVIEWER_RESOURCES")
    if env:
        return Path(env)
    root = _ilr.files(PACKAGE)
    # Every way medviewer is installed keeps package data as plain files; a zipped
    # install would hand back a Traversable that is not a Path.
    return Path(str(root))


def resource(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)
