"""Start or join Ray, size the workers to it, and keep Ray's own output off the terminal.

Embedded (no --ray-address): a private Ray instance sized to this machine that
listens on the loopback interface only (`RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`
makes Ray take 127.0.0.1 as the node address; it otherwise binds every
interface), stopped when the command ends.  With --ray-address the command
joins an existing cluster (`ray start --head` ...) and leaves it running.
If Ray is already initialised in this process (a notebook, a test), it is used.

Ray writes its own messages (C++ core worker, Ray Data's console handler) to
the terminal; `quiet_native_output` sends them to the log files for the
duration, so the user sees medviewer's one-line messages and progress only.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from medviewer.viewer.errors import UsageError

LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
AUTH_MODE_ENV = "RAY_AUTH_MODE"
CONNECT_TIMEOUT_S = 60


@dataclass
class Cluster:
    """What the command runs on; `owned` clusters are shut down by `close`."""

    owned: bool
    address: str
    cpus: float
    gpus: float
    nodes: int

    def close(self) -> None:
        import ray

        if self.owned and ray.is_initialized():
            ray.shutdown()


@dataclass(frozen=True)
class Plan:
    """How many model actors, and what each one asks of Ray."""

    workers: int
    gpus_per_worker: float
    cpus_per_worker: float
    decode_cpus: float
    threads_per_worker: int


def _checkout_root() -> str | None:
    """The folder to put on the workers' PYTHONPATH when medviewer runs from a checkout."""
    import medviewer

    for entry in getattr(medviewer, "__path__", []):
        parent = Path(entry).resolve().parent
        if (parent / "engine").is_dir() and (parent / "viewer").is_dir():
            return str(parent)
    return None


def connect(address: str | None) -> Cluster:
    """Join `address` ("auto" or HOST:PORT), or start a private local instance."""
    if address is None:
        os.environ.setdefault(LOOPBACK_ENV, "0")  # before ray is imported: loopback only
    import ray

    owned = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "configure_logging": False}
        if address is None:
            root = _checkout_root()
            if root and root not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
                os.environ["PYTHONPATH"] = os.pathsep.join(
                    p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
            owned = True
        else:
            kwargs["address"] = address
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            hint = "" if os.environ.get(AUTH_MODE_ENV) else (
                f"; if the cluster uses token authentication (the default of `ray start`), set "
                f"{AUTH_MODE_ENV}=token and give its token in ~/.ray/auth_token or RAY_AUTH_TOKEN")
            raise UsageError(f"cannot reach the Ray cluster at {address} "
                             f"({' '.join(str(exc).split())[:160]}){hint}") from None
        except Exception as exc:
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            raise UsageError(f"cannot start or join {where}: {type(exc).__name__}: "
                             f"{' '.join(str(exc).split())[:200]}") from None
        owned = address is None
    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    ctx = ray.get_runtime_context()
    return Cluster(owned, getattr(ctx, "gcs_address", "") or "", float(res.get("CPU", 0)),
                   float(res.get("GPU", 0)), nodes)


def plan(cluster: Cluster, workers: int | None, gpus_per_worker: float | None, device: str) -> Plan:
    """Actors and resources for this cluster; a request it cannot satisfy is a UsageError."""
    gpus = cluster.gpus
    if device == "cpu":
        if gpus_per_worker:
            raise UsageError("--device cpu and --gpus-per-worker > 0 contradict each other")
        gpw = 0.0
    elif gpus_per_worker is None:
        gpw = 1.0 if gpus >= 1 else 0.0
    else:
        gpw = float(gpus_per_worker)
    if gpw < 0 or gpw > max(gpus, 1):
        raise UsageError(f"--gpus-per-worker must be between 0 and {max(gpus, 1):g}")
    if device == "cuda" and gpw == 0:
        raise UsageError("--device cuda but the Ray cluster has no GPU (or --gpus-per-worker 0)")
    if gpw > 0 and gpus <= 0:
        raise UsageError("the Ray cluster has no GPU: use --gpus-per-worker 0 (CPU workers)")
    if workers is None:
        workers = max(1, int(gpus // gpw)) if gpw > 0 else 1
    if workers < 1:
        raise UsageError("--workers must be at least 1")
    if gpw > 0 and workers * gpw > gpus + 1e-9:
        raise UsageError(f"{workers} worker(s) x {gpw:g} GPU need {workers * gpw:g} GPUs; "
                         f"the Ray cluster has {gpus:g}")
    cpus = max(cluster.cpus, 1.0)
    decode = min(1.0, cpus / 2)                 # one decode task can always run
    share = (cpus - decode) / workers           # what is left, split between the actors
    if gpw > 0:
        cpw = min(1.0, share)                   # a GPU worker needs a core to feed it
    else:
        cpw = share                             # CPU workers: the forward pass is the work
    cpw = max(round(cpw, 3), 0.05)
    return Plan(workers, gpw, cpw, decode, max(1, int(cpw)))


class _ToLog(logging.Filter):
    """On Ray's console handlers: the record goes to medviewer's log file instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        # a handler Ray shares with an ancestor of medviewer's loggers (the root, when
        # warnings are captured into logging) sees the forwarded record again: drop it
        # there instead of forwarding it once more
        if not record.name.startswith("medviewer"):
            logging.getLogger("medviewer.ray").log(record.levelno, "%s: %s", record.name, record.getMessage())
        return False


def _ray_console_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
               if name == "ray" or name.startswith("ray.")]
    return [h for lg in loggers for h in lg.handlers
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)]


@contextlib.contextmanager
def quiet_native_output(log_file: Path) -> Iterator[TextIO]:
    """Keep Ray's own output off the user's terminal for the duration.

    File descriptor 2 (Ray's C++ core worker, and anything else writing there)
    goes to `log_file`; records of Ray's Python loggers go to medviewer's log.
    Yields the stream for medviewer's own messages (the terminal, or whatever
    `sys.stderr` was when it does not write to descriptor 2).
    """
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        target = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    except OSError:
        target = os.open(os.devnull, os.O_WRONLY)
    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    try:
        fileno = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        fileno = -1
    saved = os.dup(2)
    user: TextIO = sys.stderr
    own_stream = None
    if fileno == 2:  # our messages keep going where descriptor 2 went before
        own_stream = os.fdopen(os.dup(saved), "w", buffering=1, errors="replace",
                               encoding=getattr(sys.stderr, "encoding", None) or "utf-8")
        user = own_stream
    os.dup2(target, 2)
    os.close(target)
    to_log = _ToLog()
    handlers = _ray_console_handlers()
    for h in handlers:
        h.addFilter(to_log)
    try:
        yield user
    finally:
        for h in handlers:
            h.removeFilter(to_log)
        try:
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        if own_stream is not None:
            own_stream.close()
