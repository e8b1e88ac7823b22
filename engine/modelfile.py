"""Model files: one `.safetensors` holding the weights and, in its metadata, the card.

Tensors named `medviewer.*` are not weights: `medviewer.ood.*` hold the
out-of-distribution model (engine.ood) that the card's `ood` entry describes.
Loading never unpickles (torch.load on an untrusted file can run code):
`.pt`/`.pth` files are refused with a pointer to `medviewer convert-model`.
Every problem is one ModelFileError line naming the file and the reason.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.engine.card import METADATA_KEY, ModelCard, load_json
from medviewer.engine.preprocess import Geometry, PreprocessSpec, preprocess, preprocess_batch
from medviewer.engine.weights import check_finite
from medviewer.viewer.errors import ModelFileError

if TYPE_CHECKING:  # pragma: no cover
    import torch

EXTRA_PREFIX = "medviewer."   # tensors that are not the module's weights (engine.ood)
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".tar")
_MAX_HEADER = 16 * 2**20   # the JSON header of the largest registry model is ~0.2 MB


def _refuse_pickle(path: Path) -> ModelFileError:
    return ModelFileError(
        f"{path.name}: refusing to load a pickled PyTorch file (it could run arbitrary code); "
        f"convert it once with: medviewer convert-model {path.name} {path.stem}.safetensors --card card.json")


def read_header(path: str | Path) -> dict[str, Any]:
    """The safetensors JSON header (tensor table + '__metadata__'), read without tensors."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError:
        raise ModelFileError(f"{path}: model file not found") from None
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(f"{path}: not a regular file")
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise _refuse_pickle(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            n = struct.unpack("<Q", head)[0] if len(head) == 8 else 0
            raw = fh.read(n) if 1 < n <= min(_MAX_HEADER, st.st_size - 8) else b""
    except OSError as exc:
        raise ModelFileError(f"{path.name}: cannot read ({exc.strerror})") from None
    header: Any = None
    if raw:
        try:
            header = load_json(raw, path.name, "safetensors header", limit=_MAX_HEADER)
        except ModelFileError as exc:
            if "nested" in str(exc) or "characters" in str(exc):
                raise
            header = None
    if header is None:
        if head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05"):
            raise _refuse_pickle(path)  # torch.save zip archive or a raw pickle stream
        raise ModelFileError(f"{path.name}: not a safetensors model file (no valid header)")
    if not isinstance(header, dict):
        raise ModelFileError(f"{path.name}: not a safetensors model file (header is not an object)")
    return header


def read_card(path: str | Path) -> ModelCard:
    """The model card alone (cheap: no weights read), e.g. for the model picker."""
    path = Path(path)
    meta = read_header(path).get("__metadata__") or {}
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path.name}: safetensors metadata is not an object of strings")
    if METADATA_KEY not in meta:
        raise ModelFileError(f"{path.name}: safetensors file has no medviewer model card "
                             f"(metadata key {METADATA_KEY!r}); add one with medviewer convert-model")
    if not isinstance(meta[METADATA_KEY], str):
        raise ModelFileError(f"{path.name}: the model card in the metadata is not a JSON string")
    return ModelCard.from_json(meta[METADATA_KEY], where=path.name)


def save_model(path: str | Path, module: "torch.nn.Module", card: ModelCard,
               ood: Any = None) -> Path:
    """Write `module`'s state dict and `card` (and the engine.ood.OODModel `ood`, whose
    entry goes into the card) to one `.safetensors` file (atomically)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise ModelFileError(f"{path.name}: model files must end in .safetensors")
    if ood is not None:
        card.ood = ood.card_entry()
    card.format_version = max(int(card.format_version), card.needed_format())
    card.validate(path.name)
    check_fits(module.state_dict(), card, path.name)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    if ood is not None:
        tensors.update(ood.tensors())
    elif card.ood:
        raise ModelFileError(f"{path.name}: the card describes an OOD model but none was given to save")
    check_finite(tensors, path.name)
    if path.is_dir():
        raise ModelFileError(f"{path}: is a folder, not a model file name")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: card.to_json(), "format": "pt"})
        os.replace(tmp, path)
    except (OSError, RuntimeError, SafetensorError) as exc:   # full disk, read-only folder: leave nothing behind
        tmp.unlink(missing_ok=True)
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:120]
        raise ModelFileError(f"{path}: cannot write the model file ({reason})") from None
    return path


def check_fits(state: dict[str, Any], card: ModelCard, where: str) -> None:
    """Raise ModelFileError unless `state` fits the architecture and head of `card`."""
    import torch

    from medviewer.engine.registry import build_from_card

    state = {k: v for k, v in state.items() if not k.startswith(EXTRA_PREFIX)}
    with torch.device("meta"):
        ref = build_from_card(card).state_dict()
    missing = [k for k in ref if k not in state]
    unexpected = [k for k in state if k not in ref]
    wrong = [k for k in ref if k in state and tuple(state[k].shape) != tuple(ref[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} with wrong shape (e.g. {k!r}: {tuple(state[k].shape)} "
                         f"in file, {tuple(ref[k].shape)} expected)")
        raise ModelFileError(f"{where}: tensors do not fit {card.architecture} with "
                             f"{len(card.classes)} classes: {'; '.join(parts)}")


class LoadedModel:
    """A model ready to run: module (eval), card, classes, Grad-CAM layer, device.

    Plain data plus its preprocessing; `medviewer.engine.predict` / `.gradcam` run it.
    `temperature` divides the logits before the softmax (card, engine.train.calibrate);
    `ood` is the engine.ood.OODModel on `device`, or None for models without one.
    """

    def __init__(self, module: "torch.nn.Module", card: ModelCard, device: "torch.device",
                 path: Path | None = None, ood: Any = None) -> None:
        self.module = module
        self.card = card
        self.classes: list[str] = list(card.classes)
        self.cam_layer: str = card.cam_layer
        self.device = device
        self.path = path
        self.spec = PreprocessSpec.from_card(card)
        self.temperature = float(card.temperature)
        self.ood = ood

    @property
    def sha256(self) -> str | None:
        """Hex SHA-256 of the model file (None without a file); computed once."""
        if self.path is None:
            return None
        if "_sha256" not in self.__dict__:
            self._sha256 = file_sha256(self.path)
        return self._sha256

    def feature_tap(self) -> Any:
        """Context manager collecting the OOD layers' features of this thread's forward passes
        (a no-op when the model has no OOD model); pass its features to `outputs`."""
        import contextlib

        if self.ood is None:
            return contextlib.nullcontext()
        from medviewer.engine.ood import FeatureTap

        return FeatureTap(self.module, self.ood.names)

    def outputs(self, logits: "torch.Tensor", tap: Any = None) -> "torch.Tensor":
        """(B, C) calibrated probabilities, with the OOD score as column C when the model
        has an OOD model and `tap` collected its features: (B, C + 1)."""
        import torch

        probs = torch.softmax(logits.float() / self.temperature, dim=1)
        if self.ood is None or tap is None:
            return probs
        return torch.cat([probs, self.ood.score(tap.take())[:, None]], dim=1)

    def split_outputs(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(probabilities (B, C), OOD scores (B,) or None) from `outputs`' columns."""
        c = len(self.classes)
        return (out[:, :c], out[:, c]) if out.shape[1] > c else (out, None)

    def __repr__(self) -> str:
        return f"LoadedModel({self.card.summary()}, device={self.device})"

    @property
    def model_id(self) -> str:
        """Tag for results: name, version and file (engine.results)."""
        return f"{self.card.name}@{self.card.version}:{self.path.name if self.path else '-'}"

    def preprocess(self, pixels: np.ndarray, meta: Any = None) -> tuple["torch.Tensor", Geometry]:
        """Stored pixels (+ viewer.display ImageMeta) -> (3, S, S) tensor and Geometry."""
        return preprocess(pixels, meta, self.spec)

    def preprocess_batch(self, images: Sequence[Any], metas: Sequence[Any] | None = None):
        return preprocess_batch(images, metas, self.spec)


class EnsembleModel(LoadedModel):
    """A loaded ensemble: plain data like LoadedModel, plus its members.

    ``members`` are LoadedModels (their own card, preprocessing and Grad-CAM layer)
    sharing the ensemble's module; ``weights`` sum to 1.  engine.predict and
    engine.gradcam see ``members`` and combine the members' results (probabilities:
    weighted mean; Grad-CAM: weighted mean of the maps on each source image's grid).
    """

    def __init__(self, module: "torch.nn.Module", card: ModelCard, device: "torch.device",
                 path: Path | None = None) -> None:
        super().__init__(module, card, device, path)
        self.members: list[LoadedModel] = [
            LoadedModel(module.members[i], c, device, path) for i, c in enumerate(card.member_cards())]
        w = np.asarray(card.member_weights, dtype=np.float64)
        self.weights: np.ndarray = w / w.sum()

    def __repr__(self) -> str:
        return f"EnsembleModel({self.card.summary()}, device={self.device})"

    def preprocess(self, pixels: np.ndarray, meta: Any = None) -> tuple["torch.Tensor", Geometry]:
        """The members' common preprocessing; ValueError when members are fed differently."""
        if len({m.spec for m in self.members}) > 1:
            raise ValueError("the ensemble's members preprocess differently; use each member's preprocess")
        return self.members[0].preprocess(pixels, meta)

    def preprocess_batch(self, images: Sequence[Any], metas: Sequence[Any] | None = None):
        if len({m.spec for m in self.members}) > 1:
            raise ValueError("the ensemble's members preprocess differently; use each member's preprocess")
        return self.members[0].preprocess_batch(images, metas)


_cache: dict[tuple[str, int, int, str], LoadedModel] = {}
_cache_lock = threading.Lock()


def load_model(path: str | Path, device: str | None = None, cache: bool = True) -> LoadedModel:
    """Load a `.safetensors` model file; cached per (file, mtime, size, device)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from medviewer.engine.device import pick_device, prepare_module
    from medviewer.engine.registry import build_from_card

    path = Path(path)
    card = read_card(path)  # refuses pickles, checks the card
    dev = pick_device(device)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size, str(dev))
    with _cache_lock:
        if cache and key in _cache:
            return _cache[key]
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{path.name}: cannot read tensors ({str(exc).splitlines()[0]})") from None
    extra = {k: state.pop(k) for k in [k for k in state if k.startswith(EXTRA_PREFIX)]}
    check_fits(state, card, path.name)
    check_finite(state, path.name)
    check_finite(extra, path.name)
    ood = None
    if card.ood:
        from medviewer.engine.ood import OODModel

        ood = OODModel.from_card(card.ood, extra, len(card.classes), path.name)
    elif extra:
        raise ModelFileError(f"{path.name}: tensor {sorted(extra)[0]!r} is not described by the card")
    module = build_from_card(card)
    module.load_state_dict(state, strict=True)
    parts = [(f"members.{i}.", m) for i, m in enumerate(card.member_cards())] if card.members else [("", card)]
    for prefix, c in parts:
        try:
            module.get_submodule(prefix + c.cam_layer)
        except AttributeError:
            raise ModelFileError(f"{path.name}: Grad-CAM layer {c.cam_layer!r} does not exist in "
                                 f"{c.architecture}") from None
    module = prepare_module(module, dev)
    if ood is not None:
        for name in ood.names:   # every OOD layer must exist in this architecture
            try:
                module.get_submodule(name.rpartition(":")[0])
            except AttributeError:
                raise ModelFileError(f"{path.name}: OOD layer {name!r} does not exist in "
                                     f"{card.architecture}") from None
        ood = ood.to(dev)
    loaded = EnsembleModel(module, card, dev, path) if card.members else LoadedModel(module, card, dev, path, ood)
    if cache:
        with _cache_lock:
            _cache[key] = loaded
    return loaded


_hash_cache: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (the audit log's model identity), cached per (path, mtime, size)."""
    path = Path(path)
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    with _cache_lock:
        if key in _hash_cache:
            return _hash_cache[key]
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    with _cache_lock:
        _hash_cache[key] = h.hexdigest()
    return _hash_cache[key]


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
