"""A real Orthanc PACS for tests: started on free localhost ports, stopped by its PID.

    with OrthancServer(tmp_path, modalities={"medviewer": ("MEDVIEWER", 11112)}) as pacs:
        pacs.upload(path)                   # REST POST /instances
        pacs.node                           # "ORTHANC@127.0.0.1:<dicom port>"
        pacs.dicomweb                       # "http://127.0.0.1:<http port>/dicom-web"

Debian packages `orthanc` and `orthanc-dicomweb` (installed by .ci/run).  The
configuration is generated JSON: DICOM and HTTP ports chosen free, DICOMweb
plugin on, the test's own Storage SCP registered as a modality (for C-MOVE),
called AE title checked, calling AE titles restricted to known modalities for
query/retrieve, storage uncompressed (so a test can damage a stored file).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ORTHANC = Path("/usr/sbin/Orthanc")
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


def _die_with_parent() -> None:
    """Linux: SIGTERM to Orthanc when the test process dies (even killed), so no server outlives it."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def available() -> str | None:
    """None when Orthanc and its DICOMweb plugin are installed, else why not."""
    if not ORTHANC.exists():
        return f"{ORTHANC} missing (apt-get install orthanc)"
    if not DICOMWEB_PLUGIN.exists():
        return f"{DICOMWEB_PLUGIN} missing (apt-get install orthanc-dicomweb)"
    return None


class OrthancServer:
    def __init__(self, folder: Path, aet: str = "ORTHANC",
                 modalities: dict[str, tuple[str, int]] | None = None) -> None:
        self.folder = Path(folder)
        self.aet = aet
        self.modalities = modalities or {}
        self.dicom_port = free_port()
        self.http_port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def node(self) -> str:
        return f"{self.aet}@127.0.0.1:{self.dicom_port}"

    @property
    def dicomweb(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    @property
    def storage(self) -> Path:
        return self.folder / "storage"

    def config(self) -> dict:
        return {
            "Name": "medviewer-test", "StorageDirectory": str(self.storage), "IndexDirectory": str(self.storage),
            "StorageCompression": False, "HttpPort": self.http_port, "DicomPort": self.dicom_port,
            "DicomAet": self.aet, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
            "HttpServerEnabled": True, "DicomServerEnabled": True, "DicomCheckCalledAet": True,
            "DicomAlwaysAllowEcho": True, "DicomAlwaysAllowStore": True, "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowGet": False, "DicomAlwaysAllowMove": False, "DicomCheckModalityHost": False,
            "OverwriteInstances": True, "DicomScpTimeout": 30, "DicomAssociationCloseDelay": 0,
            "Plugins": [str(DICOMWEB_PLUGIN)], "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
            "DicomModalities": {name: [aet, "127.0.0.1", port] for name, (aet, port) in self.modalities.items()},
            "ConcurrentJobs": 1, "LimitFindResults": 0, "LimitFindInstances": 0, "MaximumStorageCacheSize": 0,
        }

    def start(self, timeout: float = 30.0) -> "OrthancServer":
        self.folder.mkdir(parents=True, exist_ok=True)
        cfg = self.folder / "config.json"
        cfg.write_text(json.dumps(self.config(), indent=2))
        log = open(self.folder / "orthanc.log", "wb")
        self.proc = subprocess.Popen([str(ORTHANC), str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                     cwd=self.folder, start_new_session=True, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                self.rest("GET", "/system")
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Orthanc did not answer within {timeout} s: {self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM to the PID, SIGKILL after 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def __enter__(self) -> "OrthancServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, n: int = 15) -> str:
        try:
            return " | ".join((self.folder / "orthanc.log").read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def rest(self, method: str, path: str, data: bytes | dict | list | None = None, timeout: float = 30) -> object:
        body = json.dumps(data).encode() if isinstance(data, (dict, list)) else data
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}", data=body, method=method)
        with urllib.request.urlopen(req, timeout=timeout) as rsp:
            raw = rsp.read()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return raw

    def upload(self, path: Path) -> dict:
        return self.rest("POST", "/instances", Path(path).read_bytes())  # type: ignore[return-value]

    def instances(self) -> list[str]:
        return self.rest("GET", "/instances")  # type: ignore[return-value]

    def find_instance(self, sop_uid: str) -> str | None:
        found = self.rest("POST", "/tools/lookup", sop_uid.encode())
        return next((f["ID"] for f in found if f["Type"] == "Instance"), None)  # type: ignore[union-attr]

    def stored_file(self, instance_id: str) -> Path:
        """The file Orthanc keeps for an instance (uncompressed storage: the DICOM file as uploaded)."""
        info = self.rest("GET", f"/instances/{instance_id}/attachments/dicom/info")
        uuid = info["Uuid"]  # type: ignore[index]
        return self.storage / uuid[:2] / uuid[2:4] / uuid

    def delete_all(self) -> None:
        for pid in self.rest("GET", "/patients"):  # type: ignore[union-attr]
            self.rest("DELETE", f"/patients/{pid}")
