"""Welcome screen shown on a start without arguments: open folder, demo, recent."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QListWidget, QListWidgetItem,
                               QPushButton, QVBoxLayout, QWidget)


class WelcomeWidget(QWidget):
    """Emits sig_open_folder(), sig_open_demo() and sig_open_recent(path)."""

    sig_open_folder = Signal()
    sig_open_demo = Signal()
    sig_open_recent = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("welcome")
        logo = QLabel()
        logo.setAlignment(Qt.AlignmentFlag.AlignCenter)
        try:
            from medviewer.viewer.resources import resource

            pix = QPixmap(str(resource("icons", "medviewer-128.png")))
            if not pix.isNull():
                logo.setPixmap(pix)
        except Exception:  # the welcome page works without its logo
            pass
        title = QLabel("<h1>medviewer</h1><p>DICOM viewer with an AI assistant.</p>"
                       "<p>Open a study folder, drop one on this window, or try the demo.</p>")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.open_button = QPushButton("Open folder...")
        self.open_button.setObjectName("open_folder_button")
        self.demo_button = QPushButton("Open demo study")
        self.demo_button.setObjectName("open_demo_button")
        for b in (self.open_button, self.demo_button):
            b.setMinimumHeight(40)
            b.setMinimumWidth(180)
        self.recent = QListWidget()
        self.recent.setObjectName("recent_list")
        self.recent.setMaximumWidth(560)
        self.recent_label = QLabel("<b>Recent folders</b>")

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.open_button)
        buttons.addWidget(self.demo_button)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addStretch(1)
        lay.addWidget(logo)
        lay.addWidget(title)
        lay.addLayout(buttons)
        lay.addSpacing(16)
        lay.addWidget(self.recent_label, 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addWidget(self.recent, 0, Qt.AlignmentFlag.AlignHCenter)
        lay.addStretch(2)

        self.open_button.clicked.connect(self.sig_open_folder)
        self.demo_button.clicked.connect(self.sig_open_demo)
        self.recent.itemActivated.connect(lambda it: self.sig_open_recent.emit(it.text()))
        self.recent.itemDoubleClicked.connect(lambda it: self.sig_open_recent.emit(it.text()))

    def set_recent(self, folders: list[str]) -> None:
        self.recent.clear()
        for f in folders:
            self.recent.addItem(QListWidgetItem(f))
        has = bool(folders)
        rows = max(1, min(len(folders), 8))
        self.recent.setFixedHeight(rows * self.recent.sizeHintForRow(0) + 8 if folders else 0)
        self.recent.setVisible(has)
        self.recent_label.setVisible(has)
