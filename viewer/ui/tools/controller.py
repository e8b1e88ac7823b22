"""Measurement tools in the window: tool actions, undo / redo, key images, DICOM SR / KOS / CSV.

The actions come from the core's tool registry (viewer.measure.tools.TOOLS: one
checkable action per registered tool, with its title and shortcut), so a new tool is
a new module with ``@register_tool`` listed in `TOOL_MODULES`; nothing here changes.
The annotations, the key images and the tool in use are the Qt-free
`AnnotationSession` (viewer.state.annotations); each canvas has an `AnnotationLayer`.
Numbers are measured on the stored pixels of the image (viewer.measure.stats: HU for
CT) when a shape is drawn or edited.  Saving (TID 1500 SR, Key Object Selection) and
restoring (when a study or a prior is opened) run on a worker (viewer.measure.study).
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup, QColor, QKeySequence
from PySide6.QtWidgets import QFileDialog, QInputDialog, QToolBar

from medviewer.viewer.measure.stats import measure
from medviewer.viewer.measure.tools import TOOLS, Annotation
from medviewer.viewer.state.annotations import AnnotationSession
from medviewer.viewer.ui.tools.layer import AnnotationLayer, ImageContext, image_context
from medviewer.viewer.ui.workers import CANCELLED, TaskRunner, TaskState

log = logging.getLogger("medviewer.ui")

#: modules whose import registers tools (viewer.measure.tools.register_tool)
TOOL_MODULES = ("medviewer.viewer.measure.tools",)
#: a second key for a tool (the distance tool was the viewer's "ruler", R)
EXTRA_KEYS = {"distance": ("R",)}
KEY_COLOUR = QColor(255, 215, 0)


def restore_task(state: TaskState, result: Any, pixels: Any) -> list[tuple[str, Any]]:
    """[(study UID, RestoredStudy)] for every study of a scan result."""
    from medviewer.viewer.measure.study import restore_study

    out = []
    for study in result.studies:
        if state.should_stop():
            break
        out.append((study.study_uid, restore_study(result, study, pixels)))
    return out


def save_task(state: TaskState, jobs: list[tuple[str, Any, Any, list, list]]) -> list[str]:
    """Write each (what, root, study, annotations, key images) job; one line per file or problem."""
    from medviewer.viewer.errors import MedviewerError
    from medviewer.viewer.measure.study import save_key_images, save_study

    lines = []
    for what, root, study, anns, keys in jobs:
        try:
            path = save_study(root, study, anns) if what == "sr" else save_key_images(root, study, keys)
            lines.append(f"saved {path}")
        except MedviewerError as exc:
            lines.append(str(exc))
    return lines


class ToolsController(QObject):
    """`window.reading.tools`: the tools UI of `window`."""

    def __init__(self, window: Any, toolbar: QToolBar, badges: Any) -> None:
        super().__init__(window)
        self.window = window
        self.session = AnnotationSession()
        self.layers: list[AnnotationLayer] = []
        self.last_saved: list[str] = []
        self._root: Any = None
        for name in TOOL_MODULES:
            importlib.import_module(name)
        for vp in window.grid.viewports:
            self._add_layer(vp)
        window.grid.sig_viewport_added.connect(self._add_layer)
        self.restorer = TaskRunner(self, name="restore annotations")
        self.restorer.sig_finished.connect(self._on_restored)
        self.saver = TaskRunner(self, name="save annotations")
        self.saver.sig_finished.connect(self._on_saved)
        self.actions: dict[str, QAction] = {}
        self._build_tool_actions(toolbar)
        self._build_edit_actions(toolbar)
        self._build_file_actions()
        ev = self.session.events
        ev.changed.connect(lambda _s: self._repaint())
        ev.selection_changed.connect(self._repaint)
        ev.key_images_changed.connect(lambda _s: self._repaint())
        ev.tool_changed.connect(self._on_tool_changed)
        s_ev = window.session.events
        s_ev.scan_updated.connect(self._on_scan_updated)
        s_ev.scan_finished.connect(lambda result: self.restore(result))
        s_ev.priors_changed.connect(self._on_priors_changed)
        self._restored_priors: set[Any] = set()
        badges.add(self.badges)

    # -- actions ---------------------------------------------------------------------------
    def _action(self, key: str, text: str, slot: Any, shortcuts: tuple = (), checkable: bool = False,
                tip: str = "") -> QAction:
        act = QAction(text, self.window)
        act.setObjectName(f"tool_{key}")
        act.setCheckable(checkable)
        if shortcuts:
            act.setShortcuts([QKeySequence(s) for s in shortcuts])
        keys = ", ".join(shortcuts)
        act.setToolTip(f"{tip or text}" + (f" ({keys})" if keys else ""))
        if checkable:
            act.toggled.connect(slot)
        else:
            act.triggered.connect(lambda _c=False: slot())
        self.window.addAction(act)
        self.actions[key] = act
        self.window.actions_by_name[f"tool_{key}"] = act
        return act

    def _build_tool_actions(self, toolbar: QToolBar) -> None:
        menu = self.window.menu("Measure")
        group = QActionGroup(self)
        pointer = self._action("pointer", "Pointer / pan", lambda on: on and self.session.set_tool(None),
                               ("V",), True, "No tool: left drag pans, annotations can be selected and moved")
        pointer.setActionGroup(group)
        pointer.setChecked(True)
        menu.addAction(pointer)
        toolbar.addAction(pointer)
        for name, cls in TOOLS.items():
            keys = tuple(k for k in (getattr(cls, "shortcut", ""), *EXTRA_KEYS.get(name, ())) if k)
            act = self._action(name, cls.title, lambda on, n=name: on and self.session.set_tool(n), keys, True)
            act.setActionGroup(group)
            menu.addAction(act)
            toolbar.addAction(act)
        menu.addSeparator()
        self.window.actions_by_name["ruler"] = self.actions["distance"]

    def _build_edit_actions(self, toolbar: QToolBar) -> None:
        menu = self.window.menu("Measure")
        for key, text, slot, keys in (
                ("undo", "Undo", self.undo, ("Ctrl+Z",)),
                ("redo", "Redo", self.redo, ("Ctrl+Shift+Z", "Ctrl+Y")),
                ("delete", "Delete annotation", self.delete_selected, ("Delete", "Backspace")),
                ("key_image", "Key image (mark / unmark)", self.toggle_key_image, ("K",))):
            menu.addAction(self._action(key, text, slot, keys))
        toolbar.addSeparator()
        for key in ("undo", "redo", "key_image"):
            toolbar.addAction(self.actions[key])

    def _build_file_actions(self) -> None:
        f = self.window.menu("File")
        before = self.window.actions_by_name["export"]
        for key, text, slot, keys, tip in (
                ("save_sr", "Save annotations (DICOM SR)", self.save_annotations, ("Ctrl+S",),
                 "TID 1500 Measurement Report next to the study (or in the user data folder)"),
                ("save_kos", "Save key images (DICOM KOS)", self.save_key_images, (),
                 "Key Object Selection document of the slices marked with K"),
                ("export_csv", "Export measurement table (CSV)...", self.choose_csv, (), "")):
            f.insertAction(before, self._action(key, text, slot, keys, tip=tip))
        f.insertSeparator(before)

    def _add_layer(self, vp: Any) -> None:
        layer = AnnotationLayer(vp.canvas, self)
        self.layers.append(layer)
        vp.canvas.add_layer(layer)

    def _on_tool_changed(self, name: str | None) -> None:
        act = self.actions.get(name or "pointer")
        if act is not None and not act.isChecked():
            act.setChecked(True)
        self._repaint()

    def set_tool(self, name: str | None) -> None:
        """Select tool `name` (a TOOLS key) or none (pointer / pan)."""
        self.session.set_tool(name)

    def _repaint(self) -> None:
        for canvas in self.window.canvases():
            canvas.update()

    # -- measuring and storing ------------------------------------------------------------------
    def measure(self, canvas: Any, shape: Any) -> dict:
        """The numbers of `shape` on the image `canvas` shows (stored pixels, modality units)."""
        try:
            return measure(shape, canvas.stored, canvas.meta)
        except Exception as exc:
            log.debug("measure failed: %s", exc)
            return {}

    def add(self, canvas: Any, ctx: ImageContext, shape: Any) -> Annotation | None:
        """A shape a tool finished: asks for the text of shapes that carry one (arrow)."""
        if hasattr(shape, "text") and not shape.text:
            text = self.ask_text("Arrow text", "Text next to the arrow:", "")
            if text is None:
                canvas.update()
                return None
            shape = replace(shape, text=text)
        ann = Annotation(shape, ctx.sop_instance_uid, ctx.frame, ctx.sop_class_uid, ctx.series_uid,
                         numbers=self.measure(canvas, shape))
        added = self.session.add(ctx.study_uid, ann)
        self.session.select(ctx.study_uid, added.uid)
        if not ctx.dicom:
            self.window.show_message("This image is not DICOM: its annotations cannot be saved in a DICOM report")
        return added

    def edit(self, canvas: Any, ctx: ImageContext, old: Annotation, shape: Any) -> None:
        self.session.replace(ctx.study_uid, old, replace(old, shape=shape, numbers=self.measure(canvas, shape)))

    def edit_text(self, ctx: ImageContext, ann: Annotation) -> None:
        text = self.ask_text("Arrow text", "Text next to the arrow:", ann.shape.text)
        if text is not None and text != ann.shape.text:
            self.session.replace(ctx.study_uid, ann, replace(ann, shape=replace(ann.shape, text=text)))

    def ask_text(self, title: str, label: str, text: str) -> str | None:
        value, ok = QInputDialog.getText(self.window, title, label, text=text)
        return value if ok else None

    def _active_study(self) -> str | None:
        series = self.window.state.series
        uid = self.window.session.study_uid_of(series) if series is not None else ""
        return uid or None

    def undo(self) -> None:
        study = self._active_study()
        if study is None or not self.session.undo(study):
            self.window.show_message("Nothing to undo")

    def redo(self) -> None:
        study = self._active_study()
        if study is None or not self.session.redo(study):
            self.window.show_message("Nothing to redo")

    def delete_selected(self) -> None:
        sel = self.session.selected_annotation()
        if sel is not None:
            self.session.remove(*sel)

    def toggle_key_image(self) -> None:
        ctx = image_context(self.window.canvas)
        if ctx is None or not ctx.dicom:
            self.window.show_message("Key images: show a DICOM image first")
            return
        marked = self.session.toggle_key(ctx.study_uid, ctx.sop_instance_uid, ctx.frame)
        n = len(self.session.key_images(ctx.study_uid))
        self.window.show_message(f"Key image {'marked' if marked else 'unmarked'} ({n} in this study; "
                                 "File > Save key images writes them)")

    def badges(self, vstate: Any) -> list[tuple[str, QColor]]:
        vp = self.window.grid.viewport_of(vstate)
        ctx = image_context(vp.canvas) if vp is not None else None
        if ctx is not None and self.session.is_key(ctx.study_uid, ctx.sop_instance_uid, ctx.frame):
            return [("KEY IMAGE", KEY_COLOUR)]
        return []

    # -- studies: restore / save / CSV ------------------------------------------------------------
    def _studies(self) -> list[tuple[Any, Any]]:
        """(root, study) of the current study and the priors."""
        return [(r.root, st) for r in self.window.session.results() for st in r.studies]

    def _on_scan_updated(self, result: Any) -> None:
        if result.root != self._root:          # another study was opened
            self._root = result.root
            self.session.clear()
            self.restorer.cancel()
            self._restored_priors.clear()

    def restore(self, result: Any) -> None:
        """Read the saved annotations and key images of `result`'s studies (worker)."""
        self.restorer.start(restore_task, result, self.window.pixels, key=result.root, replace=False)

    def _on_priors_changed(self) -> None:
        for prior in self.window.session.priors:
            if prior.root not in self._restored_priors:
                self._restored_priors.add(prior.root)
                self.restore(prior)

    def _on_restored(self, state: TaskState, restored: Any, error: str | None) -> None:
        if error is not None:
            if error != CANCELLED:
                self.window.show_message(f"Annotations not restored: {error}", 10000)
            return
        roots = {r.root for r in self.window.session.results()}
        if state.key not in roots:
            return
        n = 0
        for study_uid, found in restored:
            if found.annotations:
                n += self.session.restore(study_uid, found.annotations)
            if found.key_images:
                self.session.set_key_images(study_uid, found.key_images)
            for line in found.problems:
                log.warning("restoring annotations: %s", line)
        if n:
            self.window.show_message(f"{n} annotation(s) restored from saved reports", 8000)

    def save_annotations(self) -> None:
        jobs = [("sr", root, st, self.session.annotations(st.study_uid), [])
                for root, st in self._studies() if self.session.annotations(st.study_uid)]
        self._save(jobs, "annotations")

    def save_key_images(self) -> None:
        jobs = [("kos", root, st, [], self.session.key_images(st.study_uid))
                for root, st in self._studies() if self.session.key_images(st.study_uid)]
        self._save(jobs, "key images")

    def _save(self, jobs: list, what: str) -> None:
        if not jobs:
            self.window.show_message(f"No {what} to save")
            return
        self.window.show_message(f"Saving {what}...", 0)
        self.saver.start(save_task, jobs, key=[(j[0], j[2].study_uid) for j in jobs], replace=False)

    def _on_saved(self, state: TaskState, lines: Any, error: str | None) -> None:
        if error is not None:
            self.window.show_message(f"Not saved: {error}", 15000)
            return
        self.last_saved = list(lines)
        for (what, study_uid), line in zip(state.key, lines):
            if what == "sr" and line.startswith("saved "):
                self.session.mark_saved(study_uid)
        self.window.show_message("; ".join(lines), 15000)

    def choose_csv(self) -> Path | None:
        study = self._active_study()
        if study is None or not self.session.annotations(study):
            self.window.show_message("No measurements in this study")
            return None
        start = str(Path(self.window.settings.export_folder() or Path.home()) / "measurements.csv")
        path, _ = QFileDialog.getSaveFileName(self.window, "Export measurement table", start, "CSV (*.csv)")
        return self.export_csv(path, study) if path else None

    def export_csv(self, path: str | Path, study_uid: str) -> Path:
        """The study's measurement table (viewer.measure.table) with 'Se 2 Im 14' image labels."""
        from medviewer.viewer.measure.study import image_index, image_label
        from medviewer.viewer.measure.table import write_table

        study = next((st for _root, st in self._studies() if st.study_uid == study_uid), None)
        index = image_index(study.series) if study is not None else {}
        out = write_table(self.session.annotations(study_uid), path, lambda a: image_label(index, a))
        self.window.show_message(f"Measurement table written: {out}")
        return out

    def shutdown(self) -> None:
        self.restorer.shutdown(3000)
        self.saver.shutdown(5000)
