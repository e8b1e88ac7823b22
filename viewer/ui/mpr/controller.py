"""The MPR layout: volume check and build on workers, the three views, slab controls.

Whenever the active viewport shows another series, `check_series` (headers only,
viewer.io.volume) runs on a worker and its answer is kept per series: the MPR
layout's action is enabled for series that can be a volume, else disabled with the
reason in its tooltip and status tip.  Choosing the layout builds the volume once
(`build_volume` on a worker: stored dtype, frames shared with the slice cache) and
shows axial, coronal and sagittal views with a linked crosshair (viewer.ui.mpr.view).
The slab projection (Thin / MIP / MinIP / Mean) and thickness in mm are on the
reading toolbar.  The active stack follows the crosshair (its nearest acquired
slice) and the crosshair follows the stack's slice keys, so the AI panel and its
per-slice strip (under the view of the acquisition plane) stay in step.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, QThreadPool
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QToolBar, QVBoxLayout,
                               QWidget)

from medviewer.viewer.display.mpr import PLANES, PROJECTIONS
from medviewer.viewer.state.layout import LayoutSpec
from medviewer.viewer.state.mpr import MAX_SLAB_MM, PROJECTION_TITLES, MprState
from medviewer.viewer.ui.mpr.view import MprView
from medviewer.viewer.ui.workers import CANCELLED, TaskRunner, TaskState

log = logging.getLogger("medviewer.ui")

KEY_SLAB_MM = "mpr/slab_mm"
KEY_PROJECTION = "mpr/projection"
CHECKING = "Checking whether this series can be shown as a volume..."


def check_task(state: TaskState, series: Any) -> Any:
    from medviewer.viewer.io.volume import check_series

    return check_series(series)


def build_task(state: TaskState, series: Any, pixels: Any, check: Any) -> Any:
    from medviewer.viewer.display import jit
    from medviewer.viewer.io.volume import build_volume

    volume = build_volume(series, pixels, check, progress=state.progress, should_stop=state.should_stop)
    if volume is not None:
        jit.warm(volume.data.dtype)   # oblique planes' kernels compiled here, not on first use
    return volume


def _series_key(series: Any) -> tuple[str, int] | None:
    return None if series is None else (str(series.series_uid), len(series.items))


class MprPage(QWidget):
    """The MPR layout's page: the three views side by side; the per-slice strip goes
    under the view of the acquisition plane."""

    def __init__(self, views: dict[str, MprView], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("mpr_page")
        self.views = views
        self._holders: dict[str, QVBoxLayout] = {}
        self._strip: QWidget | None = None
        self.strip_kind = "axial"
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(2)
        for kind in PLANES:
            col = QVBoxLayout()
            col.setSpacing(2)
            col.addWidget(views[kind], 1)
            holder = QVBoxLayout()
            holder.setContentsMargins(0, 0, 0, 0)
            col.addLayout(holder)
            self._holders[kind] = holder
            row.addLayout(col, 1)

    def set_slice_strip(self, widget: QWidget | None) -> None:
        if self._strip is not None:
            for holder in self._holders.values():
                holder.removeWidget(self._strip)
        self._strip = widget
        if widget is not None:
            self._holders[self.strip_kind].addWidget(widget)
            if hasattr(widget, "align_to"):
                widget.align_to = None      # cells span the view's width
            widget.update()

    def slice_strip(self) -> QWidget | None:
        return self._strip

    def set_strip_kind(self, kind: str) -> None:
        """The strip goes under the `kind` view (the plane the slices were acquired in)."""
        if kind != self.strip_kind:
            self.strip_kind = kind
            if self._strip is not None:
                self.set_slice_strip(self._strip)


class MprController(QObject):
    """The MPR layout of `window` (`window.reading.mpr`)."""

    def __init__(self, window: Any, toolbar: QToolBar) -> None:
        super().__init__(window)
        self.window = window
        self.state = MprState()
        self.dragging = False
        self.series: Any = None                   # the series the volume was built from
        self.checks: dict[tuple[str, int], Any] = {}
        self.slab_pool = QThreadPool(self)
        self.slab_pool.setMaxThreadCount(2)
        self.check_runner = TaskRunner(self, name="volume check")
        self.build_runner = TaskRunner(self, name="volume")
        self.check_runner.sig_finished.connect(self._on_checked)
        self.build_runner.sig_progress.connect(self._on_build_progress)
        self.build_runner.sig_finished.connect(self._on_built)
        self.views = {kind: MprView(kind, self) for kind in PLANES}
        self.page = MprPage(self.views)
        window.grid.set_mpr_page(self.page)
        self.action: QAction = window.actions_by_name["layout_mpr"]
        self._build_slab_controls(toolbar)
        self._following = False
        window.state.sig_series_changed.connect(lambda _s: self.check_active())
        window.state.sig_slice_changed.connect(self._on_stack_slice)
        window.session.events.layout_changed.connect(self._on_layout)
        window.session.events.scan_updated.connect(lambda _r: self.check_active())
        self.state.events.crosshair_changed.connect(lambda _o, _n: self._follow_crosshair())
        self.check_active()

    # -- toolbar ---------------------------------------------------------------------
    def _build_slab_controls(self, toolbar: QToolBar) -> None:
        settings = self.window.settings
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Slab "))
        self.projection = QComboBox()
        self.projection.setObjectName("mpr_projection")
        for name in PROJECTIONS:
            self.projection.addItem(PROJECTION_TITLES[name], name)
        self.projection.setToolTip("MPR thick slab: Thin plane, maximum (MIP), minimum (MinIP) or "
                                   "mean intensity projection")
        self.thickness = QDoubleSpinBox()
        self.thickness.setObjectName("mpr_slab_mm")
        self.thickness.setRange(0.5, MAX_SLAB_MM)
        self.thickness.setDecimals(1)
        self.thickness.setSingleStep(1.0)
        self.thickness.setSuffix(" mm")
        self.thickness.setToolTip("MPR slab thickness (mm)")
        saved_mm = float(settings.value(KEY_SLAB_MM, self.state.slab_mm, float) or self.state.slab_mm)
        saved_projection = str(settings.value(KEY_PROJECTION, "thin", str) or "thin")
        self.thickness.setValue(saved_mm)
        self.projection.setCurrentIndex(max(0, self.projection.findData(saved_projection)))
        self.state.set_slab(str(self.projection.currentData()), saved_mm)
        self.thickness.setEnabled(self.state.projection != "thin")
        self.projection.currentIndexChanged.connect(lambda _i: self.set_slab(str(self.projection.currentData())))
        self.thickness.valueChanged.connect(lambda mm: self.set_slab(slab_mm=mm))
        toolbar.addWidget(self.projection)
        toolbar.addWidget(self.thickness)
        self.reset_action = QAction("Reset oblique", self.window)
        self.reset_action.setObjectName("mpr_reset_oblique")
        self.reset_action.setToolTip("MPR: back to the standard axial, coronal and sagittal planes")
        self.reset_action.triggered.connect(lambda _c=False: self.state.reset_rotation())
        toolbar.addAction(self.reset_action)
        self.window.actions_by_name["mpr_reset_oblique"] = self.reset_action

    def set_slab(self, projection: str | None = None, slab_mm: float | None = None) -> None:
        """Slab projection and thickness (also the toolbar's), remembered in the settings."""
        for widget, changed in ((self.projection, projection is not None
                                 and self.projection.currentData() != projection),
                                (self.thickness, slab_mm is not None
                                 and abs(self.thickness.value() - slab_mm) > 1e-9)):
            if changed:
                widget.blockSignals(True)
        try:
            if projection is not None:
                self.projection.setCurrentIndex(self.projection.findData(projection))
            if slab_mm is not None:
                self.thickness.setValue(slab_mm)
        finally:
            self.projection.blockSignals(False)
            self.thickness.blockSignals(False)
        self.state.set_slab(projection, None if slab_mm is None else self.thickness.value())
        self.thickness.setEnabled(self.state.projection != "thin")
        self.window.settings.set_value(KEY_PROJECTION, self.state.projection)
        self.window.settings.set_value(KEY_SLAB_MM, self.state.slab_mm)

    # -- volume check -------------------------------------------------------------------
    def check_active(self) -> None:
        """Enable the MPR layout for the active series if it can be a volume."""
        series = self.window.state.series
        key = _series_key(series)
        if key is None:
            self._set_available(False, "MPR: open a series first")
            return
        if key in self.checks:
            check = self.checks[key]
            self._set_available(check.ok, "" if check.ok else f"MPR not available: {check.reason}")
            return
        self._set_available(False, CHECKING)
        self.check_runner.start(check_task, series, key=key)

    def _on_checked(self, state: TaskState, check: Any, error: str | None) -> None:
        if error is not None:
            if error == CANCELLED:
                return
            from medviewer.viewer.io.volume import VolumeCheck

            check = VolumeCheck(error)
        self.checks[state.key] = check
        if state.key == _series_key(self.window.state.series):
            self.check_active()
            if self.in_mpr() and (self.state.volume is None or self.series is None
                                  or _series_key(self.series) != state.key):
                self._enter()

    def _set_available(self, ok: bool, reason: str) -> None:
        self.action.setEnabled(ok)
        tip = "MPR 1 x 3: axial, coronal and sagittal reformats (Alt+M)" if ok else reason
        self.action.setToolTip(tip)
        self.action.setStatusTip("" if ok else reason)
        if not ok and self.in_mpr() and reason != CHECKING:
            self.window.show_message(reason, 10000)
            self.window.reading.layouts.set_layout("1x1", remember=False)

    # -- layout ------------------------------------------------------------------------
    def in_mpr(self) -> bool:
        return self.window.session.layout == "mpr"

    def _on_layout(self, spec: LayoutSpec) -> None:
        if spec.mpr:
            self._enter()

    def _enter(self) -> None:
        """Show the active series' volume; build it first when needed."""
        series = self.window.state.series
        key = _series_key(series)
        check = self.checks.get(key) if key is not None else None
        if check is None or not check.ok:
            return                                   # the check's answer brings us back
        if self.state.volume is not None and _series_key(self.series) == key:
            self._follow_stack(self.window.state.index)
            return
        self.close_volume()
        self.series = series
        self._message(f"Building the volume of {series.description or 'the series'}...")
        self.build_runner.start(build_task, series, self.window.pixels, check, key=key)

    def _on_build_progress(self, _state: TaskState, done: int, total: int) -> None:
        self._message(f"Building the volume: {100 * done // max(1, total)} %")

    def _on_built(self, state: TaskState, volume: Any, error: str | None) -> None:
        if error is not None:
            if error != CANCELLED:
                self._message(f"MPR: {error}")
                self.window.show_message(f"MPR: {error}", 10000)
            return
        if state.key != _series_key(self.series):
            volume.close()
            return
        self.page.set_strip_kind(volume.geometry.kind)      # under the acquisition plane
        self.state.set_volume(volume)
        self._follow_stack(self.window.state.index)
        mib = volume.nbytes / 2**20
        notes = f" ({'; '.join(volume.notes)})" if volume.notes else ""
        self.window.show_message(f"Volume {volume.data.shape[0]} x {volume.data.shape[1]} x "
                                 f"{volume.data.shape[2]} {volume.data.dtype}, {mib:.1f} MiB, shared with "
                                 f"the slice cache{notes}", 10000)

    def _message(self, text: str) -> None:
        for view in self.views.values():
            view.message = text
            view.update()

    def close_volume(self) -> None:
        """Forget the volume (its frames go back to the cache's own management)."""
        self.build_runner.cancel()
        volume, self.series = self.state.volume, None
        if volume is not None:
            self.state.set_volume(None)
            volume.close()

    # -- dragging (draft slabs while dragging, exact slabs when it stops) ------------------
    def begin_drag(self) -> None:
        self.dragging = True

    def end_drag(self) -> None:
        self.dragging = False
        for view in self.views.values():
            view.refresh()

    # -- the stack follows the crosshair and the other way round ------------------------------
    def _follow_crosshair(self) -> None:
        if self._following or not self.in_mpr() or self.state.volume is None:
            return
        index = self.state.nearest_slice()
        st = self.window.state
        if index is not None and st.series is not None and _series_key(st.series) == _series_key(self.series):
            self._following = True
            try:
                st.set_slice(index)
            finally:
                self._following = False

    def _on_stack_slice(self, index: int) -> None:
        if self._following or not self.in_mpr():
            return
        self._follow_stack(index)

    def _follow_stack(self, index: int) -> None:
        if self.state.volume is None or _series_key(self.window.state.series) != _series_key(self.series):
            return
        self._following = True
        try:
            self.state.go_to_slice(index)
        finally:
            self._following = False

    def shutdown(self) -> None:
        self.check_runner.shutdown(3000)
        self.build_runner.shutdown(5000)
        for view in self.views.values():
            view.shutdown()
        self.close_volume()
