"""Export a medviewer model to ONNX or TorchScript (`medviewer export-model`).

The exported graph takes the preprocessed input tensor (N, 3, S, S), as made by
`LoadedModel.preprocess` from the card, and returns logits (N, C); the batch axis
is dynamic.  Preprocessing (modality LUT, VOI window, resize, normalisation) is
not in the graph: the card is embedded (ONNX ``metadata_props`` key
``medviewer.card``; TorchScript extra file ``medviewer_card.json``) so that a
consumer can reproduce it.  An ensemble whose members share one preprocessing
is exported as one graph whose output is the logarithm of the weighted mean
probability (softmax of it gives the ensemble's probabilities, each member
calibrated by its temperature).

Trust signals: a single model's graph returns its raw logits; the card's
``temperature`` (in the embedded card) divides them before the softmax to give
the calibrated probabilities medviewer shows.  The out-of-distribution check
(engine.ood: feature hooks, stored Gaussians) and the input check are not part
of the exported graph: a consumer of the ONNX or TorchScript file has neither.

ONNX uses the TorchScript-based exporter (no onnxscript needed) at opset 17,
which onnxruntime has run since 1.14; the file is checked with `onnx.checker`
and, when onnxruntime is installed, run once against the torch module.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.engine.card import METADATA_KEY
from medviewer.viewer.errors import ModelFileError, UsageError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from medviewer.engine.modelfile import LoadedModel

OPSET = 17
ONNX_HINT = "ONNX export needs the onnx and onnxruntime packages: pip install 'medviewer[onnx]'"
CARD_EXTRA_FILE = "medviewer_card.json"


def export_module(model: "LoadedModel") -> tuple["torch.nn.Module", int]:
    """The module to export (float32, CPU, eval) and its input size."""
    import copy

    if getattr(model, "members", None) and len({m.spec for m in model.members}) > 1:
        raise UsageError("the ensemble's members preprocess their inputs differently, so no single graph "
                         "takes one input; export each member instead")
    module = copy.deepcopy(model.module).float().cpu().eval()
    size = model.members[0].spec.input_size if getattr(model, "members", None) else model.spec.input_size
    return module, int(size)


def _tmp(out: Path) -> Path:
    return out.with_name(f".{out.name}.{os.getpid()}.tmp")


def export_onnx(model: "LoadedModel", out: str | Path, opset: int = OPSET) -> Path:
    """Write `out` (.onnx): input "input" (N, 3, S, S) -> output "logits" (N, C)."""
    try:
        import onnx
    except ImportError:
        raise UsageError(ONNX_HINT) from None
    import torch

    out = Path(out)
    module, size = export_module(model)
    dummy = torch.zeros(2, 3, size, size)
    tmp = _tmp(out)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (dummy,), str(tmp), dynamo=False, input_names=["input"],
                              output_names=["logits"], opset_version=opset,
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, {METADATA_KEY: model.card.to_json()})
        proto.doc_string = f"medviewer model {model.card.summary()}: preprocessed input -> logits"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        os.replace(tmp, out)
    except Exception as exc:
        raise _failed(out, tmp, "ONNX export", exc) from None
    return out


def _failed(out: Path, tmp: Path, what: str, exc: Exception) -> ModelFileError:
    """Remove the partial output; the one-line error for `exc` (a write error or the exporter's)."""
    tmp.unlink(missing_ok=True)
    if isinstance(exc, OSError):
        return ModelFileError(f"{out}: cannot write ({exc.strerror or exc})")
    text = str(exc).splitlines()[0][:160] if str(exc) else ""
    return ModelFileError(f"{out}: {what} failed ({type(exc).__name__}: {text})")


def export_torchscript(model: "LoadedModel", out: str | Path) -> Path:
    """Write `out` (.pt, TorchScript traced on the CPU) with the card as an extra file."""
    import torch

    out = Path(out)
    module, size = export_module(model)
    tmp = _tmp(out)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # torch.jit is deprecated in favour of torch.export
            traced = torch.jit.trace(module, torch.zeros(2, 3, size, size))
            torch.jit.save(traced, str(tmp), _extra_files={CARD_EXTRA_FILE: model.card.to_json()})
        os.replace(tmp, out)
    except Exception as exc:
        raise _failed(out, tmp, "TorchScript export", exc) from None
    return out


def reference_logits(model: "LoadedModel", x: np.ndarray) -> np.ndarray:
    import torch

    module, _ = export_module(model)
    with torch.inference_mode():
        return module(torch.from_numpy(x)).float().numpy()


def onnx_logits(path: str | Path, x: np.ndarray) -> np.ndarray:
    """Run the exported file with onnxruntime on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UsageError(ONNX_HINT) from None
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(["logits"], {"input": x.astype(np.float32)})[0]


def torchscript_logits(path: str | Path, x: np.ndarray) -> np.ndarray:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mod = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return mod(torch.from_numpy(x)).float().numpy()


def verify(model: "LoadedModel", path: Path, kind: str, n: int = 3, seed: int = 0) -> float:
    """Max |exported - torch| logit difference on `n` random inputs (a batch size the trace never saw)."""
    _, size = export_module(model)
    x = np.random.default_rng(seed).standard_normal((n, 3, size, size)).astype(np.float32)
    got = onnx_logits(path, x) if kind == "onnx" else torchscript_logits(path, x)
    return float(np.max(np.abs(got - reference_logits(model, x))))


def card_from_onnx(path: str | Path) -> Any:
    """The ModelCard embedded in an exported ONNX file."""
    import onnx

    from medviewer.engine.card import ModelCard

    proto = onnx.load(str(path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    if METADATA_KEY not in props:
        raise ModelFileError(f"{path}: no medviewer card in the ONNX metadata")
    return ModelCard.from_json(props[METADATA_KEY], where=Path(path).name)
