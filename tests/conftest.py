"""Shared test set-up: headless Qt, no network, quiet pydicom, this checkout's code.

Subprocesses started by tests import the checkout they run from (PYTHONPATH), and
nothing a test does lands in the user's real medviewer folder (MEDVIEWER_HOME).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Never let pydicom's data manager reach for the network in tests.
os.environ.setdefault("PYDICOM_DATA_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(ROOT), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)])
if "MEDVIEWER_HOME" not in os.environ:
    os.environ["MEDVIEWER_HOME"] = tempfile.mkdtemp(prefix="medviewer-test-home-")
