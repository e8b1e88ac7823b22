"""Work around a reference-count defect of the Qt bindings in use (shiboken6 6.12.0).

On Python 3.11, every call of a Qt method that returns nothing (QPainter.drawLine,
setPen, drawImage, QImage.fill...) hands back `None` without taking a reference to
it -- as if `None` were immortal, which it is only from Python 3.12 on (PEP 683).
Each such call lowers None's reference count by one; after a few thousand calls
(a few hundred repaints of a viewport: moving the mouse over an image repaints it)
the interpreter aborts with "Fatal Python error: none_dealloc".  `protect_none()`
probes for the defect once at start-up and, when it is there, raises None's
reference count by 2**40, which no session can use up (a repaint makes ~100 such
calls).  The count of None is only a number -- None is never freed -- so nothing
else changes.  It does nothing on Python 3.12+ or with bindings that count right.
"""

from __future__ import annotations

import ctypes
import logging
import sys

log = logging.getLogger("medviewer.ui")

RESERVE = 2**40
PROBE_CALLS = 64
_state = {"checked": False, "leaks": False}


def leaks_none(calls: int = PROBE_CALLS) -> bool:
    """True when calling a void Qt method drops a reference to None."""
    if sys.version_info >= (3, 12):
        return False
    from PySide6.QtGui import QImage

    img = QImage(1, 1, QImage.Format.Format_RGB32)
    img.fill(0)
    before = sys.getrefcount(None)
    for _ in range(calls):
        img.fill(0)
    return before - sys.getrefcount(None) >= calls // 2


def protect_none() -> bool:
    """Probe once; when the bindings leak references to None, give None a reserve.
    Returns whether the defect was found."""
    if not _state["checked"]:
        _state["checked"] = True
        _state["leaks"] = leaks_none()
        if _state["leaks"]:
            ctypes.c_ssize_t.from_address(id(None)).value += RESERVE
            log.info("Qt bindings drop a reference to None per void call (shiboken6 on Python "
                     "%d.%d): None's reference count raised by %d", *sys.version_info[:2], RESERVE)
    return _state["leaks"]
