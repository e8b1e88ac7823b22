"""viewer.logs: rotating log file, patient identifiers kept out unless debug is on."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from medviewer.viewer import logs


@pytest.fixture
def logfile(tmp_path: Path):
    logs.close_logging()
    logs.forget_identifiers()
    path = logs.setup_logging(debug=False, directory=tmp_path / "logs")
    yield path
    logs.set_debug(False)
    logs.close_logging()
    logs.forget_identifiers()


def _text(path: Path) -> str:
    for h in logging.getLogger().handlers:
        h.flush()
    return path.read_text(encoding="utf-8")


def test_log_dir_follows_platform_and_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MEDVIEWER_LOG_DIR", str(tmp_path / "x"))
    assert logs.log_dir() == tmp_path / "x"
    monkeypatch.delenv("MEDVIEWER_LOG_DIR")
    monkeypatch.setenv("MEDVIEWER_HOME", str(tmp_path / "home"))
    assert logs.log_dir() == tmp_path / "home" / "logs"  # the one user data folder
    monkeypatch.delenv("MEDVIEWER_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    if sys.platform.startswith("linux"):
        assert logs.log_dir() == tmp_path / "data" / "medviewer" / "logs"


def test_real_header_identifiers_never_reach_the_file(logfile):
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    name, pid, dob = str(ds.PatientName), str(ds.PatientID), str(ds.PatientBirthDate or "")
    logs.remember_identifiers(ds)
    log = logging.getLogger("medviewer.io.scan")
    log.info("opened /studies/%s/%s/1.dcm", name, pid)
    log.warning("header dump:\n%s", ds)
    log.info("patient %s", name.split("^")[0])
    try:
        raise ValueError(f"cannot decode file of {name} ({pid})")
    except ValueError:
        log.exception("decode failed")
    text = _text(logfile)
    assert "opened /studies/[redacted]/[redacted]/1.dcm" in text
    assert "decode failed" in text and "Traceback" in text and "ValueError" in text
    for ident in (name, pid, name.split("^")[0], "CT1"):
        assert ident not in text, ident
    if dob:
        assert dob not in text
    # ordinary header content still logged
    assert "Rows" in text and "CT Image Storage" in text


def test_patterns_redact_unregistered_identifiers():
    logs.forget_identifiers()
    out = logs.redact("PatientName=DOE^JANE, PatientID: 'X123', Patient's Birth Date: 19650203, "
                      "patient_id=77 rows=512 (0010,0010) Patient's Name  PN: 'ROE^RICHARD'")
    assert "DOE" not in out and "JANE" not in out and "X123" not in out
    assert "19650203" not in out and "77" not in out and "ROE" not in out
    assert "rows=512" in out
    assert logs.redact("window 40/400 on slice 12 of 3.0 mm") == "window 40/400 on slice 12 of 3.0 mm"


def test_date_of_birth_spellings_are_redacted():
    logs.forget_identifiers()
    logs.remember_identifiers({"PatientBirthDate": "19700314", "PatientName": "Smith^Anna", "PatientID": "7"})
    out = logs.redact("born 1970-03-14 / 14.03.1970 / 19700314; Anna Smith; id 7 of 17")
    assert "1970" not in out and "Smith" not in out and "Anna" not in out
    assert out.endswith("id 7 of 17")  # one-character IDs would redact ordinary digits
    logs.forget_identifiers()


def test_debug_option_keeps_identifiers(logfile):
    logs.set_debug(True)
    logging.getLogger("medviewer").debug("debug view of DOE^JOHN")
    logs.set_debug(False)
    logging.getLogger("medviewer").debug("hidden debug line")
    logging.getLogger("medviewer").info("back to normal for DOE^JOHN")
    text = _text(logfile)
    assert "debug view of DOE^JOHN" in text
    assert "hidden debug line" not in text
    assert "back to normal for [redacted]" in text
    assert "NOT redacted" in text  # switching debug on is itself logged


def test_rotation_keeps_a_bounded_number_of_files(logfile, monkeypatch):
    handler = next(h for h in logging.getLogger().handlers if isinstance(h, logging.handlers.RotatingFileHandler))
    monkeypatch.setattr(handler, "maxBytes", 2000)
    for i in range(400):
        logging.getLogger("medviewer").info("line %d %s", i, "x" * 40)
    files = sorted(p.name for p in logfile.parent.iterdir())
    assert files[0] == "medviewer.log"
    assert len(files) == logs.BACKUPS + 1
    assert "line 399" in _text(logfile)


def test_setup_logging_is_idempotent(logfile):
    again = logs.setup_logging(directory=logfile.parent)
    assert again == logfile
    ours = [h for h in logging.getLogger().handlers
            if any(isinstance(f, logs.PhiFilter) for f in h.filters)]
    assert len(ours) == 1
    assert logs.log_path() == logfile.resolve() or logs.log_path() == logfile


def test_unwritable_folder_is_one_line_not_a_crash(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code = ("from medviewer.viewer import logs; import logging; "
            f"p = logs.setup_logging(directory={str(blocker / 'logs')!r}); "
            "logging.getLogger('x').error('still fine'); print('OK', p.name)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "OK medviewer.log" in res.stdout
    assert "cannot write the log" in res.stderr and "Traceback" not in res.stderr
