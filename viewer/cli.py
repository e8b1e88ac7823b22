"""The `medviewer` command: dispatches to the GUI or to a headless sub-command.

    medviewer [PATH] [--demo]          the window (viewer.ui.app)
    medviewer info PATH [--json]       study listing          (viewer.cli_study)
    medviewer export PATH OUT.png ...  grey levels to PNG     (viewer.cli_study)
    medviewer measure PATH --roi ...   ROI statistics         (viewer.measure.cli)
    medviewer predict PATH --model F   AI inference           (engine.cli)
    medviewer convert-model IN OUT     .pt -> .safetensors    (engine.cli)
    medviewer audit [...]              AI audit log           (engine.audit_cli)
    medviewer pacs echo|find|get|send  PACS (DIMSE, DICOMweb) (viewer.pacs.cli)
    medviewer ensemble M... --out E    ensemble model file    (engine.cli_models)
    medviewer export-model M --onnx O  ONNX / TorchScript     (engine.cli_models)
    medviewer compare RUN... --out D   compare training runs  (engine.train.compare)
    medviewer --train ...              the trainer            (engine.train.cli)
    medviewer make-dataset OUT ...     synthetic dataset      (engine.train.cli)
    medviewer --self-test              support self-test      (viewer.selftest)
    medviewer --help                   all of the above, one line each

Every sub-command module exposes `main(argv: list[str]) -> int`.  This module
turns user errors into one line on stderr and an exit code (0 ok, 1 ok with
skipped files, 2 nothing usable or bad arguments); no traceback reaches the
user for bad input.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from medviewer.viewer.errors import EXIT_FAIL, EXIT_OK, EXIT_PARTIAL, run_command

__all__ = ["COMMANDS", "EXIT_FAIL", "EXIT_OK", "EXIT_PARTIAL", "SUMMARIES", "help_text", "main", "run"]

# first argument -> (module, function)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("medviewer.viewer.cli_study", "main_info"),
    "export": ("medviewer.viewer.cli_study", "main_export"),
    "demo-study": ("medviewer.viewer.cli_study", "main_demo_study"),
    "measure": ("medviewer.viewer.measure.cli", "main_measure"),
    "predict": ("medviewer.engine.cli", "main_predict"),
    "pacs": ("medviewer.viewer.pacs.cli", "main_pacs"),
    "convert-model": ("medviewer.engine.cli", "main_convert"),
    "audit": ("medviewer.engine.audit_cli", "main_audit"),
    "ensemble": ("medviewer.engine.cli_models", "main_ensemble"),
    "export-model": ("medviewer.engine.cli_models", "main_export"),
    "compare": ("medviewer.engine.train.compare", "main_compare"),
    "--train": ("medviewer.engine.train.cli", "main_train"),
    "train": ("medviewer.engine.train.cli", "main_train"),
    "make-dataset": ("medviewer.engine.train.cli", "main_make_dataset"),
    "--self-test": ("medviewer.viewer.selftest", "main"),
    "self-test": ("medviewer.viewer.selftest", "main"),
}


# one line per sub-command for `medviewer --help` (tests check every COMMANDS key has one)
SUMMARIES: dict[str, str] = {
    "info": "list the studies, series, non-image objects and skipped files under PATH",
    "export": "write the grey levels of one image (as the canvas shows them at 100 %) to PNG",
    "demo-study": "write the generated demo CT study to a folder",
    "measure": "area, mean, SD, min and max of an ellipse or rectangle ROI on one image",
    "pacs": "talk to a PACS over DIMSE or DICOMweb: echo, find, get, send",
    "predict": "run a model on a study or image files; calibrated probabilities, OOD flags, Grad-CAM maps",
    "convert-model": "turn a PyTorch state dict (.pt) into a medviewer .safetensors model file",
    "audit": "list the AI audit log (analyses, OOD fractions, readers' verdicts); --json/--csv, --verify",
    "ensemble": "combine models of the same classes into one ensemble model file",
    "export-model": "export a model to ONNX and/or TorchScript, checked against torch",
    "compare": "compare training runs: table with 95% intervals, curves, ROC, paired tests",
    "--train": "train a classifier on a labelled image folder (also: train)",
    "make-dataset": "write a synthetic labelled dataset with lesion masks",
    "--self-test": "check versions, GPU, decoders, the demo model and timing (also: self-test)",
}
ALIASES = {"train": "--train", "self-test": "--self-test"}


def help_text() -> str:
    """`medviewer --help`: the window's usage, then every sub-command in one line."""
    names = [n for n in COMMANDS if n not in ALIASES]
    width = max(len(n) for n in names) + 2
    lines = [
        "usage: medviewer [PATH] [--demo]           open the viewer (a study folder or image file)",
        "       medviewer COMMAND [ARGS...]         run a command without the window",
        "",
        "commands:",
        *(f"  {n:<{width}}{SUMMARIES.get(n, '')}" for n in names),
        "",
        "`medviewer COMMAND --help` shows a command's options.  Exit codes: 0 done, 1 done with",
        "skipped items, 2 nothing usable or bad arguments.",
    ]
    return "\n".join(lines)


def _help(_argv: list[str]) -> int:
    print(help_text())
    return EXIT_OK


def _resolve(argv: list[str]) -> tuple[Callable[[list[str]], int], list[str]]:
    if argv and argv[0] in ("-h", "--help") and len(argv) == 1:
        return _help, []
    if argv and argv[0] in COMMANDS:
        mod, fn = COMMANDS[argv[0]]
        return getattr(importlib.import_module(mod), fn), argv[1:]
    mod = importlib.import_module("medviewer.viewer.ui.app")
    return mod.main, argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(lambda rest: (lambda f, r: f(r))(*_resolve(rest)), argv)


def run() -> None:
    """Console-script entry point.  Headless commands keep C libraries' messages
    (libpng, libjpeg, OpenCV) out of the terminal: they go to the log file."""
    if len(sys.argv) > 1 and sys.argv[1] in COMMANDS:
        from medviewer.viewer.logs import capture_native_stderr

        capture_native_stderr()
    sys.exit(main())


if __name__ == "__main__":
    run()
