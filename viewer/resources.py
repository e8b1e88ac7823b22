"""Locate the project's `resources/` folder in a checkout, an install or a bundle."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def resources_dir() -> Path:
    """Return the folder holding icons, presets and bundled models.

    Order: $MEDVIEWER_RESOURCES, the PyInstaller bundle, the source checkout.
    """
    env = os.environ.get("MEDVIEWER_RESOURCES")
    if env:
        return Path(env)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parent.parent / "resources"


def resource(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)
