"""`medviewer pacs` against a real Orthanc (DIMSE and DICOMweb), and the AI results round trip.

One Orthanc per module (tests/orthanc_server.py), on free localhost ports, with the
test's own Storage SCP registered as a modality for C-MOVE; stopped by its PID.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

import dicomgen
from medviewer.viewer.cli import main
from medviewer.viewer.io.scan import scan
from medviewer.viewer.pacs.nodes import PacsError, Timeouts
from medviewer.viewer.pacs.scp import StorageSCP
from orthanc_server import OrthancServer, available, free_port
from test_engine_modelfile import make_model_file

pytestmark = pytest.mark.skipif(available() is not None, reason=str(available()))


def uid_of(path: Path, key: str = "StudyInstanceUID") -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).get(key))


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pacs")
    scp_port = free_port()
    ct, _ = dicomgen.ct_series(root / "src" / "ct", n=5, rows=16, cols=16)
    mr_study, mr_series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    mr = []
    for k in range(3):
        ds = dicomgen.base_dataset(pydicom.uid.MRImageStorage, "MR", study_uid=mr_study, series_uid=mr_series,
                                   patient="OTHER^PATIENT", patient_id="P2")
        ds.StudyDate = "20230615"
        ds.InstanceNumber = k + 1
        dicomgen.set_pixels(ds, np.full((8, 8), k, np.uint16))
        mr.append(dicomgen.save(ds, root / "src" / "mr" / f"{k}.dcm"))
    # a study whose second instance has incomplete pixel data: the PACS delivers it corrupt
    bad, _ = dicomgen.ct_series(root / "src" / "bad", n=3, rows=16, cols=16)
    ds = pydicom.dcmread(bad[1])
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(bad[1])
    with OrthancServer(root / "orthanc", modalities={"medviewer": ("MEDVIEWER", scp_port)}) as server:
        for p in [*ct, *mr, *bad, Path(get_testdata_file("CT_small.dcm"))]:
            assert server.upload(p)["Status"] == "Success"
        yield {"server": server, "root": root, "scp_port": scp_port, "ct": ct, "ct_study": uid_of(ct[0]),
               "mr_study": mr_study, "bad": bad, "bad_study": uid_of(bad[0])}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["pacs", *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_echo_dimse_and_dicomweb(pacs, capsys):
    code, out, err = run(capsys, "echo", "--node", pacs["server"].node)
    assert code == 0 and "C-ECHO ok" in out and "our AE title MEDVIEWER" in out
    code, out, _ = run(capsys, "echo", "--dicomweb", pacs["server"].dicomweb)
    assert code == 0 and "DICOMweb ok" in out


def test_find_filters_json_and_dicomweb_agree(pacs, capsys):
    import json

    node, web = pacs["server"].node, pacs["server"].dicomweb
    code, out, _ = run(capsys, "find", "--node", node, "--patient-id", "GEN001", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["node"] == node
    ct = next(s for s in doc["studies"] if s["study_uid"] == pacs["ct_study"])
    assert (ct["patient_name"], ct["modalities"], ct["series"], ct["instances"]) == ("TEST^GENERATED", ["CT"], 1, 5)
    assert pacs["mr_study"] not in {s["study_uid"] for s in doc["studies"]}
    for args, wanted in ((["--modality", "MR"], {pacs["mr_study"]}),
                         (["--patient-name", "OTHER*"], {pacs["mr_study"]}),
                         (["--study-date", "20230101-20231231"], {pacs["mr_study"]})):
        for where in (["--node", node], ["--dicomweb", web]):
            code, out, _ = run(capsys, "find", *where, *args, "--json")
            assert code == 0 and {s["study_uid"] for s in json.loads(out)["studies"]} == wanted, (where, args)
    code, out, _ = run(capsys, "find", "--node", node)
    assert code == 0 and out.startswith("4 studies on") and pacs["ct_study"] in out
    code, _, err = run(capsys, "find", "--node", node, "--study-date", "2023")
    assert code == 2 and "--study-date" in err


def test_get_by_cget_is_resumable_and_opens(pacs, capsys, tmp_path):
    node, study = pacs["server"].node, pacs["ct_study"]
    code, out, err = run(capsys, "get", "--node", node, study, "--to", str(tmp_path))
    assert code == 0 and "5 instance(s) received of 5" in out, err
    got = sorted((tmp_path / study).rglob("*.dcm"))
    assert len(got) == 5
    by_sop = {uid_of(p, "SOPInstanceUID"): p for p in pacs["ct"]}
    for p in got:
        src = by_sop[p.stem]
        np.testing.assert_array_equal(pydicom.dcmread(p).pixel_array, pydicom.dcmread(src).pixel_array)
    got[0].unlink()
    got[3].unlink()
    code, out, _ = run(capsys, "get", "--node", node, study, "--to", str(tmp_path))
    assert code == 0 and "2 instance(s) received of 5, 3 already here" in out
    result = scan(tmp_path)
    assert [len(s.items) for s in result.all_series()] == [5] and not result.skipped


def test_get_by_cmove_listens_only_for_the_duration(pacs, capsys, tmp_path):
    node, study, port = pacs["server"].node, pacs["ct_study"], pacs["scp_port"]
    code, out, err = run(capsys, "get", "--node", node, study, "--to", str(tmp_path), "--move", "--aet", "MEDVIEWER",
                         "--port", str(port))
    assert code == 0 and "5 instance(s) received of 5" in out, err
    assert len(list((tmp_path / study).rglob("*.dcm"))) == 5
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass  # nothing listens any more
    code, _, err = run(capsys, "get", "--node", node, study, "--to", str(tmp_path), "--move")
    assert code == 2 and "--move needs --port" in err


def test_get_by_wado_rs_one_series(pacs, capsys, tmp_path):
    study, series = pacs["ct_study"], uid_of(pacs["ct"][0], "SeriesInstanceUID")
    code, out, err = run(capsys, "get", "--dicomweb", pacs["server"].dicomweb, study, "--series", series,
                         "--to", str(tmp_path))
    assert code == 0 and "5 instance(s) received of 5" in out, err
    assert {p.parent.name for p in (tmp_path / study).rglob("*.dcm")} == {series}


def test_send_by_cstore_and_stow_with_per_file_status(pacs, capsys, tmp_path):
    server = pacs["server"]
    a, _ = dicomgen.ct_series(tmp_path / "a", n=3, rows=8, cols=8)
    (tmp_path / "a" / "notes.txt").write_text("not DICOM")
    code, out, err = run(capsys, "send", "--node", server.node, str(tmp_path / "a"))
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == 4 and "3 of 4 file(s) stored" in err
    assert sum(line.endswith(": stored") for line in lines) == 3
    assert any("notes.txt: FAILED: not a DICOM file" in line for line in lines)
    b, _ = dicomgen.ct_series(tmp_path / "b", n=2, rows=8, cols=8)
    code, out, _ = run(capsys, "send", "--dicomweb", server.dicomweb, *map(str, b))
    assert code == 0 and out.count(": stored") == 2
    for p in [*a, *b]:
        assert server.find_instance(uid_of(p, "SOPInstanceUID")) is not None


def test_ai_results_round_trip(pacs, capsys, tmp_path):
    """Retrieve, predict with --dicom-out, send SR + SC back, find them on the PACS; again replaces."""
    server, study = pacs["server"], pacs["ct_study"]
    assert run(capsys, "get", "--node", server.node, study, "--to", str(tmp_path / "in"))[0] == 0
    model = tmp_path / "tiny.safetensors"
    make_model_file(model, arch="resnet18", classes=("normal", "lesion"), size=32)
    assert main(["predict", str(tmp_path / "in"), "--model", str(model), "--device", "cpu",
                 "--dicom-out", str(tmp_path / "ai")]) == 0
    capsys.readouterr()
    outputs = sorted((tmp_path / "ai").rglob("*.dcm"))
    assert len(outputs) == 4  # SR + 3 Secondary Capture
    before = len(server.instances())
    code, out, _ = run(capsys, "send", "--node", server.node, str(tmp_path / "ai"))
    assert code == 0 and out.count(": stored") == 4
    import json

    code, out, _ = run(capsys, "find", "--node", server.node, "--patient-id", "GEN001", "--json")
    found = next(s for s in json.loads(out)["studies"] if s["study_uid"] == study)
    assert set(found["modalities"]) == {"CT", "OT", "SR"} and found["instances"] == 9
    # the same results again (a re-run): the PACS replaces, nothing is duplicated
    assert main(["predict", str(tmp_path / "in"), "--model", str(model), "--device", "cpu",
                 "--dicom-out", str(tmp_path / "ai2")]) == 0
    capsys.readouterr()
    assert run(capsys, "send", "--dicomweb", server.dicomweb, str(tmp_path / "ai2"))[0] == 0
    assert len(server.instances()) == before + 4


def test_bad_nodes_give_one_line_quickly(pacs, capsys):
    server = pacs["server"]
    closed = free_port()
    cases = [
        (["echo", "--node", f"ORTHANC@127.0.0.1:{closed}"], "connection refused"),
        (["echo", "--node", f"WRONGAET@127.0.0.1:{server.dicom_port}"], "Called AE title not recognised"),
        (["find", "--node", server.node, "--aet", "STRANGER"], "aborted the association"),
        (["echo", "--node", "ORTHANC@no-such-host.invalid:104", "--timeout", "2"], "unknown host"),
        (["echo", "--dicomweb", f"http://127.0.0.1:{closed}/dicom-web"], "connection refused"),
        (["find", "--dicomweb", f"http://127.0.0.1:{server.http_port}/no-such-root"], "HTTP 404"),
        (["echo", "--node", "ORTHANC@127.0.0.1"], "AET@HOST:PORT"),
        (["echo", "--dicomweb", "https://user:secret@example.org/dicom-web"], "do not put credentials"),
        (["get", "--node", server.node, "1.2.3.4.5", "--to", "/tmp/never-used-dir"], "no study 1.2.3.4.5 there"),
        (["get", "--dicomweb", server.dicomweb, "1.2.3.4.5", "--to", "/tmp/never-used-dir"], "no study 1.2.3.4.5"),
    ]
    for argv, text in cases:
        start = time.monotonic()
        code, out, err = run(capsys, *argv)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and text in lines[0], (argv, err)
        assert time.monotonic() - start < 15, argv
    shutil.rmtree("/tmp/never-used-dir", ignore_errors=True)


def test_unanswered_connect_times_out(capsys):
    """A node that accepts TCP but never answers the association request: the ACSE timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        start = time.monotonic()
        code, _, err = run(capsys, "echo", "--node", f"X@127.0.0.1:{port}", "--timeout", "1")
    assert code == 2 and "within 1 s" in err and time.monotonic() - start < 10


def test_corrupt_instances_are_reported_and_the_rest_kept(pacs, capsys, tmp_path):
    server, study = pacs["server"], pacs["bad_study"]
    bad_sop = uid_of(pacs["bad"][1], "SOPInstanceUID")
    for where, folder in ((["--node", server.node], tmp_path / "cget"), (["--dicomweb", server.dicomweb], tmp_path / "wado")):
        code, out, err = run(capsys, "get", *where, study, "--to", str(folder))
        lines = err.strip().splitlines()
        assert code == 1, (where, out, err)
        assert len(lines) == 1 and bad_sop in lines[0] and "truncated pixel data (100 of 512 bytes)" in lines[0]
        assert "2 instance(s) received of 3, 1 failed" in out
        kept = sorted(p.stem for p in folder.rglob("*.dcm"))
        assert len(kept) == 2 and bad_sop not in kept


def test_storage_scp_accepts_only_allowed_calling_aets(pacs, tmp_path):
    server, port = pacs["server"], pacs["scp_port"]
    study_id = server.rest("POST", "/tools/lookup", pacs["ct_study"].encode())[0]["ID"]
    expected = len(server.rest("GET", f"/studies/{study_id}/instances"))  # more once AI results were sent
    received = []
    with StorageSCP(tmp_path / "in", aet="MEDVIEWER", port=port, bind="127.0.0.1", allowed=["ORTHANC"],
                    on_received=received.append) as scp:
        server.rest("POST", "/modalities/medviewer/store", {"Resources": [study_id], "Synchronous": True})
        assert len(scp.received) == expected >= 5 and len(received) == expected
        assert {r.calling_aet for r in received} == {"ORTHANC"} and received[0].study_uid == pacs["ct_study"]
    assert len(list((tmp_path / "in").rglob("*.dcm"))) == expected
    with StorageSCP(tmp_path / "in2", aet="MEDVIEWER", port=port, bind="127.0.0.1", allowed=["SOMEONE"]) as scp:
        with pytest.raises(Exception):
            server.rest("POST", "/modalities/medviewer/store", {"Resources": [study_id], "Synchronous": True})
        assert scp.received == [] and len(scp.refused) >= 1
    assert not (tmp_path / "in2").exists() or not list((tmp_path / "in2").rglob("*.dcm"))
    # the SCP refuses to start on a port in use, in one line
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        with pytest.raises(PacsError, match="cannot listen on 127.0.0.1"):
            StorageSCP(tmp_path, aet="MEDVIEWER", port=busy.getsockname()[1], bind="127.0.0.1",
                       t=Timeouts.scaled(2)).start()
