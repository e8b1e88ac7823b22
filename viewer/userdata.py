"""The one per-user folder of medviewer: models, logs, settings, the AI audit log.

    Linux    $XDG_DATA_HOME/medviewer        (default ~/.local/share/medviewer)
    macOS    ~/Library/Application Support/medviewer
    Windows  %LOCALAPPDATA%\\medviewer

``$MEDVIEWER_HOME`` moves the whole folder (portable installs, tests).  Inside it:

    models/          user models (``*.safetensors``), found by name as well as by path
    logs/            the rotating log (medviewer.log)
    settings.ini     viewer settings (window layout, recent folders, AI choices)
    audit.sqlite     the append-only log of AI analyses and readers' verdicts (engine.audit)

Older releases kept models under ``<AppData>/medviewer/medviewer/models`` and settings in
Qt's native store; `legacy_models_dirs` lists the old model folder so models there still
appear, and the settings module copies old settings over once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

APP = "medviewer"


def user_data_dir() -> Path:
    """The per-user medviewer folder ($MEDVIEWER_HOME, else the platform's data folder)."""
    env = os.environ.get("MEDVIEWER_HOME")
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / APP
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / APP
    return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / APP


def models_dir() -> Path:
    """User models: $MEDVIEWER_MODELS_DIR, else <user data>/models."""
    env = os.environ.get("MEDVIEWER_MODELS_DIR")
    return Path(env).expanduser() if env else user_data_dir() / "models"


def logs_dir() -> Path:
    """Log folder: $MEDVIEWER_LOG_DIR, else <user data>/logs."""
    env = os.environ.get("MEDVIEWER_LOG_DIR")
    return Path(env).expanduser() if env else user_data_dir() / "logs"


def settings_file() -> Path:
    """Settings INI: <$MEDVIEWER_SETTINGS_DIR>/medviewer.ini, else <user data>/settings.ini."""
    env = os.environ.get("MEDVIEWER_SETTINGS_DIR")
    return Path(env).expanduser() / f"{APP}.ini" if env else user_data_dir() / "settings.ini"


def audit_file() -> Path:
    """The AI audit log: $MEDVIEWER_AUDIT_FILE, else <user data>/audit.sqlite."""
    env = os.environ.get("MEDVIEWER_AUDIT_FILE")
    return Path(env).expanduser() if env else user_data_dir() / "audit.sqlite"


def legacy_models_dirs() -> list[Path]:
    """Where releases before the single user folder kept models (read, never written)."""
    if os.environ.get("MEDVIEWER_HOME") or os.environ.get("MEDVIEWER_MODELS_DIR"):
        return []
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    old = base / APP / APP / "models"
    return [old] if old != models_dir() else []
