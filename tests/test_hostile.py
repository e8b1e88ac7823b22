"""The hostile-input battery: every class of bad input next to a good series, through the
real command line (a subprocess per run, its peak memory and time measured) and the viewer.

Promises checked for each class: exit codes 0/1/2; exactly one stderr line per problem,
naming the file and the reason; no traceback and no C library chatter on stderr; the good
series still listed / predicted; bounded memory (peak RSS of the process) and time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread

import hostilegen as h

MAX_RSS_MB = 300          # peak resident memory of an `info`/`export` process
MAX_GROWTH_MB = 300       # `predict`: growth over the same command on good data alone
TIME_LIMIT = 120          # seconds per command (load on a shared 2-core machine included)


@dataclass
class Run:
    code: int | str
    out: str
    err: str
    rss_mb: float
    seconds: float

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


def _peak_rss_mb(pid: int) -> float | None:
    """VmHWM of a running process (its own peak resident set, MiB).

    Not `ru_maxrss` from wait4: a child spawned with vfork records its parent's peak
    at exec (Linux counts the borrowed address space), i.e. the test runner's.
    """
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_cli(*argv: str, timeout: float = TIME_LIMIT) -> Run:
    """`python -m medviewer ARGV` as a user runs it; its peak RSS, killed at `timeout`."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "medviewer", *argv], stdout=out, stderr=err,
                                stdin=subprocess.DEVNULL, env=dict(os.environ, OMP_NUM_THREADS="1"))
        peak = [0.0]
        while proc.poll() is None:   # the high-water mark only grows: the last reading is the peak
            rss = _peak_rss_mb(proc.pid)
            if rss is not None:
                peak[0] = max(peak[0], rss)
            if time.monotonic() - t0 > timeout:
                proc.kill()
                proc.wait()
                break
            time.sleep(0.005)
        seconds = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        code = "timeout" if seconds > timeout else proc.returncode
        return Run(code, out.read().decode("utf-8"), err.read().decode("utf-8"), peak[0], seconds)


def assert_clean(run: Run) -> None:
    assert run.code != "timeout", f"killed after {TIME_LIMIT} s"
    for bad in ("Traceback", "libpng", "Corrupt JPEG", "WARN:", "[ERROR", "internal error"):
        assert bad not in run.err, run.err


# -- the battery folder: one of each, beside a good series ----------------------------------

EXPECTED = {  # file (as listed) -> words its one line must hold
    "bomb.jpg": "65500 x 65500 pixels",
    "bomb.png": "100000 x 100000 pixels",
    "bomb.tif": "50000 x 50000 pixels",
    "bomb.bmp": "30000 x 30000 pixels",
    "small_bomb.jpg": "cannot hold them",
    "jpeg_bomb.dcm": "JPEG codestream declares 65500 x 65500",
    "j2k_bomb.dcm": "JPEG 2000 codestream declares 60000 x 60000",
    "jls_bomb.dcm": "JPEG-LS codestream declares 65500 x 65500",
    "rle_bomb.dcm": "declares 65535 x 65535",
    "native_claim.dcm": "declares 65535 x 65535",
    "pipe.dcm": "named pipe (FIFO), not a regular file (not opened)",
    "pipe.png": "named pipe (FIFO), not a regular file (not opened)",
    "sock.dcm": "socket, not a regular file (not opened)",
    "link_out.dcm": "link to a file outside the opened folder: not read",
    "loop_a.dcm": "Too many levels of symbolic links",
    "loop_b.dcm": "Too many levels of symbolic links",
    "two\\nlines.png": "not a valid PNG image",
    "crc.png": None,   # passes the header checks; libpng refuses it at decode time (predict)
    "set/DICOMDIR": "outside the opened folder: not read",
    "set/PIPE": "named pipe (FIFO)",
}


@pytest.fixture(scope="module")
def battery(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("battery")
    root = base / "study"
    root.mkdir()
    outside = h.tiny_dicom(base / "outside_secret.dcm")
    good = h.good_series(root / "good", 4)
    h.write_all(root)
    h.jpeg_bomb(root / "small_bomb.jpg", 16000, 16000)   # under the pixel limit, not in 3.5 kB
    h.fifo(root / "pipe.dcm")
    h.fifo(root / "pipe.png")
    _, sock = h.unix_socket(root / "sock.dcm")
    dev = h.zero_device(root / "zero.dcm")
    os.symlink(outside, root / "link_out.dcm")
    h.symlink_loop(root)
    h.newline_name(root, b"not an image")
    h.noisy_png_crc(root / "crc.png")
    tiny = h.tiny_dicom(root / "tiny.dcm")
    odd = h.non_utf8_name(root, h.tiny_dicom(base / "odd.dcm").read_bytes())
    deep = h.deep_path(root, good[0])
    (root / "set").mkdir()
    h.escaping_dicomdir(root / "set", outside)
    yield {"root": root, "good": good, "outside": outside, "device": dev, "tiny": tiny, "odd": odd,
           "deep": deep, "secret_uid": str(dcmread(outside).SOPInstanceUID)}
    sock.close()


def _skipped_line(listing: list[str], name: str) -> list[str]:
    return [ln for ln in listing if ln.strip().startswith(f"{name}: ")]


def test_info_lists_the_good_series_and_names_every_bad_file(battery) -> None:
    run = run_cli("info", str(battery["root"]))
    assert_clean(run)
    assert run.code == 1, run.err
    assert run.err == ""
    assert run.rss_mb < MAX_RSS_MB, run.rss_mb
    lines = run.out.splitlines()
    assert any("4 image(s)" in ln and "16 x 16" in ln for ln in lines), run.out
    skipped = lines[lines.index(next(ln for ln in lines if ln.startswith("Skipped files"))) + 1:]
    for name, words in EXPECTED.items():
        if words is None:
            continue
        found = _skipped_line(skipped, name)
        assert found and all(words in ln for ln in found), (name, found)
    dev = [ln for ln in skipped if ln.strip().startswith("zero.dcm: ")]
    assert len(dev) == 1 and ("character device" in dev[0] or "outside the opened folder" in dev[0])
    assert any("File name too long" in ln for ln in skipped)   # the folder past PATH_MAX
    assert battery["secret_uid"] not in run.out  # the file outside was never read


def test_info_json_is_strict_valid_json_with_printable_paths(battery) -> None:
    run = run_cli("info", "--json", str(battery["root"]))
    assert_clean(run)
    assert run.code == 1 and run.err == ""
    doc = json.loads(run.out)
    text = json.dumps(doc, ensure_ascii=False)
    text.encode("utf-8")  # no lone surrogates anywhere
    paths = [i["path"] for st in doc["studies"] for se in st["series"] for i in se["items"]]
    assert "IM\\xff\\xfe_latin1_\\xe9.dcm" in paths  # the non-UTF-8 name, shown, not lost
    assert all(p.isprintable() for p in paths + [s["path"] for s in doc["skipped"]])
    assert "two\\nlines.png" in [s["path"] for s in doc["skipped"]]
    listed = {s["path"] for s in doc["skipped"]}
    assert {n for n in EXPECTED if EXPECTED[n]} <= listed, listed
    assert battery["secret_uid"] not in run.out
    assert not any(Path(p).name == "outside_secret.dcm" for p in paths)


def test_predict_keeps_every_good_image_and_reports_each_bad_one(battery, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    clean.mkdir()
    for p in battery["good"]:
        (clean / p.name).write_bytes(p.read_bytes())
    base = run_cli("predict", str(clean), "--model", "demo", "--json", str(tmp_path / "base.json"))
    assert base.code == 0, base.err

    out = tmp_path / "battery.json"
    run = run_cli("predict", str(battery["root"]), "--model", "demo", "--json", str(out))
    assert_clean(run)
    assert run.code == 1, run.err
    assert run.rss_mb - base.rss_mb < MAX_GROWTH_MB, (run.rss_mb, base.rss_mb)
    doc = json.loads(out.read_text(encoding="utf-8"))
    items = {i["path"] for s in doc["series"] for i in s["items"]}
    assert {f"good/{p.name}" for p in battery["good"]} <= items           # the good series
    assert {"tiny.dcm", "IM\\xff\\xfe_latin1_\\xe9.dcm"} <= items        # 1x1 images too
    assert all(len(i["probabilities"]) == 4 for s in doc["series"] for i in s["items"])
    # besides the skipped items: the trust warnings of each series (input check, OOD), one line each
    trust = [ln for ln in run.err_lines if ln.startswith("medviewer predict: warning: series ")]
    assert all("the model was trained on" in ln or "unlike the images this model was trained on" in ln
               for ln in trust), trust
    lines = [ln for ln in run.err_lines if ln not in trust]
    assert all(ln.startswith("medviewer predict: skipped ") for ln in lines), lines
    for name, words in EXPECTED.items():
        found = [ln for ln in lines if ln.startswith(f"medviewer predict: skipped {name}: ")]
        assert len(found) == (2 if name == "set/DICOMDIR" else 1), (name, lines)  # 2 bad records
        assert words is None or words in found[0], found
    assert any("crc.png: not a readable PNG image" in ln for ln in lines)
    assert len(lines) == len(set(lines))  # one line per problem, none twice


@pytest.mark.parametrize("make,claim", [
    (lambda d: h.jpeg_bomb(d / "b.jpg"), "65500 x 65500"),
    (lambda d: h.png_bomb(d / "b.png", 30000, 30000), "30000 x 30000"),
    (lambda d: h.tiff_bomb(d / "b.tif", 100000, 100000), "100000 x 100000"),
    (lambda d: h.bmp_bomb(d / "b.bmp", 40000, 40000), "40000 x 40000"),
    (lambda d: h.dicom_jpeg_bomb(d / "b.dcm"), "65500 x 65500"),
    (lambda d: h.dicom_j2k_bomb(d / "b.dcm"), "60000 x 60000"),
    (lambda d: h.dicom_jls_bomb(d / "b.dcm"), "65500 x 65500"),
    (lambda d: h.dicom_rle_bomb(d / "b.dcm"), "65535 x 65535"),
    (lambda d: h.dicom_multiframe_jpeg_bomb(d / "b.dcm"), "frame 1: JPEG codestream declares 65500 x 65500"),
], ids=["jpeg", "png", "tiff", "bmp", "dicom-jpeg", "dicom-j2k", "dicom-jpegls", "dicom-rle",
        "dicom-multiframe"])
def test_export_of_a_bomb_is_one_line_in_bounded_memory(tmp_path: Path, make, claim: str) -> None:
    src = make(tmp_path)
    frame = ["--frame", "1"] if "multiframe" in claim or "frame 1" in claim else []
    run = run_cli("export", str(src), str(tmp_path / "o.png"), *frame, timeout=60)
    assert_clean(run)
    assert run.code == 2
    assert len(run.err_lines) == 1 and run.err_lines[0].startswith("medviewer: error: "), run.err
    assert src.name in run.err and claim in run.err and "not decoded" in run.err
    assert run.rss_mb < MAX_RSS_MB, run.rss_mb
    assert not (tmp_path / "o.png").exists()


def test_library_warnings_never_reach_the_terminal(tmp_path: Path) -> None:
    bad = h.noisy_png_crc(tmp_path / "crc.png")
    run = run_cli("export", str(bad), str(tmp_path / "o.png"))
    assert_clean(run)
    assert run.code == 2 and run.err_lines == ["medviewer: error: crc.png: not a readable PNG image"]
    ok = h.noisy_tiff(tmp_path / "strips.tif")
    run = run_cli("export", str(ok), str(tmp_path / "o.png"))
    assert_clean(run)
    assert run.code == 0 and len(run.err_lines) == 1 and run.err_lines[0].startswith("wrote ")
    from medviewer.viewer import logs

    log = (Path(os.environ["MEDVIEWER_HOME"]) / "logs" / logs.LOG_NAME).read_text(errors="replace")
    assert "libpng error: IDAT: CRC error" in log and "medviewer.native" in log  # kept for support


def test_path_arguments_that_cannot_exist(tmp_path: Path) -> None:
    long_name = tmp_path / ("x" * 300)
    run = run_cli("info", str(long_name))
    assert_clean(run)
    assert run.code == 2 and len(run.err_lines) == 1 and "File name too long" in run.err
    pipe = h.fifo(tmp_path / "pipe")
    run = run_cli("info", str(pipe), timeout=30)
    assert_clean(run)
    assert run.code == 2 and "named pipe (FIFO), not a regular file" in run.err and len(run.err_lines) == 1


# -- in-process: the scan itself never blocks, never leaves the folder ---------------------------

def test_scan_with_special_files_returns(tmp_path: Path) -> None:
    from medviewer.viewer.io.scan import scan

    h.good_series(tmp_path, 2)
    h.fifo(tmp_path / "IM_PIPE")
    _, sock = h.unix_socket(tmp_path / "IM_SOCK")
    box: dict = {}
    t = threading.Thread(target=lambda: box.setdefault("res", scan(tmp_path)), daemon=True)
    t.start()
    t.join(30)
    sock.close()
    assert not t.is_alive(), "scan blocked on a special file"
    res = box["res"]
    assert len(res.all_series()[0].items) == 2
    assert {s.path.name: s.reason.split(",")[0] for s in res.skipped} == {
        "IM_PIPE": "named pipe (FIFO)", "IM_SOCK": "socket"}


def test_dicomdir_never_leads_outside_the_folder(tmp_path: Path) -> None:
    from medviewer.viewer.io.scan import scan

    outside = h.tiny_dicom(tmp_path / "outside_secret.dcm")
    root = tmp_path / "study"
    root.mkdir()
    dicomdir, files = h.escaping_dicomdir(root, outside)
    res = scan(root)
    listed = [r.path for se in res.all_series() for r in se.items]
    assert outside not in listed and all(p.is_relative_to(root) for p in listed)
    reasons = [s.reason for s in res.skipped]
    assert sum("outside the opened folder" in r for r in reasons) == 2, reasons
    assert any("listed in DICOMDIR but missing" in r for r in reasons)  # the 300-character name
    assert any(s.path.name == "PIPE" and "named pipe" in s.reason for s in res.skipped)
    assert sorted(listed) == sorted(files)  # the set's own files are all there
    # a record that reaches outside through a link is refused too
    import pydicom

    import warnings

    os.symlink(tmp_path, root / "UP")
    ds = pydicom.dcmread(dicomdir)
    rec = next(r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r
               and r.ReferencedFileID == "PIPE")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # not a valid File ID: the point of the test
        rec.ReferencedFileID = ["UP", "outside_secret.dcm"]
        ds.save_as(dicomdir, enforce_file_format=True)
    res = scan(root)
    assert outside not in [r.path for se in res.all_series() for r in se.items]
    assert any("a link outside the opened folder" in s.reason for s in res.skipped)


def test_links_inside_the_folder_still_work(tmp_path: Path) -> None:
    from medviewer.viewer.io.scan import scan

    good = h.good_series(tmp_path / "real", 3)
    (tmp_path / "alias").mkdir()
    os.symlink(good[0], tmp_path / "alias" / "first.dcm")
    res = scan(tmp_path)
    assert not res.skipped or all("duplicate" in s.reason for s in res.skipped)


# -- the viewer ---------------------------------------------------------------------------------

def test_viewer_shows_the_study_beside_a_bomb_and_a_fifo(qtbot, tmp_path: Path) -> None:
    from medviewer.viewer.ui.dialogs import skipped_rows
    from medviewer.viewer.ui.settings import Settings
    from medviewer.viewer.ui.window import MainWindow

    root = tmp_path / "study"
    h.good_series(root, 4)
    h.dicom_jpeg_bomb(root / "jpeg_bomb.dcm")
    h.png_bomb(root / "huge.png")
    h.fifo(root / "pipe.dcm")
    multi = h.dicom_multiframe_jpeg_bomb(root / "multi.dcm")
    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.resize(900, 700)
    w.show()
    try:
        w.open_path(root)
        qtbot.waitUntil(lambda: not w.is_scanning() and w.scan_result is not None
                        and w.scan_result.complete, timeout=30000)
        qtbot.waitUntil(lambda: w.canvas.rendered is not None and not w.canvas.loading(), timeout=10000)
        rows = dict(skipped_rows(w.scan_result))
        assert "65500 x 65500" in rows["jpeg_bomb.dcm"] and "100000 x 100000" in rows["huge.png"]
        assert "named pipe" in rows["pipe.dcm"]
        assert w.skipped_button.isVisible() and "Skipped: 3" in w.skipped_button.text()
        modalities = sorted(w.browser.series(u).modality for u in w.browser.series_uids())
        assert modalities == ["CT", "OT"]   # the CT series and the multi-frame file
        # the multi-frame file passes the scan (frame 0 is fine); its bomb frame is refused on display
        uid = next(u for u in w.browser.series_uids() if w.browser.series(u).modality == "OT")
        w.browser.itemClicked.emit(w.browser.item(w.browser.series_uids().index(uid)))
        qtbot.waitUntil(lambda: w.canvas.rendered is not None and not w.canvas.loading(), timeout=10000)
        assert w.canvas.error is None
        w.state.set_slice(1)
        qtbot.waitUntil(lambda: w.canvas.error is not None, timeout=10000)
        assert "frame 1: JPEG codestream declares 65500 x 65500" in w.canvas.error
        assert multi.name in w.canvas.error
        w.state.set_slice(2)  # the next frame displays again
        qtbot.waitUntil(lambda: w.canvas.error is None and not w.canvas.loading()
                        and w.canvas.ref is not None and w.canvas.ref.frame == 2, timeout=10000)
    finally:
        w.shutdown()


def test_viewer_takes_the_decode_limits_from_its_settings(qtbot, tmp_path: Path) -> None:
    from medviewer.viewer.io import guard
    from medviewer.viewer.ui.settings import KEY_MAX_PIXELS, Settings
    from medviewer.viewer.ui.window import MainWindow

    h.good_series(tmp_path / "study", 2)   # 16 x 16 = 256 pixels
    settings = Settings(tmp_path / "settings")
    settings.set_value(KEY_MAX_PIXELS, 255)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    try:
        assert guard.limits().max_pixels == 255
        w.open_path(tmp_path / "study")
        qtbot.waitUntil(lambda: w.scan_result is not None and w.scan_result.complete
                        and not w.is_scanning(), timeout=30000)
        assert not w.scan_result.all_series()
        assert all("over the limit of" in s.reason for s in w.scan_result.skipped)
    finally:
        w.shutdown()
        guard.set_limits()


def test_nothing_usable_names_every_file_then_sums_up(tmp_path: Path) -> None:
    h.jpeg_bomb(tmp_path / "a.jpg")
    h.fifo(tmp_path / "b.dcm")
    run = run_cli("export", str(tmp_path), str(tmp_path / "o.png"))
    assert_clean(run)
    assert run.code == 2
    assert run.err_lines[:2] == ["medviewer export: skipped a.jpg: " + run.err_lines[0].split(": ", 2)[2],
                                 "medviewer export: skipped b.dcm: named pipe (FIFO), not a regular file "
                                 "(not opened)"]
    assert "65500 x 65500" in run.err_lines[0]
    assert len(run.err_lines) == 3 and run.err_lines[2].startswith("medviewer: error: ")
    assert "no displayable image (2 file(s) skipped" in run.err_lines[2]


def test_demo_study_replaces_links_of_earlier_releases(tmp_path: Path) -> None:
    """The demo folder used to link to pydicom's files; links leading out are now refused,
    so the demo holds hard links or copies, and an old cache is repaired."""
    from medviewer.viewer.io.demo import demo_root, real_files
    from medviewer.viewer.io.scan import scan

    old = tmp_path / "demo-study-v1" / "pydicom"
    old.mkdir(parents=True)
    first = real_files()[0]
    os.symlink(first, old / first.name)
    root = demo_root(tmp_path)
    assert not any(p.is_symlink() for p in (root / "pydicom").iterdir())
    res = scan(root)
    listed = {r.path.name for se in res.all_series() for r in se.items}
    assert {p.name for p in real_files()} <= listed | {s.path.name for s in res.non_image}
    assert not any("outside the opened folder" in s.reason for s in res.skipped)
