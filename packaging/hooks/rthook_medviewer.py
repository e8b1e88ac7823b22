"""PyInstaller runtime hook: runs before the app's own code inside the bundle.

The CPU flavour leaves out cuDNN's engine libraries and other CUDA parts that torch
only loads for GPU work, so it must never pick a GPU even on a machine that has one.
"""

import json
import os
import sys

_info = os.path.join(getattr(sys, "_MEIPASS", ""), "medviewer_build.json")
try:
    with open(_info, encoding="utf-8") as fh:
        _flavor = json.load(fh).get("flavor", "cuda")
except OSError:
    _flavor = "cuda"
if _flavor == "cpu":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ.setdefault("PYDICOM_DATA_OFFLINE", "1")  # pydicom-data never downloads here
