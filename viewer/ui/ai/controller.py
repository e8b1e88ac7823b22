"""AIController: binds the engine to the main window (menus, docks, strip, Grad-CAM overlay).

What the panels show lives in a Qt-free `AIResults` (viewer.state.ai: results per
series, the class the strip shows, the CAM cache); view state lives in the window's
ViewState.  Engine work runs as tasks (viewer.ui.ai.worker) on `TaskRunner`s; every
result passes the ResultRouter (tagged study/series/slice/model/generation) before
anything is stored or painted, so stale results are dropped (STYLE.md pattern 5).
Out-of-distribution scores and the input check's warnings travel the same way and
are stored with the probabilities; every finished analysis is appended to the audit
log, and the reader's verdict on it too (engine.audit, written by `audit_task` on a
one-thread runner off the GUI thread).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QThreadPool
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QVBoxLayout, QWidget

from medviewer.engine.infer import aggregate, aggregation_name
from medviewer.engine.results import ResultRouter
from medviewer.viewer.state.ai import AIResults, ResultKey
from medviewer.viewer.ui.ai.camlayer import OVERLAY, CamLayer
from medviewer.viewer.ui.ai.strip import SliceStrip
from medviewer.viewer.ui.ai.widgets import CamControls, ModelPicker, ProbabilityPanel
from medviewer.viewer.ui.ai.worker import audit_task, load_task, series_task
from medviewer.viewer.ui.workers import CANCELLED, TaskRunner, TaskState

log = logging.getLogger("medviewer.ai")

MODEL_SUFFIX = ".safetensors"
# CPUs left to the GUI thread when torch's threads are counted (engine.threads;
# bench/bench_contention.py measures analysis beside the viewer's decode threads)
GUI_RESERVE = 1


class AIController(QObject):
    """Everything AI in the window; created by viewer.ui.ai.install(window)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.state = window.state
        self.router = ResultRouter()        # series/image classification jobs
        self.results = AIResults(lambda probs, method, k: aggregate(probs, method, k=k))
        self.model: Any = None
        self.dropped = 0                    # stale batches dropped (for tests and logs)
        self._job_started = 0.0
        self._job_count = 0
        self._per_image: float | None = None
        self._job_view: tuple[str, str] | None = None   # (study, series) of the last analysis
        self._job_key: ResultKey | None = None          # results key of the running analysis
        self._job_gen = 0                                # the newest classification job started here
        self.audit_path: Any = None                      # None: the user data folder's audit log
        self._pending_analysis: tuple[ResultKey, str] | None = None
        self._build_widgets()
        self._build_runners()
        self._build_actions()
        self._connect()
        self.picker.refresh()
        self._update_actions()
        saved = self._setting("ai/model", "")
        if saved and Path(saved).is_file():
            self.load_model(saved)

    # -- construction ----------------------------------------------------------------
    def _build_widgets(self) -> None:
        w = self.window
        self.picker = ModelPicker()
        self.panel = ProbabilityPanel()
        self.cam = CamControls()
        holder = QWidget()
        holder.setObjectName("ai_panel")
        lay = QVBoxLayout(holder)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.panel)
        lay.addWidget(self.cam)
        self.models_dock = w.add_dock(self.picker, title="AI models", scrollable=True)
        self.results_dock = w.add_dock(holder, title="AI results", scrollable=True)
        self.strip = SliceStrip(align_to=getattr(w, "slider", None))
        w.set_slice_strip(self.strip)
        self.strip.setVisible(False)
        self.cam_layer = CamLayer(w, self.cam, self.results, lambda: self.model, self)

    def _build_runners(self) -> None:
        # model loads and analyses share one thread (never two torch jobs at once)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.loads = TaskRunner(self, name="model load", pool=self.pool)
        self.jobs = TaskRunner(self, name="AI analysis", pool=self.pool)
        # audit-log writes: one thread of their own, never cancelled (entries in order, none lost)
        self.audits = TaskRunner(self, name="audit log")

    def _build_actions(self) -> None:
        menu = self.window.ai_menu
        self.act_analyze_image = self._action(menu, "Analyze image", "Ctrl+I", self.analyze_image)
        self.act_analyze_series = self._action(menu, "Analyze series", "Ctrl+Shift+I", self.analyze_series)
        self.act_cancel = self._action(menu, "Cancel analysis", None, self.cancel)
        menu.addSeparator()
        self._action(menu, "Load model file...", None, self.choose_model_file)
        self._action(menu, "Show models", None, lambda: self.models_dock.show())
        self._action(menu, "Export view with overlay...", None, self.choose_export)

    def _connect(self) -> None:
        self.picker.sig_model_chosen.connect(self.load_model)
        self.picker.sig_load_file.connect(self.choose_model_file)
        self.panel.aggregation.currentIndexChanged.connect(
            lambda _i: self.results.set_aggregation(str(self.panel.aggregation.currentData())))
        dev = str(self._setting("ai/device", "auto") or "auto")
        if self.picker.device.findText(dev) >= 0:
            self.picker.device.setCurrentText(dev)
        self.picker.device.currentTextChanged.connect(self._device_changed)
        self.panel.cancel_button.clicked.connect(self.cancel)
        self.cam.sig_changed.connect(self._cam_controls_changed)
        self.strip.sig_slice_clicked.connect(self.state.set_slice)
        self.state.sig_series_changed.connect(self.on_series_changed)
        self.state.sig_slice_changed.connect(self.on_slice_changed)
        self.results.choice_changed.connect(self._show_results)
        self.loads.sig_finished.connect(self._on_load_finished)
        self.jobs.sig_partial.connect(self.on_batch)
        self.jobs.sig_progress.connect(self.on_progress)
        self.jobs.sig_finished.connect(self.on_finished)
        self.audits.sig_finished.connect(self.on_audit)
        self.panel.verdict.sig_verdict.connect(self.record_verdict)
        self.window.add_drop_handler(lambda p: p.suffix.lower() == MODEL_SUFFIX and p.is_file(),
                                     self.load_model_file)

    # -- helpers ----------------------------------------------------------------
    def _action(self, menu: Any, text: str, shortcut: str | None, slot: Any) -> QAction:
        act = QAction(text, self.window)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(lambda _checked=False: slot())
        menu.addAction(act)
        return act

    def _setting(self, key: str, default: Any) -> Any:
        try:
            return self.window.settings.value(key, default)
        except Exception:  # settings are a convenience, never fatal
            return default

    def _update_actions(self) -> None:
        ready = self.model is not None
        self.act_analyze_image.setEnabled(ready)
        self.act_analyze_series.setEnabled(ready)

    def _view_key(self) -> tuple[str, str] | None:
        s = self.state.series
        if s is None:
            return None
        return self.state.study_uid_of(s), str(s.series_uid)

    def _result_key(self) -> ResultKey | None:
        view = self._view_key()
        if view is None or self.model is None:
            return None
        return view[0], view[1], self.model.model_id

    def _view_results(self) -> Any:
        """The stored results of the series in view (None when there are none)."""
        return self.results.results_for(self._result_key(), self.state.count())

    @property
    def probs(self) -> np.ndarray | None:
        """(N, C) probabilities of the series in view; NaN rows = not analysed."""
        res = self._view_results()
        return None if res is None else res.probs

    @property
    def ood(self) -> np.ndarray | None:
        """(N,) OOD scores of the series in view (NaN: not yet); None without an OOD check."""
        res = self._view_results()
        return None if res is None else res.ood

    @property
    def input_warnings(self) -> list[str]:
        res = self._view_results()
        return [] if res is None else list(res.input_warnings)

    @property
    def analysis_id(self) -> str | None:
        """The audit-log entry of the result in view (verdicts name it)."""
        res = self._view_results()
        return None if res is None else res.analysis_id

    @property
    def cams(self) -> Any:
        return self.results.cams

    def _device_changed(self, device: str) -> None:
        """Remember the device (settings 'ai/device') and reload the current model there."""
        try:
            self.window.settings.set_value("ai/device", device)
        except Exception:
            pass
        if self.model is not None and self.model.path is not None:
            self.load_model(str(self.model.path))

    # -- model ------------------------------------------------------------------
    def load_model(self, path: str) -> None:
        """Load a model file on the worker thread (imports torch lazily); a newer
        request supersedes one still loading."""
        device = str(self._setting("ai/device", "auto") or "auto")
        from medviewer.engine.threads import torch_threads

        threads = torch_threads(reserve=GUI_RESERVE)
        self.panel.status.setText(f"Loading {Path(path).name}...")
        self.loads.start(load_task, str(path), None if device == "auto" else device, threads, key=str(path))

    def choose_model_file(self) -> None:
        """AI > Load model file...: any .safetensors file, from the folder used last."""
        start = str(self._setting("ai/model_folder", "") or Path.home())
        path, _ = QFileDialog.getOpenFileName(self.window, "Load model file", start,
                                              f"medviewer models (*{MODEL_SUFFIX});;All files (*)")
        if path:
            self.load_model_file(Path(path))

    def load_model_file(self, path: str | Path) -> None:
        """Load a model file chosen or dropped by the user (listed in the picker too)."""
        path = Path(path)
        try:
            self.window.settings.set_value("ai/model_folder", str(path.parent))
        except Exception:
            pass
        self.picker.refresh(extra=[path])
        self.window.show_message(f"AI: loading model file {path.name}")
        self.load_model(str(path))

    def load_default_model(self) -> bool:
        """Load the bundled demo model unless a model is loaded or loading
        (used by `medviewer --demo`, so every AI feature works out of the box)."""
        from medviewer.viewer.resources import resource

        saved = self._setting("ai/model", "")
        if self.model is not None or (saved and Path(saved).is_file()):
            return False
        demo = resource("models", "demo.safetensors")
        if not demo.is_file():
            return False
        self.load_model(str(demo))
        return True

    def _on_load_finished(self, state: TaskState, model: Any, error: str | None) -> None:
        if error:
            if error != CANCELLED:
                self.panel.status.setText(f"Model not loaded: {error}")
                self.window.show_message(f"AI: {error}", 8000)
            return
        self.on_loaded(model)

    def on_loaded(self, model: Any) -> None:
        from medviewer.engine.device import describe

        self.model = model
        self.router.cancel()
        self.cam_layer.cancel()
        self.results.clear()
        self.panel.set_model(model.card, describe(model.device), model.path)
        self.panel.status.setText(f"Model ready: {model.card.summary()}")
        self.cam.set_classes(model.classes)
        self.results.set_class_choice(None)
        if not self.picker.select_path(model.path):
            self.picker.refresh(extra=[model.path])   # a file from outside the models folders
            self.picker.select_path(model.path)
        self.strip.setVisible(False)
        self.window.canvas.set_overlay(OVERLAY, None)
        try:
            self.window.settings.set_value("ai/model", str(model.path))
        except Exception:
            pass
        self._update_actions()
        self._show_results()
        self.update_cam()

    # -- jobs ---------------------------------------------------------------------
    def _start(self, refs: list[Any], first_index: int) -> int | None:
        key = self._result_key()
        if key is None:
            self.window.show_message("AI: choose a model and open a series first")
            return None
        series = self.state.series
        gen = self.router.start_job(key[0], key[1], self.model.model_id)
        self.router.set_view(key[0], key[1])
        self._job_view = (key[0], key[1])
        threshold = self.model.ood.threshold if self.model.ood is not None else None
        res = self.results.ensure(key, len(series.items), self.model.classes, threshold)
        res.analysis_id, res.verdict = None, None          # a new analysis: the old verdict was on another
        self._job_key, self._job_gen, self._pending_analysis = key, gen, None
        self._job_started = time.perf_counter()
        self._job_count = len(refs)
        self._per_image = None
        self.panel.progress.setRange(0, len(refs))
        self.panel.progress.setValue(0)
        self.panel.progress.setVisible(True)
        self.panel.cancel_button.setVisible(True)
        self._show_results()
        self.jobs.start(series_task, self.model, self.window.pixels, refs,
                        (max(1, series.rows), max(1, series.columns)), first_index, series=series,
                        key=(gen, key), is_current=lambda: self.router.is_current(gen))
        return gen

    def analyze_image(self) -> int | None:
        ref = self.state.ref()
        return None if ref is None else self._start([ref], self.state.index)

    def analyze_series(self) -> int | None:
        s = self.state.series
        return None if s is None else self._start(list(s.items), 0)

    def cancel(self) -> None:
        """Stop the running job at its next batch; results so far stay."""
        self.router.cancel()
        self.cam_layer.cancel()

    # -- results --------------------------------------------------------------------
    def on_progress(self, state: TaskState, done: int, total: int) -> None:
        if self.router.is_current(state.key[0]):
            self.panel.progress.setValue(done)

    def on_batch(self, state: TaskState, batch: tuple) -> None:
        """A partial result: ("inputcheck", warnings) or ("batch", start, probs, OOD scores|None)."""
        gen, key = state.key
        if batch[0] == "inputcheck":
            res = self.results.get(key)
            if res is not None and self.router.is_current(gen):
                res.input_warnings = list(batch[1])
                self._show_results()
            return
        _, start, probs, scores = batch
        if not self.router.accept(self.router.tag(gen, start)) \
                or self.results.store(key, start, probs, scores) is None:
            self.dropped += 1
            return
        self._show_results()

    def on_finished(self, state: TaskState, _result: Any, error: str | None) -> None:
        gen = state.key[0]
        current = self.router.is_current(gen)
        if not current and error is None:
            return
        self.panel.progress.setVisible(False)
        self.panel.cancel_button.setVisible(False)
        if error == CANCELLED or not current:
            self.panel.status.setText("Analysis cancelled")
        elif error:
            self.panel.status.setText(f"Analysis failed: {error}")
            self.window.show_message(f"AI: {error}", 8000)
        else:
            n = self._job_count
            self._per_image = state.seconds / max(n, 1)
            self.panel.status.setText(f"Analyzed {n} image(s) in {state.seconds:.2f} s "
                                      f"({self._per_image * 1000:.0f} ms per image)")
        self._show_results()
        if (error is None or error == CANCELLED) and gen == self._job_gen:   # not a superseded job
            self._record_analysis(state.key[1], "complete" if error is None and current else "cancelled")

    def _show_results(self) -> None:
        """Panel bars, series result and strip, all from the stored results of the view."""
        self._show_strip()
        self._show_slice_probs()
        self._show_series_result()

    def _show_strip(self) -> None:
        key = self._result_key()
        res = self.results.results_for(key, self.state.count())
        if res is None:
            self.strip.reset(0)
            self.strip.setVisible(False)
            return
        self.strip.set_view(self.results.strip(key), len(res))
        self.strip.set_current(self.state.index)
        self.strip.setVisible(True)

    def _show_slice_probs(self) -> None:
        res = self._view_results()
        i = self.state.index
        probs = None if res is None else res.at(i)
        if probs is None:
            self.panel.set_probabilities(None)
            self.panel.trust.set_slice(None, None)
            return
        per = self._per_image
        if per is None:  # job still running: elapsed time over results so far
            per = (time.perf_counter() - self._job_started) / max(1, res.filled())
        self.panel.set_probabilities(probs, where=f"slice {i + 1}", seconds=per)
        self.panel.trust.set_slice(res.ood_at(i), res.ood_threshold,
                                   f"slice {i + 1}" if len(res) > 1 else "this image")

    def _show_series_result(self) -> None:
        key = self._result_key()
        res = self.results.results_for(key, self.state.count())
        agg = self.results.series_probs(key)
        self._show_trust(res)
        if agg is None or res is None:
            self.panel.set_series_result("")
            return
        probs, used = agg
        top = int(np.argmax(probs))
        self.panel.set_series_result(
            f"Series ({aggregation_name(self.results.aggregation, self.results.k)} over {used}/{len(res)} "
            f"slices): <b>{res.classes[top]}</b> {probs[top]:.3f}")

    # -- trust: OOD, input check, audit log and the reader's verdict ------------------------
    def _show_trust(self, res: Any) -> None:
        """The series' input warnings, OOD count and verdict bar, from the stored results."""
        trust, bar = self.panel.trust, self.panel.verdict
        if res is None:
            trust.clear()
            bar.set_analysis(None)
            return
        trust.set_input_warnings(res.input_warnings)
        counts = res.ood_counts()
        if counts is None:
            trust.set_series(0, 0, len(res))
        else:
            trust.set_series(counts[0], counts[1], len(res))
        pending = self._pending_analysis is not None and self._pending_analysis[0] == res.key
        if res.analysis_id is not None:
            if bar.analysis_id != res.analysis_id:
                bar.set_analysis(res.analysis_id, "Result recorded in the audit log; your verdict:")
                if res.verdict is not None:
                    verdict, comment, user, when = res.verdict
                    bar.show_recorded(verdict, user, when[11:19] + " UTC", comment)
        elif pending:
            bar.set_analysis(None, "Recording the result in the audit log...")
        else:
            bar.set_analysis(None)

    def _record_analysis(self, key: ResultKey, status: str) -> None:
        """Append the result of `key` (the analysis just finished) to the audit log."""
        from medviewer.engine import audit
        from medviewer.engine.device import describe

        res = self.results.get(key)
        series = self.state.series
        if res is None or self.model is None or key[2] != self.model.model_id:
            return
        done = res.done()
        if not done.any():
            return
        view = self._view_key()
        refs = ([series.items[i] for i in np.flatnonzero(done)]
                if series is not None and view == key[:2] and len(series.items) == len(res) else [])
        agg = aggregate(res.probs[done], self.results.aggregation, k=self.results.k)
        counts = res.ood_counts()
        entry = audit.Analysis(
            model_name=self.model.card.name, model_version=self.model.card.version,
            model_sha256=self.model.sha256, device=describe(self.model.device),
            study_uid=key[0], series_uid=key[1], n_items=int(done.sum()),
            sop_uids=audit.sop_uids(series, refs) if refs else [],
            result=audit.series_result(res.classes, agg, aggregation_name(self.results.aggregation, self.results.k)),
            status=status, ood_checked=counts is not None,
            ood_flagged=counts[0] if counts else None,
            ood_fraction=(counts[0] / counts[1] if counts and counts[1] else None),
            input_warnings=list(res.input_warnings), source="viewer")
        self._pending_analysis = (key, entry.id)
        self.audits.start(audit_task, entry, self.audit_path, key=("analysis", key), replace=False)
        self._show_results()

    def record_verdict(self, verdict: str, comment: str) -> None:
        """The reader's verdict on the result in view: a new audit-log row naming it."""
        from medviewer.engine.audit import Verdict

        res = self._view_results()
        if res is None or res.analysis_id is None:
            return
        self.panel.verdict.status.setText("Recording your verdict...")
        self.audits.start(audit_task, Verdict(res.analysis_id, verdict, comment, source="viewer"),
                          self.audit_path, key=("verdict", res.key), replace=False)

    def on_audit(self, state: TaskState, entry: Any, error: str | None) -> None:
        kind, key = state.key
        res = self.results.get(key)
        bar = self.panel.verdict
        in_view = res is not None and res is self._view_results()
        if error:
            log.warning("audit log: %s", error)
            self.window.show_message(f"AI: audit log not written: {error}", 10000)
            if kind == "analysis" and self._pending_analysis and self._pending_analysis[0] == key:
                self._pending_analysis = None
                if in_view:
                    bar.set_analysis(None, f"<span style='color:#c33'>Not recorded in the audit log: "
                                           f"{error}</span>")
            elif kind == "verdict" and in_view:
                bar.status.setText(f"<span style='color:#c33'>Verdict not recorded: {error}</span>")
            return
        if kind == "analysis":
            if self._pending_analysis == (key, entry.id) and res is not None:
                self._pending_analysis = None
                res.analysis_id = entry.id
                if in_view:
                    self._show_trust(res)
        elif res is not None and entry.analysis_id == res.analysis_id:
            res.verdict = (entry.verdict, entry.comment, entry.os_user, entry.time)
            if in_view:
                bar.show_recorded(entry.verdict, entry.os_user, entry.time[11:19] + " UTC", entry.comment)

    # -- view changes -------------------------------------------------------------------
    def on_series_changed(self, _series: Any) -> None:
        view = self._view_key()
        self.router.set_view(*(view or (None, None)))
        self.cam_layer.cancel()
        if view != self._job_view:
            self.router.cancel()  # results for the old series would be dropped anyway
        self._show_results()

    def on_slice_changed(self, index: int) -> None:
        self.strip.set_current(index)
        self._show_slice_probs()
        self.update_cam()

    # -- Grad-CAM -------------------------------------------------------------------------
    def _cam_controls_changed(self) -> None:
        self.results.set_class_choice(self.cam.class_index())   # the strip follows at once
        self.update_cam()

    def update_cam(self) -> None:
        self.cam_layer.update()

    # -- export -----------------------------------------------------------------------------
    def choose_export(self) -> Path | None:
        return self.window.choose_export("Export view with overlay")

    def export_png(self, path: str | Path, anonymize: bool = True) -> Path:
        """The current view (image, Grad-CAM overlay, text) as a PNG file."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        try:
            return self.window.export_view(path, anonymize=anonymize)
        except OSError as exc:
            self.window.show_message(f"Export failed: {exc}", 8000)
            raise

    def shutdown(self) -> None:
        self.cancel()
        self.loads.shutdown(5000)
        self.jobs.shutdown(5000)
        self.cam_layer.shutdown(5000)
        self.audits.wait(10000)   # never cancelled: every audit entry is written before closing
