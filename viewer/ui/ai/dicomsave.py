"""AI > "Save AI results as DICOM...": the series in view as SR + Secondary Capture (+ Parametric Map).

The objects are written by the Qt-free `medviewer.engine.dicomout.write_series_outputs`
on the AI worker thread.  Probabilities already computed for the series in
view (AI > Analyze series) are reused; otherwise the series is analysed first.
The Secondary Capture shows the grey levels of the window in use.  The paths
written are kept as `controller.last_dicom_outputs` (PACS > Send AI results).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget)

from medviewer.viewer.ui.workers import CANCELLED, TaskRunner, TaskState

KEY_OUT = "ai/dicom_out"


def dicom_save_task(state: TaskState, model: Any, store: Any, series: Any, probs: np.ndarray | None,
                    out: Path, *, slices: str, maps: bool, cam_method: str, aggregate: str,
                    window: Any, ood: np.ndarray | None = None, trust: dict[str, Any] | None = None
                    ) -> tuple[list[Path], list[str]]:
    """Analyse the series unless `probs` are given, then write its DICOM results:
    (paths written, notices).  `ood`: the stored OOD scores with `probs`; `trust`: the
    input warnings, audit entry and reader's verdict of the result in view
    (engine.dicomout.trust.TrustInfo fields), written into the SR."""
    from medviewer.engine.dicomout import write_series_outputs
    from medviewer.engine.dicomout.trust import TrustInfo
    from medviewer.engine.series import SeriesPrediction, predict_series

    threshold = model.ood.threshold if getattr(model, "ood", None) is not None else None
    if probs is None:
        pred = predict_series(model, store, series.items, (max(1, series.rows), max(1, series.columns)),
                              progress=state.progress, should_stop=state.should_stop)
        trust = {k: v for k, v in (trust or {}).items() if k == "input_warnings"}  # a new analysis
    else:
        pred = SeriesPrediction(probs, None, {}, ood if threshold is not None else None, threshold)
    notes: list[str] = []
    paths = write_series_outputs(model, series, pred, store, out, slices=slices, maps=maps,
                                 cam_method=cam_method, aggregate=aggregate, window=window,
                                 notify=notes.append, should_stop=state.should_stop,
                                 trust=TrustInfo.from_prediction(pred, **(trust or {})))
    return list(paths), notes


class DicomSaveDialog(QDialog):
    """Folder, Secondary Capture images (top 3 / all / numbers) and the Parametric Map option."""

    def __init__(self, folder: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Save AI results as DICOM")
        self.folder = QLineEdit(folder)
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        self.slices = QComboBox()
        self.slices.setEditable(True)
        self.slices.addItems(["top3", "all"])
        self.slices.setToolTip("top3: the 3 images with the highest probability of the series' top class; "
                               "all; or image numbers as shown in the viewer, e.g. 5,12,30")
        self.maps = QCheckBox("Grad-CAM maps as a Parametric Map (float, source geometry)")
        self.error = QLabel("")
        self.error.setStyleSheet("color:#b00000")
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Folder", row)
        form.addRow("Secondary Capture images", self.slices)
        form.addRow(self.maps)
        form.addRow(QLabel("An SR (TID 1500) with every image's probabilities is always written; the objects "
                           "keep the study's patient and study, and saving again replaces them."))
        form.addRow(self.error)
        form.addRow(buttons)
        self.resize(620, 200)

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder for the DICOM results", self.folder.text())
        if d:
            self.folder.setText(d)

    def accept(self) -> None:  # noqa: D102 - validate first
        from medviewer.engine.dicomout import parse_slices

        try:
            parse_slices(self.slices.currentText())
        except Exception as exc:
            self.error.setText(str(exc))
            return
        if not self.folder.text().strip():
            self.error.setText("Choose a folder")
            return
        super().accept()


class DicomSaver(QObject):
    """Adds the action to the AI menu and runs the saves for `controller` (an AIController)."""

    def __init__(self, controller: Any) -> None:
        super().__init__(controller)
        from PySide6.QtGui import QAction

        self.ai = controller
        self.window = controller.window
        # on the AI thread: never two torch jobs at once
        self.jobs = TaskRunner(self, name="AI results as DICOM", pool=controller.pool)
        self.jobs.sig_finished.connect(self._on_finished)
        self.jobs.sig_progress.connect(self._on_progress)
        self.busy = False
        controller.last_dicom_outputs = []
        self.action = QAction("Save AI results as DICOM...", self.window)
        self.action.triggered.connect(lambda _c=False: self.choose_and_save())
        menu = self.window.ai_menu
        if hasattr(controller, "act_cancel"):
            menu.insertAction(controller.act_cancel, self.action)
        else:
            menu.addAction(self.action)

    def default_folder(self) -> str:
        saved = self.window.settings.value(KEY_OUT, "", str) if hasattr(self.window, "settings") else ""
        return saved or str(Path.home() / "medviewer-ai-results")

    def choose_and_save(self) -> TaskState | None:
        dlg = DicomSaveDialog(self.default_folder(), self.window)
        if not dlg.exec():
            return None
        return self.save(Path(dlg.folder.text().strip()), dlg.slices.currentText(), dlg.maps.isChecked())

    def _reusable_probs(self) -> np.ndarray | None:
        """The stored probabilities of the series in view, when every slice has them."""
        res = self.ai._view_results()
        if res is None or res.filled() != len(res):
            return None
        return res.probs.copy()

    def _trust(self) -> tuple[np.ndarray | None, dict[str, Any]]:
        """(stored OOD scores, TrustInfo fields) of the result in view: input warnings,
        audit entry and the reader's last verdict (IHE AIRAI), for the SR."""
        res = self.ai._view_results()
        if res is None:
            return None, {}
        fields: dict[str, Any] = {"input_warnings": list(res.input_warnings), "audit_id": res.analysis_id}
        if res.verdict is not None:
            verdict, comment, user, when = res.verdict
            fields.update(verdict=verdict, verdict_comment=comment, verdict_user=user, verdict_time=when)
        return (None if res.ood is None else res.ood.copy()), fields

    def save(self, out: Path, slices: str = "top3", maps: bool = False) -> TaskState | None:
        """Start writing the DICOM results of the series in view into `out`."""
        ai, s = self.ai, self.window.state.series
        if ai.model is None or s is None:
            self.window.show_message("AI: choose a model and open a series first")
            return None
        if s.kind != "dicom":
            self.window.show_message("AI results as DICOM need a DICOM series (this one is plain images)", 8000)
            return None
        try:
            self.window.settings.set_value(KEY_OUT, str(out))
        except Exception:
            pass
        ood, trust = self._trust()
        task = self.jobs.start(dicom_save_task, ai.model, self.window.pixels, s, self._reusable_probs(), out,
                               slices=slices, maps=maps, cam_method=ai.cam.cam_method(),
                               aggregate=ai.results.aggregation, window=self.window.state.window,
                               ood=ood, trust=trust)
        self.busy = True
        self.window.show_message("Writing the AI results as DICOM...", 0)
        return task

    def _on_progress(self, _state: TaskState, done: int, total: int) -> None:
        self.window.show_message(f"Analysing for DICOM results: {done}/{total}", 0)

    def _on_finished(self, _state: TaskState, result: Any, error: str | None) -> None:
        self.busy = False
        if error:
            if error != CANCELLED:
                self.window.show_message(f"AI results not saved: {error}", 15000)
            return
        paths, notes = result
        self.ai.last_dicom_outputs = list(paths)
        folder = paths[0].parent if paths else ""
        extra = f" ({'; '.join(notes)})" if notes else ""
        self.window.show_message(f"Saved {len(paths)} DICOM object(s) to {folder}{extra}", 15000)


def install(controller: Any) -> DicomSaver:
    saver = DicomSaver(controller)
    controller.dicom_saver = saver
    return saver
