"""Keep Python's full garbage collections off the GUI's critical path.

A generation-2 collection walks every object the collector tracks while
holding the GIL.  With Qt, numpy, pydicom and torch imported and a study
open that is hundreds of thousands of objects, and a full collection
triggered by a worker thread froze the GUI thread for 300-400 ms
(tests/test_ui_heartbeat.py).  Objects that live as long as the process (the
imported modules and what they build at import time) are moved to the
permanent generation with `gc.freeze()` once they exist, so later full
collections only walk the objects of the open study.  Frozen objects are
still freed by reference counting; only cycle detection skips them.
"""

from __future__ import annotations

import gc
import sys
import threading

_lock = threading.Lock()
_modules_at_freeze = 0


def freeze_long_lived() -> int:
    """Collect once, then freeze everything alive now; returns the frozen count.

    Call it right after a burst of long-lived allocation (start-up imports,
    the first model load that imports torch).  It does nothing (and costs
    nothing) when no module was imported since the last call.
    """
    global _modules_at_freeze
    with _lock:
        if len(sys.modules) != _modules_at_freeze:
            gc.collect()
            gc.freeze()
            _modules_at_freeze = len(sys.modules)
        return gc.get_freeze_count()
