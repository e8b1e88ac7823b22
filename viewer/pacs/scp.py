"""medviewer's own Storage SCP (PS3.4 B.2.2): receives what a PACS or a modality pushes.

It listens only while started: the viewer starts it when the user turns it on
(settings: off by default), `medviewer pacs get --move` for the duration of
one retrieval.  It answers C-ECHO, accepts C-STORE of every storage SOP class
in the usual transfer syntaxes, rejects associations whose called AE title is
not ours, and with an allow list those whose calling AE title is not on it
(PS3.8 7.1.1.3, 7.1.1.4).  Received instances are checked and written by
`local.LocalStore` (corrupt ones refused with 0xC210).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medviewer.viewer.pacs.local import LocalStore, check_instance
from medviewer.viewer.pacs.nodes import PacsError, Timeouts, check_aet, check_port

log = logging.getLogger("medviewer.pacs")


@dataclass(frozen=True)
class ReceivedInstance:
    path: Path
    calling_aet: str
    study_uid: str
    series_uid: str
    patient_name: str
    patient_id: str
    description: str
    modality: str
    when: float


class StorageSCP:
    """A Storage SCP on `bind:port` writing into `folder` (see the module docstring)."""

    def __init__(self, folder: str | Path, *, aet: str, port: int, bind: str = "0.0.0.0",
                 allowed: Sequence[str] | None = None, t: Timeouts | None = None,
                 handler: Callable[[Any], int] | None = None,
                 on_received: Callable[[ReceivedInstance], None] | None = None,
                 on_refused: Callable[[str], None] | None = None) -> None:
        self.store = LocalStore(folder)
        self.aet = check_aet(aet, "our AE title")
        self.port = check_port(port)
        self.bind = bind
        self.allowed = [check_aet(a, "allowed calling AE title") for a in allowed] if allowed else None
        self.t = t or Timeouts()
        self._handler = handler or self._store
        self.on_received = on_received
        self.on_refused = on_refused
        self.received: list[ReceivedInstance] = []
        self.refused: list[str] = []
        self._lock = threading.Lock()
        self._server: Any = None
        self._ae: Any = None

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        from pynetdicom import AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification

        from medviewer.viewer.pacs.dimse import RECEIVE_SYNTAXES, make_ae

        if self._server is not None:
            return
        ae = make_ae(self.aet, self.t)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax, RECEIVE_SYNTAXES)
        ae.add_supported_context(Verification)
        ae.require_called_aet = True
        if self.allowed is not None:
            ae.require_calling_aet = list(self.allowed)
        ae.maximum_associations = 4
        try:
            self._server = ae.start_server((self.bind, self.port), block=False,
                                           evt_handlers=[(evt.EVT_C_STORE, self._handler),
                                                         (evt.EVT_REJECTED, self._rejected)])
        except OSError as exc:
            ae.shutdown()
            raise PacsError(f"cannot listen on {self.bind}:{self.port}: {exc.strerror or exc}") from None
        self._ae = ae
        log.info("storage SCP %s listening on %s:%d", self.aet, self.bind, self.port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
        if self._ae is not None:
            self._ae.shutdown()
            self._ae = None

    def _rejected(self, event: Any) -> None:
        who = str(getattr(event.assoc.requestor, "ae_title", "?"))
        text = f"refused an association from {who} ({event.assoc.requestor.address})"
        with self._lock:
            self.refused.append(text)
        log.warning("storage SCP %s", text)
        if self.on_refused:
            self.on_refused(text)

    def _store(self, event: Any) -> int:
        try:
            data = event.encoded_dataset(include_meta=True)
            ds = check_instance(data)
            path = self.store.save_encoded(data)
        except PacsError as exc:
            log.warning("storage SCP refused an instance: %s", exc)
            return 0xA700 if "cannot write" in str(exc) else 0xC210
        except Exception:
            log.exception("storage SCP: unexpected error")
            return 0xC210
        item = ReceivedInstance(path, str(event.assoc.requestor.ae_title), str(ds.StudyInstanceUID),
                                str(ds.SeriesInstanceUID), str(ds.get("PatientName", "")),
                                str(ds.get("PatientID", "")), str(ds.get("StudyDescription", "")),
                                str(ds.get("Modality", "")), time.time())
        with self._lock:
            self.received.append(item)
        if self.on_received:
            self.on_received(item)
        return 0x0000

    def __enter__(self) -> "StorageSCP":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
