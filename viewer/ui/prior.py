"""Prior studies: a second study of the patient beside the current one, and the compare layout.

File > Open prior study... (or a folder dropped on a viewport while a study is open)
scans the folder with its own loader (off the GUI thread).  Studies already open are
left out; a study of another patient (Patient ID, else Patient's Name, PS3.3 C.7.1.1)
is opened only when the user confirms the warning.  Its series join the browser,
headed "Prior <date>".  Opened from the menu, the prior goes into the compare layout:
current and prior side by side (1 x 2), the prior's series that best matches the
current one (modality, plane, description), put at the same place in the patient and
scroll-linked at those slices; dropped on a viewport, its best series opens there.
While a prior is open every viewport carries a badge "CURRENT <date>" or
"PRIOR <date>".
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QColor, QKeySequence
from PySide6.QtWidgets import QFileDialog, QMessageBox

from medviewer.viewer.state.sync import nearest_index, stack_axis
from medviewer.viewer.ui.loader import StudyLoader
from medviewer.viewer.ui.overlays import format_date, format_person_name

log = logging.getLogger("medviewer.ui")

CURRENT_COLOUR = QColor(130, 230, 130)
PRIOR_COLOUR = QColor(255, 190, 90)


def same_patient(a: Any, b: Any) -> bool:
    """Two studies of one patient: equal Patient IDs, else equal names when an ID is missing."""
    ida, idb = (str(getattr(s, "patient_id", "") or "").strip() for s in (a, b))
    if ida and idb:
        return ida == idb
    na, nb = (str(getattr(s, "patient_name", "") or "").strip().upper() for s in (a, b))
    return bool(na) and na == nb


def match_score(current: Any, candidate: Any) -> tuple:
    """How well a prior series matches the current one (higher is better)."""
    ca, pa = stack_axis(current), stack_axis(candidate)
    return (candidate.modality == current.modality,
            ca is not None and pa is not None and ca.kind == pa.kind,
            (candidate.description or "").strip().lower() == (current.description or "").strip().lower(),
            len(candidate.items) > 1,
            -abs(len(candidate.items) - len(current.items)))


def best_match(current: Any, candidates: list[Any]) -> Any:
    series = [s for s in candidates if s.items]
    if not series:
        return None
    if current is None:
        return series[0]
    return max(series, key=lambda s: match_score(current, s))


class PriorController(QObject):
    """Opens prior studies into `window`'s session (`window.reading.priors`)."""

    def __init__(self, window: Any, toolbar: Any, badges: Any) -> None:
        super().__init__(window)
        self.window = window
        self.session = window.session
        self.loader = StudyLoader(window.pixels, self)
        self.loader.sig_result.connect(self._on_result)
        self.loader.sig_failed.connect(lambda msg: window.show_message(f"Prior not opened: {msg}", 10000))
        self.loader.sig_thumbnail.connect(window.browser.set_thumbnail)
        self._target: Any = None       # viewport a dropped prior goes to (None: compare layout)
        self._path: Path | None = None
        acts = window.actions_by_name
        self.open_action = QAction("Open prior study...", window)
        self.open_action.setObjectName("open_prior")
        self.open_action.setShortcut(QKeySequence("Ctrl+Shift+P"))
        self.open_action.setToolTip("Open an earlier study of this patient beside the current one")
        self.open_action.triggered.connect(lambda _c=False: self.choose_prior())
        window.addAction(self.open_action)
        window.menu("File").insertAction(acts["export"], self.open_action)
        acts["open_prior"] = self.open_action
        self.compare_action = QAction("Compare with prior", window)
        self.compare_action.setObjectName("compare_prior")
        self.compare_action.setShortcut(QKeySequence("Alt+C"))
        self.compare_action.setToolTip("Current and prior side by side, scrolling together (Alt+C)")
        self.compare_action.triggered.connect(lambda _c=False: self.compare())
        self.compare_action.setEnabled(False)
        window.addAction(self.compare_action)
        window.menu("View").addAction(self.compare_action)
        toolbar.addAction(self.compare_action)
        acts["compare_prior"] = self.compare_action
        window.grid.sig_paths_dropped.connect(self._on_paths_dropped)
        self.session.events.priors_changed.connect(self._on_priors_changed)
        badges.add(self.badges)

    # -- opening ---------------------------------------------------------------------------
    def choose_prior(self) -> None:
        folder = QFileDialog.getExistingDirectory(self.window, "Open prior study")
        if folder:
            self.open_prior(folder)

    def open_prior(self, path: str | Path, viewport: Any = None) -> None:
        """Scan `path` as a prior study (the current study if none is open yet)."""
        path = Path(path)
        if self.window.scan_result is None:
            self.window.open_path(path)
            return
        self._target, self._path = viewport, path
        self.window.show_message(f"Opening prior study {path.name}...", 0)
        self.loader.start(path)

    def _on_paths_dropped(self, viewport: Any, paths: list[Path]) -> None:
        rest = self.window.handle_dropped(paths)
        if not rest:
            return
        if self.window.scan_result is None:
            self.window.open_path(rest[0])
        else:
            self.open_prior(rest[0], viewport)

    def _on_result(self, result: Any, final: bool) -> None:
        if not final:
            return
        current = self.window.scan_result
        open_uids = {st.study_uid for r in self.session.results() for st in r.studies
                     if r.root != result.root}
        studies = [st for st in result.studies if st.study_uid not in open_uids
                   and any(s.items for s in st.series)]
        name = self._path.name if self._path is not None else str(result.root)
        if not studies:
            self.window.show_message(f"{name}: no other study with images (already open?)", 10000)
            return
        reference = current.studies[0] if current is not None and current.studies else None
        if reference is not None and not all(same_patient(reference, st) for st in studies):
            other = studies[0]
            text = (f"{name} is a study of another patient:\n\n"
                    f"current: {format_person_name(reference.patient_name)} (ID {reference.patient_id})\n"
                    f"this one: {format_person_name(other.patient_name)} (ID {other.patient_id})\n\n"
                    "Open it beside the current study anyway?")
            if not self.confirm_other_patient(text):
                self.window.show_message(f"{name}: not opened (another patient)", 10000)
                return
        self.session.set_prior(replace(result, studies=studies))
        for st in studies:
            self.window.browser.update_series(st.series, group=f"Prior {format_date(st.date) or '(no date)'}")
        self.window.show_message(f"Prior study opened: {', '.join(format_date(s.date) or s.description for s in studies)}",
                                 8000)
        target, self._target = self._target, None
        if target is not None:
            current_series = target.viewport_state.series or self.window.state.series
            series = best_match(current_series, [s for st in studies for s in st.series])
            if series is not None:
                self.window.grid.activate(target)
                target.viewport_state.set_series(series)
        else:
            self.compare()

    def confirm_other_patient(self, text: str) -> bool:
        answer = QMessageBox.warning(self.window, "Another patient", text,
                                     QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                     QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def _on_priors_changed(self) -> None:
        self.compare_action.setEnabled(bool(self.session.priors))

    # -- compare -------------------------------------------------------------------------------
    def prior_series(self) -> list[Any]:
        return [s for r in self.session.priors for st in r.studies for s in st.series]

    def compare(self) -> None:
        """Current (left) and the best matching prior series (right), at the same place in
        the patient, scroll-linked."""
        if not self.session.priors:
            self.window.show_message("Open a prior study first (File > Open prior study...)")
            return
        current = self.window.state.series
        if current is None or self.session.is_prior(current):
            result = self.window.scan_result
            current = next((s for s in (result.all_series() if result else []) if s.items), None)
        prior = best_match(current, self.prior_series())
        if current is None or prior is None:
            return
        self.window.reading.layouts.set_layout("1x2")
        left, right = self.session.viewports[0], self.session.viewports[1]
        sync = self.window.reading.sync
        sync.set_link("scroll", False)
        left.set_series(current)
        right.set_series(prior)
        self.session.set_active(0)
        ca, pa = stack_axis(current), stack_axis(prior)
        pos = ca.position(left.index) if ca is not None else None
        if pos is not None and pa is not None and ca.kind == pa.kind:
            index = nearest_index(pa.positions, pos)
            if index is not None:
                right.set_slice(index)
        elif len(current.items) > 1:
            right.set_slice(round(left.index * (len(prior.items) - 1) / (len(current.items) - 1)))
        sync.link_at_current()

    # -- badges ---------------------------------------------------------------------------------
    def badges(self, vstate: Any) -> list[tuple[str, QColor]]:
        if not self.session.priors or vstate.series is None:
            return []
        study = self.session.study_of(vstate.series)
        if study is None:
            return []
        date = format_date(study.date) or "no date"
        if self.session.is_prior(vstate.series):
            return [(f"PRIOR {date}", PRIOR_COLOUR)]
        return [(f"CURRENT {date}", CURRENT_COLOUR)]

    def shutdown(self) -> None:
        self.loader.shutdown()
