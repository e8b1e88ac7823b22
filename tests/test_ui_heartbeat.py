"""A 1,000-file folder loads off the GUI thread (issue 2, section 4); cancel and replace.

Timing (how long the GUI thread is busy) lives in bench/bench_ui_responsiveness.py and
in the `slow` test here, not in the unit tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.window import MainWindow

N_FILES = 1000


def make_big_folder(root: Path, n: int = N_FILES, n_series: int = 4) -> Path:
    """`n` tiny (8x8) CT slices in `n_series` series, plus a few corrupt files."""
    root.mkdir()
    study = generate_uid()
    series = [generate_uid() for _ in range(n_series)]
    px = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 16).tobytes()
    base = Dataset()
    base.PatientName, base.PatientID, base.StudyInstanceUID = "Heart^Beat", "HB1", study
    base.Modality, base.SamplesPerPixel, base.PhotometricInterpretation = "CT", 1, "MONOCHROME2"
    base.Rows = base.Columns = 8
    base.BitsAllocated, base.BitsStored, base.HighBit, base.PixelRepresentation = 16, 12, 11, 0
    base.RescaleSlope, base.RescaleIntercept = 1, -1024
    base.ImageOrientationPatient, base.PixelSpacing = [1, 0, 0, 0, 1, 0], [1, 1]
    base.PixelData = px
    for i in range(n - 3):
        ds = Dataset()
        ds.update(base)
        sop = generate_uid()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = sop
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SeriesInstanceUID = series[i % n_series]
        ds.SeriesNumber = i % n_series + 1
        ds.InstanceNumber = i // n_series + 1
        ds.ImagePositionPatient = [0, 0, float(i // n_series)]
        ds.save_as(root / f"im{i:05d}.dcm", enforce_file_format=True)
    for k in range(3):
        (root / f"corrupt{k}.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"\xff" * 20)
    return root


def test_loading_1000_files_shows_the_first_image_while_scanning(qtbot, tmp_path):
    """Scan, snapshots and thumbnails off the GUI thread: the first image appears before
    the scan ends; every file is accounted for.  (How long the GUI thread is busy is
    measured in bench/bench_ui_responsiveness.py and asserted by the slow test below.)"""
    from bench.bench_ui_responsiveness import measure_load

    root = make_big_folder(tmp_path / "big")
    _beats, w, first = measure_load(root, tmp_path / "settings")
    qtbot.addWidget(w)
    assert w.browser.count() == 4
    assert sum(len(s.items) for s in w.scan_result.all_series()) == N_FILES - 3
    assert len(w.scan_result.skipped) == 3
    assert first == [True], "the first image must show before the scan ends"
    assert w.loader.running_threads() == 0


@pytest.mark.slow
def test_main_thread_never_stalls_while_loading_1000_files(qtbot, tmp_path):
    """Timing (slow marker): no GUI-thread stall of 100 ms or more while 1,000 files load."""
    from bench.bench_ui_responsiveness import measure_load

    root = make_big_folder(tmp_path / "big")
    beats, w, _first = measure_load(root, tmp_path / "settings")
    qtbot.addWidget(w)
    assert len(beats.gaps) > 20
    report = beats.row()
    print(report)
    if beats.own.max() >= 100:
        # One more load before judging: on a shared machine a worker holding the GIL
        # can be descheduled for tens of ms.  A real stall (work on the GUI thread)
        # shows in both runs; a scheduling accident rarely twice.
        beats, w2, _first = measure_load(root, tmp_path / "settings2")
        qtbot.addWidget(w2)
        report += f"; second run: {beats.row()}"
        print(report)
    assert beats.own.max() < 100, f"GUI thread stalled: {report}"


def test_cancel_keeps_partial_results_and_close_mid_scan_is_clean(qtbot, tmp_path):
    root = make_big_folder(tmp_path / "big", n=300, n_series=2)
    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.show()
    w.open_path(root)
    qtbot.waitUntil(lambda: w.scan_result is not None, timeout=20000)  # first snapshot
    w.cancel_button.click()
    qtbot.waitUntil(lambda: not w.is_scanning() and not w.progress.isVisible(), timeout=20000)
    assert "cancelled" in w.statusBar().currentMessage() or w.scan_result.complete
    assert w.browser.count() >= 1 and w.canvas.state.series is not None
    # open again and close the window while the worker is still reading
    w.open_path(root)
    w.close()
    assert not w.is_scanning()
    assert w.loader.running_threads() == 0


def test_a_new_folder_replaces_a_scan_in_flight(qtbot, tmp_path):
    big = make_big_folder(tmp_path / "big", n=300, n_series=2)
    small = make_big_folder(tmp_path / "small", n=13, n_series=1)
    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.show()
    seen_roots: list[Path] = []
    w.state.sig_scan_updated.connect(lambda r: seen_roots.append(Path(r.root)))
    w.open_path(big)
    w.open_path(small)  # before the first scan finished
    qtbot.waitUntil(lambda: w.scan_result is not None and w.scan_result.complete
                    and not w.is_scanning(), timeout=30000)
    qtbot.wait(300)  # a stale result of the first scan would arrive by now
    assert Path(w.scan_result.root) == small.resolve()
    assert w.browser.count() == 1 and w.state.count() == 10
    assert all(r == small.resolve() for r in seen_roots[-1:])
    assert big.resolve() not in seen_roots[seen_roots.index(small.resolve()):]
    w.shutdown()
