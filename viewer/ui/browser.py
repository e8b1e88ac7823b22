"""Series browser: one entry per series with thumbnail, description, modality, count.

It is filled incrementally from scan snapshots (the scan keeps running in its
worker) and thumbnails arrive later by signal from the thread pool.  Entries can be
dragged onto a viewport (viewer.ui.viewport.SERIES_MIME); series of a prior study
are labelled with its date.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QWidget

from medviewer.viewer.ui.qimage import array_to_qimage
from medviewer.viewer.ui.viewport import SERIES_MIME
from medviewer.viewer.ui.workers import THUMB_SIZE

UID_ROLE = Qt.ItemDataRole.UserRole


def series_label(series: Any) -> str:
    """'description\\nmodality - N images' as shown under each thumbnail."""
    desc = (getattr(series, "description", "") or "").strip()
    num = getattr(series, "number", None)
    if not desc:
        if len(series.items) == 1:  # a lone file says more by its name
            from medviewer.viewer.io.model import printable

            desc = printable(series.items[0].path.name, 60)
        else:
            desc = f"Series {num}" if num is not None else "Series"
    elif num is not None:
        desc = f"{num}: {desc}"
    n = len(series.items)
    return f"{desc}\n{series.modality} - {n} image{'s' if n != 1 else ''}"


class SeriesBrowser(QListWidget):
    """List of series; emits sig_series_selected(series) on user choice."""

    sig_series_selected = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("series_browser")
        self.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.setUniformItemSizes(False)
        self.setWordWrap(True)
        self.setSpacing(2)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setDragEnabled(True)
        self.setDragDropMode(QListWidget.DragDropMode.DragOnly)
        self._series: dict[str, Any] = {}
        self._items: dict[str, QListWidgetItem] = {}
        blank = QPixmap(THUMB_SIZE, THUMB_SIZE)
        blank.fill(QColor(40, 40, 40))
        self._blank = QIcon(blank)
        self.itemActivated.connect(self._on_item)
        self.itemClicked.connect(self._on_item)

    def clear_all(self) -> None:
        self.clear()
        self._series.clear()
        self._items.clear()

    def series_uids(self) -> list[str]:
        return [self.item(i).data(UID_ROLE) for i in range(self.count())]

    def series(self, uid: str) -> Any:
        return self._series.get(uid)

    def update_series(self, all_series: list[Any], group: str = "") -> list[Any]:
        """Add or refresh entries; return the series that are new.  `group` (e.g.
        'Prior 2023-03-01') heads the label of each entry of these series."""
        new = []
        for s in all_series:
            uid = s.series_uid
            self._series[uid] = s
            item = self._items.get(uid)
            label = f"{group}\n{series_label(s)}" if group else series_label(s)
            if item is None:
                item = QListWidgetItem(self._blank, label)
                item.setData(UID_ROLE, uid)
                item.setToolTip(f"{group + ': ' if group else ''}{s.modality} {s.columns}x{s.rows}  ({s.kind})"
                                "\nDrag onto a viewport, or double-click to open in the active one")
                self.addItem(item)
                self._items[uid] = item
                new.append(s)
            elif item.text() != label:
                item.setText(label)
        return new

    def mimeData(self, items: list[QListWidgetItem]) -> QMimeData:  # noqa: N802 - Qt override
        """A drag carries the Series Instance UID (dropped on a viewport: shown there)."""
        mime = QMimeData()
        if items:
            mime.setData(SERIES_MIME, str(items[0].data(UID_ROLE)).encode("ascii", "replace"))
            mime.setText(items[0].text())
        return mime

    def mimeTypes(self) -> list[str]:  # noqa: N802 - Qt override
        return [SERIES_MIME]

    def set_thumbnail(self, uid: str, grey: np.ndarray | None) -> None:
        item = self._items.get(uid)
        if item is None or grey is None:
            return
        pix = QPixmap.fromImage(array_to_qimage(grey))
        pix = pix.scaled(THUMB_SIZE, THUMB_SIZE, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)
        item.setIcon(QIcon(pix))

    def has_thumbnail(self, uid: str) -> bool:
        item = self._items.get(uid)
        return item is not None and item.icon().cacheKey() != self._blank.cacheKey()

    def select_uid(self, uid: str) -> None:
        item = self._items.get(uid)
        if item is not None and self.currentItem() is not item:
            self.blockSignals(True)
            self.setCurrentItem(item)
            self.blockSignals(False)

    def _on_item(self, item: QListWidgetItem) -> None:
        s = self._series.get(item.data(UID_ROLE))
        if s is not None:
            self.sig_series_selected.emit(s)
