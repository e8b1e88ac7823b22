"""Keys belong to the image unless the user is typing.

Slice, cine and window keys are window-wide shortcuts (viewer.ui.actions).  A text
field keeps the keys it needs while the user types in it (a filter may contain a
space or a digit), and hands them back the way radiologists expect from reading
workstations: Enter or Escape in the field, a click on the image, or scrolling the
image (the canvas takes focus on the wheel) return the focus to the image.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QObject, Qt
from PySide6.QtWidgets import (QAbstractScrollArea, QAbstractSlider, QAbstractSpinBox, QComboBox,
                               QScrollBar, QWidget)

DONE_KEYS = (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Escape)


class ReturnFocus(QObject):
    """Event filter: Enter / Return / Escape in a watched field focus `target`."""

    def __init__(self, target: QWidget, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.target = target

    def watch(self, field: QWidget) -> None:
        field.installEventFilter(self)
        if isinstance(field, QAbstractSpinBox) and field.lineEdit() is not None:
            field.lineEdit().installEventFilter(self)

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.KeyPress and event.key() in DONE_KEYS:
            self.target.setFocus(Qt.FocusReason.ShortcutFocusReason)
            # Escape would otherwise travel on to the dock; Enter still reaches the field
            return event.key() == Qt.Key.Key_Escape
        return False


class WheelScrolls(QObject):
    """In a scroll area, the wheel scrolls the area unless the control under the mouse has
    focus (a combo box or slider passed on the way down must not change its value)."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt override
        if event.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            area = obj.parentWidget()
            while area is not None and not isinstance(area, QAbstractScrollArea):
                area = area.parentWidget()
            if area is not None:
                QCoreApplication.sendEvent(area.verticalScrollBar(), event)
            return True
        return False


def guard_wheel(container: QWidget, guard: WheelScrolls) -> None:
    """Give the combo boxes, sliders and spin boxes in `container` focus-gated wheels."""
    for w in container.findChildren(QWidget):
        if isinstance(w, (QComboBox, QAbstractSpinBox)) or (
                isinstance(w, QAbstractSlider) and not isinstance(w, QScrollBar)):
            w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            w.installEventFilter(guard)
