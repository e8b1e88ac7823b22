"""One interface over DIMSE and DICOMweb nodes: what the CLI and the viewer call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from medviewer.viewer.pacs import dimse, web
from medviewer.viewer.pacs.dimse import SendResult, StudyMatch, StudyQuery
from medviewer.viewer.pacs.local import RetrieveReport
from medviewer.viewer.pacs.nodes import DEFAULT_AET, DimseNode, Node, PacsError, Timeouts, WebNode, check_aet

Progress = Callable[[int, int], None]
StopFlag = Callable[[], bool]


class PacsClient:
    """A remote node seen from medviewer (AE title `aet` for DIMSE)."""

    def __init__(self, node: Node, aet: str = DEFAULT_AET, timeouts: Timeouts | None = None) -> None:
        self.node = node
        self.aet = check_aet(aet, "our AE title")
        self.t = timeouts or Timeouts()

    @property
    def is_dimse(self) -> bool:
        return isinstance(self.node, DimseNode)

    def echo(self) -> str:
        """C-ECHO or a DICOMweb ping; a one-line confirmation (PacsError otherwise)."""
        if isinstance(self.node, DimseNode):
            ms = dimse.echo(self.node, self.aet, self.t)
            return f"{self.node}: C-ECHO ok ({ms:.0f} ms, our AE title {self.aet})"
        ms = web.ping(self.node, self.t)
        return f"{self.node}: DICOMweb ok ({ms:.0f} ms)"

    def find(self, query: StudyQuery, should_stop: StopFlag | None = None) -> list[StudyMatch]:
        if isinstance(self.node, DimseNode):
            return dimse.find_studies(self.node, query, self.aet, self.t, should_stop)
        return web.find_studies(self.node, query, self.t)

    def retrieve(self, study_uid: str, dest: str | Path, *, series_uid: str | None = None,
                 move_port: int | None = None, bind: str = "0.0.0.0", progress: Progress | None = None,
                 should_stop: StopFlag | None = None) -> RetrieveReport:
        """C-GET (default) or C-MOVE to our SCP on `move_port` (DIMSE), WADO-RS (DICOMweb)."""
        if isinstance(self.node, WebNode):
            if move_port is not None:
                raise PacsError(f"{self.node}: C-MOVE is a DIMSE service; a DICOMweb node retrieves by WADO-RS")
            return web.get_study(self.node, study_uid, dest, series_uid=series_uid, t=self.t,
                                 progress=progress, should_stop=should_stop)
        if move_port is not None:
            return dimse.move_study(self.node, study_uid, dest, series_uid=series_uid, aet=self.aet,
                                    port=move_port, bind=bind, t=self.t, progress=progress, should_stop=should_stop)
        return dimse.get_study(self.node, study_uid, dest, series_uid=series_uid, aet=self.aet, t=self.t,
                               progress=progress, should_stop=should_stop)

    def send(self, paths: Sequence[str | Path], progress: Progress | None = None,
             should_stop: StopFlag | None = None) -> list[SendResult]:
        """C-STORE or STOW-RS of files and folders; one result per file."""
        if isinstance(self.node, DimseNode):
            return dimse.send_files(self.node, paths, self.aet, self.t, progress, should_stop)
        return web.send_files(self.node, paths, self.t, progress, should_stop)
