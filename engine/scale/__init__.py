"""Archive-scale inference on Ray: `medviewer predict ROOT --model M --engine ray`.

The same engine code as the local `medviewer predict`, distributed by Ray Data:

    driver   scan ROOT (a folder of studies or a CSV of paths) as `predict` does,
             keep a lean work list, skip series already finished in --results
    tasks    (CPU) decode + preprocess chunks of slices: `series.SeriesImages` over a
             `viewer.io.PixelStore`, then `preprocess.preprocess_batch`
    actors   (one per GPU, or CPU workers) hold the model, loaded once, and run
             `series.predict_prepared` (+ Grad-CAM files when asked)
    driver   assembles each series, writes it atomically to --results as it
             completes (`results.ResultsDir`), shows progress; `predictdoc` builds
             the JSON exactly as the local engine does

Ray Data streams blocks between the stages with back-pressure, so memory stays
bounded by the object store budget, not by the archive.  Ray is an optional
extra (`pip install "medviewer[scale]"`) imported only here, only when used.
"""

from __future__ import annotations

from typing import Any

from medviewer.viewer.errors import UsageError

INSTALL_HINT = 'pip install "medviewer[scale]"'


def require_ray() -> Any:
    """The `ray` module with Ray Data, or a one-line UsageError saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the streaming executor lives there)
    except ImportError:
        raise UsageError(f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray
