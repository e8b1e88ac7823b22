"""The ``--out`` folder: created once, never silently mixed with an earlier run.

What a researcher expects (the convention of Hugging Face's ``--overwrite_output_dir``
and of ``git clone`` into a non-empty folder): a folder that already holds an
earlier run's outputs is refused with one line, unless the command says what to
do with them:

* ``--resume`` continues that run (``checkpoint.pt``, and ``search.db`` for
  ``--search``); the other outputs are rewritten when it ends;
* ``--overwrite`` replaces it: the earlier run's outputs (only the files the
  trainer writes, listed in ``OUTPUTS``) are deleted before anything starts, so
  a new run that stops half-way never sits beside the old model and report;
* ``--test-only`` reads ``model.safetensors`` and rewrites the reports.
Other files in the folder are never touched.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from medviewer.viewer.errors import UsageError

#: every file or folder a training run writes into --out
OUTPUTS = ("model.safetensors", "report.json", "report.html", "predictions.csv", "dataset.json",
           "checkpoint.pt", "checkpoint.pt.tmp", "search.db", "plots")
RESUMABLE = ("checkpoint.pt", "search.db")


def earlier_outputs(out: Path) -> list[str]:
    return [name for name in OUTPUTS if (out / name).exists() or (out / name).is_symlink()]


def prepare(out: Path, *, resume: bool, overwrite: bool, test_only: bool, is_main: bool = True,
            log: Callable[[str], None] = print) -> None:
    """Create ``out`` or check it; UsageError (one line) when it cannot be used as asked."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file, not a folder; choose a folder for the run's outputs")
    if resume and overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it: choose one")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create the folder ({exc.strerror or exc})") from None
    found = earlier_outputs(out)
    if test_only or not found:
        if resume and not test_only and is_main:
            log(f"--resume: {out} holds no earlier run; starting a new one")
        return
    if resume:
        if not any(name in found for name in RESUMABLE):
            raise UsageError(f"--resume: {out} holds an earlier run's {', '.join(found)} but no checkpoint.pt "
                             "to continue from; use --overwrite to replace it, or another --out")
        return
    if not overwrite:
        raise UsageError(f"{out}: holds an earlier run ({', '.join(found)}); add --resume to continue it, "
                         "--overwrite to replace it, or choose another --out")
    if is_main:
        for name in found:
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        log(f"--overwrite: removed the earlier run's {', '.join(found)} from {out}")
