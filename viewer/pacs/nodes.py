"""Remote nodes and medviewer's PACS settings (PS3.8 7.1: AE titles; PS3.18 for DICOMweb).

A DIMSE node is written `AET@HOST:PORT` (IPv6 hosts in brackets); a DICOMweb
node is its base URL (https:// or http://).  Settings live in
`<user data>/pacs.json` ($MEDVIEWER_PACS_CONFIG moves it): our own AE title,
named nodes, timeouts and the Storage SCP (off by default).  Credentials are
never written there: DICOMweb user names, passwords and bearer tokens come
from the environment (MEDVIEWER_DICOMWEB_USER / _PASSWORD / _TOKEN) or, in the
viewer, from the user for the session.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from medviewer.viewer.errors import MedviewerError, UsageError

DEFAULT_AET = "MEDVIEWER"
DEFAULT_SCP_PORT = 11112
_AET_CHARS = re.compile(r"^[\x20-\x5b\x5d-\x7e]{1,16}$")   # PS3.5 6.2 AE: no backslash, no controls


class PacsError(MedviewerError):
    """A PACS operation failed (one line: the node and the reason)."""


def check_aet(aet: str, what: str = "AE title") -> str:
    """A valid AE title (1-16 characters, no backslash or control characters; PS3.5 6.2)."""
    text = str(aet).strip()
    if not text or not _AET_CHARS.match(text):
        raise UsageError(f"{what} {aet!r}: 1 to 16 printable characters, no backslash")
    return text


def check_port(port: int | str, what: str = "port") -> int:
    try:
        value = int(port)
    except (TypeError, ValueError):
        raise UsageError(f"{what} {port!r} is not a number") from None
    if not 1 <= value <= 65535:
        raise UsageError(f"{what} {value} is outside 1..65535")
    return value


@dataclass(frozen=True)
class Timeouts:
    """Seconds for each network step (every call has one; nothing waits forever)."""

    connect: float = 5.0      # TCP connect
    acse: float = 10.0        # association request / release
    dimse: float = 60.0       # one DIMSE response (a C-GET can pause between sub-operations)
    network: float = 60.0     # idle connection
    http: float = 30.0        # one DICOMweb request (connect and read each)

    @classmethod
    def scaled(cls, seconds: float | None) -> "Timeouts":
        """All timeouts from one user value (--timeout S): connect S, the others at least S."""
        if not seconds:
            return cls()
        s = float(seconds)
        return cls(connect=s, acse=s, dimse=max(s, 1.0), network=max(s, 1.0), http=s)


@dataclass(frozen=True)
class DimseNode:
    aet: str
    host: str
    port: int
    name: str = ""

    kind = "dimse"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.aet}@{host}:{self.port}"

    @classmethod
    def parse(cls, text: str, name: str = "") -> "DimseNode":
        m = re.match(r"^(?P<aet>[^@]+)@(?P<host>\[[^\]]+\]|[^:\[\]]+):(?P<port>\d+)$", str(text).strip())
        if not m:
            raise UsageError(f"node {text!r}: write it as AET@HOST:PORT, e.g. ORTHANC@pacs.example.org:4242")
        host = m["host"].strip("[]")
        return cls(check_aet(m["aet"], "AE title of the node"), host, check_port(m["port"]), name)


@dataclass(frozen=True)
class WebNode:
    url: str
    name: str = ""
    auth: str = "none"            # "none" | "basic" | "bearer"
    username: str = ""
    password: str = field(default="", repr=False, compare=False)
    token: str = field(default="", repr=False, compare=False)
    ca_bundle: str = ""           # a CA file for private PKIs; TLS is verified either way

    kind = "dicomweb"

    def __str__(self) -> str:
        return self.url

    @classmethod
    def parse(cls, url: str, name: str = "", **kw) -> "WebNode":
        text = str(url).strip().rstrip("/")
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UsageError(f"DICOMweb URL {url!r}: use http(s)://host[:port]/path")
        if parts.username or parts.password:
            raise UsageError(f"DICOMweb URL {parts.scheme}://...@{parts.hostname}: do not put credentials in "
                             f"the URL (they end up in logs and process lists); set MEDVIEWER_DICOMWEB_USER "
                             f"and MEDVIEWER_DICOMWEB_PASSWORD, or MEDVIEWER_DICOMWEB_TOKEN")
        return cls(text, name, **kw)

    def with_env_credentials(self) -> "WebNode":
        """Credentials from the environment, when the node has none."""
        from dataclasses import replace

        token = os.environ.get("MEDVIEWER_DICOMWEB_TOKEN", "")
        user = os.environ.get("MEDVIEWER_DICOMWEB_USER", "")
        if self.auth == "none" and token:
            return replace(self, auth="bearer", token=token)
        if self.auth == "none" and user:
            return replace(self, auth="basic", username=user,
                           password=os.environ.get("MEDVIEWER_DICOMWEB_PASSWORD", ""))
        if self.auth == "bearer" and not self.token:
            return replace(self, token=token)
        if self.auth == "basic" and not self.password:
            return replace(self, username=self.username or user,
                           password=os.environ.get("MEDVIEWER_DICOMWEB_PASSWORD", ""))
        return self


Node = DimseNode | WebNode


def parse_node(text: str, config: "PacsConfig | None" = None) -> Node:
    """A node by name (from the settings), `AET@HOST:PORT`, or a DICOMweb URL."""
    text = str(text).strip()
    if config is not None:
        for node in config.nodes:
            if node.name and node.name.casefold() == text.casefold():
                return node
    if text.startswith(("http://", "https://")):
        return WebNode.parse(text)
    if "@" in text:
        return DimseNode.parse(text)
    known = ", ".join(n.name for n in (config.nodes if config else []) if n.name) or "none configured"
    raise UsageError(f"node {text!r}: not AET@HOST:PORT, not a URL, not a configured node ({known})")


@dataclass
class ScpSettings:
    """medviewer's own Storage SCP: off unless the user turns it on."""

    enabled: bool = False
    port: int = DEFAULT_SCP_PORT
    aet: str = DEFAULT_AET
    bind: str = "0.0.0.0"
    restrict: bool = True               # accept only the calling AE titles below
    allowed: list[str] = field(default_factory=list)


@dataclass
class PacsConfig:
    aet: str = DEFAULT_AET
    nodes: list[Node] = field(default_factory=list)
    timeout: float = 0.0                # 0: the defaults of Timeouts
    scp: ScpSettings = field(default_factory=ScpSettings)

    def timeouts(self) -> Timeouts:
        return Timeouts.scaled(self.timeout)

    def to_json(self) -> dict:
        nodes = []
        for n in self.nodes:
            if isinstance(n, DimseNode):
                nodes.append({"name": n.name, "kind": "dimse", "aet": n.aet, "host": n.host, "port": n.port})
            else:  # never the password or token
                nodes.append({"name": n.name, "kind": "dicomweb", "url": n.url, "auth": n.auth,
                              "username": n.username, "ca_bundle": n.ca_bundle})
        return {"aet": self.aet, "timeout": self.timeout, "nodes": nodes, "scp": asdict(self.scp)}

    @classmethod
    def from_json(cls, data: dict, where: str = "pacs.json") -> "PacsConfig":
        try:
            nodes: list[Node] = []
            for n in data.get("nodes", []):
                if n.get("kind") == "dicomweb":
                    nodes.append(WebNode.parse(n["url"], n.get("name", ""), auth=n.get("auth", "none"),
                                               username=n.get("username", ""), ca_bundle=n.get("ca_bundle", "")))
                else:
                    nodes.append(DimseNode(check_aet(n["aet"]), str(n["host"]), check_port(n["port"]),
                                           n.get("name", "")))
            scp = ScpSettings(**{k: v for k, v in data.get("scp", {}).items()
                                 if k in ScpSettings.__dataclass_fields__})
            return cls(check_aet(data.get("aet", DEFAULT_AET)), nodes, float(data.get("timeout", 0) or 0), scp)
        except (KeyError, TypeError, ValueError, MedviewerError) as exc:
            raise UsageError(f"{where}: invalid PACS settings ({exc})") from None


def config_path() -> Path:
    env = os.environ.get("MEDVIEWER_PACS_CONFIG")
    if env:
        return Path(env).expanduser()
    from medviewer.viewer.userdata import user_data_dir

    return user_data_dir() / "pacs.json"


def load_config(path: Path | None = None) -> PacsConfig:
    """The saved PACS settings (defaults when there are none)."""
    path = path or config_path()
    if not path.is_file():
        return PacsConfig()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: unreadable PACS settings ({exc})") from None
    return PacsConfig.from_json(data, path.name)


def save_config(config: PacsConfig, path: Path | None = None) -> Path:
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(config.to_json(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
