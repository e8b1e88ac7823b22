"""AI dock widgets: model picker, probability panel, Grad-CAM controls with a colour bar.

Widgets only display what the controller hands them; no engine work here.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QLinearGradient, QPainter, QPaintEvent
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGridLayout, QHBoxLayout, QLabel,
                               QListWidget, QListWidgetItem, QProgressBar, QPushButton, QSlider,
                               QVBoxLayout, QWidget)

from medviewer.engine.cam import CAM_METHODS
from medviewer.engine.card import NOT_VALIDATED
from medviewer.engine.catalog import ModelEntry, list_models, model_folders
from medviewer.engine.overlay import COLORMAPS, colormap_lut
from medviewer.viewer.ui.ai.trust import TrustPanel, VerdictBar, calibration_text


def card_html(card: Any) -> str:
    metrics = ", ".join(f"{k} {v:.3g}" if isinstance(v, (int, float)) else f"{k} {v}"
                        for k, v in (card.metrics or {}).items()) or "none reported"
    data = card.training_data.get("summary", "") if isinstance(card.training_data, dict) else ""
    win = _window_text(card.window)
    members = getattr(card, "members", None) or []
    if members:   # an ensemble: each member is fed by its own card
        total = sum(card.member_weights) or 1.0
        rows = "".join(f"<br>&nbsp;&nbsp;{html.escape(str(m.get('name')))} {html.escape(str(m.get('version')))} "
                       f"({html.escape(str(m.get('architecture')))}, {m.get('input_size')}px, window "
                       f"{html.escape(_window_text(m.get('window')))}) weight {w / total:.2f}"
                       for m, w in zip(members, card.member_weights))
        what = f"ensemble of {len(members)} (mean of probabilities):{rows}"
    else:
        what = f"{card.architecture}, input {card.input_size}px, window {win}"
    tta = getattr(card, "tta", None)
    return (f"<b>{html.escape(card.name)}</b> {html.escape(card.version)}<br>{what}"
            f"<br>classes: {html.escape(', '.join(card.classes))}<br>intended use: <b>{card.intended_use}</b>"
            f"<br>metrics: {html.escape(metrics)}" + (" (with test-time augmentation)" if tta else "")
            + (f"<br>training data: {html.escape(data)}" if data else "")
            + f"<br>{calibration_text(card)}")


def _window_text(window: Any) -> str:
    if isinstance(window, dict):
        return f"C {window.get('center')} / W {window.get('width')}"
    return str(window)


def model_file_line(path: str | Path, card: Any) -> str:
    """The model file in use, so two models of the same name are told apart:
    'tiny.safetensors, v1.0, 2024-05-01, /home/u/models'."""
    p = Path(path)
    date = (getattr(card, "created", "") or "")[:10] or "no date"
    return f"{p.name}, v{getattr(card, 'version', '?')}, {date}, {p.parent}"


class ModelPicker(QWidget):
    """Lists bundled and user models with their cards; sig_model_chosen(path),
    sig_load_file() for "Load file..." (any .safetensors file)."""

    sig_model_chosen = Signal(str)
    sig_load_file = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ai_model_picker")
        self.list = QListWidget()
        self.details = QLabel("No model selected.")
        self.details.setWordWrap(True)
        self.details.setTextFormat(Qt.TextFormat.RichText)
        self.use_button = QPushButton("Use this model")
        self.refresh_button = QPushButton("Refresh")
        self.load_file_button = QPushButton("Load file...")
        self.load_file_button.setToolTip("Load a .safetensors model file from any folder")
        self.device = QComboBox()
        self.device.setObjectName("ai_device")
        self.device.addItems(["auto", "cpu", "cuda", "mps"])
        self.device.setToolTip("Where models run: auto = CUDA GPU, then Apple MPS, then CPU")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.details)
        dev_row = QHBoxLayout()
        dev_row.addWidget(QLabel("Device:"))
        dev_row.addWidget(self.device, 1)
        lay.addLayout(dev_row)
        row = QHBoxLayout()
        row.addWidget(self.use_button)
        row.addWidget(self.refresh_button)
        row.addWidget(self.load_file_button)
        lay.addLayout(row)
        self.list.currentItemChanged.connect(self._show)
        self.list.itemDoubleClicked.connect(lambda _i: self._choose())
        self.use_button.clicked.connect(self._choose)
        self.refresh_button.clicked.connect(lambda: self.refresh())
        self.load_file_button.clicked.connect(self.sig_load_file.emit)
        self.folders: list[tuple[Path, bool]] | None = None
        self.extra: list[Path] = []   # model files loaded from outside the models folders

    def refresh(self, folders: list[tuple[Path, bool]] | None = None, extra: list[Path] = ()) -> int:
        """List the models of `folders` (default: user, then bundled) plus `extra` files
        (remembered: files loaded directly stay listed)."""
        from medviewer.engine.modelfile import read_card
        from medviewer.viewer.errors import ModelFileError

        if folders is not None:
            self.folders = folders
        for path in extra:
            if Path(path) not in self.extra:
                self.extra.append(Path(path))
        extra = self.extra
        self.list.clear()
        entries = list_models(self.folders)
        known = {e.path.resolve() for e in entries}
        for path in extra:
            if Path(path).resolve() in known:
                continue
            try:
                entries.append(ModelEntry(Path(path), read_card(path), None, False))
            except ModelFileError as exc:
                entries.append(ModelEntry(Path(path), None, str(exc), False))
        names = [e.card.name for e in entries if e.card is not None]
        for e in entries:
            if e.card is None:
                label = f"{e.path.name} (unusable)"
            elif names.count(e.card.name) > 1:
                label = e.label()  # same name twice: version, file, date tell them apart
            else:
                label = e.card.summary()
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, (str(e.path), e.card, e.error))
            item.setToolTip(str(e.path))
            self.list.addItem(item)
        if self.list.count() == 0:
            shown = ", ".join(str(f) for f, _b in (self.folders or model_folders()))
            self.details.setText(f"No models found. Put .safetensors model files in: {shown}")
        return self.list.count()

    def select_path(self, path: str | Path) -> bool:
        """Highlight the listed model at `path` (the one in use) and show its card."""
        target = Path(path).resolve()
        for i in range(self.list.count()):
            item = self.list.item(i)
            if Path(item.data(Qt.ItemDataRole.UserRole)[0]).resolve() == target:
                self.list.setCurrentItem(item)
                return True
        return False

    def _show(self, item: QListWidgetItem | None, _prev: Any = None) -> None:
        if item is None:
            return
        path, card, err = item.data(Qt.ItemDataRole.UserRole)
        self.details.setText(card_html(card) if card else f"<span style='color:#c33'>{err}</span>")
        self.use_button.setEnabled(card is not None)

    def _choose(self) -> None:
        item = self.list.currentItem()
        if item is not None and item.data(Qt.ItemDataRole.UserRole)[1] is not None:
            self.sig_model_chosen.emit(item.data(Qt.ItemDataRole.UserRole)[0])


class ProbabilityPanel(QWidget):
    """Bar per class (top highlighted), model name/version, device, time, notices."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ai_probabilities")
        self.header = QLabel("No model loaded.")
        self.header.setObjectName("ai_model_header")
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice = QLabel("")
        self.notice.setObjectName("ai_notice")
        self.notice.setWordWrap(True)
        self.notice.setStyleSheet("background:#fff3b0; color:#5a4500; padding:4px; border:1px solid #d8b400;")
        self.notice.setVisible(False)
        self.trust = TrustPanel()
        self.verdict = VerdictBar()
        self.grid = QGridLayout()
        self.timing = QLabel("")
        self.timing.setObjectName("ai_timing")
        self.series_label = QLabel("")
        self.series_label.setObjectName("ai_series_result")
        self.series_label.setWordWrap(True)
        self.aggregation = QComboBox()
        self.aggregation.setObjectName("ai_aggregation")
        self.aggregation.addItem("mean over slices", "mean")
        self.aggregation.addItem("max over slices", "max")
        self.aggregation.addItem("top-3 mean", "topk_mean")
        self.status = QLabel("")
        self.status.setObjectName("ai_status")
        self.status.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.header)
        lay.addWidget(self.notice)
        lay.addWidget(self.trust)
        lay.addLayout(self.grid)
        lay.addWidget(self.timing)
        agg_row = QHBoxLayout()
        agg_row.addWidget(QLabel("Series result:"))
        agg_row.addWidget(self.aggregation, 1)
        lay.addLayout(agg_row)
        lay.addWidget(self.series_label)
        lay.addWidget(self.verdict)
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        lay.addLayout(row)
        lay.addWidget(self.status)
        lay.addStretch(1)
        self.bars: list[tuple[QLabel, QProgressBar, QLabel]] = []
        self.top_index: int | None = None

    def set_model(self, card: Any, device: str, path: str | Path | None = None) -> None:
        """Name, version, device and the model file in use (two models of one name
        differ by file, version and date)."""
        head = f"<b>{card.name}</b> {card.version} on {device}"
        if path is not None:
            head += f"<br><small>{model_file_line(path, card)}</small>"
            self.header.setToolTip(str(Path(path).resolve()))
        self.header.setText(head)
        validated = card.intended_use == "validated"
        self.notice.setText("" if validated else NOT_VALIDATED.format(use=card.intended_use))
        self.notice.setVisible(not validated)
        self.trust.set_model(card)
        self.verdict.set_analysis(None)
        while self.bars:
            for w in self.bars.pop():
                self.grid.removeWidget(w)
                w.deleteLater()
        for i, name in enumerate(card.classes):
            name_l, bar, val = QLabel(name), QProgressBar(), QLabel("-")
            bar.setRange(0, 1000)
            bar.setTextVisible(False)
            bar.setValue(0)
            self.grid.addWidget(name_l, i, 0)
            self.grid.addWidget(bar, i, 1)
            self.grid.addWidget(val, i, 2)
            self.bars.append((name_l, bar, val))
        self.series_label.setText("")
        self.top_index = None

    def set_probabilities(self, probs: np.ndarray | None, where: str = "", seconds: float | None = None) -> None:
        """Fill the bars (None clears them); the top class is shown bold and coloured."""
        if probs is None or len(probs) != len(self.bars):
            for name_l, bar, val in self.bars:
                bar.setValue(0)
                val.setText("-")
                name_l.setStyleSheet("")
            self.top_index = None
            self.timing.setText("")
            return
        self.top_index = int(np.argmax(probs))
        for i, ((name_l, bar, val), p) in enumerate(zip(self.bars, probs)):
            bar.setValue(int(round(float(p) * 1000)))
            val.setText(f"{float(p):.3f}")
            top = i == self.top_index
            name_l.setStyleSheet("font-weight:bold; color:#0a6ebd;" if top else "")
            bar.setStyleSheet("QProgressBar::chunk{background:#0a6ebd;}" if top else "")
        if where or seconds is not None:
            t = f", {seconds * 1000:.0f} ms per image" if seconds is not None else ""
            self.timing.setText(f"{where}{t}")

    def set_series_result(self, text: str) -> None:
        self.series_label.setText(text)


class ColorBar(QWidget):
    """Vertical-free horizontal colour bar 0 .. 1 for the heat-map colormap."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ai_colorbar")
        self.setMinimumHeight(22)
        self.colormap = "jet"

    def set_colormap(self, name: str) -> None:
        self.colormap = name
        self.update()

    def paintEvent(self, _e: QPaintEvent) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        lut = colormap_lut(self.colormap)
        grad = QLinearGradient(0, 0, self.width(), 0)
        for k in range(0, 256, 17):
            r, g, b = lut[k]
            grad.setColorAt(k / 255, QColor(int(r), int(g), int(b)))
        bar_h = max(6, self.height() - 12)
        p.fillRect(0, 0, self.width(), bar_h, grad)
        p.setPen(QColor(200, 200, 200))
        p.drawText(0, self.height() - 1, "0")
        p.drawText(self.width() - 8, self.height() - 1, "1")
        p.end()


class CamControls(QWidget):
    """Grad-CAM on/off, opacity, colormap, method, class; emits sig_changed()."""

    sig_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("ai_cam_controls")
        self.enabled = QCheckBox("Show Grad-CAM")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.colormap = QComboBox()
        self.colormap.addItems(list(COLORMAPS))
        self.method = QComboBox()
        for m in CAM_METHODS.values():
            self.method.addItem(m.label, m.name)
            self.method.setItemData(self.method.count() - 1, m.reference, Qt.ItemDataRole.ToolTipRole)
        self.target = QComboBox()
        self.target.setObjectName("ai_class")
        self.target.setToolTip("Class explained by Grad-CAM and shown in the per-slice strip "
                               "(Top class: each slice's own top class for Grad-CAM, the "
                               "series' top class for the strip)")
        self.colorbar = ColorBar()
        self.caption = QLabel("")
        self.caption.setObjectName("ai_cam_caption")
        self.caption.setWordWrap(True)
        form = QFormLayout(self)
        form.setContentsMargins(4, 4, 4, 4)
        form.addRow(self.enabled)
        form.addRow("Opacity", self.opacity)
        form.addRow("Colormap", self.colormap)
        form.addRow("Method", self.method)
        form.addRow("Class", self.target)
        form.addRow(self.colorbar)
        form.addRow(self.caption)
        self.set_classes([])
        self.enabled.toggled.connect(lambda _v: self.sig_changed.emit())
        self.opacity.valueChanged.connect(lambda _v: self.sig_changed.emit())
        self.colormap.currentTextChanged.connect(self._colormap_changed)
        self.method.currentIndexChanged.connect(lambda _v: self.sig_changed.emit())
        self.target.currentIndexChanged.connect(lambda _v: self.sig_changed.emit())

    def _colormap_changed(self, name: str) -> None:
        self.colorbar.set_colormap(name)
        self.sig_changed.emit()

    def set_classes(self, classes: list[str]) -> None:
        self.target.blockSignals(True)
        self.target.clear()
        self.target.addItem("Top class", None)
        for i, c in enumerate(classes):
            self.target.addItem(c, i)
        self.target.blockSignals(False)

    def class_index(self) -> int | None:
        return self.target.currentData()

    def cam_method(self) -> str:
        return str(self.method.currentData())

    def alpha(self) -> float:
        return self.opacity.value() / 100.0
