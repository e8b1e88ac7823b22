"""Heat-map colouring and blending for Grad-CAM maps (Qt-free; used by the UI and the CLI)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

COLORMAPS: dict[str, int] = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "hot": cv2.COLORMAP_HOT,
}


def colormap_lut(name: str = "jet") -> np.ndarray:
    """(256, 3) uint8 RGB table of a colormap (also used to draw the colour bar)."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r} (use {', '.join(COLORMAPS)})")
    ramp = np.arange(256, dtype=np.uint8)[:, None]
    return cv2.applyColorMap(ramp, COLORMAPS[name])[:, 0, ::-1].copy()


def colorize(cam: np.ndarray, name: str = "jet") -> np.ndarray:
    """float [0, 1] map (rows, cols) -> uint8 RGBA (rows, cols, 4), opaque."""
    idx = np.clip(np.rint(np.asarray(cam, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)
    rgba = np.empty(idx.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = colormap_lut(name)[idx]
    rgba[..., 3] = 255
    return rgba


def blend(grey_or_rgb: np.ndarray, cam: np.ndarray, opacity: float = 0.4, name: str = "jet") -> np.ndarray:
    """Displayed image (uint8 grey or RGB) with the heat map on top -> uint8 RGB."""
    base = grey_or_rgb if grey_or_rgb.ndim == 3 else np.repeat(grey_or_rgb[..., None], 3, axis=2)
    if base.shape[:2] != cam.shape:
        raise ValueError(f"map shape {cam.shape} does not match image {base.shape[:2]}")
    heat = colorize(cam, name)[..., :3].astype(np.float32)
    out = (1.0 - opacity) * base.astype(np.float32) + opacity * heat
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def save_cam(cam_dir: Path, rel: str, cam: np.ndarray, grey: np.ndarray) -> None:
    """Write a Grad-CAM map as `cam_dir/rel` (.npy, float32 [0, 1]) and its overlay PNG beside it."""
    from medviewer.viewer.clikit import write_png

    npy = cam_dir / rel
    npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(npy, cam.astype(np.float32, copy=False))
    write_png(npy.with_suffix(".png"), blend(grey, cam))
