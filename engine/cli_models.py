"""`medviewer ensemble` and `medviewer export-model` (headless).

    medviewer ensemble MODEL MODEL... --out E.safetensors [--weights w1,w2,...] [--name NAME]
    medviewer export-model MODEL [--onnx OUT.onnx] [--torchscript OUT.pt] [--no-verify]

MODEL is a .safetensors path or a model name (engine.catalog).  Exit codes: 0 done,
2 bad arguments or unusable models (one line on stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

from medviewer.viewer.clikit import EXIT_OK, Parser
from medviewer.viewer.errors import UsageError

#: an exported graph must reproduce the torch module's logits this closely
EXPORT_TOLERANCE = 1e-4


def _writable(out: Path, suffixes: tuple[str, ...], flag: str) -> Path:
    if out.suffix.lower() not in suffixes:
        raise UsageError(f"{flag} {out}: the file name must end in {' or '.join(suffixes)}")
    if not out.parent.exists():
        raise UsageError(f"{flag} {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise UsageError(f"{flag} {out}: is a folder; give the file to write")
    return out


def main_ensemble(argv: list[str]) -> int:
    """Write one model file holding several members (weighted mean of their probabilities)."""
    from medviewer.engine.ensemble import make_ensemble, parse_weights

    p = Parser(prog="medviewer ensemble",
               description="Combine models that predict the same classes into one ensemble model file.")
    p.add_argument("models", nargs="+", metavar="MODEL", help=".safetensors files or model names")
    p.add_argument("--out", required=True, metavar="E.safetensors", help="the ensemble model file to write")
    p.add_argument("--weights", metavar="w1,w2,...", help="one positive weight per model (default: equal)")
    p.add_argument("--name", help="the ensemble's name in its card")
    args = p.parse_args(argv)
    if len(args.models) < 2:
        raise UsageError("medviewer ensemble: give at least two models")
    out = _writable(Path(args.out), (".safetensors",), "--out")
    card = make_ensemble(args.models, out, parse_weights(args.weights, len(args.models)), args.name)
    print(f"wrote {out} ({card.summary()})", file=sys.stderr)
    for m, w in zip(card.members, card.member_weights):
        print(f"  member {m['name']} {m['version']} ({m['architecture']}, {m['input_size']}px) "
              f"weight {w / sum(card.member_weights):.3f}", file=sys.stderr)
    return EXIT_OK


def main_export(argv: list[str]) -> int:
    """Export a model to ONNX and/or TorchScript and check it against torch."""
    from medviewer.engine import load_model
    from medviewer.engine.export import export_onnx, export_torchscript, verify

    p = Parser(prog="medviewer export-model",
               description="Export a model (preprocessed input -> logits, dynamic batch) to ONNX / TorchScript.")
    p.add_argument("model", metavar="MODEL", help="a .safetensors file or a model name")
    p.add_argument("--onnx", metavar="OUT.onnx", help="write an ONNX file (opset 17)")
    p.add_argument("--torchscript", metavar="OUT.pt", help="write a TorchScript file")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip running the exported file against the torch module")
    args = p.parse_args(argv)
    if not args.onnx and not args.torchscript:
        raise UsageError("medviewer export-model: give --onnx OUT.onnx and/or --torchscript OUT.pt")
    targets = []
    if args.onnx:
        targets.append(("onnx", _writable(Path(args.onnx), (".onnx",), "--onnx")))
    if args.torchscript:
        targets.append(("torchscript", _writable(Path(args.torchscript), (".pt", ".pth", ".ts"), "--torchscript")))
    model = load_model(args.model, device="cpu")
    for kind, out in targets:
        (export_onnx if kind == "onnx" else export_torchscript)(model, out)
        line = f"wrote {out} ({kind}, {model.card.summary()})"
        if args.verify:
            diff = verify(model, out, kind)
            if not diff <= EXPORT_TOLERANCE:
                out.unlink(missing_ok=True)
                raise UsageError(f"{out}: the exported {kind} logits differ from torch's by {diff:.2e} "
                                 f"(> {EXPORT_TOLERANCE:g}); file removed")
            line += f"; max |logit difference| to torch {diff:.1e}"
        print(line, file=sys.stderr)
    return EXIT_OK
