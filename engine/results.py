"""Tagging AI results and dropping stale ones (STYLE.md pattern 5), Qt-free.

Every job gets a generation number; every result carries a `ResultTag`
(study, series, slice/frame index, model, generation).  The router accepts a
result only if it belongs to the newest job *and* to what is shown now, so a
late result for slice 40 of series A is never painted over series B.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class ResultTag:
    study_uid: str
    series_uid: str
    index: int          # position in Series.items (a slice, or one frame of a multi-frame file)
    model_id: str
    generation: int


@dataclass(frozen=True)
class JobKey:
    study_uid: str
    series_uid: str
    model_id: str


class ResultRouter:
    """Generation counter + current view: decides whether a result may be shown.

    Thread-safe: workers may call `is_current` to stop early; the GUI thread
    calls `accept` before painting.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._job: JobKey | None = None
        self._view: tuple[str, str] | None = None

    @property
    def generation(self) -> int:
        return self._generation

    def start_job(self, study_uid: str, series_uid: str, model_id: str) -> int:
        """A new job supersedes every earlier one; returns its generation."""
        with self._lock:
            self._generation += 1
            self._job = JobKey(study_uid, series_uid, model_id)
            return self._generation

    def cancel(self) -> None:
        """Invalidate all running jobs (e.g. the model changed)."""
        with self._lock:
            self._generation += 1
            self._job = None

    def set_view(self, study_uid: str | None, series_uid: str | None) -> None:
        """What the canvas shows now (None: nothing)."""
        with self._lock:
            self._view = None if series_uid is None else (study_uid or "", series_uid)

    def tag(self, generation: int, index: int) -> ResultTag:
        with self._lock:
            job = self._job
        if job is None:
            return ResultTag("", "", index, "", -1)
        return ResultTag(job.study_uid, job.series_uid, index, job.model_id, generation)

    def is_current(self, generation: int) -> bool:
        """True while the job of `generation` has not been superseded (cheap, for workers)."""
        return generation == self._generation

    def accept(self, tag: ResultTag) -> bool:
        """True only for results of the newest job that match the series shown now."""
        with self._lock:
            job, gen, view = self._job, self._generation, self._view
        return (job is not None and tag.generation == gen
                and (tag.study_uid, tag.series_uid, tag.model_id) == (job.study_uid, job.series_uid, job.model_id)
                and view == (tag.study_uid, tag.series_uid))
