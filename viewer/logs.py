"""Rotating log file in the user's data folder, kept free of patient identifiers.

Qt-free.  `setup_logging()` attaches one rotating file handler to the root
logger; its `PhiFilter` rewrites every record before it is written so that the
patient identifiers of the Patient Module (PS3.3 C.7.1.1, group 0010: names,
IDs, birth date and the like; the attributes PS3.15 Annex E's Basic Profile
removes) never reach the file:

* values registered with `remember_identifiers(ds)` (the UI and the scanner call
  it for each header they read) are replaced wherever they appear, paths included;
* `keyword=value` / `Keyword: value` pairs for those attributes, pydicom's
  dataset dump lines for group 0010 and caret-separated person names (PS3.5
  6.2, VR PN) are redacted by pattern even when nobody registered them.

`set_debug(True)` (the user's debug option) turns redaction off and logs DEBUG.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

APP = "medviewer"
LOG_NAME = "medviewer.log"
MAX_BYTES = 2 * 2**20
BACKUPS = 4
REDACTED = "[redacted]"

#: Patient Module attributes that identify a person (keywords, PS3.6)
PHI_KEYWORDS: tuple[str, ...] = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "OtherPatientIDs",
    "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
    "PatientAddress", "PatientTelephoneNumbers", "IssuerOfPatientID", "MedicalRecordLocator",
    "ResponsiblePerson", "PatientInsurancePlanCodeSequence", "MilitaryRank", "BranchOfService",
    "EthnicGroup", "PatientReligiousPreference", "CountryOfResidence", "RegionOfResidence",
)
_DATE_KEYWORDS = ("PatientBirthDate",)
_NAME_KEYWORDS = ("PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
                  "ResponsiblePerson")


def _spaced(keyword: str) -> str:
    """PatientBirthDate -> Patient'?s? ?Birth ?Date (pydicom's display names too)."""
    words = re.findall(r"[A-Z][a-z]*|ID", keyword)
    head, rest = words[0], words[1:]
    pattern = re.escape(head) + (r"(?:'s)?" if head == "Patient" else "")
    for w in rest:
        pattern += r"[ _]?" + re.escape(w)
    return pattern


_KEY_ALT = "|".join(sorted({_spaced(k) for k in PHI_KEYWORDS}, key=len, reverse=True))
# keyword followed by = or : and a value (quoted, or up to a delimiter)
_KEY_VALUE = re.compile(
    rf"(?i)\b({_KEY_ALT})(\s*(?:[A-Z]{{2}})?\s*[:=]\s*)(\[[^\]]*\]|'[^']*'|\"[^\"]*\"|[^\s,;)}}]+)")
# pydicom dump line of a group 0010 element: "(0010,0010) Patient's Name   PN: 'DOE^JOHN'"
_DUMP_0010 = re.compile(r"(\(0010,\s?[0-9A-Fa-f]{4}\)[^\n:]*?[A-Z]{2}:\s*)([^\n]*)")
# a person name with ^ separators (PS3.5 6.2 VR PN), e.g. DOE^JOHN or Doe^Jane^^Dr
_CARET_NAME = re.compile(r"[^\s/\\'\"<>,;:()\[\]=]*\^[^\s/\\'\"<>,;:()\[\]=]*")

_lock = threading.Lock()
_known: set[str] = set()
_known_re: re.Pattern[str] | None = None
_debug = False
_handler: logging.Handler | None = None


def log_dir() -> Path:
    """The per-user folder for logs: $MEDVIEWER_LOG_DIR, else <user data folder>/logs.

    See `medviewer.viewer.userdata` (Linux ~/.local/share/medviewer/logs, macOS
    ~/Library/Application Support/medviewer/logs, Windows %LOCALAPPDATA%\\medviewer\\logs).
    """
    from medviewer.viewer.userdata import logs_dir

    return logs_dir()


def log_path() -> Path:
    """The current log file (where `setup_logging` writes, or would write)."""
    if isinstance(_handler, logging.FileHandler):
        return Path(_handler.baseFilename)
    return log_dir() / LOG_NAME


def _variants(keyword: str, value: str) -> set[str]:
    """Spellings of one identifier that may appear in text."""
    value = value.strip()
    out = {value}
    if keyword in _NAME_KEYWORDS and "^" in value:
        parts = [p.strip() for p in value.split("^") if p.strip()]
        out.update(parts)
        if len(parts) >= 2:
            out.add(f"{parts[1]} {parts[0]}")
            out.add(f"{parts[0]} {parts[1]}")
            out.add(f"{parts[0]}, {parts[1]}")
    if keyword in _DATE_KEYWORDS and re.fullmatch(r"\d{8}", value):
        y, m, d = value[:4], value[4:6], value[6:]
        out.update({f"{y}-{m}-{d}", f"{d}.{m}.{y}", f"{m}/{d}/{y}", f"{d}/{m}/{y}"})
    return {v for v in out if len(v) >= 3}  # shorter values would redact ordinary text


def _values(ds: Any) -> Iterable[tuple[str, str]]:
    for kw in PHI_KEYWORDS:
        try:
            value = ds.get(kw) if hasattr(ds, "get") else getattr(ds, kw, None)
        except Exception:
            continue
        if value is None or kw.endswith("Sequence"):
            continue
        items = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
        for item in items:
            text = str(item)
            if text.strip():
                yield kw, text


def remember_identifiers(ds: Any) -> None:
    """Register the identifiers of a header (pydicom Dataset or mapping) for redaction."""
    global _known_re
    new: set[str] = set()
    for kw, text in _values(ds):
        new |= _variants(kw, text)
    with _lock:
        if new - _known:
            _known.update(new)
            alts = sorted(_known, key=len, reverse=True)
            _known_re = re.compile("|".join(re.escape(v) for v in alts), re.IGNORECASE)


def forget_identifiers() -> None:
    """Drop all registered identifiers (tests, or after closing every study)."""
    global _known_re
    with _lock:
        _known.clear()
        _known_re = None


def redact(text: str) -> str:
    """`text` with patient identifiers replaced by [redacted] (unless debug is on)."""
    if _debug or not text:
        return text
    known = _known_re
    if known is not None:
        text = known.sub(REDACTED, text)
    text = _DUMP_0010.sub(lambda m: m.group(1) + REDACTED, text)
    text = _KEY_VALUE.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    return _CARET_NAME.sub(REDACTED, text)


class PhiFilter(logging.Filter):
    """Rewrites each record (message, arguments, traceback) through `redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _debug:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not kill logging
            message = f"{record.msg!r} {record.args!r}"
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def set_debug(enabled: bool) -> None:
    """The user's debug option: no redaction and DEBUG level while on."""
    global _debug
    _debug = bool(enabled)
    if _handler is not None:
        _handler.setLevel(logging.DEBUG if _debug else logging.INFO)
        logging.getLogger().setLevel(logging.DEBUG if _debug else logging.INFO)
    logging.getLogger(APP).log(logging.WARNING if _debug else logging.INFO,
                               "debug logging %s: patient identifiers are %s",
                               "on" if _debug else "off", "NOT redacted" if _debug else "redacted")


def setup_logging(debug: bool | None = None, directory: str | Path | None = None) -> Path:
    """Attach the rotating, redacting file handler to the root logger; return the file.

    Idempotent: a second call only changes the debug option.  If the folder
    cannot be created the app keeps running without a log file (returns the
    path it tried).  `debug=None` reads $MEDVIEWER_DEBUG (1/true/yes).
    """
    global _handler
    if debug is None:
        debug = os.environ.get("MEDVIEWER_DEBUG", "").lower() in ("1", "true", "yes", "on")
    folder = Path(directory) if directory is not None else log_dir()
    path = folder / LOG_NAME
    with _lock:
        if _handler is not None and Path(getattr(_handler, "baseFilename", "")) != path.resolve():
            close_logging_locked()
        if _handler is None:
            try:
                folder.mkdir(parents=True, exist_ok=True)
                handler: logging.Handler = logging.handlers.RotatingFileHandler(
                    path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8", delay=True)
            except OSError as exc:
                print(f"medviewer: cannot write the log in {folder}: {exc.strerror}", file=sys.stderr)
                return path
            handler.setFormatter(logging.Formatter(
                "%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s"))
            handler.addFilter(PhiFilter())
            logging.getLogger().addHandler(handler)
            _handler = handler
    set_debug(debug)
    return path


def capture_native_stderr() -> bool:
    """Send what C libraries write to file descriptor 2 to the log; keep `sys.stderr`.

    libpng, libjpeg, libtiff and OpenCV print warnings straight to fd 2 ("libpng
    error: IDAT: CRC error"), which would precede a command's one-line error.  fd 2
    becomes a pipe whose lines a daemon thread logs (through the redacting filter)
    as `medviewer.native` warnings; Python's `sys.stderr` is rebound to a duplicate
    of the original stderr, so the command's own lines still reach the terminal.
    For the headless commands only (`viewer.cli.run`); False if it cannot be set up.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
        read_end, write_end = os.pipe()
    except (OSError, ValueError, AttributeError):
        return False
    try:
        os.dup2(write_end, 2)
    except OSError:
        for fd in (saved, read_end, write_end):
            os.close(fd)
        return False
    os.close(write_end)
    encoding = getattr(sys.stderr, "encoding", None) or "utf-8"
    sys.stderr = open(saved, "w", buffering=1, encoding=encoding, errors="backslashreplace",
                      closefd=True)
    native = logging.getLogger(f"{APP}.native")

    def pump() -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(read_end, 4096)
            except OSError:
                return
            if not chunk:
                return
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                if line.strip():
                    native.warning("%s", line.decode("utf-8", "replace").rstrip())

    threading.Thread(target=pump, name="native-stderr", daemon=True).start()

    def restore() -> None:  # at exit: late writers must never block on a pipe nobody reads
        try:
            os.dup2(saved, 2)
        except OSError:
            pass

    import atexit

    atexit.register(restore)
    return True


def close_logging_locked() -> None:
    global _handler
    if _handler is not None:
        logging.getLogger().removeHandler(_handler)
        _handler.close()
        _handler = None


def close_logging() -> None:
    """Detach and close the file handler (tests; the app never needs it)."""
    with _lock:
        close_logging_locked()

