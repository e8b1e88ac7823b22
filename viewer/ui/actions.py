"""Menus, toolbar and keyboard shortcuts of the main window.

Every command is a QAction with its shortcut, so Help > Keyboard shortcuts
lists exactly what is bound.  Window presets follow viewer.display.PRESETS
(hotkeys 1..5); 0 returns to the file's own window (PS3.3 C.11.2.1.2).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QLabel, QMenu, QSpinBox, QToolBar

MOUSE_ROWS = [
    ("Wheel", "Next / previous slice"),
    ("Ctrl+Wheel", "Zoom around the cursor"),
    ("Left drag", "Pan; with a measurement tool selected, draw (drag an annotation to move it, "
                  "a handle to edit it)"),
    ("Middle drag", "Pan"),
    ("Right drag", "Window / level: horizontal = width, vertical = centre"),
    ("Double click", "Fit to window"),
]


def preset_hotkeys() -> list[tuple[str, str, Any]]:
    """[(key, name, Window)] for the CT presets, hotkeys '1'..'5' (viewer.display.PRESET_KEYS)."""
    from medviewer.viewer.display import PRESET_KEYS, PRESETS

    return [(str(key), name, PRESETS[name])
            for key, name in sorted(PRESET_KEYS.items(), key=lambda kv: str(kv[0])) if name in PRESETS]


def _act(w: Any, text: str, slot: Any, shortcut: Any = None, checkable: bool = False) -> QAction:
    a = QAction(text, w)
    if shortcut is not None:
        if isinstance(shortcut, (list, tuple)):
            a.setShortcuts([QKeySequence(s) for s in shortcut])
        else:
            a.setShortcut(QKeySequence(shortcut))
    a.setCheckable(checkable)
    if checkable:
        a.toggled.connect(slot)
    else:
        a.triggered.connect(lambda _c=False: slot())
    w.addAction(a)  # shortcuts work whichever child has focus
    return a


def build_actions(w: Any) -> dict[str, QAction]:
    """Create the File, View, Window menus and the toolbar of main window `w`."""
    st = w.state
    acts: dict[str, QAction] = {}
    f = w.menu("File")
    acts["open"] = _act(w, "Open folder...", w.choose_folder, QKeySequence.StandardKey.Open)
    acts["open_file"] = _act(w, "Open file...", w.choose_file, "Ctrl+Shift+O")
    acts["demo"] = _act(w, "Open demo study", w.open_demo, "Ctrl+D")
    w.recent_menu = QMenu("Recent folders", w)
    acts["export"] = _act(w, "Export view to PNG...", lambda: w.choose_export(), "Ctrl+E")
    acts["quit"] = _act(w, "Quit", w.close, QKeySequence.StandardKey.Quit)
    f.addActions([acts["open"], acts["open_file"], acts["demo"]])
    f.addMenu(w.recent_menu)
    f.addSeparator()
    acts["skipped"] = _act(w, "Skipped files...", w.show_skipped)
    f.addActions([acts["export"], acts["skipped"]])
    f.addSeparator()
    f.addAction(acts["quit"])
    rebuild_recent_menu(w)

    v = w.menu("View")
    acts["next"] = _act(w, "Next slice", lambda: st.step(1), ["Down", "Right"])
    acts["prev"] = _act(w, "Previous slice", lambda: st.step(-1), ["Up", "Left"])
    acts["next10"] = _act(w, "Forward 10 slices", lambda: st.step(10), "PgDown")
    acts["prev10"] = _act(w, "Back 10 slices", lambda: st.step(-10), "PgUp")
    acts["first"] = _act(w, "First slice", lambda: st.set_slice(0), "Home")
    acts["last"] = _act(w, "Last slice", lambda: st.set_slice(st.count() - 1), "End")
    acts["zoom_in"] = _act(w, "Zoom in", lambda: w.canvas.zoom_by(1.25), ["+", "=", "Ctrl++"])
    acts["zoom_out"] = _act(w, "Zoom out", lambda: w.canvas.zoom_by(0.8), ["-", "Ctrl+-"])
    acts["fit"] = _act(w, "Fit to window", lambda: st.set_zoom(None), "F")
    acts["one"] = _act(w, "Actual pixels (1:1)", lambda: st.set_zoom(1.0), "Ctrl+1")
    acts["text"] = _act(w, "Corner text", st.set_show_text, "T", checkable=True)
    acts["text"].setChecked(True)
    acts["auto_window_per_image"] = _act(w, "Automatic window per image", w.set_auto_window_per_image,
                                         checkable=True)
    acts["auto_window_per_image"].setChecked(w.session.auto_window_per_image)
    acts["auto_window_per_image"].setToolTip(
        "Images without window tags: a window per image (brightness may change while scrolling) "
        "instead of one automatic window for the whole series")
    acts["cine"] = _act(w, "Cine play / pause", w.set_cine, "Space", checkable=True)
    acts["faster"] = _act(w, "Cine faster", lambda: _fps(w, +2), "]")
    acts["slower"] = _act(w, "Cine slower", lambda: _fps(w, -2), "[")
    for key in ("next", "prev", "next10", "prev10", "first", "last"):
        v.addAction(acts[key])
    v.addSeparator()
    for key in ("zoom_in", "zoom_out", "fit", "one"):
        v.addAction(acts[key])
    v.addSeparator()
    for key in ("text", "auto_window_per_image", "cine", "faster", "slower"):
        v.addAction(acts[key])
    v.addSeparator()
    v.addAction(w.browser_dock.toggleViewAction())
    v.addAction(w.tags_dock.toggleViewAction())

    win = w.menu("Window")
    for key, name, preset in preset_hotkeys():
        acts[f"preset_{name}"] = _act(
            w, f"{name.capitalize()}  (W {preset.width:g} / L {preset.center:g})",
            lambda p=preset: st.set_window(p), key)
        win.addAction(acts[f"preset_{name}"])
    acts["reset_window"] = _act(w, "File's own window", lambda: st.set_window(None), "0")
    win.addAction(acts["reset_window"])
    w.header_windows_menu = QMenu("Header windows", w)
    win.addMenu(w.header_windows_menu)
    w._header_windows_key = None
    win.addSeparator()
    default_menu = win.addMenu("Default window for CT")
    group = QActionGroup(w)
    current = w.settings.default_preset()
    for name in ["", *[n for _k, n, _p in preset_hotkeys()]]:
        a = default_menu.addAction(name.capitalize() if name else "File's own window")
        a.setCheckable(True)
        a.setChecked(name == current)
        a.setActionGroup(group)
        a.triggered.connect(lambda _c=False, n=name: w.settings.set_default_preset(n))
        acts[f"default_{name or 'file'}"] = a

    h = w.menu("Help")
    acts["shortcuts"] = _act(w, "Keyboard shortcuts", w.show_shortcuts, QKeySequence.StandardKey.HelpContents)
    h.addAction(acts["shortcuts"])
    h.addSeparator()
    acts["debug_log"] = _act(w, "Debug logging (log includes patient identifiers)",
                             w.set_debug_logging, checkable=True)
    acts["debug_log"].setChecked(w.settings.debug_logging())
    h.addAction(acts["debug_log"])
    acts["open_log"] = _act(w, "Show log file location", w.show_log_location)
    h.addAction(acts["open_log"])

    tb = QToolBar("Main toolbar", w)
    tb.setObjectName("main_toolbar")
    for key in ("open", "demo", "fit", "one", "cine"):
        tb.addAction(acts[key])
    tb.addWidget(QLabel(" fps "))
    w.fps_spin = QSpinBox()
    w.fps_spin.setRange(1, 60)
    w.fps_spin.setValue(w.settings.cine_fps())
    w.fps_spin.setToolTip("Cine rate (frames per second)")
    w.fps_spin.valueChanged.connect(w.set_cine_fps)
    tb.addWidget(w.fps_spin)
    w.addToolBar(tb)
    return acts


def _fps(w: Any, delta: int) -> None:
    w.fps_spin.setValue(max(1, min(60, w.fps_spin.value() + delta)))


def rebuild_recent_menu(w: Any) -> None:
    m: QMenu = w.recent_menu
    m.clear()
    folders = w.settings.recent_folders()
    for p in folders:
        a = m.addAction(p)
        a.triggered.connect(lambda _c=False, p=p: w.open_path(p))
    m.setEnabled(bool(folders))


def refresh_window_menu(w: Any) -> None:
    """List the image's header windows (PS3.3 C.11.2: multi-valued, by explanation)."""
    from medviewer.viewer.display import available_windows

    meta = w.canvas.meta
    windows = tuple(available_windows(meta)) if meta is not None else ()
    if windows == w._header_windows_key:
        return
    w._header_windows_key = windows
    m: QMenu = w.header_windows_menu
    m.clear()
    for i, win in enumerate(windows):
        label = getattr(win, "name", "") or f"Window {i + 1}"
        a = m.addAction(f"{label}  (W {win.width:g} / L {win.center:g})")
        a.triggered.connect(lambda _c=False, win=win: w.state.set_window(win))
    m.setEnabled(bool(windows))


def shortcut_rows(w: Any) -> list[tuple[str, str]]:
    """(keys, action) for every bound action, then the mouse gestures."""
    rows = []
    for a in w.actions():
        keys = ", ".join(s.toString(QKeySequence.SequenceFormat.NativeText) for s in a.shortcuts())
        if keys:
            rows.append((keys, a.text().replace("&", "")))
    return rows + MOUSE_ROWS
