"""CPU thread policy for torch: passive OpenMP waiting, thread counts from the CPUs we may use.

torch's CPU kernels run on an OpenMP team.  By default the team's idle threads
*spin* at every barrier; when another process (or the viewer's own decode and
prefetch threads) holds a core, the thread that was preempted holds up the
whole team while its partners burn their time slices spinning.  Measured here
(bench/bench_contention.py): the demo model's forward over 16 images at 96 px
under outside load took seconds with 2 spinning threads against ~0.1 s with
passive waiting.  The policy:

* `prepare()` sets ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep at
  once; libgomp and LLVM's libomp both read it) before torch is first imported.
  `medviewer.engine` calls it on import, so every medviewer path that imports
  torch (CLI, viewer, trainer) gets it; a value the user set is kept, and
  ``MEDVIEWER_THREAD_POLICY=off`` leaves OpenMP's defaults alone.
* `apply(reserve)` sets torch's intra-op threads to the CPUs this process may
  use (affinity mask and cgroup CPU quota, not the machine's core count) minus
  `reserve` for other work of ours (the viewer keeps one for its GUI thread);
  ``MEDVIEWER_TORCH_THREADS`` overrides the count.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

__all__ = ["apply", "cpu_budget", "policy_enabled", "prepare", "torch_threads"]

log = logging.getLogger(__name__)

ENV_POLICY = "MEDVIEWER_THREAD_POLICY"   # "off": leave OpenMP and torch defaults alone
ENV_THREADS = "MEDVIEWER_TORCH_THREADS"  # explicit torch intra-op thread count


def policy_enabled() -> bool:
    return os.environ.get(ENV_POLICY, "on").strip().lower() not in ("off", "0", "no", "false")


def prepare() -> bool:
    """Set passive OpenMP waiting in the environment if torch is not loaded yet.

    Returns whether the policy is in force for this process (it cannot be once
    torch, and with it the OpenMP runtime, was imported without it).
    """
    if not policy_enabled():
        return False
    if "OMP_WAIT_POLICY" in os.environ:
        return os.environ["OMP_WAIT_POLICY"].strip().upper() == "PASSIVE"
    if "torch" in sys.modules:
        return False
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def _cgroup_cpus() -> float | None:
    """CPU quota of this process's cgroup (v2 cpu.max, v1 cfs quota), None if unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            return int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        if quota_us > 0 and period_us > 0:
            return quota_us / period_us
    except (OSError, ValueError):
        pass
    return None


def cpu_budget() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    quota = _cgroup_cpus()
    if quota is not None:
        cpus = min(cpus, max(1, math.ceil(quota)))
    return max(1, cpus)


def torch_threads(reserve: int = 0) -> int:
    """torch intra-op threads for this process: $MEDVIEWER_TORCH_THREADS, else the CPU
    budget minus `reserve` (at least 1)."""
    text = os.environ.get(ENV_THREADS, "").strip()
    if text:
        try:
            return max(1, int(text))
        except ValueError:
            log.warning("ignoring %s=%r (not a whole number)", ENV_THREADS, text)
    return max(1, cpu_budget() - max(0, reserve))


def apply(reserve: int = 0, count: int | None = None) -> int:
    """Apply the policy (see the module text) with `count` torch threads (default:
    `torch_threads(reserve)`); returns torch's intra-op thread count."""
    in_force = prepare()
    import torch

    if not policy_enabled():
        return torch.get_num_threads()
    n = max(1, int(count)) if count else torch_threads(reserve)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    if not in_force and n > 1:
        log.info("OpenMP wait policy not passive (torch was imported first or OMP_WAIT_POLICY "
                 "is set): %d torch threads may spin under CPU load", n)
    return n
