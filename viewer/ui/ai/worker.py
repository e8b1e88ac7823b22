"""The AI tasks the viewer runs off the GUI thread (STYLE.md pattern 4).

Plain functions of a `TaskState` (viewer.ui.workers): the engine does the work,
batches leave as partial results, ``state.should_stop`` is polled between batches,
so a cancelled or superseded job stops at the next batch boundary; the
`TaskRunner` turns exceptions into one line and drops what stale jobs still send.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from medviewer.viewer.ui.workers import TaskState


def load_task(state: TaskState, path: str, device: str | None, threads: int | None = None) -> Any:
    """Load a model file (imports torch on first use); returns the LoadedModel."""
    from medviewer.engine import load_model
    from medviewer.viewer.ui.gcpolicy import freeze_long_lived

    from medviewer.engine.threads import apply as apply_thread_policy

    apply_thread_policy(count=threads)  # passive OpenMP waits beside the decode threads
    model = load_model(path, device=device)
    _ = model.sha256   # hashed here, once, for the audit log (never on the GUI thread)
    freeze_long_lived()   # torch's modules, imported just now, live as long as the app
    return model


def series_task(state: TaskState, model: Any, store: Any, refs: Sequence[Any],
                shape: tuple[int, int], first_index: int = 0, batch_size: int = 16,
                series: Any = None) -> int:
    """Classify `refs` (one slice for 'analyze image', all for 'analyze series').

    Partial results: first ("inputcheck", [warning lines]) when `series` is given (the input
    check of engine.inputcheck, before the model runs), then per batch ("batch", index of
    its first slice in the series, (B, C) calibrated probs, (B,) OOD scores or None)."""
    from medviewer.engine.series import predict_series

    if series is not None:
        from medviewer.engine.inputcheck import check_series

        state.partial(("inputcheck", [w.text() for w in check_series(model.card, series, store)]))
    scores: dict[int, np.ndarray] = {}

    def on_ood(start: int, s: Any) -> None:   # arrives just before the same batch's probabilities
        scores[start] = np.array(s, copy=True)

    def on_batch(start: int, probs: Any, _cams: Any) -> None:
        state.partial(("batch", first_index + start, np.array(probs, copy=True), scores.pop(start, None)))

    predict_series(model, store, list(refs), shape, cam_method=None, batch_size=batch_size,
                   progress=state.progress, should_stop=state.should_stop, on_batch=on_batch, on_ood=on_ood)
    return len(refs)


def audit_task(_state: TaskState, entry: Any, path: Any = None) -> Any:
    """Append one entry (engine.audit.Analysis or Verdict) to the audit log; returns it.
    Run on a one-thread runner that is never cancelled, so entries are written in
    order and a verdict never before the analysis it names."""
    from medviewer.engine.audit import Analysis, AuditLog

    log_ = AuditLog(path)
    if isinstance(entry, Analysis):
        log_.record_analysis(entry)
    else:
        log_.record_verdict(entry)
    return entry


def cam_task(state: TaskState, model: Any, store: Any, ref: Any, class_index: int | None,
             method: str) -> tuple[int, np.ndarray] | None:
    """Grad-CAM of one slice for a class (None: its top class): (class, map) or None when stopped."""
    from medviewer.engine.cam import gradcam_images

    pixels, meta = store.get(ref), store.meta(ref)
    if state.should_stop():
        return None
    got: dict[str, Any] = {}
    maps = gradcam_images(model, [(pixels, meta)], class_index=class_index, method=method,
                          batch_size=1, on_batch=lambda _s, _m, p: got.setdefault("probs", p))
    cls = class_index if class_index is not None else int(np.argmax(got["probs"][0]))
    return None if state.should_stop() else (int(cls), maps[0])
