"""Shared test set-up: headless Qt, no network, quiet pydicom."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Never let pydicom's data manager reach for the network in tests.
os.environ.setdefault("PYDICOM_DATA_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
