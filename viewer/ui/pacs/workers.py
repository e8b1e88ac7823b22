"""PACS work off the GUI thread on the UI's one worker base (viewer.ui.workers.TaskRunner).

`pacs_task(state, work)` runs ``work(progress, should_stop)`` (a call into the Qt-free
PACS client, medviewer.viewer.pacs); progress, results and errors cross back by
signal only, errors as one line (STYLE.md patterns 4-6).  Cancelling sets the flag
the client polls between instances / matches, so a retrieval or a send stops at the
next instance and keeps what arrived.  Also: DICOMweb credentials for this session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from medviewer.viewer.ui.workers import TaskState

Work = Callable[[Callable[[int, int], None], Callable[[], bool]], Any]


def pacs_task(state: TaskState, work: Work) -> Any:
    """Run one piece of PACS work with the task's progress and stop flag."""
    return work(state.progress, state.should_stop)


_session_secrets: dict[str, str] = {}   # node URL -> password or token, for this session only (never saved)


def with_credentials(parent: Any, node: Any) -> Any:
    """A DICOMweb node with its password / bearer token: from the environment, else asked once per session."""
    from dataclasses import replace

    from PySide6.QtWidgets import QInputDialog, QLineEdit

    if getattr(node, "kind", "") != "dicomweb" or node.auth == "none":
        return node
    node = node.with_env_credentials()
    if (node.auth == "basic" and node.password) or (node.auth == "bearer" and node.token):
        return node
    secret = _session_secrets.get(node.url)
    if secret is None:
        what = f"Password for {node.username}" if node.auth == "basic" else "Bearer token"
        secret, ok = QInputDialog.getText(parent, f"DICOMweb: {node.url}", f"{what} (kept for this session only):",
                                          QLineEdit.EchoMode.Password)
        if not ok:
            return node
        _session_secrets[node.url] = secret
    return replace(node, password=secret) if node.auth == "basic" else replace(node, token=secret)
