"""Qt-free state of the viewer's AI panels: per-series results, the class shown, the CAM cache.

Results are tagged with (study UID, series UID, model id) and stored per series (a
small LRU), so the probability panel, the series result and the per-slice strip
are all read from one place and can never disagree.  The class the strip shows is
the class named in the panel's Class selector, or, for "Top class", the series'
top class under the panel's aggregation.  The series aggregation itself is the
engine's (`medviewer.engine.infer.aggregate`), handed in by the caller so that the
core stays free of the engine.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from medviewer.viewer.state.events import Event

ResultKey = tuple[str, str, str]            # study UID, series UID, model id
Aggregate = Callable[[np.ndarray, str, int], np.ndarray]   # (N, C) probs, method, k -> (C,)

MAX_SERIES = 8
CAM_CACHE = 32


class SeriesResults:
    """Per-slice class probabilities (N slices x C classes) of one series for one model;
    rows of NaN are slices not analysed (yet)."""

    def __init__(self, key: ResultKey, n_slices: int, classes: Sequence[str],
                 ood_threshold: float | None = None) -> None:
        self.key = key
        self.classes = list(classes)
        self.probs = np.full((int(n_slices), len(self.classes)), np.nan, np.float32)
        # trust signals (engine.ood, engine.inputcheck, engine.audit): OOD scores per slice (NaN: not
        # yet; None: the model has no OOD check), the input check's warnings, the audit entry
        # of the last finished analysis and the reader's last recorded verdict on it
        self.ood_threshold = ood_threshold
        self.ood: np.ndarray | None = (np.full(int(n_slices), np.nan, np.float32)
                                       if ood_threshold is not None else None)
        self.input_warnings: list[str] = []
        self.analysis_id: str | None = None
        self.verdict: tuple[str, str, str, str] | None = None   # (verdict, comment, OS user, UTC time)

    def __len__(self) -> int:
        return len(self.probs)

    def store(self, start: int, probs: np.ndarray) -> tuple[int, int]:
        """Put a batch of rows at `start`; returns the (start, stop) actually written."""
        probs = np.asarray(probs, np.float32)
        stop = min(len(self.probs), start + len(probs))
        if start < stop:
            self.probs[start:stop] = probs[: stop - start]
        return start, max(start, stop)

    def store_ood(self, start: int, scores: np.ndarray) -> None:
        """OOD scores of a batch of slices from `start` (ignored without an OOD check)."""
        if self.ood is None:
            return
        scores = np.asarray(scores, np.float32)
        stop = min(len(self.ood), start + len(scores))
        if start < stop:
            self.ood[start:stop] = scores[: stop - start]

    def flags(self) -> np.ndarray | None:
        """(N,) bool: slice scored above the model's threshold (None without an OOD check)."""
        if self.ood is None or self.ood_threshold is None:
            return None
        with np.errstate(invalid="ignore"):
            return self.ood > self.ood_threshold

    def ood_counts(self) -> tuple[int, int] | None:
        """(slices flagged, slices scored), None without an OOD check."""
        flags = self.flags()
        if flags is None:
            return None
        return int(np.count_nonzero(flags)), int(np.count_nonzero(~np.isnan(self.ood)))

    def ood_at(self, index: int) -> float | None:
        if self.ood is None or not 0 <= index < len(self.ood) or np.isnan(self.ood[index]):
            return None
        return float(self.ood[index])

    def done(self) -> np.ndarray:
        """Mask of the analysed slices."""
        return ~np.isnan(self.probs[:, 0]) if self.probs.size else np.zeros(len(self.probs), bool)

    def filled(self) -> int:
        return int(np.count_nonzero(self.done()))

    def at(self, index: int) -> np.ndarray | None:
        """The probabilities of slice `index`, None when not analysed."""
        if not 0 <= index < len(self.probs) or np.isnan(self.probs[index, 0]):
            return None
        return self.probs[index]


@dataclass(frozen=True)
class StripView:
    """What the per-slice strip shows: one class's probability per slice (NaN: not analysed)."""

    class_index: int
    class_name: str
    values: np.ndarray
    top: bool          # chosen as the series' top class ("Top class" in the panel)
    aggregation: str   # how the series' top class was found
    flags: np.ndarray | None = None   # slices flagged out-of-distribution (None: no OOD check)

    def label(self) -> str:
        how = f"series top class, {self.aggregation}" if self.top else "chosen class"
        return f"Strip: P({self.class_name}) per slice ({how})"

    def tooltip(self, index: int) -> str:
        if not 0 <= index < len(self.values):
            return ""
        v = self.values[index]
        if np.isnan(v):
            return f"slice {index + 1}: not analysed"
        unusual = (" (unlike the images the model was trained on)"
                   if self.flags is not None and index < len(self.flags) and self.flags[index] else "")
        return f"slice {index + 1}: {self.class_name} {float(v):.3f}{unusual}"


class CamCache:
    """The last `size` Grad-CAM maps, keyed by (model id, ImageRef, class, method)."""

    def __init__(self, size: int = CAM_CACHE) -> None:
        self.size = size
        self._maps: OrderedDict[Hashable, tuple[int, np.ndarray]] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._maps

    def __len__(self) -> int:
        return len(self._maps)

    def get(self, key: Hashable) -> tuple[int, np.ndarray] | None:
        """(class index the map explains, map on the image's pixel grid), most recent first."""
        got = self._maps.get(key)
        if got is not None:
            self._maps.move_to_end(key)
        return got

    def put(self, key: Hashable, class_index: int, cam: np.ndarray) -> None:
        self._maps[key] = (int(class_index), cam)
        self._maps.move_to_end(key)
        while len(self._maps) > self.size:
            self._maps.popitem(last=False)

    def clear(self) -> None:
        self._maps.clear()


class AIResults:
    """Everything the AI panels show, for any series and viewport.

    events: changed(key) when results of a series arrive, choice_changed() when the
    class or the aggregation changes (the strip and the series result follow at once).
    """

    def __init__(self, aggregate: Aggregate, max_series: int = MAX_SERIES,
                 cam_cache: int = CAM_CACHE) -> None:
        self._aggregate = aggregate
        self.max_series = max_series
        self.aggregation = "mean"
        self.k = 3
        self.class_choice: int | None = None   # the panel's Class selector; None = top class
        self.cams = CamCache(cam_cache)
        self._series: OrderedDict[ResultKey, SeriesResults] = OrderedDict()
        self.changed = Event("changed")
        self.choice_changed = Event("choice_changed")

    def clear(self) -> None:
        """Forget every result and map (the model changed)."""
        self._series.clear()
        self.cams.clear()

    def get(self, key: ResultKey | None) -> SeriesResults | None:
        return None if key is None else self._series.get(key)

    def results_for(self, key: ResultKey | None, n_slices: int) -> SeriesResults | None:
        """The results of `key` if they still fit a series of `n_slices` slices (a scan
        that added slices re-numbers them: those results are dropped, never misplaced)."""
        res = self.get(key)
        if res is not None and len(res) != n_slices:
            del self._series[key]
            return None
        return res

    def ensure(self, key: ResultKey, n_slices: int, classes: Sequence[str],
               ood_threshold: float | None = None) -> SeriesResults:
        """The results of `key`, new (all NaN) when there are none for this many slices;
        `ood_threshold`: the model's OOD threshold (None: it has no OOD check)."""
        res = self.results_for(key, n_slices)
        if res is None or res.classes != list(classes) or res.ood_threshold != ood_threshold:
            res = self._series[key] = SeriesResults(key, n_slices, classes, ood_threshold)
        self._series.move_to_end(key)
        while len(self._series) > self.max_series:
            self._series.popitem(last=False)
        return res

    def store(self, key: ResultKey, start: int, probs: np.ndarray,
              ood: np.ndarray | None = None) -> tuple[int, int] | None:
        res = self._series.get(key)
        if res is None:
            return None
        if ood is not None:
            res.store_ood(start, ood)
        span = res.store(start, probs)
        self.changed.emit(key)
        return span

    # -- what the panel shows ---------------------------------------------------------
    def series_probs(self, key: ResultKey | None) -> tuple[np.ndarray, int] | None:
        """(aggregated class probabilities, slices used) of the analysed slices, or None."""
        res = self.get(key)
        if res is None:
            return None
        done = res.probs[res.done()]
        if len(done) == 0:
            return None
        return np.asarray(self._aggregate(done, self.aggregation, self.k)), len(done)

    def strip_class(self, key: ResultKey | None) -> tuple[int, bool] | None:
        """(class index, chosen as the top class) of the strip, None before any result."""
        res = self.get(key)
        if res is None:
            return None
        if self.class_choice is not None and 0 <= self.class_choice < len(res.classes):
            return int(self.class_choice), False
        agg = self.series_probs(key)
        if agg is None:
            return None
        return int(np.argmax(agg[0])), True

    def strip(self, key: ResultKey | None) -> StripView | None:
        """The strip's class, label and per-slice values, from the stored probabilities."""
        res = self.get(key)
        chosen = self.strip_class(key)
        if res is None or chosen is None:
            return None
        ci, top = chosen
        flags = res.flags()
        return StripView(ci, res.classes[ci], res.probs[:, ci].copy(), top, self.aggregation,
                         None if flags is None else flags.copy())

    def set_class_choice(self, class_index: int | None) -> None:
        if class_index != self.class_choice:
            self.class_choice = None if class_index is None else int(class_index)
            self.choice_changed.emit()

    def set_aggregation(self, method: str, k: int | None = None) -> None:
        self.aggregation = str(method)
        if k is not None:
            self.k = int(k)
        self.choice_changed.emit()

