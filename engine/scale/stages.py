"""The two Ray Data stages: CPU decode + preprocess tasks, and model actors.

Both run the local engine's own functions: `series.SeriesImages` over a
`PixelStore` (a slice that cannot be decoded becomes a blank image and a
reason, as in `predict_series`), `preprocess.preprocess_batch` (the CPU path of
`infer.iter_prepared`), and `series.predict_prepared`.  Errors never escape a
stage as exceptions: a slice that fails is retried, then carried to the driver
as a reason on its row; anything else that fails a whole chunk (an I/O error, a
bug, out of memory) is retried `retries` times, then every row of the chunk
is marked fatal, so the driver records that series as failed while the rest
of the archive goes on.  Ray itself retries tasks and restarts actors whose
process died.

Rows between the stages, one per slice:
    key (series), index (slice), x (3, S, S) float32, geom (7,) float64,
    reason ("" when decoded), fatal (bool), path, frame (-1: none), cam (".npy" name)
Rows out of the actors: key, index, probs (C,) float32, reason, fatal, cam, device.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.viewer.errors import MedviewerError

_GEOM_FIELDS = ("src_rows", "src_cols", "size", "scale_y", "scale_x", "off_y", "off_x")
RETRY_PAUSE_S = 0.5


def _one_line(exc: BaseException) -> str:
    """Type, message and the innermost code location: a worker's error as one line for
    the driver (which logs it, redacted; workers keep no log of their own)."""
    text = " ".join(str(exc).split())[:300]
    where = ""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        where = f" (at {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno})"
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__) + where


def _limit_threads(n: int) -> None:
    """One process per core: keep OpenCV and torch from starting a thread per core each."""
    import cv2
    import torch

    cv2.setNumThreads(max(1, n))
    if torch.get_num_threads() != max(1, n):
        torch.set_num_threads(max(1, n))


def local_model_file(model_ref: Any, sha256: str) -> Path:
    """The model's bytes (shipped by the driver through the object store) as a file on this
    node: `<temp>/medviewer-<uid>/<sha256>.safetensors`, written once per node, checked
    against its SHA-256 before every use (a file someone else put there is replaced)."""
    import hashlib

    import ray

    folder = Path(tempfile.gettempdir()) / f"medviewer-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if hasattr(os, "getuid") and folder.stat().st_uid != os.getuid():
            raise PermissionError(f"{folder} belongs to another user")
    except OSError:
        folder = Path(tempfile.mkdtemp(prefix="medviewer-models-"))
    path = folder / f"{sha256}.safetensors"
    try:
        if hashlib.sha256(path.read_bytes()).hexdigest() == sha256:
            return path
    except OSError:
        pass
    data: bytes = ray.get(model_ref[0]) if isinstance(model_ref, list) else model_ref
    if hashlib.sha256(data).hexdigest() != sha256:
        raise MedviewerError("the model file's bytes changed on the way to the worker")
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- stage 1: CPU tasks ---------------------------------------------------------------------
def _decode_and_prepare(items: list[list[Any]], spec: Any, retries: int,
                        ) -> tuple[np.ndarray, list[Any], dict[int, str]]:
    """(N, 3, S, S) float32, geometries, failed {row: reason}; failed slices retried."""
    from medviewer.engine.preprocess import preprocess_array, preprocess_batch
    from medviewer.engine.series import SeriesImages
    from medviewer.viewer.io.model import ImageRef
    from medviewer.viewer.io.pixels import PixelStore

    refs = [ImageRef(Path(path), None if frame < 0 else int(frame)) for _k, _i, path, frame, _c in items]
    store = PixelStore(max_bytes=64 * 2**20, workers=1)
    try:
        images = SeriesImages(store, refs)
        decoded = [images[i] for i in range(len(refs))]
        for attempt in range(retries):  # a network file system may fail a read now and then
            if not images.failed:
                break
            time.sleep(RETRY_PAUSE_S * (attempt + 1))
            again = sorted(images.failed)
            images.failed.clear()
            for i in again:
                decoded[i] = images[i]
        failed = dict(images.failed)
    finally:
        store.close()
    pixels, metas = [p for p, _ in decoded], [m for _, m in decoded]
    try:
        x, geoms = preprocess_batch(pixels, metas, spec)
        return x.numpy(), geoms, failed
    except Exception:  # isolate the slice that cannot be preprocessed
        pass
    size = spec.input_size
    out = np.zeros((len(refs), 3, size, size), dtype=np.float32)
    geoms: list[Any] = []
    blank = preprocess_array(np.zeros((8, 8), np.uint8), None, spec)[1]
    for i, (img, meta) in enumerate(zip(pixels, metas)):
        try:
            out[i], g = preprocess_array(img, meta, spec)
        except Exception as exc:
            failed[i] = f"{refs[i].path.name}: cannot preprocess ({_one_line(exc)})"
            g = blank
        geoms.append(g)
    return out, geoms, failed


def prepare_chunk(batch: dict[str, np.ndarray], *, card_json: str, retries: int,
                  threads: int = 1) -> dict[str, np.ndarray]:
    """Ray Data map_batches UDF (tasks): one chunk row in, one row per slice out."""
    from medviewer.engine.card import ModelCard
    from medviewer.engine.preprocess import PreprocessSpec

    _limit_threads(threads)
    spec = PreprocessSpec.from_card(ModelCard.from_json(card_json, where="model card"))
    items: list[list[Any]] = [row for text in batch["items"] for row in json.loads(str(text))]
    n = len(items)
    fatal = ""
    for attempt in range(retries + 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # odd headers: reported as reasons, not warnings
                x, geoms, failed = _decode_and_prepare(items, spec, retries)
            fatal = ""
            break
        except Exception as exc:  # not a bad slice: the chunk itself failed
            fatal = f"{_one_line(exc)}, after {attempt + 1} attempt(s)"
            if attempt < retries:
                time.sleep(RETRY_PAUSE_S * (attempt + 1))
    if fatal:
        size = spec.input_size
        x, failed = np.zeros((n, 3, size, size), np.float32), {i: fatal for i in range(n)}
        geoms = [None] * n
    geom = np.array([[float(getattr(g, f)) for f in _GEOM_FIELDS] if g is not None else [0.0] * 7
                     for g in geoms], dtype=np.float64).reshape(n, 7)
    return {
        "key": np.array([it[0] for it in items], dtype=np.int64),
        "index": np.array([it[1] for it in items], dtype=np.int64),
        "x": x,
        "geom": geom,
        "reason": np.array([failed.get(i, "") for i in range(n)], dtype=object),
        "fatal": np.full(n, bool(fatal)),
        "path": np.array([it[2] for it in items], dtype=object),
        "frame": np.array([it[3] for it in items], dtype=np.int64),
        "cam": np.array([it[4] for it in items], dtype=object),
    }


# -- stage 2: actors ------------------------------------------------------------------------
class InferActor:
    """Holds one model on its device (loaded once, from the bytes the driver shipped)."""

    def __init__(self, model_ref: Any, sha256: str, device: str | None, threads: int,
                 batch_size: int, cam_method: str | None, cam_dir: str | None, retries: int) -> None:
        from medviewer.engine.device import describe
        from medviewer.engine.modelfile import load_model

        _limit_threads(threads)
        self.model = load_model(local_model_file(model_ref, sha256), device=device, cache=False)
        self.device = describe(self.model.device)
        self.batch_size = batch_size
        self.cam_method = cam_method
        self.cam_dir = Path(cam_dir) if cam_dir else None
        self.retries = retries

    def _infer(self, x: np.ndarray, geoms: list[Any] | None) -> Any:
        import torch

        from medviewer.engine.series import predict_prepared

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # read-only arrays from the object store
            tensor = torch.from_numpy(x)
        return predict_prepared(self.model, tensor, geoms, self.cam_method if self.cam_dir else None,
                                self.batch_size)

    def _write_cams(self, batch: dict[str, np.ndarray], rows: np.ndarray, maps: list[np.ndarray]) -> list[str]:
        from medviewer.engine.overlay import save_cam
        from medviewer.viewer.display import render
        from medviewer.viewer.io.model import ImageRef
        from medviewer.viewer.io.pixels import PixelStore

        assert self.cam_dir is not None
        names = []
        with PixelStore(max_bytes=64 * 2**20, workers=1) as store:
            for j, r in enumerate(rows):
                frame = int(batch["frame"][r])
                ref = ImageRef(Path(str(batch["path"][r])), None if frame < 0 else frame)
                name = str(batch["cam"][r])
                save_cam(self.cam_dir, name, maps[j], render(store.get(ref), store.meta(ref)))
                names.append(name)
        return names

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from medviewer.engine.preprocess import Geometry

        n = len(batch["key"])
        reason = np.array([str(r) for r in batch["reason"]], dtype=object)
        fatal = np.asarray(batch["fatal"], dtype=bool).copy()
        probs = np.zeros((n, len(self.model.classes)), dtype=np.float32)
        ood = np.full(n, np.nan, dtype=np.float32)  # NaN: no score (no OOD model, or not run)
        cams = np.array([""] * n, dtype=object)
        rows = np.flatnonzero(reason == "")
        error = ""
        for attempt in range(self.retries + 1):
            if len(rows) == 0:
                break
            try:
                geoms = None
                if self.cam_dir is not None:
                    geoms = [Geometry(*(int(v) if f in ("src_rows", "src_cols", "size", "off_y", "off_x") else float(v)
                                        for f, v in zip(_GEOM_FIELDS, batch["geom"][r]))) for r in rows]
                pred = self._infer(np.ascontiguousarray(batch["x"][rows]), geoms)
                probs[rows] = pred.probs
                if pred.ood is not None:
                    ood[rows] = pred.ood
                if self.cam_dir is not None and pred.cams is not None:
                    cams[rows] = self._write_cams(batch, rows, pred.cams)
                error = ""
                break
            except Exception as exc:  # e.g. CUDA out of memory, a full disk for the CAMs
                error = f"{_one_line(exc)}, after {attempt + 1} attempt(s)"
                if attempt < self.retries:
                    time.sleep(RETRY_PAUSE_S * (attempt + 1))
        if error:
            reason[rows] = error
            fatal[rows] = True
        return {"key": np.asarray(batch["key"]), "index": np.asarray(batch["index"]), "probs": probs,
                "ood": ood, "reason": reason, "fatal": fatal, "cam": cams, "device": np.array([self.device] * n, dtype=object)}
