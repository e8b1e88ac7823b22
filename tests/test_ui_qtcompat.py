"""The Qt bindings' reference leak on None (viewer.ui.qtcompat): with the guard the window
survives many repaints; without it, on affected bindings, the interpreter aborts."""

from __future__ import annotations

import subprocess
import sys

import pytest

PAINT = """
import sys
from PySide6.QtWidgets import QApplication
from PySide6.QtGui import QImage, QPainter
from PySide6.QtCore import QPointF
app = QApplication([])
{guard}
img = QImage(64, 64, QImage.Format.Format_RGB32)
p = QPainter(img)
a, b = QPointF(1, 2), QPointF(5, 6)
for _ in range(100_000):       # ~1000 repaints of a viewport
    p.drawLine(a, b)
p.end()
print("alive", sys.getrefcount(None) > 10_000)
"""


def _run(guard: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PAINT.format(guard=guard)], capture_output=True, text=True,
                          timeout=120, env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})


def test_many_void_qt_calls_do_not_abort_the_viewer():
    out = _run("from medviewer.viewer.ui.workers import warm_up; warm_up()")
    assert out.returncode == 0 and out.stdout.strip() == "alive True", out.stderr[-2000:]


def test_the_probe_finds_the_defect_where_it_exists():
    from medviewer.viewer.ui.qtcompat import leaks_none

    if not leaks_none():
        pytest.skip("these Qt bindings count references to None correctly")
    out = _run("")                              # no guard: the interpreter aborts
    assert out.returncode != 0 and "none_dealloc" in out.stderr
