"""The Grad-CAM layer on the canvas: computed on demand, cached, painted, and captioned.

Requests are debounced (CAM_DELAY_MS) and run as tasks (viewer.ui.ai.worker.cam_task);
each result passes its own ResultRouter (newest request wins, and only for the series
in view) and lands in the CAM cache of the Qt-free AIResults.  The caption under the
controls says which class the map explains and goes away with the layer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QTimer

from medviewer.engine.results import ResultRouter
from medviewer.viewer.state.ai import AIResults
from medviewer.viewer.ui.ai.widgets import CamControls
from medviewer.viewer.ui.ai.worker import cam_task
from medviewer.viewer.ui.workers import CANCELLED, TaskRunner, TaskState

log = logging.getLogger("medviewer.ai")

OVERLAY = "gradcam"
CAM_DELAY_MS = 80


class CamLayer(QObject):
    """Binds the Grad-CAM controls, the canvas overlay `OVERLAY` and the CAM cache."""

    def __init__(self, window: Any, controls: CamControls, results: AIResults,
                 model: Callable[[], Any], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.window = window
        self.state = window.state
        self.controls = controls
        self.results = results
        self._model = model
        self.router = ResultRouter()
        self.jobs = TaskRunner(self, name="Grad-CAM")
        self.jobs.sig_finished.connect(self._on_finished)
        self.shown: tuple[Any, ...] | None = None    # key of the map on screen
        self.dropped = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(CAM_DELAY_MS)
        self._timer.timeout.connect(self.request)

    def key(self) -> tuple[Any, ...] | None:
        """(model id, ImageRef, class or None for the slice's top class, method)."""
        ref, model = self.state.ref(), self._model()
        if ref is None or model is None:
            return None
        return (model.model_id, ref, self.controls.class_index(), self.controls.cam_method())

    def cancel(self) -> None:
        self.router.cancel()

    def update(self) -> None:
        """Show / hide / recolour the overlay; schedule a computation when needed."""
        key = self.key()
        canvas = self.window.canvas
        if not self.controls.enabled.isChecked() or key is None:
            canvas.set_overlay(OVERLAY, None)
            self.controls.caption.setText("")        # the caption goes with the layer
            self.shown = None
            return
        if key in self.results.cams:
            self.paint(key)
            return
        canvas.set_overlay(OVERLAY, None)            # never another class's or slice's map
        self.shown = None
        self.controls.caption.setText("Grad-CAM: computing...")
        self._timer.start()

    def request(self) -> None:
        key = self.key()
        if key is None or not self.controls.enabled.isChecked() or key in self.results.cams:
            return
        series = self.state.series
        study = self.state.study_uid_of(series)
        model = self._model()
        gen = self.router.start_job(study, str(series.series_uid), model.model_id)
        self.router.set_view(study, str(series.series_uid))
        self.jobs.start(cam_task, model, self.window.pixels, key[1], key[2], key[3],
                        key=(gen, key, self.state.index), is_current=lambda: self.router.is_current(gen))

    def _on_finished(self, state: TaskState, result: Any, error: str | None) -> None:
        gen, key, index = state.key
        if error:
            if error != CANCELLED and key == self.key():
                self.controls.caption.setText(f"Grad-CAM failed: {error}")
            return
        if result is None or not self.router.accept(self.router.tag(gen, index)):
            self.dropped += 1
            return
        self.results.cams.put(key, *result)
        if key == self.key() and self.controls.enabled.isChecked():
            self.paint(key)

    def paint(self, key: tuple[Any, ...]) -> None:
        from medviewer.engine.overlay import colorize

        cls, cam = self.results.cams.get(key)
        try:
            self.window.canvas.set_overlay(OVERLAY, colorize(cam, self.controls.colormap.currentText()),
                                           self.controls.alpha(), ref=key[1])
        except ValueError as exc:  # the image changed size under us: never paint a mismatch
            log.warning("Grad-CAM overlay not shown: %s", exc)
            return
        self.shown = key
        how = "chosen class" if key[2] is not None else "this slice's top class"
        name = self._model().classes[cls]
        self.controls.caption.setText(f"Grad-CAM: '{name}' ({how}), slice {self.state.index + 1}")

    def shutdown(self, msecs: int = 5000) -> None:
        self.cancel()
        self.jobs.shutdown(msecs)
