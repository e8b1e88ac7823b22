"""PACS settings: our AE title, the remote nodes, timeouts and the Storage SCP (pacs.json).

Nodes are one per line in a table (name, address: AET@HOST:PORT or a DICOMweb
URL, DICOMweb authentication, user name).  Passwords and tokens are not saved:
they come from the environment or are asked for once per session.  The
Storage SCP is off unless "Listen" is ticked; with "accept only" ticked it
takes associations only from the calling AE titles listed.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout,
                               QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QSpinBox,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

AUTH = ("none", "basic", "bearer")


class PacsSettingsDialog(QDialog):
    def __init__(self, config: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("PACS settings")
        self.setObjectName("pacs_settings")
        self.config = config
        self.aet = QLineEdit(config.aet)
        self.timeout = QDoubleSpinBox()
        self.timeout.setRange(0, 600)
        self.timeout.setSpecialValueText("default")
        self.timeout.setValue(config.timeout)
        self.table = QTableWidget(0, 4)
        self.table.setObjectName("nodes")
        self.table.setHorizontalHeaderLabels(["Name", "Address (AET@HOST:PORT or URL)", "Authentication", "User"])
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for n in config.nodes:
            self._add_row(n.name, str(n), getattr(n, "auth", "none"), getattr(n, "username", ""))
        add, remove = QPushButton("Add node"), QPushButton("Remove node")
        add.clicked.connect(lambda: self._add_row("", "", "none", ""))
        remove.clicked.connect(lambda: self.table.removeRow(self.table.currentRow()))
        scp = config.scp
        self.listen = QCheckBox("Listen (a PACS or modality can send studies to medviewer)")
        self.listen.setChecked(scp.enabled)
        self.scp_aet = QLineEdit(scp.aet)
        self.scp_port = QSpinBox()
        self.scp_port.setRange(1, 65535)
        self.scp_port.setValue(scp.port)
        self.restrict = QCheckBox("Accept only these calling AE titles")
        self.restrict.setChecked(scp.restrict)
        self.allowed = QLineEdit(", ".join(scp.allowed))
        self.allowed.setPlaceholderText("ORTHANC, CT_SCANNER_1")
        self.error = QLabel("")
        self.error.setStyleSheet("color:#b00000")
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)

        general = QFormLayout()
        general.addRow("Our AE title", self.aet)
        general.addRow("Network timeout (s)", self.timeout)
        row = QHBoxLayout()
        row.addWidget(add)
        row.addWidget(remove)
        row.addStretch(1)
        box = QGroupBox("Storage SCP (receiving)")
        form = QFormLayout(box)
        form.addRow(self.listen)
        form.addRow("AE title", self.scp_aet)
        form.addRow("Port", self.scp_port)
        form.addRow(self.restrict)
        form.addRow("Allowed calling AE titles", self.allowed)
        lay = QVBoxLayout(self)
        lay.addLayout(general)
        lay.addWidget(QLabel("Remote nodes"))
        lay.addWidget(self.table, 1)
        lay.addLayout(row)
        lay.addWidget(box)
        lay.addWidget(self.error)
        lay.addWidget(buttons)
        self.resize(760, 560)

    def _add_row(self, name: str, address: str, auth: str, user: str) -> None:
        r = self.table.rowCount()
        self.table.insertRow(r)
        self.table.setItem(r, 0, QTableWidgetItem(name))
        self.table.setItem(r, 1, QTableWidgetItem(address))
        combo = QComboBox()
        combo.addItems(AUTH)
        combo.setCurrentText(auth if auth in AUTH else "none")
        self.table.setCellWidget(r, 2, combo)
        self.table.setItem(r, 3, QTableWidgetItem(user))

    def result_config(self) -> Any:
        """The edited settings (UsageError, one line, when something is invalid)."""
        from dataclasses import replace

        from medviewer.viewer.pacs.nodes import PacsConfig, ScpSettings, WebNode, check_aet, parse_node

        nodes = []
        for r in range(self.table.rowCount()):
            name = (self.table.item(r, 0).text() if self.table.item(r, 0) else "").strip()
            address = (self.table.item(r, 1).text() if self.table.item(r, 1) else "").strip()
            if not address:
                continue
            node = parse_node(address)
            if isinstance(node, WebNode):
                node = WebNode.parse(address, name, auth=self.table.cellWidget(r, 2).currentText(),
                                     username=(self.table.item(r, 3).text() if self.table.item(r, 3) else "").strip())
            else:
                node = replace(node, name=name)
            nodes.append(node)
        allowed = [check_aet(a, "allowed calling AE title") for a in self.allowed.text().replace(";", ",").split(",")
                   if a.strip()]
        scp = ScpSettings(self.listen.isChecked(), self.scp_port.value(), check_aet(self.scp_aet.text(), "SCP AE title"),
                          self.config.scp.bind, self.restrict.isChecked(), allowed)
        return PacsConfig(check_aet(self.aet.text(), "our AE title"), nodes, float(self.timeout.value()), scp)

    def accept(self) -> None:  # noqa: D102 - validate before closing
        try:
            self.config = self.result_config()
        except Exception as exc:
            self.error.setText(str(exc))
            return
        super().accept()
