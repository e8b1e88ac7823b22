"""Archive throughput: `medviewer predict --engine ray --workers 1|2` vs the local engine.

One generated CT archive (512x512 int16 slices, several studies), one model,
the same command line a user types, run as separate processes in turns
(local, ray 1 worker, ray 2 workers, repeated) so that the machine's noise
spreads over all three.  Images/s = slices / wall time of the whole command
(start-up, scan, model load, inference, JSON).  The Ray runs join a Ray
instance this script starts once (`--ray-address`), as on a cluster that is
already up; `--embedded` lets each run start its own instead (what a laptop
user gets with no flags).  Also checks that every run's probabilities agree
with the local engine's within 1e-4.  CPU ms/image sums the CPU time of every process
involved (the command, Ray's daemons and workers): on a shared, busy machine it shows the
work each engine does where wall times mostly show how the machine was shared.

    python bench/bench_ray.py [--arch resnet18] [--size 224] [--studies 8] [--series 2]
                              [--slices 25] [--rows 512] [--repeats 3] [--embedded] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def make_model(path: Path, arch: str, size: int) -> None:
    import torch

    from medviewer.engine.card import ModelCard
    from medviewer.engine.modelfile import save_model
    from medviewer.engine.registry import build_model

    torch.manual_seed(0)
    classes = ["normal", "nodule", "mass", "other"]
    module = build_model(arch, len(classes)).eval()
    save_model(path, module, ModelCard(name=f"bench-{arch}", architecture=arch, classes=classes, input_size=size,
                                       window={"center": 40, "width": 400}))


def cpu_seconds() -> float:
    """CPU time of this process tree so far: live processes, and the ones that ended and
    were reaped (the command, Ray's workers reaped by their raylet)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for p in [me, *me.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            continue
    return total


def reaped_cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd: list[str], env: dict[str, str], tree: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one command: its own (and its children's), or with
    `tree` those of every process under this script (the joined Ray's daemons and workers)."""
    measure = cpu_seconds if tree else reaped_cpu_seconds
    c0, t0 = measure(), time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, measure() - c0


def max_diff(a: dict, b: dict) -> float:
    worst = 0.0
    for sa, sb in zip(a["series"], b["series"], strict=True):
        assert sa["series_uid"] == sb["series_uid"] and len(sa["items"]) == len(sb["items"])
        for ia, ib in zip(sa["items"], sb["items"]):
            assert ia["path"] == ib["path"]
            worst = max(worst, max(abs(ia["probabilities"][c] - ib["probabilities"][c]) for c in ia["probabilities"]))
    return worst


def main() -> None:
    import archivegen

    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--studies", type=int, default=8)
    ap.add_argument("--series", type=int, default=2, help="series per study")
    ap.add_argument("--slices", type=int, default=25)
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--embedded", action="store_true", help="each Ray run starts its own local instance")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    env = dict(os.environ, MEDVIEWER_HOME=str(tmp / "home"),
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"]
    os.environ["PYTHONPATH"] = env["PYTHONPATH"]
    archive = tmp / "archive"
    t0 = time.perf_counter()
    archivegen.archive(archive, studies=args.studies, series_per_study=args.series, slices=args.slices,
                       rows=args.rows, cols=args.rows, seed=1)
    n = args.studies * args.series * args.slices
    size_mb = sum(p.stat().st_size for p in archive.rglob("*.dcm")) / 2**20
    model = tmp / "model.safetensors"
    make_model(model, args.arch, args.size)
    print(f"archive: {args.studies * args.series} series, {n} slices {args.rows}x{args.rows} int16, "
          f"{size_mb:.0f} MiB ({time.perf_counter() - t0:.1f} s to write); model {args.arch} at {args.size} px; "
          f"{os.cpu_count()} CPU(s), device {args.device}")

    address = None
    if not args.embedded:
        import ray

        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        address = ray.get_runtime_context().gcs_address
        env["RAY_AUTH_MODE"] = os.environ.get("RAY_AUTH_MODE", "token")  # joining by address sends the token
        print(f"ray: {ray.__version__}, joined at {address}, {ray.cluster_resources().get('CPU', 0):g} CPU, "
              f"{ray.cluster_resources().get('GPU', 0):g} GPU")

    base = [sys.executable, "-m", "medviewer", "predict", str(archive), "--model", str(model),
            "--device", args.device, "--batch-size", str(args.batch)]
    variants = {"local": [], "ray w1": ["--engine", "ray", "--workers", "1"],
                "ray w2": ["--engine", "ray", "--workers", "2"]}
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    docs: dict[str, dict] = {}
    try:
        for rep in range(args.repeats):
            for name, extra in variants.items():
                out = tmp / f"{name.replace(' ', '_')}_{rep}.json"
                cmd = base + extra + ["--json", str(out)]
                if extra and address:
                    cmd += ["--ray-address", address]
                load = os.getloadavg()[0]
                wall, used = run(cmd, env, tree=bool(extra and address))
                times[name].append(wall)
                cpu[name].append(used)
                docs[name] = json.loads(out.read_text())
                print(f"  run {rep + 1} {name:7s} {wall:7.2f} s  {n / wall:7.1f} images/s  CPU {used:6.1f} s "
                      f"(load average {load:.1f} -> {os.getloadavg()[0]:.1f})", flush=True)
    finally:
        if address:
            import ray

            ray.shutdown()

    print()
    print(f"{'engine':8s} {'median s':>9s} {'images/s (median, min-max)':>30s} {'vs local':>9s} "
          f"{'CPU ms/image':>13s}")
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, v in times.items():
        rates = sorted(n / t for t in v)
        print(f"{name:8s} {med[name]:9.2f} {n / med[name]:12.1f} ({rates[0]:.1f}-{rates[-1]:.1f}) "
              f"{med['local'] / med[name]:14.2f}x {1000 * statistics.median(cpu[name]) / n:13.1f}")
    print(f"scaling ray w2 / w1: {med['ray w1'] / med['ray w2']:.2f}x")
    for name in ("ray w1", "ray w2"):
        print(f"max |p_ray - p_local| ({name}): {max_diff(docs['local'], docs[name]):.2e}")


if __name__ == "__main__":
    main()
