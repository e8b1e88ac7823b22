"""The Query/Retrieve dialog: choose a node, search studies, retrieve into the local cache and open.

Echo, search and retrieval run on a worker thread (`workers.pacs_task` on a
TaskRunner, over `medviewer.viewer.pacs.client.PacsClient`); the dialog only shows
their results.  A newer request supersedes an older one (generations); Cancel
stops a retrieval at the next instance and keeps what arrived.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QComboBox, QDialog, QFormLayout, QGridLayout,
                               QHBoxLayout, QHeaderView, QLabel, QLineEdit, QProgressBar, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from medviewer.viewer.ui.pacs.workers import pacs_task, with_credentials
from medviewer.viewer.ui.workers import CANCELLED, TaskRunner, TaskState

MODALITIES = ("", "CT", "MR", "CR", "DX", "MG", "US", "PT", "NM", "XA", "RF", "SR", "OT")
DATES = (("Any date", None), ("Today", 0), ("Last 7 days", 7), ("Last 30 days", 30), ("Last year", 365))
COLUMNS = ("Patient name", "Patient ID", "Date", "Description", "Modalities", "Series", "Instances", "Study UID")
UID_COLUMN = COLUMNS.index("Study UID")


def cache_root() -> Path:
    """Where retrieved studies go: <user cache>/pacs/<Study Instance UID>/..."""
    from medviewer.viewer.io.demo import cache_dir

    return cache_dir() / "pacs"


def date_range(days: int | None, today: dt.date | None = None) -> str:
    """A DICOM date range (PS3.4 C.2.2.2.5) for the last `days` days ('' = any)."""
    if days is None:
        return ""
    today = today or dt.date.today()
    return f"{(today - dt.timedelta(days=days)).strftime('%Y%m%d')}-{today.strftime('%Y%m%d')}"


class QueryRetrieveDialog(QDialog):
    """Search a PACS and retrieve studies; emits sig_open(path) for a retrieved study folder."""

    sig_open = Signal(str)

    def __init__(self, parent: QWidget | None = None, config: Any = None, cache: Path | None = None) -> None:
        super().__init__(parent)
        from medviewer.viewer.pacs.nodes import load_config

        self.setWindowTitle("Query/Retrieve")
        self.setObjectName("query_retrieve")
        try:
            self.config = config if config is not None else load_config()
        except Exception as exc:  # unreadable settings: start with the defaults, say why
            from medviewer.viewer.pacs.nodes import PacsConfig

            self.config = PacsConfig()
            self._config_error = str(exc)
        self.cache = Path(cache) if cache is not None else cache_root()
        self.matches: list[Any] = []
        self.last_report: Any = None
        self._job: TaskState | None = None
        self.jobs = TaskRunner(self, name="PACS")
        self.jobs.sig_progress.connect(self._on_progress)
        self.jobs.sig_finished.connect(self._on_done)
        self.pool = self.jobs.pool

        self.node = QComboBox()
        self.node.setObjectName("node")
        self.node.setEditable(True)
        self.node.setMinimumWidth(320)
        self.node.lineEdit().setPlaceholderText("AET@HOST:PORT, a DICOMweb URL, or a saved node")
        for n in self.config.nodes:
            self.node.addItem(f"{n.name}  ({n})" if n.name else str(n), n)
        self.echo_button = QPushButton("Echo")
        self.patient_id = QLineEdit()
        self.patient_name = QLineEdit()
        self.patient_name.setPlaceholderText("e.g. DOE* (wildcards * and ?)")
        self.accession = QLineEdit()
        self.modality = QComboBox()
        self.modality.addItems([m or "Any" for m in MODALITIES])
        self.dates = QComboBox()
        for label, days in DATES:
            self.dates.addItem(label, days)
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("results")
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSortingEnabled(True)
        self.move_box = QCheckBox(f"C-MOVE to our Storage SCP (AE {self.config.scp.aet}, port {self.config.scp.port})")
        self.move_box.setToolTip("The node must know our AE title, this computer's address and the port")
        self.retrieve_button = QPushButton("Retrieve and open")
        self.retrieve_button.setEnabled(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.close_button = QPushButton("Close")
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.status = QLabel(getattr(self, "_config_error", "") or "Choose a node and search.")
        self.status.setObjectName("status")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        top = QHBoxLayout()
        top.addWidget(QLabel("Node"))
        top.addWidget(self.node, 1)
        top.addWidget(self.echo_button)
        form = QGridLayout()
        form.addWidget(QLabel("Patient ID"), 0, 0)
        form.addWidget(self.patient_id, 0, 1)
        form.addWidget(QLabel("Patient name"), 0, 2)
        form.addWidget(self.patient_name, 0, 3)
        form.addWidget(QLabel("Accession"), 1, 0)
        form.addWidget(self.accession, 1, 1)
        form.addWidget(QLabel("Modality"), 1, 2)
        row = QHBoxLayout()
        row.addWidget(self.modality)
        row.addWidget(QLabel("Date"))
        row.addWidget(self.dates, 1)
        row.addWidget(self.search_button)
        form.addLayout(row, 1, 3)
        bottom = QHBoxLayout()
        bottom.addWidget(self.move_box)
        bottom.addStretch(1)
        bottom.addWidget(self.progress)
        bottom.addWidget(self.cancel_button)
        bottom.addWidget(self.retrieve_button)
        bottom.addWidget(self.close_button)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addLayout(form)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.status)
        lay.addLayout(bottom)
        self.resize(980, 560)

        self.echo_button.clicked.connect(self.echo)
        self.search_button.clicked.connect(self.search)
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button.clicked.connect(self.cancel)
        self.close_button.clicked.connect(self.reject)
        self.table.itemSelectionChanged.connect(
            lambda: self.retrieve_button.setEnabled(bool(self.selected_uids()) and self._job is None))
        self.table.itemDoubleClicked.connect(lambda _item: self.retrieve())
        self.node.currentIndexChanged.connect(lambda _i: self._node_changed())
        self._node_changed()

    # -- helpers ------------------------------------------------------------------
    def _node_changed(self) -> None:
        node = self.node.currentData()
        self.move_box.setEnabled(node is None or getattr(node, "kind", "") == "dimse")

    def client(self) -> Any:
        """A PacsClient for the node in the combo box (UsageError when it cannot be parsed)."""
        from medviewer.viewer.pacs.client import PacsClient
        from medviewer.viewer.pacs.nodes import parse_node

        data = self.node.currentData()
        text = self.node.currentText().strip()
        node = data if data is not None and self.node.itemText(self.node.currentIndex()) == text \
            else parse_node(text, self.config)
        return PacsClient(with_credentials(self, node), self.config.aet, self.config.timeouts())

    def query(self) -> Any:
        from medviewer.viewer.pacs.dimse import StudyQuery

        modality = MODALITIES[self.modality.currentIndex()]
        return StudyQuery(self.patient_id.text().strip(), self.patient_name.text().strip(),
                          date_range(self.dates.currentData()), modality, self.accession.text().strip())

    def selected_uids(self) -> list[str]:
        rows = sorted({i.row() for i in self.table.selectedIndexes()})
        return [self.table.item(r, UID_COLUMN).text() for r in rows if self.table.item(r, UID_COLUMN)]

    def _start(self, kind: str, work: Any, busy: str) -> None:
        self._job = self.jobs.start(pacs_task, work, key=kind)   # supersedes a running one
        self.status.setText(busy)
        self.progress.setRange(0, 0)
        self.progress.setVisible(True)
        self.cancel_button.setEnabled(True)
        self.retrieve_button.setEnabled(False)
        self.search_button.setEnabled(False)

    def _fail(self, text: str) -> None:
        self.status.setText(f"<span style='color:#b00000'>{text}</span>")

    # -- actions ---------------------------------------------------------------------
    def echo(self) -> None:
        try:
            client = self.client()
        except Exception as exc:
            self._fail(str(exc))
            return
        self._start("echo", lambda _p, _s: client.echo(), f"Checking {client.node}...")

    def search(self) -> None:
        try:
            client = self.client()
        except Exception as exc:
            self._fail(str(exc))
            return
        query = self.query()
        self._start("find", lambda _p, stop: client.find(query, should_stop=stop), f"Searching {client.node}...")

    def retrieve(self) -> None:
        uids = self.selected_uids()
        if not uids or self._job is not None:
            return
        try:
            client = self.client()
        except Exception as exc:
            self._fail(str(exc))
            return
        move = self.config.scp.port if self.move_box.isChecked() and self.move_box.isEnabled() else None
        cache = self.cache

        def work(progress: Any, stop: Any) -> list[Any]:
            reports = []
            for uid in uids:
                if stop():
                    break
                reports.append(client.retrieve(uid, cache, move_port=move, progress=progress, should_stop=stop))
            return reports

        self._start("get", work, f"Retrieving {len(uids)} stud{'y' if len(uids) == 1 else 'ies'} from {client.node}...")

    def cancel(self) -> None:
        if self._job is not None:
            self._job.cancel()
            self.status.setText("Cancelling (what arrived is kept)...")

    def busy(self) -> bool:
        return self._job is not None

    # -- results -------------------------------------------------------------------------
    def _on_progress(self, _state: TaskState, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"{done}/{total}")

    def _on_done(self, state: TaskState, result: Any, error: str | None) -> None:
        if state is not self._job:
            return
        kind = state.key
        self._job = None
        self.progress.setVisible(False)
        self.cancel_button.setEnabled(False)
        self.search_button.setEnabled(True)
        self.retrieve_button.setEnabled(bool(self.selected_uids()))
        if error == CANCELLED:
            self.status.setText("Cancelled")
            return
        if error:
            self._fail(error)
            return
        if kind == "echo":
            self.status.setText(str(result))
        elif kind == "find":
            self.show_matches(result)
        elif kind == "get":
            self._retrieved(result)

    def show_matches(self, matches: list[Any]) -> None:
        self.matches = list(matches)
        self.table.setSortingEnabled(False)
        self.table.setRowCount(len(matches))
        for r, m in enumerate(matches):
            date = f"{m.date[:4]}-{m.date[4:6]}-{m.date[6:8]}" if len(m.date) == 8 else m.date
            values = (m.patient_name.replace("^", " ").strip(), m.patient_id, date, m.description,
                      "/".join(m.modalities), "" if m.series is None else str(m.series),
                      "" if m.instances is None else str(m.instances), m.study_uid)
            for c, v in enumerate(values):
                item = QTableWidgetItem(v)
                if c in (5, 6):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.status.setText(f"{len(matches)} stud{'y' if len(matches) == 1 else 'ies'} found"
                            + (" - select and retrieve" if matches else ""))
        if matches:
            self.table.selectRow(0)

    def _retrieved(self, reports: list[Any]) -> None:
        self.last_report = reports[-1] if reports else None
        if not reports:
            self.status.setText("Retrieval cancelled")
            return
        lines = [f"{r.study_uid}: {r.summary()}" for r in reports]
        failed = [f"{item}: {why}" for r in reports for item, why in r.failed[:5]]
        bad = any(not r.complete for r in reports)
        text = "<br>".join(lines + failed)
        self.status.setText(f"<span style='color:#b06000'>{text}</span>" if bad else text)
        got = [r for r in reports if r.received or r.already_here]
        if got:
            target = self.cache / got[0].study_uid if len(got) == 1 else self.cache
            self.sig_open.emit(str(target))

    def done(self, code: int) -> None:  # noqa: D102 - closing cancels the running job
        if self._job is not None:
            self._job.cancel()
        super().done(code)


class NodeForm(QWidget):
    """Fields of one node (used by the PACS nodes dialog)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = QLineEdit()
        self.address = QLineEdit()
        self.address.setPlaceholderText("ORTHANC@pacs.example.org:4242 or https://pacs.example.org/dicom-web")
        self.auth = QComboBox()
        self.auth.addItems(["none", "basic", "bearer"])
        self.username = QLineEdit()
        lay = QFormLayout(self)
        lay.addRow("Name", self.name)
        lay.addRow("Address", self.address)
        lay.addRow("DICOMweb authentication", self.auth)
        lay.addRow("User name", self.username)
