"""Quality of the trainer's defaults against a bare PyTorch loop on REAL backgrounds.

The recipe of issue 9: a lesion set built on real CT and MR slices
(bench/realbg.py: 450/90/111 8-bit PNG images, 4 classes, backgrounds of one
source file never in two splits), resnet18 from scratch at 128 px, 8 epochs,
Adam 1e-3, ``--augment light``.  For each seed, in the same run:

* trainer: ``medviewer --train`` with exactly those flags and every other
  setting at its default (the model it hands over: restore-best etc.);
* bare: the loop a researcher writes in twenty lines on the same PNG files:
  pixels / 255, ImageNet normalisation, the same model, Adam 1e-3, batch 32,
  8 epochs, shuffled, no augmentation, the last epoch's weights.

Both are scored on the test split: accuracy, macro F1 (scikit-learn) and
Grad-CAM pointing (the CAM maximum lies within half a CAM cell of the lesion
mask, on the lesion images; the same engine.gradcam for both models).  Prints
one line per run, then mean +- sd over the seeds and the trainer/bare ratio.

    python bench/bench_trainer_defaults.py [--seeds 0,1,2] [--data DIR] [--device cpu]
        [--flags "--batch-size 16"]   # extra trainer flags (ablations)
        [--only trainer|bare] [--json RUNS.json]
    python bench/bench_trainer_defaults.py --table A.json B.json ...   # seeds run in parallel
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))   # the checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))
from realbg import make_realbg_dataset  # noqa: E402

from medviewer import engine  # noqa: E402
from medviewer.engine.registry import build_model  # noqa: E402
from medviewer.engine.card import ModelCard  # noqa: E402
from medviewer.engine.modelfile import load_model, save_model  # noqa: E402
from medviewer.engine.train.cli import main_train  # noqa: E402
from medviewer.engine.train.synth import read_masks  # noqa: E402

RECIPE = ["--arch", "resnet18", "--weights", "none", "--image-size", "128", "--epochs", "8",
          "--optimizer", "adam", "--lr", "1e-3", "--augment", "light", "--no-report"]
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def read_split(root: Path, split: str, classes: list[str]) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    paths, xs, ys = [], [], []
    for ci, c in enumerate(classes):
        for p in sorted((root / split / c).glob("*.png")):
            img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255.0
            xs.append(np.repeat(img[None], 3, 0))
            ys.append(ci)
            paths.append(str(p.resolve()))
    x = torch.from_numpy(np.stack(xs))
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return paths, x, torch.tensor(ys)


def bare_loop(root: Path, classes: list[str], seed: int, device: str, out: Path,
              history: list[dict[str, float]]) -> Path:
    """The plain loop; saved as a model file whose card window is the identity (x / 255)."""
    torch.manual_seed(seed)
    _, x, y = read_split(root, "train", classes)
    _, xv, yv = read_split(root, "val", classes)
    model = build_model("resnet18", len(classes)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(8):
        model.train()
        perm = torch.randperm(len(x))
        seen = correct = loss_sum = 0.0
        for b in range(0, len(x), 32):
            idx = perm[b:b + 32]
            out_b = model(x[idx].to(device))
            loss = F.cross_entropy(out_b, y[idx].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(idx)
            correct += float((out_b.argmax(1).cpu() == y[idx]).sum())
            loss_sum += float(loss.detach()) * len(idx)
        model.eval()                      # diagnostics only: the bare loop keeps the last epoch
        with torch.inference_mode():
            out_v = model(xv.to(device)).cpu()
        history.append({"epoch": epoch + 1, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                        "val_loss": float(F.cross_entropy(out_v, yv)),
                        "val_accuracy": float((out_v.argmax(1) == yv).float().mean())})
        print(f"  bare epoch {epoch + 1}: " + "  ".join(f"{k} {v:.3f}" for k, v in history[-1].items()
                                                     if k != "epoch"), file=sys.stderr, flush=True)
    card = ModelCard(name="bare", architecture="resnet18", classes=list(classes), input_size=128,
                     window={"center": 127.5, "width": 256.0}, cam_layer="layer4",
                     intended_use="research")
    out.mkdir(parents=True, exist_ok=True)
    return save_model(out / "model.safetensors", model.cpu(), card)


def pointing(loaded, masks: dict[str, np.ndarray]) -> float:
    """Fraction of lesion images whose CAM maximum lies within half a CAM cell of the mask."""
    size = loaded.card.input_size
    shape = {}
    h = loaded.module.get_submodule(loaded.cam_layer).register_forward_hook(
        lambda m, i, o: shape.update(s=o.shape))
    with torch.inference_mode():
        loaded.module(torch.zeros(1, 3, size, size, device=loaded.device))
    h.remove()
    half = size / int(shape["s"][-1]) / 2
    paths = sorted(masks)
    maps = engine.gradcam(loaded, [cv2.imread(p, cv2.IMREAD_UNCHANGED) for p in paths])
    hits = 0
    for p, cam in zip(paths, maps):
        r, c = np.unravel_index(int(np.argmax(cam)), cam.shape)
        ys, xs = np.nonzero(masks[p])
        hits += np.min(np.maximum(np.abs(ys - r), np.abs(xs - c))) <= half
    return hits / len(paths)


def score(model_file: Path, root: Path, classes: list[str], masks: dict[str, np.ndarray]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    loaded = load_model(model_file, device="cpu", cache=False)
    paths, _, y = read_split(root, "test", classes)
    probs = engine.predict(loaded, [cv2.imread(p, cv2.IMREAD_UNCHANGED) for p in paths], batch_size=32)
    pred = np.asarray(probs).argmax(1)
    return {"accuracy": accuracy_score(y, pred), "macro_f1": f1_score(y, pred, average="macro"),
            "pointing": pointing(loaded, masks)}


def table(runs: dict[str, list[dict]], n_seeds: int) -> None:
    """mean +- sd over the seeds of each kind, and the trainer / bare ratio of the means."""
    print()
    print(f"{'':<8} {'accuracy':>15} {'macro F1':>15} {'pointing':>15}   (mean +- sd over {n_seeds} seeds)")
    means = {}
    for kind, rs in runs.items():
        if not rs:
            continue
        cells = []
        for key in ("accuracy", "macro_f1", "pointing"):
            v = [r[key] for r in rs]
            means[(kind, key)] = statistics.fmean(v)
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            cells.append(f"{statistics.fmean(v):.3f} +- {sd:.3f}")
        print(f"{kind:<8} " + " ".join(f"{c:>15}" for c in cells))
    if runs["trainer"] and runs["bare"]:
        print("ratio    " + " ".join(f"{means[('trainer', k)] / max(means[('bare', k)], 1e-9):>15.3f}"
                                     for k in ("accuracy", "macro_f1", "pointing")) + "   (trainer / bare)")


def merge(paths: list[Path]) -> dict[str, list[dict]]:
    """The runs of several --json files or printed outputs (seeds run as separate processes)."""
    import re

    runs: dict[str, list[dict]] = {"trainer": [], "bare": []}
    line = re.compile(r"^seed (\d+) (trainer|bare)\s+accuracy ([\d.]+)\s+macro F1 ([\d.]+)\s+pointing ([\d.]+)")
    for p in paths:
        text = p.read_text()
        if text.lstrip().startswith("{"):
            for kind, rs in json.loads(text)["runs"].items():
                runs[kind] += rs
            continue
        for m in map(line.match, text.splitlines()):
            if m:
                runs[m[2]].append({"seed": int(m[1]), "accuracy": float(m[3]), "macro_f1": float(m[4]),
                                   "pointing": float(m[5])})
    return runs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data", type=Path, help="dataset folder (made there if missing)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--flags", default="", help="extra trainer flags, e.g. \"--batch-size 16\"")
    ap.add_argument("--only", choices=("trainer", "bare"))
    ap.add_argument("--json", type=Path, help="write every run's scores here")
    ap.add_argument("--verbose", action="store_true", help="print the trainer's log")
    ap.add_argument("--table", type=Path, nargs="+", metavar="JSON",
                    help="print the table of earlier runs' --json files or printed outputs (seeds run in separate processes)")
    a = ap.parse_args()
    if a.table:
        runs = merge(a.table)
        table(runs, max(len(r) for r in runs.values()))
        return 0
    os.environ.setdefault("PYDICOM_DATA_OFFLINE", "1")
    seeds = [int(s) for s in a.seeds.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-defaults-"))
    root = a.data or work / "data"
    if not (root / "lesions.csv").is_file():
        make_realbg_dataset(root)
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    masks = {p: m for p, m in read_masks(root).items() if "/test/" in p}
    print(f"data {root}: classes {classes}, {len(masks)} lesion test images; torch threads "
          f"{torch.get_num_threads()}; trainer flags: {' '.join(RECIPE)} {a.flags}".rstrip())
    runs: dict[str, list[dict[str, float]]] = {"trainer": [], "bare": []}
    for seed in seeds:
        for kind in ("trainer", "bare"):
            if a.only and kind != a.only:
                continue
            out = work / f"{kind}-{seed}"
            t0 = time.perf_counter()
            if kind == "trainer":
                argv = ["--data", str(root), "--out", str(out), *RECIPE, *shlex.split(a.flags),
                        "--seed", str(seed), "--device", a.device]
                import contextlib
                import io

                with contextlib.redirect_stdout(io.StringIO()) as buf:
                    code = main_train(argv)
                if code not in (0, 1):
                    print(buf.getvalue())
                    raise SystemExit(f"trainer exit {code}")
                rep = json.loads((out / "report.json").read_text())
                extra = f" restored epoch {(rep.get('training') or {}).get('restored_epoch', '?')}"
                if a.verbose:
                    print(buf.getvalue())
                model_file = out / "model.safetensors"
            else:
                bare_history: list[dict[str, float]] = []
                model_file = bare_loop(root, classes, seed, a.device, out, bare_history)
                extra = ""
            s = score(model_file, root, classes, masks)
            s["seconds"] = time.perf_counter() - t0
            s["history"] = rep["history"] if kind == "trainer" else bare_history
            if a.verbose:
                for h in s["history"]:
                    print("   ", "  ".join(f"{k} {v:.3f}" for k, v in h.items() if isinstance(v, float)))
            runs[kind].append(s)
            if a.json:      # after every run: a long benchmark keeps what it has measured
                a.json.write_text(json.dumps({"flags": a.flags, "seeds": seeds, "runs": runs}, indent=1))
            print(f"seed {seed} {kind:<7} accuracy {s['accuracy']:.3f}  macro F1 {s['macro_f1']:.3f}  "
                  f"pointing {s['pointing']:.3f}  ({s['seconds']:.0f}s){extra}", flush=True)
    table(runs, len(seeds))
    if a.json:
        a.json.write_text(json.dumps({"flags": a.flags, "seeds": seeds, "runs": runs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
