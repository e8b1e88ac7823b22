"""The shared preprocessing of engine.preprocess, run on a GPU for whole batches.

`to_unit` (display pipeline, a LUT) stays on the CPU and yields uint8 grey
levels; the resize of `fit` is a separable linear map, so it is written as
resize matrices Wy (S x rows) and Wx (S x cols) that reproduce cv2.resize's
INTER_AREA / INTER_LINEAR weights, padding and cropping: out = Wy @ img @ Wx^T.
Same numbers as the CPU path (tested to 1e-5), so train/serve parity holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.preprocess import Geometry, PreprocessSpec, fit

if TYPE_CHECKING:  # pragma: no cover
    import torch


def _area_weights(src: int, dst: int) -> np.ndarray:
    """cv2 INTER_AREA coefficients (computeResizeAreaTab) as a (dst, src) matrix."""
    w = np.zeros((dst, src), dtype=np.float64)
    scale = src / dst
    for d in range(dst):
        fs1 = d * scale
        fs2 = fs1 + scale
        cell = min(scale, src - fs1)
        s1, s2 = math.ceil(fs1), math.floor(fs2)
        s2 = min(s2, src - 1)
        s1 = min(s1, s2)
        if s1 - fs1 > 1e-3:
            w[d, s1 - 1] += (s1 - fs1) / cell
        for s in range(s1, s2):
            w[d, s] += 1.0 / cell
        if fs2 - s2 > 1e-3:
            w[d, s2] += min(min(fs2 - s2, 1.0), cell) / cell
    return w


def _linear_weights(src: int, dst: int) -> np.ndarray:
    """cv2 INTER_LINEAR coefficients (half-pixel centres, edge clamping) as (dst, src)."""
    w = np.zeros((dst, src), dtype=np.float64)
    scale = src / dst
    for d in range(dst):
        fx = (d + 0.5) * scale - 0.5
        sx = math.floor(fx)
        fx -= sx
        if sx < 0:
            sx, fx = 0, 0.0
        if sx >= src - 1:
            sx, fx = src - 1, 0.0
        w[d, sx] += 1.0 - fx
        if fx:
            w[d, sx + 1] += fx
    return w


@lru_cache(maxsize=32)
def fit_matrices(rows: int, cols: int, size: int, mode: str) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """(Wy (size, rows), Wx (size, cols), Geometry) with fit(img) == Wy @ img @ Wx.T."""
    probe, geom = fit(np.zeros((rows, cols), np.float32), size, mode)
    nh, nw = round(rows * geom.scale_y), round(cols * geom.scale_x)
    same = (nh, nw) == (rows, cols)
    shrink = nh < rows and nw < cols
    make = _area_weights if shrink else _linear_weights
    wy = np.eye(rows) if same else make(rows, nh)
    wx = np.eye(cols) if same else make(cols, nw)
    oy, ox = geom.off_y, geom.off_x
    full_y = np.zeros((size, rows))
    full_x = np.zeros((size, cols))
    ys, yd, h = max(-oy, 0), max(oy, 0), min(nh, size)
    xs, xd, w = max(-ox, 0), max(ox, 0), min(nw, size)
    full_y[yd:yd + h] = wy[ys:ys + h]
    full_x[xd:xd + w] = wx[xs:xs + w]
    return full_y.astype(np.float32), full_x.astype(np.float32), geom


@lru_cache(maxsize=32)
def _device_matrices(rows: int, cols: int, size: int, mode: str, device: str):
    """fit_matrices as float32 tensors already on `device` (uploaded once)."""
    import torch

    wy, wx, geom = fit_matrices(rows, cols, size, mode)
    return torch.from_numpy(wy).to(device), torch.from_numpy(wx).to(device), geom


def grey_levels(stored: np.ndarray, meta: Any, spec: PreprocessSpec) -> np.ndarray | None:
    """uint8 grey levels exactly as engine.preprocess.to_unit * 255, or None for colour."""
    from viewer import display

    from engine.preprocess import _window_for

    stored = np.asarray(stored)
    if meta is None:
        meta = display.meta_for_plain_image(stored)
    if stored.ndim == 3 or meta.is_color or meta.is_palette:
        return None
    grey = display.render(stored, meta, _window_for(stored, meta, spec.window))
    if spec.monochrome1 == "raw" and meta.inverted:
        grey = 255 - grey
    return grey


def affine_grey(stored: np.ndarray, meta: Any, spec: PreprocessSpec) -> tuple[float, float] | None:
    """(alpha, beta) when `grey_levels` is one affine map of the stored values
    (rescale + LINEAR/LINEAR_EXACT window, viewer.display.affine_coefficients),
    so the device can window the raw stored values itself; else None."""
    from viewer import display

    from engine.preprocess import _window_for

    stored = np.asarray(stored)
    if meta is None:
        meta = display.meta_for_plain_image(stored)
    if stored.ndim != 2 or meta.is_color or meta.is_palette:
        return None
    window = _window_for(stored, meta, spec.window)
    if window is None:                      # "header": what render() would pick
        window = display.default_window(meta, stored)
    coeffs = display.affine_coefficients(stored.dtype, meta, window)
    if coeffs is None:
        return None
    alpha, beta = coeffs
    if spec.monochrome1 == "raw" and meta.inverted:   # undo the display inversion
        alpha, beta = -alpha, 255.0 - beta
    return alpha, beta


def _stored_to_unit(stack: np.ndarray, alpha: "torch.Tensor", beta: "torch.Tensor",
                    device: "torch.device") -> "torch.Tensor":
    """Raw stored values (B, rows, cols) -> grey / 255 on `device`, exactly as
    clip(rint(alpha * x + beta), 0, 255) / 255 (round half to even, like np.rint)."""
    import torch

    if stack.dtype == np.uint16:            # torch has no general uint16: go via int16
        x = torch.from_numpy(stack.view(np.int16)).to(device).float()
        x = torch.where(x < 0, x + 65536.0, x)
    else:
        x = torch.from_numpy(stack).to(device).float()
    grey = torch.round(x * alpha[:, None, None] + beta[:, None, None]).clamp_(0.0, 255.0)
    return grey / 255.0


def _unit_batches(groups: dict, raw: dict, device: "torch.device"):
    """Yield ((rows, cols), indices, (B, rows, cols) float [0,1] on device) per shape:
    CPU-windowed uint8 grey levels, and raw stored values windowed on the device."""
    import torch

    for shape, items in groups.items():
        stack = torch.from_numpy(np.stack([g for _, g in items]))
        yield shape, [i for i, _ in items], stack.to(device).float() / 255.0
    for (shape, _dtype), items in raw.items():
        alpha = torch.tensor([a for _, _, a, _ in items], dtype=torch.float32, device=device)
        beta = torch.tensor([b for _, _, _, b in items], dtype=torch.float32, device=device)
        unit = _stored_to_unit(np.stack([arr for _, arr, _, _ in items]), alpha, beta, device)
        yield shape, [i for i, _, _, _ in items], unit


def preprocess_batch_device(images: Sequence[np.ndarray], metas: Sequence[Any] | None,
                            spec: PreprocessSpec, device: "torch.device") -> tuple["torch.Tensor", list[Geometry]]:
    """engine.preprocess.preprocess_batch with the resize and normalisation on `device`."""
    import torch

    from engine.preprocess import preprocess_array

    metas = list(metas) if metas is not None else [None] * len(images)
    s = spec.input_size
    out = torch.empty((len(images), 3, s, s), dtype=torch.float32, device=device)
    geoms: list[Geometry | None] = [None] * len(images)
    groups: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    # rescale + LINEAR window: raw stored values cross the bus, windowed on the device
    raw: dict[tuple[tuple[int, int], str], list[tuple[int, np.ndarray, float, float]]] = {}
    for i, (img, meta) in enumerate(zip(images, metas)):
        coeffs = affine_grey(img, meta, spec)
        if coeffs is not None:
            arr = np.asarray(img)
            raw.setdefault((arr.shape, arr.dtype.str), []).append((i, arr, *coeffs))
            continue
        grey = grey_levels(img, meta, spec)
        if grey is None:  # colour: the CPU path
            arr, geoms[i] = preprocess_array(img, meta, spec)
            out[i] = torch.from_numpy(arr).to(device)
            continue
        groups.setdefault(grey.shape, []).append((i, grey))
    mean = torch.tensor(spec.mean, dtype=torch.float32, device=device)[:, None, None]
    inv_std = 1.0 / torch.tensor(spec.std, dtype=torch.float32, device=device)[:, None, None]
    for (rows, cols), index, unit in _unit_batches(groups, raw, device):
        wy, wx, geom = _device_matrices(rows, cols, s, spec.resize, str(device))
        # integers cross the bus (2-4x less than float) in a pageable copy: pinning a
        # fresh buffer per batch (cudaHostAlloc) costs more than it saves and serialises threads.
        fitted = wy @ unit @ wx.T
        normed = (fitted[:, None] - mean) * inv_std        # grey to 3 channels, then normalise
        out[torch.tensor(index, device=device)] = normed
        for i in index:
            geoms[i] = geom
    return out, geoms  # type: ignore[return-value]
