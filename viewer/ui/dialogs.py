"""Small dialogs: skipped files with reasons, keyboard shortcuts."""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)


def _table_dialog(parent: QWidget | None, title: str, headers: list[str],
                  rows: list[tuple[str, ...]]) -> QDialog:
    dlg = QDialog(parent)
    dlg.setWindowTitle(title)
    table = QTableWidget(len(rows), len(headers), dlg)
    table.setObjectName("table")
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    for r, row in enumerate(rows):
        for c, text in enumerate(row):
            table.setItem(r, c, QTableWidgetItem(text))
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    table.horizontalHeader().setStretchLastSection(True)
    box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    box.rejected.connect(dlg.reject)
    box.accepted.connect(dlg.accept)
    lay = QVBoxLayout(dlg)
    lay.addWidget(table)
    lay.addWidget(box)
    dlg.resize(760, 420)
    dlg.table = table  # type: ignore[attr-defined]
    return dlg


FILE_COLUMN = 100  # characters of a path shown in the skipped-files table


def skipped_rows(result: Any) -> list[tuple[str, str]]:
    """(path relative to the scanned root, reason) for skipped and non-image files."""
    rows: list[tuple[str, str]] = []
    if result is None:
        return rows
    root = getattr(result, "root", None)

    from medviewer.viewer.io.model import printable

    def rel(p: Any) -> str:  # shortened in the middle: a path past PATH_MAX must not hide the reason
        try:
            return printable(p.relative_to(root) if root is not None else p, FILE_COLUMN)
        except ValueError:
            return printable(p, FILE_COLUMN)

    for s in result.skipped:
        rows.append((rel(s.path), printable(s.reason)))
    for n in getattr(result, "non_image", []):
        rows.append((rel(n.path), f"not an image ({printable(n.sop_class)})"))
    return rows


def skipped_dialog(parent: QWidget | None, result: Any) -> QDialog:
    return _table_dialog(parent, "Skipped files", ["File", "Reason"], skipped_rows(result))


def shortcuts_dialog(parent: QWidget | None, shortcuts: list[tuple[str, str]]) -> QDialog:
    return _table_dialog(parent, "Keyboard shortcuts", ["Keys", "Action"], shortcuts)
