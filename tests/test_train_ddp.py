"""Two-process DistributedDataParallel run on CPU (gloo), launched like users do with torchrun."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from medviewer.engine.train.synth import make_dataset


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_gloo_processes(tmp_path):
    data = make_dataset(tmp_path / "data", ["normal", "nodule"], n=10, size=32, seed=1)
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
           "-m", "medviewer.engine.train", "--data", str(data), "--out", str(out), "--arch", "mobilenet_v3_small",
           "--image-size", "32", "--epochs", "2", "--batch-size", "4", "--device", "cpu", "--no-report"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "distributed: 2 processes, backend gloo" in proc.stdout
    assert proc.stdout.count("epoch 2/2") == 1          # only rank 0 logs
    rep = json.loads((out / "report.json").read_text())
    assert len(rep["history"]) == 2
    assert rep["splits"]["train"] == {"nodule": 6, "normal": 6}
    assert (out / "model.safetensors").is_file()
