"""Stored pixels -> model tensor: the ONE preprocessing path shared by viewer and trainer.

Steps (train/serve parity, STYLE.md pattern 7):
  1. `plan` / `to_unit`: the DICOM display pipeline of viewer.display - modality
     LUT (PS3.3 C.11.1), the card's VOI window (C.11.2) or an automatic one,
     MONOCHROME1 polarity (C.7.6.3.1.2) - as uint8 grey levels (or RGB), scaled
     to float32 [0, 1].  `GreyPlan` is decided once per image and shared by the
     CPU path and engine.preprocess_gpu (which windows the raw values on the
     device when the plan is one affine map);
  2. `fit`: resize to the card's square input size (letterbox, stretch or
     centre crop), recording a `Geometry`;
  3. `to_chw`: grey to 3 channels, per-channel mean/std normalisation.
`Geometry.to_source` maps any map on the model input grid (e.g. a Grad-CAM)
back onto the source image's own rows x columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from medviewer.engine.card import ModelCard
    from medviewer.viewer.display import ImageMeta

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601 (PS3.3 C.7.6.3.1.2 YBR)


@dataclass(frozen=True)
class PreprocessSpec:
    """The preprocessing fields of a ModelCard (see engine.card for their meaning).

    `window` is anything `WindowSpec.parse` accepts ("auto", "header", "C,W",
    {"center", "width"}, (c, w)); it is parsed once here.
    """

    input_size: int = 224
    resize: str = "letterbox"
    channels: str = "grey_to_rgb"
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    window: Any = "auto"
    monochrome1: str = "invert"

    def __post_init__(self) -> None:
        from medviewer.viewer.display.windowspec import WindowSpec

        object.__setattr__(self, "window", WindowSpec.parse(self.window))

    @classmethod
    def from_card(cls, card: "ModelCard") -> "PreprocessSpec":
        return cls(int(card.input_size), card.resize, card.channels, tuple(card.mean),
                   tuple(card.std), card.window, card.monochrome1)


@dataclass(frozen=True)
class Geometry:
    """Where the source image lies on the model's input grid.

    A source pixel centre (r, c) lands at input coordinates
    (r + 0.5) * scale_y - 0.5 + off_y, (c + 0.5) * scale_x - 0.5 + off_x
    (the pixel-centre convention of cv2.resize).  Negative offsets mean cropping.
    """

    src_rows: int
    src_cols: int
    size: int
    scale_y: float
    scale_x: float
    off_y: int
    off_x: int

    def source_to_input(self, r: float, c: float) -> tuple[float, float]:
        return ((r + 0.5) * self.scale_y - 0.5 + self.off_y,
                (c + 0.5) * self.scale_x - 0.5 + self.off_x)

    def to_source(self, grid_map: np.ndarray) -> np.ndarray:
        """Map a 2-D map on the input grid (any resolution, e.g. 7x7 features) to
        float32 (src_rows, src_cols).  Bilinear; source pixels that were cropped
        away get 0."""
        m = np.asarray(grid_map, dtype=np.float32)
        if m.ndim != 2:
            raise ValueError(f"expected a 2-D map, got shape {m.shape}")
        if m.shape != (self.size, self.size):
            m = cv2.resize(m, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        # content region on the input grid, so that borders replicate content, not padding
        y0, x0 = max(self.off_y, 0), max(self.off_x, 0)
        y1 = min(self.off_y + round(self.src_rows * self.scale_y), self.size)
        x1 = min(self.off_x + round(self.src_cols * self.scale_x), self.size)
        region = np.ascontiguousarray(m[y0:y1, x0:x1])
        if region.shape == (self.src_rows, self.src_cols) and self.scale_y == 1 and self.scale_x == 1:
            return region.copy()
        sy, sx = self.scale_y, self.scale_x
        affine = np.array([[sx, 0.0, 0.5 * sx - 0.5 + self.off_x - x0],
                           [0.0, sy, 0.5 * sy - 0.5 + self.off_y - y0]], dtype=np.float64)
        out = cv2.warpAffine(region, affine, (self.src_cols, self.src_rows),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                             borderMode=cv2.BORDER_REPLICATE)
        if self.off_y < 0 or self.off_x < 0:  # centre crop: no evidence outside the view
            rr = (np.arange(self.src_rows) + 0.5) * sy - 0.5 + self.off_y
            cc = (np.arange(self.src_cols) + 0.5) * sx - 0.5 + self.off_x
            out[(rr < -0.5) | (rr > self.size - 0.5), :] = 0.0
            out[:, (cc < -0.5) | (cc > self.size - 0.5)] = 0.0
        return out.astype(np.float32, copy=False)


# -- step 1: display pipeline -> grey levels -> [0, 1] -----------------------------
@dataclass(frozen=True)
class GreyPlan:
    """How one image's stored values become the model's grey levels (decided once).

    colour: RGB / palette / YBR images go through `render` as colour (no window);
    window: the VOI window to apply (None: the file's own, `render`'s default);
    raw_polarity: MONOCHROME1 kept as stored (card monochrome1 == "raw"), i.e. the
    display inversion of C.7.6.3.1.2 undone - the only place that rule lives.
    """

    meta: "ImageMeta"
    colour: bool
    window: Any
    raw_polarity: bool

    def grey8(self, stored: np.ndarray) -> np.ndarray:
        """uint8 (rows, cols) grey levels, or (rows, cols, 3) RGB for colour."""
        from medviewer.viewer import display

        out = display.render(stored, self.meta, self.window)
        if self.raw_polarity:
            out = 255 - out
        return out

    def affine(self, stored: np.ndarray) -> tuple[float, float] | None:
        """(alpha, beta) with grey8 == clip(rint(alpha * stored + beta)) when the whole
        chain is one affine map (rescale + LINEAR window, viewer.display.affine_coefficients)."""
        from medviewer.viewer import display

        if self.colour or stored.ndim != 2:
            return None
        window = self.window if self.window is not None else display.default_window(self.meta, stored)
        coeffs = display.affine_coefficients(stored.dtype, self.meta, window)
        if coeffs is None:
            return None
        alpha, beta = coeffs
        if self.raw_polarity:
            alpha, beta = -alpha, 255.0 - beta
        return alpha, beta


def plan(stored: np.ndarray, meta: "ImageMeta | None", window: Any = "auto",
         monochrome1: str = "invert") -> GreyPlan:
    """Decide the display-pipeline step for one image (`meta=None`: a plain PNG/JPEG array)."""
    from medviewer.viewer import display
    from medviewer.viewer.display.windowspec import WindowSpec

    stored = np.asarray(stored)
    if meta is None:
        meta = display.meta_for_plain_image(stored)
    colour = stored.ndim == 3 or meta.is_color or meta.is_palette
    win = None if colour else WindowSpec.parse(window).resolve(stored, meta)
    raw = monochrome1 == "raw" and meta.inverted and not colour
    return GreyPlan(meta, colour, win, raw)


def to_unit(stored: np.ndarray, meta: "ImageMeta | None" = None, window: Any = "auto",
            monochrome1: str = "invert") -> np.ndarray:
    """Stored pixel values -> float32 [0, 1]: (rows, cols) grey or (rows, cols, 3) colour.

    Uses viewer.display.render (modality LUT, VOI, MONOCHROME1 shown inverted,
    palette and colour handling), so the model sees what the radiologist sees.
    `monochrome1="raw"` undoes the display inversion for MONOCHROME1 images.
    `meta=None` treats `stored` as a plain PNG/JPEG-like array.
    """
    stored = np.asarray(stored)
    grey = plan(stored, meta, window, monochrome1).grey8(stored)
    return grey.astype(np.float32) / np.float32(255.0)


# -- step 2: geometry -------------------------------------------------------------------
def fit(img: np.ndarray, size: int, mode: str = "letterbox") -> tuple[np.ndarray, Geometry]:
    """Resize a (rows, cols[, 3]) image onto a size x size grid; pad with 0 or crop centrally."""
    rows, cols = img.shape[:2]
    if rows < 1 or cols < 1:
        raise ValueError("empty image")
    if mode == "stretch":
        nh = nw = size
    elif mode == "letterbox":
        s = size / max(rows, cols)
        nh, nw = min(size, max(1, round(rows * s))), min(size, max(1, round(cols * s)))
    elif mode == "center_crop":
        s = size / min(rows, cols)
        nh, nw = max(size, round(rows * s)), max(size, round(cols * s))
    else:
        raise ValueError(f"unknown resize mode {mode!r}")
    src = np.ascontiguousarray(img, dtype=np.float32)
    if (nh, nw) != (rows, cols):
        shrink = nh < rows and nw < cols
        src = cv2.resize(src, (nw, nh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    oy, ox = (size - nh) // 2, (size - nw) // 2
    out = np.zeros((size, size) + img.shape[2:], dtype=np.float32)
    ys, xs = max(-oy, 0), max(-ox, 0)
    yd, xd = max(oy, 0), max(ox, 0)
    h, w = min(nh, size), min(nw, size)
    out[yd:yd + h, xd:xd + w] = src[ys:ys + h, xs:xs + w]
    return out, Geometry(rows, cols, size, nh / rows, nw / cols, oy, ox)


# -- step 3: channels and normalisation ----------------------------------------------
def to_chw(img: np.ndarray, channels: str = "grey_to_rgb",
           mean: Sequence[float] = (0.485, 0.456, 0.406),
           std: Sequence[float] = (0.229, 0.224, 0.225)) -> np.ndarray:
    """(H, W) or (H, W, 3) in [0, 1] -> normalised float32 (3, H, W)."""
    if img.ndim == 3 and channels == "grey_to_rgb":
        img = img @ _LUMA
    chw = np.repeat(img[None], 3, axis=0) if img.ndim == 2 else np.transpose(img, (2, 0, 1))
    m = np.asarray(mean, dtype=np.float32)[:, None, None]
    inv = (1.0 / np.asarray(std, dtype=np.float32))[:, None, None]
    return np.ascontiguousarray((chw - m) * inv, dtype=np.float32)


def preprocess_array(stored: np.ndarray, meta: "ImageMeta | None", spec: PreprocessSpec) -> tuple[np.ndarray, Geometry]:
    """Steps 1-3 as numpy: float32 (3, S, S) and its Geometry."""
    unit = to_unit(stored, meta, spec.window, spec.monochrome1)
    fitted, geom = fit(unit, spec.input_size, spec.resize)
    return to_chw(fitted, spec.channels, spec.mean, spec.std), geom


def preprocess(stored: np.ndarray, meta: "ImageMeta | None", spec: "PreprocessSpec | ModelCard") -> tuple["torch.Tensor", Geometry]:
    """Stored pixels (+ their viewer.display ImageMeta) -> (float32 tensor (3, S, S), Geometry)."""
    import torch

    if not isinstance(spec, PreprocessSpec):
        spec = PreprocessSpec.from_card(spec)
    arr, geom = preprocess_array(stored, meta, spec)
    return torch.from_numpy(arr), geom


def preprocess_batch(images: Sequence[np.ndarray], metas: Sequence["ImageMeta | None"] | None,
                     spec: "PreprocessSpec | ModelCard") -> tuple["torch.Tensor", list[Geometry]]:
    """Several images -> (N, 3, S, S) tensor and one Geometry each."""
    import torch

    if not isinstance(spec, PreprocessSpec):
        spec = PreprocessSpec.from_card(spec)
    metas = list(metas) if metas is not None else [None] * len(images)
    out = np.empty((len(images), 3, spec.input_size, spec.input_size), dtype=np.float32)
    geoms = []
    for i, (img, meta) in enumerate(zip(images, metas)):
        out[i], g = preprocess_array(img, meta, spec)
        geoms.append(g)
    return torch.from_numpy(out), geoms
