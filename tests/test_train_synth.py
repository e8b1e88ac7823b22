"""Acceptance: the trainer learns the synthetic lesion dataset and Grad-CAM points at the lesion.

Issue 4, section 4: on CPU, test accuracy >= 0.9 and the Grad-CAM maximum falls
inside the lesion mask (within half a CAM cell) in >= 80% of lesion test images.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import torch

from medviewer.engine.train.cli import main_make_dataset, main_train
from medviewer.engine.train.synth import read_masks
from medviewer import engine

# exactly the recipe of the shipped demo model (resources/models/make_demo.sh)
SIZE = 96
DATA_FLAGS = ["--n", "150", "--size", str(SIZE), "--seed", "7"]
TRAIN_FLAGS = ["--arch", "mobilenet_v3_small", "--image-size", str(SIZE), "--epochs", "10",
               "--batch-size", "16", "--optimizer", "adamw", "--lr", "2e-3", "--weight-decay", "1e-4",
               "--scheduler", "onecycle", "--hflip", "0.5", "--device", "cpu", "--seed", "0", "--no-report"]


def cam_grid(loaded, size: int) -> int:
    """Side of the Grad-CAM layer's feature map for a size x size input."""
    shape = {}
    layer = loaded.module.get_submodule(loaded.cam_layer)
    h = layer.register_forward_hook(lambda m, i, o: shape.update(s=o.shape))
    with torch.inference_mode():
        loaded.module(torch.zeros(1, 3, size, size, device=loaded.device))
    h.remove()
    return int(shape["s"][-1])


def pointing_game(loaded, masks: dict[str, np.ndarray], size: int) -> float:
    """Fraction of lesion images whose CAM maximum lies within half a CAM cell of the mask."""
    half = size / cam_grid(loaded, size) / 2
    paths = sorted(masks)
    images = [cv2.imread(p, cv2.IMREAD_UNCHANGED) for p in paths]
    maps = engine.gradcam(loaded, images)
    hits = 0
    for p, cam in zip(paths, maps):
        r, c = np.unravel_index(int(np.argmax(cam)), cam.shape)
        ys, xs = np.nonzero(masks[p])
        dist = np.min(np.maximum(np.abs(ys - r), np.abs(xs - c)))
        hits += dist <= half
    return hits / len(paths)


def test_synthetic_accuracy_and_pointing(tmp_path):
    data = tmp_path / "synth"
    assert main_make_dataset([str(data), *DATA_FLAGS]) == 0
    out = tmp_path / "run"
    assert main_train(["--data", str(data), "--out", str(out), *TRAIN_FLAGS]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["test"]["accuracy"] >= 0.9, rep["test"]
    from medviewer.engine.modelfile import load_model

    loaded = load_model(out / "model.safetensors", device="cpu", cache=False)
    test_masks = {p: m for p, m in read_masks(data).items() if "/test/" in p.replace("\\", "/")}
    assert len(test_masks) >= 60
    assert pointing_game(loaded, test_masks, SIZE) >= 0.8
