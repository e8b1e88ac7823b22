"""DICOM tag browser: the header of the shown image as a filterable tree.

Data elements (PS3.5 7.1) are listed with tag, keyword, VR and value;
sequences (PS3.5 7.5) become child items.  Pixel data is never listed.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout,
                               QWidget)

MAX_VALUE_CHARS = 200
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}


def element_value_text(elem: Any) -> str:
    if elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
        try:
            return f"<{len(elem.value)} bytes>"
        except TypeError:
            return "<binary>"
    try:
        text = str(elem.value)
    except Exception:
        text = repr(elem.value)
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "..."
    return text


class TagBrowser(QWidget):
    """Filter box plus tree of (Tag, Name, VR, Value)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("tag_browser")
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter tags (keyword, tag or value)")
        self.filter.setClearButtonEnabled(True)
        self.tree = QTreeWidget(self)
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Tag", "Name", "VR", "Value"])
        self.tree.setUniformRowHeights(True)
        self.tree.setColumnWidth(0, 96)
        self.tree.setColumnWidth(1, 170)
        self.tree.setColumnWidth(2, 32)
        self.tree.setIndentation(12)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.filter)
        lay.addWidget(self.tree)
        self.filter.textChanged.connect(self.apply_filter)
        self._ds_id: int | None = None

    def set_dataset(self, ds: Any) -> None:
        """Show `ds` (a pydicom Dataset without pixels) or nothing."""
        if ds is not None and id(ds) == self._ds_id:
            return
        self._ds_id = id(ds) if ds is not None else None
        self.tree.setUpdatesEnabled(False)
        self.tree.clear()
        if ds is not None:
            meta = getattr(ds, "file_meta", None)
            if meta is not None:
                self._add(self.tree.invisibleRootItem(), meta)
            self._add(self.tree.invisibleRootItem(), ds)
        self.tree.setUpdatesEnabled(True)
        self.apply_filter(self.filter.text())

    def _add(self, parent: QTreeWidgetItem, ds: Any, depth: int = 0) -> None:
        for elem in ds:
            if int(elem.tag) in PIXEL_TAGS:
                continue
            tag = f"({elem.tag.group:04X},{elem.tag.element:04X})"
            name = elem.keyword or elem.name
            if elem.VR == "SQ":
                item = QTreeWidgetItem(parent, [tag, name, "SQ", f"{len(elem.value)} item(s)"])
                if depth < 8:
                    for i, sub in enumerate(elem.value):
                        child = QTreeWidgetItem(item, ["", f"Item {i + 1}", "", ""])
                        self._add(child, sub, depth + 1)
            else:
                QTreeWidgetItem(parent, [tag, name, str(elem.VR), element_value_text(elem)])

    def apply_filter(self, text: str) -> None:
        """Hide items that do not match; keep ancestors of matches visible."""
        needle = text.strip().lower()
        root = self.tree.invisibleRootItem()
        for i in range(root.childCount()):
            self._filter_item(root.child(i), needle)
        if needle:
            self.tree.expandAll()

    def _filter_item(self, item: QTreeWidgetItem, needle: str) -> bool:
        own = not needle or any(needle in item.text(c).lower() for c in range(4))
        child_match = False
        for i in range(item.childCount()):
            child_match |= self._filter_item(item.child(i), "" if own and needle else needle)
        visible = own or child_match
        item.setHidden(not visible)
        return visible

    def visible_names(self) -> list[str]:
        """Keywords of the visible top-level rows (for tests and export)."""
        root = self.tree.invisibleRootItem()
        return [root.child(i).text(1) for i in range(root.childCount())
                if not root.child(i).isHidden()]
