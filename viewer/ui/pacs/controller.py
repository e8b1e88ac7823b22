"""PacsController: the PACS menu, the Query/Retrieve dialog, Send actions, the Storage SCP and Received dock.

Network work runs on a worker thread (`workers.pacs_task` on a TaskRunner); the Storage SCP's
callbacks (pynetdicom threads) reach the GUI through a queued signal.  The SCP
is started only when the user turns it on (PACS > Receive, or the settings'
"Listen"), never by default.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QInputDialog, QListWidget, QListWidgetItem, QWidget

from medviewer.viewer.ui.pacs.workers import pacs_task, with_credentials
from medviewer.viewer.ui.workers import CANCELLED, TaskRunner, TaskState

log = logging.getLogger("medviewer.pacs")


class _ScpBridge(QObject):
    """Carries Storage SCP events from pynetdicom's threads to the GUI thread."""

    sig_received = Signal(object)
    sig_refused = Signal(str)


class ReceivedList(QListWidget):
    """Studies pushed to our Storage SCP: one entry per study; double click opens it."""

    sig_open = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("received")
        self.counts: dict[str, int] = {}
        self._items: dict[str, QListWidgetItem] = {}
        self.itemActivated.connect(lambda item: self.sig_open.emit(item.data(256)))

    def add(self, item: Any) -> None:
        uid = item.study_uid
        self.counts[uid] = self.counts.get(uid, 0) + 1
        folder = str(Path(item.path).parents[1])
        text = (f"{item.patient_name.replace('^', ' ').strip() or '(no name)'} ({item.patient_id})\n"
                f"{item.description or item.modality} - {self.counts[uid]} instance(s) from {item.calling_aet}")
        entry = self._items.get(uid)
        if entry is None:
            entry = QListWidgetItem(text)
            entry.setData(256, folder)
            entry.setToolTip(f"Study {uid}\n{folder}")
            self.insertItem(0, entry)
            self._items[uid] = entry
        else:
            entry.setText(text)


class PacsController(QObject):
    def __init__(self, window: Any) -> None:
        super().__init__(window)
        from medviewer.viewer.pacs.nodes import PacsConfig, load_config

        self.window = window
        try:
            self.config = load_config()
        except Exception as exc:
            self.config = PacsConfig()
            window.show_message(f"PACS settings not read: {exc}", 10000)
        self.scp: Any = None
        self.dialog: Any = None
        self.last_send: list[Any] = []
        self.jobs = TaskRunner(self, name="PACS send")
        self.jobs.sig_progress.connect(self._on_progress)
        self.jobs.sig_finished.connect(self._on_done)
        self.pool = self.jobs.pool
        self._job: TaskState | None = None
        self.bridge = _ScpBridge(self)
        self.received = ReceivedList()
        self.bridge.sig_received.connect(self.received.add)
        self.bridge.sig_refused.connect(lambda text: window.show_message(f"Storage SCP {text}", 8000))
        self.received.sig_open.connect(window.open_path)
        self.received_dock = window.add_dock(self.received, title="Received")
        self.received_dock.hide()

        menu = window.menu("PACS")
        self.act_qr = self._action(menu, "Query/Retrieve...", self.open_query_retrieve, "Ctrl+Shift+Q")
        self.act_send_series = self._action(menu, "Send current series...", self.send_current_series)
        self.act_send_ai = self._action(menu, "Send AI results...", self.send_ai_results)
        menu.addSeparator()
        self.act_listen = self._action(menu, "Receive (Storage SCP)", self.set_listening)
        self.act_listen.setCheckable(True)
        menu.addAction(self.received_dock.toggleViewAction())
        menu.addSeparator()
        self._action(menu, "PACS settings...", self.open_settings)
        window.installEventFilter(self)
        if self.config.scp.enabled:
            self.set_listening(True)

    def _action(self, menu: Any, text: str, slot: Any, shortcut: str | None = None) -> QAction:
        act = QAction(text, self.window)
        if shortcut:
            act.setShortcut(shortcut)
        act.triggered.connect(lambda checked=False: slot(checked) if act.isCheckable() else slot())
        menu.addAction(act)
        return act

    # -- Query/Retrieve ------------------------------------------------------------------
    def open_query_retrieve(self) -> Any:
        from medviewer.viewer.ui.pacs.dialog import QueryRetrieveDialog

        if self.dialog is None:
            self.dialog = QueryRetrieveDialog(self.window, self.config)
            self.dialog.sig_open.connect(self.window.open_path)
        self.dialog.show()
        self.dialog.raise_()
        return self.dialog

    def open_settings(self) -> None:
        from medviewer.viewer.pacs.nodes import save_config
        from medviewer.viewer.ui.pacs.settings_dialog import PacsSettingsDialog

        dlg = PacsSettingsDialog(self.config, self.window)
        if not dlg.exec():
            return
        self.apply_config(dlg.config)
        try:
            save_config(self.config)
        except OSError as exc:
            self.window.show_message(f"PACS settings not saved: {exc}", 10000)

    def apply_config(self, config: Any) -> None:
        was = self.scp is not None
        self.config = config
        if self.dialog is not None:
            self.dialog.deleteLater()
            self.dialog = None
        if was:
            self.set_listening(False)
        if config.scp.enabled or was:
            self.set_listening(config.scp.enabled)

    # -- Storage SCP ------------------------------------------------------------------------
    def scp_folder(self) -> Path:
        from medviewer.viewer.ui.pacs.dialog import cache_root

        return cache_root().parent / "received"

    def set_listening(self, on: bool) -> None:
        """Start / stop our Storage SCP (settings: AE title, port, allowed calling AE titles)."""
        from medviewer.viewer.pacs.nodes import PacsError
        from medviewer.viewer.pacs.scp import StorageSCP

        if not on:
            if self.scp is not None:
                self.scp.stop()
                self.scp = None
                self.window.show_message("Storage SCP stopped")
            self._sync_listen()
            return
        if self.scp is not None:
            return
        s = self.config.scp
        if s.restrict and not s.allowed:
            self.window.show_message("Storage SCP not started: no calling AE title is allowed "
                                     "(PACS settings: add one, or untick 'accept only')", 10000)
            self._sync_listen()
            return
        scp = StorageSCP(self.scp_folder(), aet=s.aet, port=s.port, bind=s.bind,
                         allowed=s.allowed if s.restrict else None, t=self.config.timeouts(),
                         on_received=self.bridge.sig_received.emit, on_refused=self.bridge.sig_refused.emit)
        try:
            scp.start()
        except PacsError as exc:
            self.window.show_message(f"Storage SCP not started: {exc}", 10000)
            self._sync_listen()
            return
        self.scp = scp
        self.received_dock.show()
        who = ", ".join(s.allowed) if s.restrict else "any calling AE title"
        self.window.show_message(f"Storage SCP {s.aet} listening on port {s.port} (accepting {who})", 8000)
        self._sync_listen()

    def _sync_listen(self) -> None:
        self.act_listen.blockSignals(True)
        self.act_listen.setChecked(self.scp is not None)
        self.act_listen.blockSignals(False)

    # -- Send -----------------------------------------------------------------------------------
    def choose_node(self, title: str) -> Any:
        """A configured node, or one typed in (None when cancelled)."""
        from medviewer.viewer.pacs.nodes import parse_node

        names = [f"{n.name}  ({n})" if n.name else str(n) for n in self.config.nodes]
        text, ok = QInputDialog.getItem(self.window, title, "Node (AET@HOST:PORT or URL):", names, 0, True)
        if not ok or not text.strip():
            return None
        if text in names:
            return self.config.nodes[names.index(text)]
        return parse_node(text.strip(), self.config)

    def series_files(self) -> list[Path]:
        s = self.window.state.series
        if s is None or s.kind != "dicom":
            return []
        return list(dict.fromkeys(ref.path for ref in s.items))

    def send_current_series(self, node: Any = None) -> TaskState | None:
        files = self.series_files()
        if not files:
            self.window.show_message("Send: open a DICOM series first")
            return None
        return self.send(files, node, "series")

    def send_ai_results(self, node: Any = None) -> TaskState | None:
        files = list(getattr(getattr(self.window, "ai", None), "last_dicom_outputs", []) or [])
        if not files:
            self.window.show_message("Send AI results: save them first (AI > Save AI results as DICOM...)", 8000)
            return None
        return self.send(files, node, "AI results")

    def send(self, files: list[Path], node: Any, what: str) -> TaskState | None:
        from medviewer.viewer.pacs.client import PacsClient

        try:
            node = node or self.choose_node(f"Send {what}")
            if node is None:
                return None
            client = PacsClient(with_credentials(self.window, node), self.config.aet, self.config.timeouts())
        except Exception as exc:
            self.window.show_message(str(exc), 10000)
            return None
        self._job = self.jobs.start(      # supersedes a send still running
            pacs_task, lambda progress, stop: client.send(files, progress=progress, should_stop=stop), key="send")
        self.window.show_message(f"Sending {len(files)} file(s) ({what}) to {node}...", 0)
        return self._job

    def _on_progress(self, _state: TaskState, done: int, total: int) -> None:
        self.window.show_message(f"Sending: {done}/{total}", 0)

    def _on_done(self, state: TaskState, result: Any, error: str | None) -> None:
        if state is not self._job:
            return
        self._job = None
        if error == CANCELLED:
            self.window.show_message("Send cancelled", 8000)
            return
        if error:
            self.window.show_message(f"Send failed: {error}", 15000)
            return
        self.last_send = list(result)
        ok = sum(r.ok for r in result)
        self.window.show_message(f"Sent: {ok} of {len(result)} file(s) stored", 15000)
        failed = [r for r in result if not r.ok]
        if failed:
            from medviewer.viewer.ui.dialogs import _table_dialog

            dlg = _table_dialog(self.window, "Send: files not stored", ["File", "Reason"],
                                [(str(r.path), r.message) for r in failed])
            dlg.setModal(False)
            dlg.show()
            self._failed_dialog = dlg

    def shutdown(self) -> None:
        if self._job is not None:
            self._job.cancel()
        self.pool.waitForDone(5000)
        if self.dialog is not None:
            self.dialog.done(0)
            self.dialog.pool.waitForDone(5000)
        if self.scp is not None:
            self.scp.stop()
            self.scp = None

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 - Qt override
        """Stop the SCP and the jobs when the window closes."""
        from PySide6.QtCore import QEvent

        if obj is self.window and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False
