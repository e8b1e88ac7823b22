"""AIController: binds the engine to the main window (menus, docks, strip, Grad-CAM overlay).

View state lives in the window's ViewState; results arrive from worker jobs
by signal and pass the ResultRouter (tagged study/series/slice/model/generation)
before anything is painted, so stale results are dropped (STYLE.md pattern 5).
Out-of-distribution scores and the input check's warnings travel the same way;
every finished analysis is appended to the audit log, and the reader's verdict
on it too (engine.audit, written by AuditJob off the GUI thread).
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, QThreadPool, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QFileDialog, QFrame, QScrollArea, QVBoxLayout, QWidget

from medviewer.engine.results import ResultRouter
from medviewer.viewer.ui.ai.strip import SliceStrip
from medviewer.viewer.ui.ai.widgets import CamControls, ModelPicker, ProbabilityPanel
from medviewer.viewer.ui.ai.worker import AuditJob, CamJob, JobSignals, LoadJob, SeriesJob

log = logging.getLogger("medviewer.ai")

OVERLAY = "gradcam"
CAM_DELAY_MS = 80
CAM_CACHE = 32


class AIController(QObject):
    """Everything AI in the window; created by viewer.ui.ai.install(window)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.state = window.state
        self.router = ResultRouter()        # series/image classification jobs
        self.cam_router = ResultRouter()    # Grad-CAM requests (newest wins)
        self._model_gen = 0
        self.signals = JobSignals(self)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.cam_pool = QThreadPool(self)
        self.cam_pool.setMaxThreadCount(1)
        self.audit_pool = QThreadPool(self)      # one thread: entries are written in order
        self.audit_pool.setMaxThreadCount(1)
        self.audit_path: Any = None              # None: the user data folder's audit log
        self.model: Any = None
        self.probs: np.ndarray | None = None      # (N, C) of the series in view, NaN = not yet
        self.ood: np.ndarray | None = None        # (N,) OOD scores, NaN = not yet; None: no OOD model
        self.input_warnings: list[str] = []
        self.analysis_id: str | None = None       # audit entry of the result in view (verdicts name it)
        self._pending_analysis: Any = None
        self._job_refs: list[Any] = []
        self._job_gen = 0                         # the newest classification job started here
        self._probs_key: tuple[str, str, str] | None = None
        self._job_started = 0.0
        self._job_count = 0
        self._per_image: float | None = None
        self.dropped = 0                          # stale batches dropped (for tests and logs)
        self.cams: OrderedDict[tuple[Any, ...], tuple[int, np.ndarray]] = OrderedDict()
        self._cam_shown: tuple[Any, ...] | None = None
        self.aggregation = "mean"

        # widgets
        self.picker = ModelPicker()
        self.panel = ProbabilityPanel()
        self.cam = CamControls()
        holder = QWidget()
        holder.setObjectName("ai_panel_content")
        lay = QVBoxLayout(holder)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.panel)
        lay.addWidget(self.cam)
        scroll = QScrollArea()   # warnings must never be cut off in a short dock: it scrolls
        scroll.setObjectName("ai_panel")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(holder)
        self.models_dock = window.add_dock(self.picker, title="AI models")
        self.results_dock = window.add_dock(scroll, title="AI results")
        self.strip = SliceStrip(align_to=getattr(window, "slider", None))
        window.set_slice_strip(self.strip)
        self.strip.setVisible(False)
        self._cam_timer = QTimer(self)
        self._cam_timer.setSingleShot(True)
        self._cam_timer.setInterval(CAM_DELAY_MS)
        self._cam_timer.timeout.connect(self.request_cam)

        # actions
        menu = window.ai_menu
        self.act_analyze_image = self._action(menu, "Analyze image", "Ctrl+I", self.analyze_image)
        self.act_analyze_series = self._action(menu, "Analyze series", "Ctrl+Shift+I", self.analyze_series)
        self.act_cancel = self._action(menu, "Cancel analysis", None, self.cancel)
        menu.addSeparator()
        self._action(menu, "Show models", None, lambda: self.models_dock.show())
        self._action(menu, "Export view with overlay...", None, self.choose_export)

        # bindings
        self.picker.sig_model_chosen.connect(self.load_model)
        self.panel.aggregation.currentIndexChanged.connect(self._aggregation_changed)
        dev = str(self._setting("ai/device", "auto") or "auto")
        if self.picker.device.findText(dev) >= 0:
            self.picker.device.setCurrentText(dev)
        self.picker.device.currentTextChanged.connect(self._device_changed)
        self.panel.cancel_button.clicked.connect(self.cancel)
        self.cam.sig_changed.connect(self.update_cam)
        self.strip.sig_slice_clicked.connect(self.state.set_slice)
        self.state.sig_series_changed.connect(self.on_series_changed)
        self.state.sig_slice_changed.connect(self.on_slice_changed)
        self.signals.sig_loaded.connect(self.on_loaded)
        self.signals.sig_batch.connect(self.on_batch)
        self.signals.sig_ood.connect(self.on_ood)
        self.signals.sig_guard.connect(self.on_guard)
        self.signals.sig_audit.connect(self.on_audit)
        self.panel.verdict.sig_verdict.connect(self.record_verdict)
        self.signals.sig_cam.connect(self.on_cam)
        self.signals.sig_progress.connect(self.on_progress)
        self.signals.sig_finished.connect(self.on_finished)

        self.picker.refresh()
        self._update_actions()
        saved = self._setting("ai/model", "")
        if saved and Path(saved).is_file():
            self.load_model(saved)

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

    def _strip_class(self) -> int:
        ci = self.cam.class_index()
        return int(ci) if ci is not None else len(self.model.classes) - 1 if self.model else 0

    def _aggregation_changed(self, _i: int) -> None:
        self.aggregation = str(self.panel.aggregation.currentData())
        self._show_series_result()

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
        """Load a model file on the worker thread (imports torch lazily)."""
        self._model_gen += 1
        device = str(self._setting("ai/device", "auto") or "auto")
        threads = max(1, (os.cpu_count() or 2) - 1)  # leave a core for the GUI thread
        self.panel.status.setText(f"Loading {Path(path).name}...")
        self.pool.start(LoadJob(self.signals, self._model_gen, lambda g: g == self._model_gen, path,
                                None if device == "auto" else device, threads))

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

    def on_loaded(self, gen: int, model: Any) -> None:
        if gen != self._model_gen:
            return
        from medviewer.engine.device import describe

        self.model = model
        self.router.cancel()
        self.cams.clear()
        self.probs, self._probs_key = None, None
        self._reset_trust()
        self.panel.set_model(model.card, describe(model.device))
        self.panel.status.setText(f"Model ready: {model.card.summary()}")
        self.cam.set_classes(model.classes)
        self.picker.select_path(model.path)
        self.strip.setVisible(False)
        self.window.canvas.set_overlay(OVERLAY, None)
        try:
            self.window.settings.set_value("ai/model", str(model.path))
        except Exception:
            pass
        self._update_actions()
        self.update_cam()

    # -- jobs ---------------------------------------------------------------------
    def _start(self, refs: list[Any], first_index: int) -> int | None:
        key = self._view_key()
        if self.model is None or key is None:
            self.window.show_message("AI: choose a model and open a series first")
            return None
        series = self.state.series
        gen = self.router.start_job(key[0], key[1], self.model.model_id)
        self._job_gen = gen
        self.router.set_view(*key)
        pkey = (key[0], key[1], self.model.model_id)
        if self._probs_key != pkey or self.probs is None or len(self.probs) != len(series.items):
            self.probs = np.full((len(series.items), len(self.model.classes)), np.nan, np.float32)
            self.ood = np.full(len(series.items), np.nan, np.float32) if self.model.ood is not None else None
            self._probs_key = pkey
            self.strip.reset(len(series.items))
        self._job_refs = list(refs)
        self.analysis_id, self._pending_analysis = None, None
        self.panel.verdict.set_analysis(None)
        self.strip.setVisible(True)
        self.strip.set_current(self.state.index)
        self._job_started = _now()
        self._job_count = len(refs)
        self._per_image = None
        self.panel.progress.setRange(0, len(refs))
        self.panel.progress.setValue(0)
        self.panel.progress.setVisible(True)
        self.panel.cancel_button.setVisible(True)
        job = SeriesJob(self.signals, gen, self.router.is_current, self.model, self.window.pixels, refs,
                        (max(1, series.rows), max(1, series.columns)), first_index, series=series)
        self.pool.start(job)
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
        self.cam_router.cancel()

    # -- results --------------------------------------------------------------------
    def on_progress(self, gen: int, done: int, total: int) -> None:
        if self.router.is_current(gen):
            self.panel.progress.setValue(done)

    def on_batch(self, gen: int, start: int, probs: np.ndarray, _cams: Any) -> None:
        if not self.router.accept(self.router.tag(gen, start)) or self.probs is None:
            self.dropped += 1
            return
        stop = min(len(self.probs), start + len(probs))
        self.probs[start:stop] = probs[: stop - start]
        self.strip.set_values(start, probs[: stop - start, self._strip_class()])
        if start <= self.state.index < stop:
            self._show_slice_probs()
        self._show_series_result()

    def on_ood(self, gen: int, start: int, scores: np.ndarray) -> None:
        """OOD scores of a batch (they arrive just before its probabilities)."""
        if not self.router.accept(self.router.tag(gen, start)) or self.ood is None or self.model is None \
                or self.model.ood is None:
            return
        stop = min(len(self.ood), start + len(scores))
        self.ood[start:stop] = scores[: stop - start]
        self.strip.set_flags(start, scores[: stop - start] > self.model.ood.threshold)

    def on_guard(self, gen: int, warnings: list[str]) -> None:
        """The input check's warnings for the series being analysed."""
        if not self.router.is_current(gen):
            return
        self.input_warnings = list(warnings)
        self.panel.trust.set_input_warnings(self.input_warnings)

    def on_finished(self, gen: int, kind: str, error: Any, seconds: float) -> None:
        if kind == "load":
            if error and gen == self._model_gen:
                self.panel.status.setText(f"Model not loaded: {error}")
                self.window.show_message(f"AI: {error}", 8000)
            return
        if kind == "cam":
            if error and error != "cancelled":
                self.panel.status.setText(f"Grad-CAM failed: {error}")
            return
        if not self.router.is_current(gen) and error is None:
            return
        self.panel.progress.setVisible(False)
        self.panel.cancel_button.setVisible(False)
        if error == "cancelled" or (error is None and not self.router.is_current(gen)):
            self.panel.status.setText("Analysis cancelled")
        elif error:
            self.panel.status.setText(f"Analysis failed: {error}")
            self.window.show_message(f"AI: {error}", 8000)
        else:
            n = self._job_count
            self._per_image = seconds / max(n, 1)
            self._show_slice_probs()
            self.panel.status.setText(f"Analyzed {n} image(s) in {seconds:.2f} s "
                                      f"({seconds / max(n, 1) * 1000:.0f} ms per image)")
        self._show_series_result()
        if (error is None or error == "cancelled") and gen == self._job_gen:   # not a superseded job
            self._record_analysis("complete" if error is None and self.router.is_current(gen) else "cancelled")

    def _show_slice_probs(self) -> None:
        i = self.state.index
        if self.probs is None or not 0 <= i < len(self.probs) or np.isnan(self.probs[i, 0]) \
                or self._probs_key is None or self._view_key() != self._probs_key[:2]:
            self.panel.set_probabilities(None)
            self.panel.trust.set_slice(None, None)
            return
        per = self._per_image
        if per is None:  # job still running: elapsed time over results so far
            per = (_now() - self._job_started) / max(1, self.strip.filled())
        self.panel.set_probabilities(self.probs[i], where=f"slice {i + 1}", seconds=per)
        score = None if self.ood is None or np.isnan(self.ood[i]) else float(self.ood[i])
        self.panel.trust.set_slice(score, self.model.ood.threshold if self.model.ood is not None else None,
                                   f"slice {i + 1}" if len(self.probs) > 1 else "this image")

    def _show_series_result(self) -> None:
        from medviewer.engine.infer import aggregate, aggregation_name

        if self.probs is None or self.model is None:
            self.panel.set_series_result("")
            return
        done = self.probs[~np.isnan(self.probs[:, 0])]
        if len(done) == 0:
            self.panel.set_series_result("")
            return
        agg = aggregate(done, self.aggregation, k=3)
        top = int(np.argmax(agg))
        self.panel.set_series_result(
            f"Series ({aggregation_name(self.aggregation)} over {len(done)}/{len(self.probs)} slices): "
            f"<b>{self.model.classes[top]}</b> {agg[top]:.3f}")
        if self.ood is not None and self.model.ood is not None:
            scored = self.ood[~np.isnan(self.ood)]
            self.panel.trust.set_series(int(np.count_nonzero(scored > self.model.ood.threshold)), len(scored),
                                        len(self.ood))

    # -- trust: OOD, input check, audit log and the reader's verdict ------------------------
    def _reset_trust(self) -> None:
        self.ood = None
        self.input_warnings = []
        self.analysis_id, self._pending_analysis = None, None
        self.panel.trust.clear()
        self.panel.verdict.set_analysis(None)

    def _record_analysis(self, status: str) -> None:
        """Append the result in view to the audit log (off the GUI thread)."""
        from medviewer.engine import audit
        from medviewer.engine.device import describe
        from medviewer.engine.infer import aggregate, aggregation_name

        if self.probs is None or self.model is None or self._probs_key is None \
                or self._view_key() != self._probs_key[:2]:
            return
        done = ~np.isnan(self.probs[:, 0])
        if not done.any():
            return
        series = self.state.series
        refs = [series.items[i] for i in np.flatnonzero(done)] if series is not None else []
        agg = aggregate(self.probs[done], self.aggregation, k=3)
        flagged = fraction = None
        if self.ood is not None and self.model.ood is not None:
            scored = self.ood[~np.isnan(self.ood)]
            flagged = int(np.count_nonzero(scored > self.model.ood.threshold))
            fraction = flagged / len(scored) if len(scored) else None
        entry = audit.Analysis(
            model_name=self.model.card.name, model_version=self.model.card.version,
            model_sha256=self.model.sha256, device=describe(self.model.device),
            study_uid=self._probs_key[0], series_uid=self._probs_key[1], n_items=int(done.sum()),
            sop_uids=audit.sop_uids(series, refs) if series is not None else [],
            result=audit.series_result(self.model.classes, agg, aggregation_name(self.aggregation)),
            status=status, ood_checked=self.model.ood is not None, ood_flagged=flagged, ood_fraction=fraction,
            input_warnings=list(self.input_warnings), source="viewer")
        self._pending_analysis = (self._probs_key, entry.id)
        self.panel.verdict.set_analysis(None, "Recording the result in the audit log...")
        self.audit_pool.start(AuditJob(self.signals, entry, self.audit_path))

    def record_verdict(self, verdict: str, comment: str) -> None:
        """The reader's verdict on the result in view: a new audit-log row naming it."""
        from medviewer.engine.audit import Verdict

        if self.analysis_id is None:
            return
        self.panel.verdict.set_analysis(self.analysis_id, "Recording your verdict...")
        self.audit_pool.start(AuditJob(self.signals, Verdict(self.analysis_id, verdict, comment, source="viewer"),
                                       self.audit_path))

    def on_audit(self, kind: str, entry: Any, error: Any) -> None:
        if error:
            log.warning("audit log: %s", error)
            self.window.show_message(f"AI: audit log not written: {error}", 10000)
            if kind == "analysis" and self._pending_analysis and self._pending_analysis[1] == entry.id:
                self.panel.verdict.set_analysis(None, f"<span style='color:#c33'>Not recorded in the audit "
                                                      f"log: {error}</span>")
            elif kind == "verdict" and entry.analysis_id == self.analysis_id:
                self.panel.verdict.set_analysis(self.analysis_id, f"<span style='color:#c33'>Verdict not "
                                                                  f"recorded: {error}</span>")
            return
        if kind == "analysis":
            if self._pending_analysis and self._pending_analysis[1] == entry.id \
                    and self._probs_key == self._pending_analysis[0]:
                self.analysis_id = entry.id
                self.panel.verdict.set_analysis(entry.id, "Result recorded in the audit log; your verdict:")
        elif entry.analysis_id == self.analysis_id:
            self.panel.verdict.show_recorded(entry.verdict, entry.os_user, entry.time[11:19] + " UTC", entry.comment)

    # -- view changes -------------------------------------------------------------------
    def on_series_changed(self, _series: Any) -> None:
        key = self._view_key()
        self.router.set_view(*(key or (None, None)))
        self.cam_router.cancel()
        if self._probs_key is None or key != self._probs_key[:2]:
            self.router.cancel()  # results for the old series would be dropped anyway
            self.probs, self._probs_key = None, None
            self._reset_trust()
            self.strip.reset(0)
            self.strip.setVisible(False)
            self.panel.set_probabilities(None)
            self.panel.set_series_result("")

    def on_slice_changed(self, index: int) -> None:
        self.strip.set_current(index)
        self._show_slice_probs()
        self.update_cam()

    # -- Grad-CAM -------------------------------------------------------------------------
    def _cam_key(self) -> tuple[Any, ...] | None:
        ref = self.state.ref()
        if ref is None or self.model is None:
            return None
        return (self.model.model_id, ref, self.cam.class_index(), self.cam.cam_method())

    def update_cam(self) -> None:
        """Show / hide / recolour the overlay; schedule a computation when needed."""
        canvas = self.window.canvas
        key = self._cam_key()
        if not self.cam.enabled.isChecked() or key is None:
            canvas.set_overlay(OVERLAY, None)
            self._cam_shown = None
            return
        if key in self.cams:
            self._paint_cam(key)
        else:
            self._cam_timer.start()

    def request_cam(self) -> None:
        key = self._cam_key()
        if key is None or not self.cam.enabled.isChecked() or key in self.cams:
            return
        view = self._view_key()
        gen = self.cam_router.start_job(view[0], view[1], self.model.model_id)
        self.cam_router.set_view(*view)
        self.panel.status.setText("Computing Grad-CAM...")
        self._pending_cam = (gen, key)
        self.cam_pool.start(CamJob(self.signals, gen, self.cam_router.is_current, self.model,
                                   self.window.pixels, key[1], self.state.index, key[2], key[3]))

    def on_cam(self, gen: int, index: int, cls: int, cam: np.ndarray) -> None:
        pending = getattr(self, "_pending_cam", None)
        if pending is None or pending[0] != gen or not self.cam_router.accept(self.cam_router.tag(gen, index)):
            self.dropped += 1
            return
        key = pending[1]
        self.cams[key] = (cls, cam)
        while len(self.cams) > CAM_CACHE:
            self.cams.popitem(last=False)
        self.panel.status.setText(f"Grad-CAM for class '{self.model.classes[cls]}'")
        if key == self._cam_key():
            self._paint_cam(key)

    def _paint_cam(self, key: tuple[Any, ...]) -> None:
        from medviewer.engine.overlay import colorize

        cls, cam = self.cams[key]
        self.cams.move_to_end(key)
        try:
            self.window.canvas.set_overlay(OVERLAY, colorize(cam, self.cam.colormap.currentText()),
                                           self.cam.alpha(), ref=key[1])
        except ValueError as exc:  # the image changed size under us: never paint a mismatch
            log.warning("Grad-CAM overlay not shown: %s", exc)
            return
        self._cam_shown = key

    # -- export -----------------------------------------------------------------------------
    def choose_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self.window, "Export view with overlay", "view.png", "PNG (*.png)")
        if path:
            self.export_png(path)

    def export_png(self, path: str | Path) -> Path:
        """The current view (image, Grad-CAM overlay, text) as a PNG file."""
        path = Path(path)
        if path.suffix.lower() != ".png":
            path = path.with_suffix(".png")
        try:
            self.window.export_view(path)
        except OSError as exc:
            self.window.show_message(f"Export failed: {exc}", 8000)
            raise
        self.window.show_message(f"Exported {path.name}")
        return path

    def shutdown(self) -> None:
        self.cancel()
        self.pool.waitForDone(5000)
        self.cam_pool.waitForDone(5000)
        self.audit_pool.waitForDone(10000)   # never lose an audit entry on close


def _now() -> float:
    import time

    return time.perf_counter()
