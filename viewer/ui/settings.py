"""Persistent user settings: an INI file in medviewer's user data folder.

Window geometry/state, recent folders, default preset, chosen model and device,
overlay opacity.  The file is `medviewer.viewer.userdata.settings_file()`
(<user data>/settings.ini; ``MEDVIEWER_SETTINGS_DIR`` or ``MEDVIEWER_HOME`` move it).
Settings that older releases kept in Qt's native store are copied over once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

from medviewer.viewer.userdata import settings_file

ORG = "medviewer"
APP = "medviewer"
MAX_RECENT = 10

KEY_RECENT = "recent/folders"
KEY_GEOMETRY = "window/geometry"
KEY_STATE = "window/state"
KEY_PRESET = "view/default_preset"
KEY_OPACITY = "view/overlay_opacity"
KEY_MODEL = "ai/model"
KEY_DEVICE = "ai/device"
KEY_CINE_FPS = "view/cine_fps"
KEY_DEBUG_LOG = "log/debug_identifiers"
KEY_MAX_PIXELS = "io/max_pixels"            # decode limits (viewer.io.guard); 0 or absent:
KEY_MAX_FRAME_BYTES = "io/max_frame_bytes"  # $MEDVIEWER_MAX_PIXELS / _FRAME_BYTES, else defaults
KEY_AUTO_WINDOW_PER_IMAGE = "view/auto_window_per_image"
KEY_EXPORT_FOLDER = "export/folder"
KEY_EXPORT_ANONYMIZE = "export/anonymize"
KEY_EXPORT_SIZE = "export/size"


class Settings:
    """Thin typed wrapper around QSettings; the only place settings keys are read."""

    def __init__(self, directory: str | Path | None = None) -> None:
        path = Path(directory) / f"{APP}.ini" if directory else settings_file()
        fresh = not path.exists()
        self._qs = QSettings(str(path), QSettings.Format.IniFormat)
        if fresh and not directory and not os.environ.get("MEDVIEWER_SETTINGS_DIR"):
            self._migrate_native()

    def _migrate_native(self) -> None:
        """Copy settings of releases that used Qt's native store (once, never deleted)."""
        old = QSettings(ORG, APP)
        keys = old.allKeys()
        if not keys:
            return
        for key in keys:
            self._qs.setValue(key, old.value(key))
        self._qs.sync()

    @property
    def qsettings(self) -> QSettings:
        return self._qs

    def value(self, key: str, default: Any = None, type: type | None = None) -> Any:  # noqa: A002
        raw = self._qs.value(key, default)
        if raw is None or type is None:
            return raw
        try:
            if type is bool and isinstance(raw, str):
                return raw.lower() in ("1", "true", "yes")
            return type(raw)
        except (TypeError, ValueError):
            return default

    def set_value(self, key: str, value: Any) -> None:
        self._qs.setValue(key, value)

    def sync(self) -> None:
        self._qs.sync()

    # -- recent folders ----------------------------------------------------
    def recent_folders(self) -> list[str]:
        raw = self._qs.value(KEY_RECENT, [])
        if isinstance(raw, str):
            raw = [raw] if raw else []
        return [str(p) for p in (raw or [])][:MAX_RECENT]

    def add_recent(self, path: str | Path) -> list[str]:
        p = str(Path(path).resolve())
        items = [x for x in self.recent_folders() if x != p]
        items.insert(0, p)
        items = items[:MAX_RECENT]
        self._qs.setValue(KEY_RECENT, items)
        return items

    def clear_recent(self) -> None:
        self._qs.setValue(KEY_RECENT, [])

    # -- typed accessors -----------------------------------------------------
    def overlay_opacity(self) -> float:
        v = self.value(KEY_OPACITY, 0.5, float)
        return min(1.0, max(0.0, float(v)))

    def set_overlay_opacity(self, v: float) -> None:
        self.set_value(KEY_OPACITY, float(min(1.0, max(0.0, v))))

    def default_preset(self) -> str:
        return str(self.value(KEY_PRESET, "", str) or "")

    def set_default_preset(self, name: str) -> None:
        self.set_value(KEY_PRESET, name)

    def model(self) -> str:
        return str(self.value(KEY_MODEL, "", str) or "")

    def set_model(self, path: str) -> None:
        self.set_value(KEY_MODEL, path)

    def device(self) -> str:
        return str(self.value(KEY_DEVICE, "auto", str) or "auto")

    def set_device(self, device: str) -> None:
        self.set_value(KEY_DEVICE, device)

    def debug_logging(self) -> bool:
        """The user's debug option: log patient identifiers unredacted (off by default)."""
        return str(self.value(KEY_DEBUG_LOG, "false")).lower() in ("1", "true", "yes")

    def set_debug_logging(self, on: bool) -> None:
        self.set_value(KEY_DEBUG_LOG, bool(on))

    def decode_limits(self) -> tuple[int | None, int | None]:
        """(max pixels, max decoded bytes) per image from settings.ini; None = not set."""
        out = []
        for key in (KEY_MAX_PIXELS, KEY_MAX_FRAME_BYTES):
            try:
                value = int(float(self.value(key, 0) or 0))
            except (TypeError, ValueError):
                value = 0
            out.append(value if value > 0 else None)
        return out[0], out[1]

    def cine_fps(self) -> int:
        return max(1, min(60, int(self.value(KEY_CINE_FPS, 10, int))))

    def set_cine_fps(self, fps: int) -> None:
        self.set_value(KEY_CINE_FPS, int(fps))

    def auto_window_per_image(self) -> bool:
        """View > Automatic window per image (off: one automatic window per series)."""
        return str(self.value(KEY_AUTO_WINDOW_PER_IMAGE, "false")).lower() in ("1", "true", "yes")

    def set_auto_window_per_image(self, on: bool) -> None:
        self.set_value(KEY_AUTO_WINDOW_PER_IMAGE, bool(on))

    def export_folder(self) -> str:
        return str(self.value(KEY_EXPORT_FOLDER, "", str) or "")

    def export_anonymize(self) -> bool:
        """Anonymize the overlays of exported views (on unless the user turned it off)."""
        return str(self.value(KEY_EXPORT_ANONYMIZE, "true")).lower() in ("1", "true", "yes")

    def export_size(self) -> str:
        return str(self.value(KEY_EXPORT_SIZE, "screen", str) or "screen")

    def set_export_choices(self, folder: str | Path, anonymize: bool, size: str) -> None:
        self.set_value(KEY_EXPORT_FOLDER, str(folder))
        self.set_value(KEY_EXPORT_ANONYMIZE, bool(anonymize))
        self.set_value(KEY_EXPORT_SIZE, size)

    def geometry(self) -> QByteArray | None:
        v = self._qs.value(KEY_GEOMETRY)
        return v if isinstance(v, QByteArray) else None

    def window_state(self) -> QByteArray | None:
        v = self._qs.value(KEY_STATE)
        return v if isinstance(v, QByteArray) else None

    def save_layout(self, geometry: QByteArray, state: QByteArray) -> None:
        self._qs.setValue(KEY_GEOMETRY, geometry)
        self._qs.setValue(KEY_STATE, state)
