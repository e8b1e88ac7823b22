"""The CPU thread policy (engine.threads): passive OpenMP waits set before torch is imported,
torch's thread count from the CPUs this process may use, in the CLI and the viewer."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from medviewer.engine import threads


def _python(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MEDVIEWER_THREAD_POLICY",
                          "MEDVIEWER_TORCH_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_importing_the_engine_sets_passive_waits_before_torch() -> None:
    code = ("import os, sys; import medviewer.engine; "
            "print('torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))")
    assert _python(code) == "False PASSIVE"
    assert _python(code, OMP_WAIT_POLICY="active") == "False active"     # the user's choice stays
    assert _python(code, MEDVIEWER_THREAD_POLICY="off") == "False None"  # policy off


def test_apply_sets_torch_threads_from_the_cpu_budget() -> None:
    code = ("import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
            "from medviewer.engine.threads import apply, cpu_budget; n = apply(); import torch; "
            "print(cpu_budget(), n, torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'])")
    assert _python(code) == "1 1 1 PASSIVE"
    code = ("from medviewer.engine.threads import apply; import torch; "
            "print(apply(reserve=1), torch.get_num_threads())")
    assert _python(code, MEDVIEWER_TORCH_THREADS="3") == "3 3"


def test_torch_imported_first_is_reported_not_hidden(caplog) -> None:
    code = ("import logging, sys; logging.basicConfig(stream=sys.stdout, level=logging.INFO); "
            "import torch; from medviewer.engine.threads import apply; apply(count=2)")
    out = _python(code)
    assert "OpenMP wait policy not passive" in out


def test_budget_counts_the_cgroup_quota(monkeypatch) -> None:
    monkeypatch.setattr(threads, "_cgroup_cpus", lambda: 1.5)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)))
    assert threads.cpu_budget() == 2
    assert threads.torch_threads(reserve=1) == 1
    monkeypatch.setattr(threads, "_cgroup_cpus", lambda: None)
    assert threads.cpu_budget() == 64 and threads.torch_threads(reserve=1) == 63
    monkeypatch.setenv(threads.ENV_THREADS, "many")
    assert threads.torch_threads() == 64   # nonsense is ignored, not fatal


def test_the_viewer_loads_models_under_the_policy(monkeypatch) -> None:
    """The viewer's model-loading task applies the policy with the count the controller
    computes (one CPU left to the GUI thread)."""
    torch = pytest.importorskip("torch")
    from medviewer.viewer.ui.ai.controller import GUI_RESERVE
    from medviewer.viewer.ui.ai.worker import load_task

    monkeypatch.setattr(threads, "cpu_budget", lambda: 3)
    before = torch.get_num_threads()
    try:
        model = load_task(None, "demo", "cpu", threads.torch_threads(reserve=GUI_RESERVE))
        assert model.classes and torch.get_num_threads() == 3 - GUI_RESERVE
    finally:
        torch.set_num_threads(before)
