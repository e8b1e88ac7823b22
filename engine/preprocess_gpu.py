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

from medviewer.engine.preprocess import Geometry, PreprocessSpec, fit, plan

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
    out = torch.from_numpy(wy).to(device), torch.from_numpy(wx).to(device), geom
    _settle(device)
    return out


def _settle(device: str) -> None:
    """Wait for an upload to a cached tensor: other threads use it on other streams."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.current_stream(device).synchronize()


def grey_levels(stored: np.ndarray, meta: Any, spec: PreprocessSpec) -> np.ndarray | None:
    """uint8 grey levels exactly as engine.preprocess.to_unit * 255, or None for colour."""
    stored = np.asarray(stored)
    p = plan(stored, meta, spec.window, spec.monochrome1)
    return None if p.colour else p.grey8(stored)


def affine_grey(stored: np.ndarray, meta: Any, spec: PreprocessSpec) -> tuple[float, float] | None:
    """(alpha, beta) when `grey_levels` is one affine map of the stored values, so the
    device can window the raw stored values itself (GreyPlan.affine); else None."""
    stored = np.asarray(stored)
    return plan(stored, meta, spec.window, spec.monochrome1).affine(stored)


def _pinned_bytes(nbytes: int) -> "torch.Tensor":
    import torch

    return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)


class PinnedStaging:
    """Reusable page-locked host buffers for host-to-device copies.

    A pageable `tensor.to("cuda")` is staged through a driver buffer and runs
    at a fraction of the bus speed; page-locking a fresh buffer per batch
    (cudaHostAlloc) costs more than it saves.  Buffers are therefore kept and
    handed out again: `take(nbytes)` returns one (grown when too small) and
    `give(buf)` returns it once the copy from it has finished.  At most
    `max_bytes` stay pinned; past that, `take` returns None and the caller
    copies from pageable memory.
    """

    def __init__(self, max_bytes: int = 512 * 2**20, alloc: Any = None) -> None:
        import threading

        self.max_bytes = max_bytes
        self._alloc = alloc or _pinned_bytes
        self._free: list["torch.Tensor"] = []
        self._pinned = 0
        self._lock = threading.Lock()

    def take(self, nbytes: int) -> "torch.Tensor | None":
        with self._lock:
            fits = [k for k, b in enumerate(self._free) if b.numel() >= nbytes]
            if fits:  # the smallest idle buffer that is large enough
                return self._free.pop(min(fits, key=lambda k: self._free[k].numel()))
            while self._free and self._pinned + nbytes > self.max_bytes:
                self._pinned -= self._free.pop(0).numel()  # drop a smaller idle buffer
            if self._pinned + nbytes > self.max_bytes:
                return None
            self._pinned += nbytes
        try:
            return self._alloc(nbytes)
        except RuntimeError:  # no page-locked memory to be had: pageable copies
            with self._lock:
                self._pinned -= nbytes
            return None

    def give(self, buf: "torch.Tensor") -> None:
        with self._lock:
            self._free.append(buf)

    @property
    def pinned_bytes(self) -> int:
        """Bytes of the buffers handed out or idle (at most max_bytes)."""
        return self._pinned


STAGING = PinnedStaging()


class _Uploader:
    """Host arrays -> tensors on `device`, through pinned buffers on a side CUDA stream.

    Used as a context manager around one batch's preparation: inside it, work
    is queued on the stream; on exit the stream is synchronised (the batch is
    complete on the device and the pinned buffers are free to refill) and the
    buffers go back to STAGING.  On a CPU device it is a plain conversion.
    """

    def __init__(self, device: "torch.device") -> None:
        import torch

        self.device = device
        self.cuda = device.type == "cuda"
        self.stream = torch.cuda.Stream(device) if self.cuda else None
        self._held: list["torch.Tensor"] = []
        self._ctx: Any = None

    def __enter__(self) -> "_Uploader":
        import torch

        if self.cuda:
            self._ctx = torch.cuda.stream(self.stream)
            self._ctx.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.cuda:
            self._ctx.__exit__(*exc)
            self.stream.synchronize()
        for buf in self._held:
            STAGING.give(buf)
        self._held.clear()

    def stack(self, arrays: Sequence[np.ndarray]) -> "torch.Tensor":
        """np.stack(arrays) as a tensor on the device (dtype kept; uint16 as int16 bits)."""
        import torch

        first = np.asarray(arrays[0])
        dtype = np.dtype(np.int16) if first.dtype == np.uint16 else first.dtype
        shape = (len(arrays), *first.shape)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        buf = STAGING.take(nbytes) if self.cuda else None
        if buf is None:
            host = np.stack([np.asarray(a).view(dtype) for a in arrays])
            return torch.from_numpy(host).to(self.device)
        self._held.append(buf)
        view = buf.numpy()[:nbytes].view(dtype).reshape(shape)
        for k, a in enumerate(arrays):  # straight into pinned memory (faster than np.stack(out=))
            view[k] = np.asarray(a).view(dtype)
        return torch.from_numpy(view).to(self.device, non_blocking=True)

    def small(self, values: Sequence[float] | Sequence[int], dtype: "torch.dtype") -> "torch.Tensor":
        import torch

        return torch.tensor(values, dtype=dtype).to(self.device, non_blocking=self.cuda)


def _stored_to_unit(x: "torch.Tensor", unsigned16: bool, alpha: "torch.Tensor",
                    beta: "torch.Tensor") -> "torch.Tensor":
    """Raw stored values (B, rows, cols) on the device -> grey / 255, exactly as
    clip(rint(alpha * x + beta), 0, 255) / 255 (round half to even, like np.rint)."""
    import torch

    x = x.float()
    if unsigned16:                           # torch has no general uint16: int16 bits
        x = torch.where(x < 0, x + 65536.0, x)
    grey = torch.round(x * alpha[:, None, None] + beta[:, None, None]).clamp_(0.0, 255.0)
    return grey / 255.0


def _unit_batches(groups: dict, raw: dict, up: _Uploader):
    """Yield ((rows, cols), indices, (B, rows, cols) float [0,1] on device) per shape:
    CPU-windowed uint8 grey levels, and raw stored values windowed on the device."""
    import torch

    for shape, items in groups.items():
        yield shape, [i for i, _ in items], up.stack([g for _, g in items]).float() / 255.0
    for (shape, dtype), items in raw.items():
        alpha = up.small([a for _, _, a, _ in items], torch.float32)
        beta = up.small([b for _, _, _, b in items], torch.float32)
        stored = up.stack([arr for _, arr, _, _ in items])
        unsigned16 = np.dtype(dtype) == np.uint16
        yield shape, [i for i, _, _, _ in items], _stored_to_unit(stored, unsigned16, alpha, beta)


@lru_cache(maxsize=16)
def _norm_constants(mean: tuple, std: tuple, device: str):
    import torch

    m = torch.tensor(mean, dtype=torch.float32, device=device)[:, None, None]
    inv = 1.0 / torch.tensor(std, dtype=torch.float32, device=device)[:, None, None]
    _settle(device)
    return m, inv


def preprocess_batch_device(images: Sequence[np.ndarray], metas: Sequence[Any] | None,
                            spec: PreprocessSpec, device: "torch.device") -> tuple["torch.Tensor", list[Geometry]]:
    """engine.preprocess.preprocess_batch with the resize and normalisation on `device`.

    On CUDA the batch is prepared on a side stream from pinned staging buffers,
    so copies and preprocessing overlap the forward pass of the previous batch
    on the default stream; the tensor is complete when this returns.  A caller
    that uses it on another stream calls `record_stream` for that stream.
    """
    import torch

    from medviewer.engine.preprocess import preprocess_array

    metas = list(metas) if metas is not None else [None] * len(images)
    s = spec.input_size
    geoms: list[Geometry | None] = [None] * len(images)
    groups: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    # rescale + LINEAR window: raw stored values cross the bus, windowed on the device
    raw: dict[tuple[tuple[int, int], str], list[tuple[int, np.ndarray, float, float]]] = {}
    colour: list[tuple[int, np.ndarray]] = []
    for i, (img, meta) in enumerate(zip(images, metas)):
        coeffs = affine_grey(img, meta, spec)
        if coeffs is not None:
            arr = np.asarray(img)
            raw.setdefault((arr.shape, arr.dtype.str), []).append((i, arr, *coeffs))
            continue
        grey = grey_levels(img, meta, spec)
        if grey is None:  # colour: the CPU path
            arr, geoms[i] = preprocess_array(img, meta, spec)
            colour.append((i, arr))
            continue
        groups.setdefault(grey.shape, []).append((i, grey))
    with _Uploader(device) as up:
        mean, inv_std = _norm_constants(tuple(spec.mean), tuple(spec.std), str(device))
        out = None
        parts = []
        for (rows, cols), index, unit in _unit_batches(groups, raw, up):
            wy, wx, geom = _device_matrices(rows, cols, s, spec.resize, str(device))
            fitted = wy @ unit @ wx.T
            normed = (fitted[:, None] - mean) * inv_std        # grey to 3 channels, then normalise
            parts.append((index, normed))
            for i in index:
                geoms[i] = geom
        if colour:
            parts.append(([i for i, _ in colour], up.stack([a for _, a in colour])))
        if len(parts) == 1 and parts[0][0] == list(range(len(images))):
            out = parts[0][1]  # the usual case: one shape, in order
        else:
            out = torch.empty((len(images), 3, s, s), dtype=torch.float32, device=device)
            for index, value in parts:
                out[up.small(index, torch.int64)] = value
    return out, geoms  # type: ignore[return-value]
