"""Annotations and key images of the open studies, with the tool in use (Qt-free).

One `AnnotationStore` (viewer.measure.tools: add / replace / remove with undo and
redo) per study, the key images marked per study (the slices a Key Object
Selection document will reference, PS3.3 A.59), the selected annotation and the
active tool.  The canvases draw `on_image(...)`; the tools UI changes the state only
through these methods, each announced by an event.  `dirty(study)` tells whether a
study has changes not saved as a Structured Report yet.
"""

from __future__ import annotations

from collections.abc import Iterable

from medviewer.viewer.measure.tools import Annotation, AnnotationStore
from medviewer.viewer.state.events import Event

__all__ = ["AnnotationEvents", "AnnotationSession"]

ImageKey = tuple[str, "int | None"]     # (SOP Instance UID, 0-based frame or None)


class AnnotationEvents:
    """changed(study_uid), selection_changed(), tool_changed(name | None),
    key_images_changed(study_uid)."""

    def __init__(self) -> None:
        self.changed = Event("annotations_changed")
        self.selection_changed = Event("selection_changed")
        self.tool_changed = Event("tool_changed")
        self.key_images_changed = Event("key_images_changed")


class AnnotationSession:
    """The annotations of every open study and what the user is doing with them."""

    def __init__(self) -> None:
        self.tool: str | None = None                 # a viewer.measure.tools.TOOLS key
        self._stores: dict[str, AnnotationStore] = {}
        self._keys: dict[str, list[ImageKey]] = {}
        self._versions: dict[str, int] = {}
        self._saved: dict[str, int] = {}
        self.selected: tuple[str, str] | None = None   # (study UID, annotation uid)
        self.events = AnnotationEvents()

    # -- tool -------------------------------------------------------------------------
    def set_tool(self, name: str | None) -> None:
        if name != self.tool:
            self.tool = name
            self.events.tool_changed.emit(name)

    # -- stores -------------------------------------------------------------------------
    def store(self, study_uid: str) -> AnnotationStore:
        if study_uid not in self._stores:
            self._stores[study_uid] = AnnotationStore()
        return self._stores[study_uid]

    def studies(self) -> list[str]:
        return [uid for uid, store in self._stores.items() if len(store)]

    def annotations(self, study_uid: str) -> list[Annotation]:
        return list(self.store(study_uid))

    def on_image(self, study_uid: str, sop_instance_uid: str, frame: int | None) -> list[Annotation]:
        return self.store(study_uid).on_image(sop_instance_uid, frame)

    def find(self, study_uid: str, uid: str) -> Annotation | None:
        return next((a for a in self.store(study_uid) if a.uid == uid), None)

    def _changed(self, study_uid: str) -> None:
        self._versions[study_uid] = self._versions.get(study_uid, 0) + 1
        if self.selected is not None and self.selected[0] == study_uid \
                and self.find(study_uid, self.selected[1]) is None:
            self.selected = None
            self.events.selection_changed.emit()
        self.events.changed.emit(study_uid)

    def add(self, study_uid: str, annotation: Annotation) -> Annotation:
        """Add (undoable); returns the annotation as stored (with its tracking UID)."""
        store = self.store(study_uid)
        store.add(annotation)
        added = list(store)[-1]
        self._changed(study_uid)
        return added

    def replace(self, study_uid: str, old: Annotation, new: Annotation) -> Annotation:
        """Edit (undoable): move, a handle dragged, new text; keeps the tracking UID."""
        store = self.store(study_uid)
        current = self.find(study_uid, old.uid) or old
        store.replace(current, new)
        self._changed(study_uid)
        return self.find(study_uid, old.uid) or new

    def remove(self, study_uid: str, annotation: Annotation) -> None:
        store = self.store(study_uid)
        current = self.find(study_uid, annotation.uid) or annotation
        store.remove(current)
        self._changed(study_uid)

    def undo(self, study_uid: str) -> bool:
        done = self.store(study_uid).undo()
        if done:
            self._changed(study_uid)
        return done

    def redo(self, study_uid: str) -> bool:
        done = self.store(study_uid).redo()
        if done:
            self._changed(study_uid)
        return done

    def restore(self, study_uid: str, annotations: Iterable[Annotation]) -> int:
        """Annotations read back from saved reports: added without undo history (a later
        report replaces an earlier one's annotation of the same tracking UID); the
        study counts as saved.  Returns how many the store holds now."""
        store = self.store(study_uid)
        by_uid = {a.uid: a for a in store}
        for a in annotations:
            by_uid[a.uid] = a
        self._stores[study_uid] = AnnotationStore(by_uid.values())
        self._changed(study_uid)
        self.mark_saved(study_uid)
        return len(self._stores[study_uid])

    # -- selection ------------------------------------------------------------------------
    def select(self, study_uid: str | None, uid: str | None) -> None:
        sel = (study_uid, uid) if study_uid is not None and uid else None
        if sel != self.selected:
            self.selected = sel
            self.events.selection_changed.emit()

    def selected_annotation(self) -> tuple[str, Annotation] | None:
        if self.selected is None:
            return None
        ann = self.find(*self.selected)
        return None if ann is None else (self.selected[0], ann)

    # -- key images ---------------------------------------------------------------------------
    def key_images(self, study_uid: str) -> list[ImageKey]:
        return list(self._keys.get(study_uid, []))

    def is_key(self, study_uid: str, sop_instance_uid: str, frame: int | None) -> bool:
        return (sop_instance_uid, frame) in self._keys.get(study_uid, [])

    def toggle_key(self, study_uid: str, sop_instance_uid: str, frame: int | None) -> bool:
        """Mark or unmark a key image; True when it is marked now."""
        keys = self._keys.setdefault(study_uid, [])
        key = (sop_instance_uid, frame)
        marked = key not in keys
        if marked:
            keys.append(key)
        else:
            keys.remove(key)
        self.events.key_images_changed.emit(study_uid)
        return marked

    def set_key_images(self, study_uid: str, keys: Iterable[ImageKey]) -> None:
        self._keys[study_uid] = list(dict.fromkeys(keys))
        self.events.key_images_changed.emit(study_uid)

    # -- saving -------------------------------------------------------------------------------
    def dirty(self, study_uid: str) -> bool:
        return self._versions.get(study_uid, 0) != self._saved.get(study_uid, 0)

    def mark_saved(self, study_uid: str) -> None:
        self._saved[study_uid] = self._versions.get(study_uid, 0)

    def clear(self) -> None:
        """A new study was opened: forget everything."""
        studies = list(self._stores)
        self._stores.clear()
        self._keys.clear()
        self._versions.clear()
        self._saved.clear()
        self.selected = None
        for uid in studies:
            self.events.changed.emit(uid)
        self.events.selection_changed.emit()
