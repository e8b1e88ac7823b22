"""PACS over DIMSE (pynetdicom) and DICOMweb (dicomweb-client), Qt-free.

    nodes.py    remote nodes (AET@HOST:PORT, DICOMweb URLs), our AE title, pacs.json settings
    local.py    the local folder instances are retrieved into (resumable), checks of received files
    dimse.py    C-ECHO, C-FIND, C-GET, C-MOVE, C-STORE as a service class user
    web.py      DICOMweb: ping, QIDO-RS, WADO-RS, STOW-RS
    scp.py      medviewer's own Storage SCP (off unless turned on; calling AE allow list)
    client.py   one interface over both protocols (what the CLI and the viewer call)
    cli.py      `medviewer pacs echo|find|get|send`

Every network call has a timeout; problems are `PacsError` (one line naming the
node and the reason).  Nothing here imports Qt or the AI engine.
"""

from medviewer.viewer.pacs.nodes import DEFAULT_AET, DimseNode, PacsError, WebNode, parse_node

__all__ = ["DEFAULT_AET", "DimseNode", "PacsError", "WebNode", "parse_node"]
