"""One MPR view: a reformatted plane of the volume with the linked crosshair.

It renders the Qt-free `MprState` (viewer.state.mpr): the plane through the
crosshair (`state.grid(kind)`, viewer.display.mpr) through the display pipeline,
the crosshair lines of the two other planes in their colours with rotation handles,
orientation letters from the plane's axes (radiological convention), a scale bar
and corner text.  Gestures: left click / drag moves the crosshair (the other views
follow); dragging a handle on a line turns the other two planes (oblique MPR);
wheel = next plane; Ctrl+wheel = zoom; middle drag = pan; right drag = window /
level; double click = fit.  Thin planes are computed here (a few ms); thick slabs
(MIP / MinIP / mean) only on a worker (viewer.display.mpr.reformat: the oblique
kernels of viewer.display.slab).  One slab task per view is in flight at a time:
when it arrives it is shown if it is still the projection and thickness asked for
(a plane a little behind a moving crosshair, labelled by its own grid, so the
lines and letters stay true to the pixels shown), and the next task asks for where
the crosshair is now.  While the crosshair is dragged the task asks for a draft
(`reformat(..., draft=True)`: half resolution for the slow double-oblique slabs,
exact for the rest); when the drag stops, for the exact slab.  A view keeps its
last slab on screen meanwhile (no flicker to the thin plane); the corner says
"computing..." until the slab shown is the one asked for.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget

from medviewer.viewer.display.mpr import Plane, reformat, render_plane, volume_window
from medviewer.viewer.display.pipeline import Renderer
from medviewer.viewer.display.text import window_text
from medviewer.viewer.state.view import ViewGeometry
from medviewer.viewer.ui.overlays import corner_text_boxes, paint_corner_texts, paint_edge_labels
from medviewer.viewer.ui.qimage import screen_image
from medviewer.viewer.ui.scalebar import paint_scale_bar
from medviewer.viewer.ui.state import dragged_window
from medviewer.viewer.ui.workers import CANCELLED, TaskRunner, TaskState

COLOURS = {"axial": QColor(235, 85, 85), "coronal": QColor(95, 205, 105), "sagittal": QColor(240, 210, 70)}
TITLES = {"axial": "Axial", "coronal": "Coronal", "sagittal": "Sagittal"}
HANDLE_PX = 6.0
ZOOM_STEP = 1.25
TIMINGS_KEPT = 200


def slab_task(state: TaskState, volume: Any, grid: Any, slab_mm: float, projection: str,
              draft: bool = False) -> Plane:
    """A thick slab of `volume` on `grid` (viewer.display.mpr.reformat), off the GUI thread."""
    return reformat(volume, grid, slab_mm, projection, draft=draft)


class MprView(QWidget):
    """The `kind` ('axial', 'coronal', 'sagittal') view of `controller.state`."""

    def __init__(self, kind: str, controller: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(f"mpr_{kind}")
        self.kind = kind
        self.ctl = controller
        self.mpr = controller.state
        self.view = self.mpr.views[kind]          # its zoom / pan
        self.renderer = Renderer()
        self.plane: Plane | None = None
        self.shown: tuple | None = None           # (grid, projection, mm) on screen
        self._asked: tuple | None = None          # (grid, projection, mm, draft) of the slab in flight
        self._failed: tuple | None = None         # (grid, projection, mm) whose slab failed
        self.grey: np.ndarray | None = None
        self._qimage: Any = None
        self._screen: tuple | None = None         # (geometry key, x, y, QImage) on screen
        self.render_ms: list[float] = []          # thin planes: reformat + window + QImage
        self.message = ""
        self._drag: dict[str, Any] | None = None
        self.setMouseTracking(True)
        self.setMinimumSize(64, 64)
        self.setFocusPolicy(Qt.FocusPolicy.WheelFocus)
        self.slabs = TaskRunner(self, name=f"{kind} slab", pool=controller.slab_pool)
        self.slabs.sig_finished.connect(self._on_slab)
        ev = self.mpr.events
        ev.volume_changed.connect(lambda _v: self._on_volume())
        ev.crosshair_changed.connect(lambda _old, _new: self.refresh())
        ev.slab_changed.connect(self.refresh)
        ev.window_changed.connect(lambda _w: self._rerender())
        self.view.events.view_changed.connect(self.update)

    # -- what to show ---------------------------------------------------------------
    def wanted(self) -> tuple | None:
        grid = self.mpr.grid(self.kind)
        if grid is None:
            return None
        projection, mm = self.mpr.slab()
        return grid, projection, mm

    def refresh(self) -> None:
        """Show the plane the state asks for: a thin plane at once (also the first plane
        of a slab), a slab through the worker (`_ask_slab`)."""
        want = self.wanted()
        if want is None:
            self.slabs.cancel()
            self._asked = None
            self.plane = self.grey = self._qimage = self.shown = None
            self.update()
            return
        grid, projection, mm = want
        if projection == "thin" or self.plane is None:
            if self.slabs.running() or self._asked is not None:
                self.slabs.cancel()
                self._asked = None
            if self.shown != (grid, "thin", 0.0):
                t0 = time.perf_counter()
                self._show(reformat(self.mpr.volume, grid), (grid, "thin", 0.0))
                self.render_ms = (self.render_ms + [(time.perf_counter() - t0) * 1000])[-TIMINGS_KEPT:]
        if projection != "thin":
            self._ask_slab()
        self.update()

    def _on_volume(self) -> None:
        self.slabs.cancel()
        self._asked = self._failed = None
        self.plane = self.grey = self._qimage = self.shown = None
        self.refresh()

    def _ask_slab(self) -> None:
        """Start the slab the state asks for unless it is on screen or one is in flight
        (that one's arrival asks again: a moving crosshair gets a slab per task time)."""
        want = self.wanted()
        if want is None or want[1] == "thin" or want == self._failed:
            return
        if self._asked is not None and self._asked[1:3] == want[1:]:
            return          # the same projection and thickness in flight: its arrival asks again
        draft = bool(self.ctl.dragging)
        if self.shown == want and (draft or not self.plane.draft):
            return
        grid, projection, mm = want
        self._asked = (*want, draft)            # supersedes one of another projection / thickness
        self.slabs.start(slab_task, self.mpr.volume, grid, mm, projection, draft, key=self._asked)

    def slab_pending(self) -> bool:
        """True while the slab on screen is not the exact one asked for."""
        want = self.wanted()
        return want is not None and want[1] != "thin" and want != self._failed and (
            self.shown != want or self.plane is None or self.plane.draft)

    def _on_slab(self, state: TaskState, plane: Any, error: str | None) -> None:
        if state.key != self._asked:
            return
        self._asked = None
        if error is not None:
            if error != CANCELLED:
                self._failed = state.key[:3]      # not asked again for this plane
                self.ctl.window.show_message(f"MPR slab: {error}", 8000)
                self.update()
            return
        want = self.wanted()
        if want is not None and state.key[1:3] == want[1:]:   # still the projection and thickness
            self._show(plane, state.key[:3])
            self.update()
        self._ask_slab()

    def _show(self, plane: Plane, key: tuple) -> None:
        self.plane, self.shown = plane, key
        self._rerender(update=False)

    def window(self) -> Any:
        if self.mpr.window is not None:
            return self.mpr.window
        return volume_window(self.mpr.volume) if self.mpr.volume is not None else None

    def _rerender(self, update: bool = True) -> None:
        if self.plane is None:
            return
        self.grey = render_plane(self.plane, self.window(), self.renderer)
        self._qimage = self.grey           # drawn through screen_image (cached per view geometry)
        self._screen = None
        if update:
            self.update()

    # -- geometry -------------------------------------------------------------------
    def view_geometry(self) -> ViewGeometry:
        grid = self.plane.grid if self.plane is not None else None
        cols, rows = (grid.width, grid.height) if grid is not None else (0, 0)
        return ViewGeometry(self.width(), self.height(), cols, rows, 1.0, self.view.zoom, self.view.pan)

    def centre_on_screen(self, geo: ViewGeometry) -> QPointF | None:
        if self.plane is None or self.mpr.crosshair is None:
            return None
        x, y, _ = self.plane.grid.from_patient(np.asarray(self.mpr.crosshair.center))
        return QPointF(*geo.image_to_screen(float(x), float(y)))

    def screen_lines(self, geo: ViewGeometry) -> dict[str, tuple[QPointF, QPointF, tuple[float, float]]]:
        """{other plane: (end, end, unit direction)}: each crosshair line through the centre,
        drawn across the whole view (the planes cut this one along it)."""
        c = self.centre_on_screen(geo)
        if c is None:
            return {}
        out = {}
        for other, line in self.mpr.lines(self.kind).items():
            if line is None:
                continue
            (x0, y0), (x1, y1) = (geo.image_to_screen(*pt) for pt in line)
            dx, dy = x1 - x0, y1 - y0
            n = math.hypot(dx, dy)
            if n < 1e-6:
                continue
            dx, dy = dx / n, dy / n
            ts = []
            for p0, dp, hi in ((c.x(), dx, geo.width), (c.y(), dy, geo.height)):
                if abs(dp) > 1e-12:
                    ts.append(sorted(((0.0 - p0) / dp, (hi - p0) / dp)))
            t0, t1 = max(t[0] for t in ts), min(t[1] for t in ts)
            out[other] = (QPointF(c.x() + t0 * dx, c.y() + t0 * dy), QPointF(c.x() + t1 * dx, c.y() + t1 * dy),
                          (dx, dy))
        return out

    def handles(self, geo: ViewGeometry, lines: dict | None = None) -> list[tuple[str, QPointF]]:
        """(other plane, screen point) of the rotation handles: on each crosshair line, 30 %
        of the view's smaller side away from the centre, on both sides."""
        c = self.centre_on_screen(geo)
        radius = 0.3 * min(geo.width, geo.height)
        out = []
        for other, (_a, _b, (dx, dy)) in (self.screen_lines(geo) if lines is None else lines).items():
            for sign in (1, -1):
                out.append((other, QPointF(c.x() + sign * radius * dx, c.y() + sign * radius * dy)))
        return out

    # -- painting --------------------------------------------------------------------
    def paintEvent(self, _event: Any) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        geo = self.view_geometry()
        p.fillRect(QRectF(0, 0, geo.width, geo.height), Qt.GlobalColor.black)
        if self._qimage is None:
            p.setPen(QColor(200, 200, 200))
            p.drawText(QRectF(0, 0, geo.width, geo.height), Qt.AlignmentFlag.AlignCenter
                       | Qt.TextFlag.TextWordWrap, self.message or "No volume")
            self._paint_frame(p)
            p.end()
            return
        key = (geo.width, geo.height, geo.image_rect())
        if self._screen is None or self._screen[0] != key:
            shown = screen_image(self.grey, geo)
            self._screen = (key, *shown) if shown is not None else (key, 0.0, 0.0, None)
        _key, x, y, img = self._screen
        if img is not None:
            p.drawImage(QPointF(x, y), img)
        self._paint_crosshair(p, geo)
        grid = self.plane.grid
        texts = self.corner_texts(geo)
        paint_edge_labels(p, geo.edge_anchors(), grid.labels().as_dict(), width=geo.width, height=geo.height,
                          avoid=corner_text_boxes(p, texts, geo.width, geo.height))
        paint_scale_bar(p, geo.width, geo.height, grid.spacing / geo.scales()[1])
        paint_corner_texts(p, int(geo.width), int(geo.height), texts)
        self._paint_frame(p)
        p.end()

    def _paint_frame(self, p: QPainter) -> None:
        p.setPen(QPen(COLOURS[self.kind], 2))
        p.setBrush(Qt.BrushStyle.NoBrush)
        p.drawRect(QRectF(self.rect()).adjusted(1, 1, -1, -1))

    def _paint_crosshair(self, p: QPainter, geo: ViewGeometry) -> None:
        lines = self.screen_lines(geo)
        for other, (a, b, _d) in lines.items():      # 1 px lines: crisp, and cheap to draw
            colour = QColor(COLOURS[other])
            colour.setAlpha(210)
            p.setPen(QPen(colour, 1.0))
            p.drawLine(a, b)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        for other, h in self.handles(geo, lines):
            p.setPen(QPen(QColor(0, 0, 0, 200), 1.0))
            p.setBrush(COLOURS[other])
            p.drawEllipse(h, HANDLE_PX / 2 + 1, HANDLE_PX / 2 + 1)

    def corner_texts(self, geo: ViewGeometry) -> dict[str, list[str]]:
        """Plane, slab and position; series and study; window and zoom."""
        from medviewer.viewer.ui.overlays import format_date

        series = self.ctl.series
        title = TITLES[self.kind]
        rot = self.mpr.crosshair.rotation(self.kind) if self.mpr.crosshair is not None else None
        if rot is not None and not np.allclose(rot, np.eye(3), atol=1e-9):
            normal = np.asarray(self.plane.grid.normal)
            tilt = math.degrees(math.acos(min(1.0, float(np.max(np.abs(normal))))))
            title += f" (oblique {tilt:.0f}\N{DEGREE SIGN})"
        tl = [title]
        if series is not None:
            tl.append(f"Se {series.number}: {series.description}".strip() if series.number is not None
                      else series.description)
        projection, mm = self.shown[1:] if self.shown else ("thin", 0.0)
        from medviewer.viewer.state.mpr import PROJECTION_TITLES

        bl = [f"{PROJECTION_TITLES[projection]} {mm:g} mm slab" if projection != "thin" else "Thin plane"]
        if self.plane is not None and self.plane.draft:
            bl[0] += " (draft)"
        if self._failed is not None and self._failed == self.wanted():
            bl[0] += f" ({PROJECTION_TITLES[self._failed[1]]} failed: see the status bar)"
        if self.slab_pending():
            bl[0] += f" ({PROJECTION_TITLES[self.mpr.slab()[0]]} computing...)"
        c = np.asarray(self.mpr.crosshair.center) if self.mpr.crosshair is not None else None
        if c is not None:
            axis = int(np.argmax(np.abs(np.asarray(self.plane.grid.normal))))
            bl.append(f"Loc: {'xyz'[axis]} {c[axis] + 0.0:.2f} mm")
        win = self.window()
        br = [window_text(win.center, win.width, self.plane.meta)] if win is not None else []
        br.append(f"Zoom: {geo.scale() * 100:.0f}%")
        study = self.ctl.window.session.study_of(series)
        tr = [format_date(getattr(study, "date", "") or "")] if study is not None else []
        return {"tl": tl, "tr": [t for t in tr if t], "bl": bl, "br": br}

    # -- mouse -----------------------------------------------------------------------
    def _handle_at(self, pos: QPointF, geo: ViewGeometry) -> QPointF | None:
        for _other, h in self.handles(geo):
            if math.hypot(h.x() - pos.x(), h.y() - pos.y()) <= HANDLE_PX + 3:
                return h
        return None

    def mousePressEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if self.plane is None:
            return
        pos, geo, btn = event.position(), self.view_geometry(), event.button()
        if btn == Qt.MouseButton.LeftButton:
            handle = self._handle_at(pos, geo)
            self.ctl.begin_drag()
            if handle is not None:
                c = self.centre_on_screen(geo)
                self._drag = {"mode": "rotate", "centre": c, "start": handle, "base": self.mpr.crosshair}
            else:
                self._drag = {"mode": "move"}
                self._move_crosshair(pos, geo)
        elif btn == Qt.MouseButton.MiddleButton:
            if self.view.zoom is None:
                self.view.set_zoom(geo.fit_scale())
            self._drag = {"mode": "pan", "start": pos, "pan": self.view.pan}
        elif btn == Qt.MouseButton.RightButton:
            self._drag = {"mode": "window", "start": pos, "win": self.window()}
        event.accept()

    def mouseMoveEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        pos, d = event.position(), self._drag
        if d is None:
            geo = self.view_geometry()
            over = self.plane is not None and self._handle_at(pos, geo) is not None
            self.setCursor(Qt.CursorShape.SizeAllCursor if over else Qt.CursorShape.CrossCursor)
            return
        if d["mode"] == "move":
            self._move_crosshair(pos, self.view_geometry())
        elif d["mode"] == "rotate":
            c, s = d["centre"], d["start"]
            a0 = math.atan2(-(s.y() - c.y()), s.x() - c.x())       # counter-clockwise, y up
            a1 = math.atan2(-(pos.y() - c.y()), pos.x() - c.x())
            self.mpr.rotate(self.kind, a1 - a0, d["base"])
        elif d["mode"] == "pan":
            px, py = d["pan"]
            self.view.set_pan(px + pos.x() - d["start"].x(), py + pos.y() - d["start"].y())
        elif d["mode"] == "window" and d["win"] is not None:
            self.mpr.set_window(dragged_window(d["win"], pos.x() - d["start"].x(), pos.y() - d["start"].y()))

    def mouseReleaseEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        d, self._drag = self._drag, None
        if d is not None and d["mode"] in ("move", "rotate"):
            self.ctl.end_drag()
        event.accept()

    def _move_crosshair(self, pos: QPointF, geo: ViewGeometry) -> None:
        x, y = geo.screen_to_image(pos.x(), pos.y())
        self.mpr.move_to(self.plane.grid.to_patient(x, y))

    def mouseDoubleClickEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        if event.button() == Qt.MouseButton.LeftButton:
            self.view.set_zoom(None)

    def wheelEvent(self, event: Any) -> None:  # noqa: N802 - Qt override
        delta = event.angleDelta().y()
        if not delta or self.plane is None:
            return
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            pos = event.position()
            self.view.zoom_by(ZOOM_STEP if delta > 0 else 1 / ZOOM_STEP, self.view_geometry().scale(),
                              (pos.x() - self.width() / 2, pos.y() - self.height() / 2))
        else:
            self.mpr.scroll(self.kind, -1 if delta > 0 else 1)
        event.accept()

    def shutdown(self, msecs: int = 3000) -> None:
        self._asked = None
        self.slabs.shutdown(msecs)
