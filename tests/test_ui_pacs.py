"""The viewer's PACS, Reports and "Save AI results as DICOM" features (pytest-qt, offscreen).

Against a real Orthanc (tests/orthanc_server.py), one per module: the Query/Retrieve
dialog searches, retrieves into the local cache and opens the study; AI results saved
from the viewer are sent back; the Storage SCP (off until turned on) receives a push;
the Reports dock renders SRs and follows their image links.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

import dicomgen
from medviewer.viewer.pacs.nodes import PacsConfig, ScpSettings, parse_node
from medviewer.viewer.ui.settings import Settings
from medviewer.viewer.ui.window import MainWindow
from orthanc_server import OrthancServer, available, free_port
from test_engine_modelfile import make_model_file

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    root = tmp_path_factory.mktemp("uipacs")
    scp_port = free_port()
    paths, series_uid = dicomgen.ct_series(root / "src", n=6, rows=24, cols=24)
    with OrthancServer(root / "orthanc", modalities={"medviewer": ("MEDVIEWER", scp_port)}) as server:
        for p in paths:
            server.upload(p)
        yield {"server": server, "paths": paths, "study": str(pydicom.dcmread(paths[0]).StudyInstanceUID),
               "series": series_uid, "scp_port": scp_port, "root": root}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("uimodel") / "tiny.safetensors"
    make_model_file(p, arch="resnet18", classes=("normal", "lesion"), size=32)
    return p


@pytest.fixture()
def win(qtbot, tmp_path, monkeypatch, pacs):
    monkeypatch.setenv("MEDVIEWER_SETTINGS_DIR", str(tmp_path / "settings"))
    monkeypatch.setenv("MEDVIEWER_PACS_CONFIG", str(tmp_path / "pacs.json"))
    monkeypatch.setenv("MEDVIEWER_CACHE", str(tmp_path / "cache"))
    from medviewer.viewer.ui import ai, pacs as pacs_ui, reports

    w = MainWindow(settings=Settings(tmp_path / "settings"))
    qtbot.addWidget(w)
    w.show()
    ai.install(w)
    reports.install(w)
    pacs_ui.install(w)
    yield w
    w.pacs.shutdown()
    w.ai.shutdown()
    w.shutdown()


def scanned(w) -> bool:
    """The final result of the scan is in (snapshots have complete=False)."""
    return w.scan_result is not None and w.scan_result.complete and not w.is_scanning()


def test_query_retrieve_dialog_searches_retrieves_and_opens(win, qtbot, pacs):
    assert win.pacs.scp is None  # nothing listens unless the user turns it on
    dlg = win.pacs.open_query_retrieve()
    dlg.node.setEditText(pacs["server"].node)
    dlg.patient_id.setText("GEN001")
    dlg.search()
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=20000)
    assert dlg.table.rowCount() == 1 and "1 study found" in dlg.status.text()
    row = [dlg.table.item(0, c).text() for c in range(dlg.table.columnCount())]
    assert row[0] == "TEST GENERATED" and row[1] == "GEN001" and row[4] == "CT" and row[6] == "6"
    assert row[7] == pacs["study"]
    dlg.table.selectRow(0)
    dlg.retrieve()
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=30000)
    assert "6 instance(s) received of 6" in dlg.status.text()
    qtbot.waitUntil(lambda: scanned(win)
                    and bool(win.scan_result.all_series()), timeout=20000)
    assert Path(win.scan_result.root).name == pacs["study"]
    assert [len(s.items) for s in win.scan_result.all_series()] == [6]
    # the same again: nothing is fetched twice
    dlg.retrieve()
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=30000)
    assert "0 instance(s) received of 6, 6 already here" in dlg.status.text()


def test_query_retrieve_dialog_reports_errors_in_one_line(win, qtbot, pacs):
    dlg = win.pacs.open_query_retrieve()
    dlg.node.setEditText(f"ORTHANC@127.0.0.1:{free_port()}")
    dlg.search()
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=20000)
    assert "connection refused" in dlg.status.text() and dlg.table.rowCount() == 0
    dlg.node.setEditText("not a node")
    dlg.echo()
    assert "AET@HOST:PORT" in dlg.status.text()
    dlg.node.setEditText(pacs["server"].dicomweb)
    dlg.echo()
    qtbot.waitUntil(lambda: not dlg.busy(), timeout=20000)
    assert "DICOMweb ok" in dlg.status.text()


def test_save_ai_results_as_dicom_then_send_them(win, qtbot, tmp_path, pacs, model_file):
    from medviewer.viewer.display import PRESETS

    win.open_path(pacs["paths"][0].parent)
    qtbot.waitUntil(lambda: scanned(win), timeout=20000)
    win.ai.load_model(str(model_file))
    qtbot.waitUntil(lambda: win.ai.model is not None, timeout=30000)
    win.state.set_window(PRESETS["lung"])
    job = win.ai.dicom_saver.save(tmp_path / "ai")
    assert job is not None
    qtbot.waitUntil(lambda: bool(win.ai.last_dicom_outputs) and not win.ai.dicom_saver.busy, timeout=60000)
    names = [p.name for p in win.ai.last_dicom_outputs]
    assert names[0].endswith("-sr.dcm") and sum("-sc-" in n for n in names) == 3
    sc = pydicom.dcmread(win.ai.last_dicom_outputs[1], stop_before_pixels=True)
    assert "window C -600 / W 1500" in sc.DerivationDescription and sc.StudyInstanceUID == pacs["study"]
    before = len(pacs["server"].instances())
    win.pacs.send_ai_results(parse_node(pacs["server"].node))
    qtbot.waitUntil(lambda: win.pacs._job is None and bool(win.pacs.last_send), timeout=30000)
    assert all(r.ok for r in win.pacs.last_send) and len(win.pacs.last_send) == 4
    assert len(pacs["server"].instances()) == before + 4
    # and the current series too (the PACS already has it: stored again, replaced)
    win.pacs.send_current_series(parse_node(pacs["server"].dicomweb))
    qtbot.waitUntil(lambda: win.pacs._job is None and len(win.pacs.last_send) == 6, timeout=30000)
    assert all(r.ok for r in win.pacs.last_send)


def test_storage_scp_receives_a_push_into_the_received_list(win, qtbot, pacs):
    server = pacs["server"]
    win.pacs.apply_config(PacsConfig(scp=ScpSettings(enabled=True, port=pacs["scp_port"], bind="127.0.0.1",
                                                     restrict=True, allowed=["ORTHANC"])))
    assert win.pacs.scp is not None and win.pacs.act_listen.isChecked()
    study_id = server.rest("POST", "/tools/lookup", pacs["study"].encode())[0]["ID"]
    n = len(server.rest("GET", f"/studies/{study_id}/instances"))
    server.rest("POST", "/modalities/medviewer/store", {"Resources": [study_id], "Synchronous": True})
    qtbot.waitUntil(lambda: win.pacs.received.count() == 1 and sum(win.pacs.received.counts.values()) == n,
                    timeout=20000)
    assert "from ORTHANC" in win.pacs.received.item(0).text()
    win.pacs.received.sig_open.emit(win.pacs.received.item(0).data(256))
    qtbot.waitUntil(lambda: scanned(win)
                    and bool(win.scan_result.all_series()), timeout=20000)
    assert any(len(s.items) == 6 for s in win.scan_result.all_series())
    win.pacs.set_listening(False)
    assert win.pacs.scp is None and not win.pacs.act_listen.isChecked()


def test_reports_dock_renders_srs_and_follows_image_links(win, qtbot, tmp_path, pacs, model_file):
    from medviewer.engine.dicomout import write_series_outputs
    from medviewer.engine.modelfile import load_model
    from medviewer.engine.series import predict_series
    from medviewer.viewer.io.pixels import PixelStore
    from medviewer.viewer.io.scan import scan

    study = tmp_path / "study"
    shutil.copytree(pacs["paths"][0].parent, study / "ct")
    shutil.copy(get_testdata_file("test-SR.dcm"), study / "other-sr.dcm")
    series = scan(study).all_series()[0]
    store = PixelStore(workers=1)
    store.add_headers(series.headers)
    model = load_model(model_file, device="cpu")
    write_series_outputs(model, series, predict_series(model, store, series.items, (24, 24)), store, study / "ai")
    win.open_path(study)
    qtbot.waitUntil(lambda: scanned(win), timeout=20000)
    panel = win.reports
    assert panel.list.count() == 2
    ours = next(i for i in range(panel.list.count()) if "tiny-1.0-sr.dcm" in panel.list.item(i).text())
    panel.list.setCurrentRow(ours)
    qtbot.waitUntil(lambda: "Imaging Measurement Report" in panel.html, timeout=10000)
    html = panel.html
    assert "Probability of lesion" in html and "Not validated for clinical use" in html
    assert "AI series result" in html and "image 6 of 6" in html and "sop:" in html
    # the SC series is a series of the same study in the browser
    assert any(s.description.startswith("AI Grad-CAM: tiny") for s in win.scan_result.all_series())
    # a link shows the image it references
    target = series.items[3]
    sop = str(pydicom.dcmread(target.path, stop_before_pixels=True).SOPInstanceUID)
    from PySide6.QtCore import QUrl

    panel.view.anchorClicked.emit(QUrl(f"sop:{sop}"))
    assert win.state.series.series_uid == series.series_uid and win.state.series.items[win.state.index] == target
    other = next(i for i in range(panel.list.count()) if i != ours)
    panel.list.setCurrentRow(other)
    qtbot.waitUntil(lambda: "Diagnosis" in panel.html, timeout=10000)
    assert "A mass of" in panel.html and "see item 1.3.2" in panel.html


def test_dicomweb_secret_is_asked_once_per_session_and_never_saved(qtbot, monkeypatch, tmp_path):
    from PySide6.QtWidgets import QInputDialog

    from medviewer.viewer.pacs.nodes import WebNode, load_config, save_config
    from medviewer.viewer.ui.pacs import workers

    monkeypatch.delenv("MEDVIEWER_DICOMWEB_PASSWORD", raising=False)
    monkeypatch.delenv("MEDVIEWER_DICOMWEB_TOKEN", raising=False)
    asked = []
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: (asked.append(a[2]) or "s3cret", True))
    node = WebNode.parse("https://pacs.example.org/dicom-web", "site", auth="basic", username="jane")
    first = workers.with_credentials(None, node)
    second = workers.with_credentials(None, node)
    assert first.password == second.password == "s3cret" and len(asked) == 1 and "jane" in asked[0]
    path = tmp_path / "pacs.json"
    save_config(PacsConfig(nodes=[first]), path)
    assert "s3cret" not in path.read_text() and load_config(path).nodes[0].username == "jane"
    workers._session_secrets.clear()
