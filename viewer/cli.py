"""The `medviewer` command: dispatches to the GUI or to a headless sub-command.

    medviewer [PATH] [--demo]          the window (viewer.ui.app)
    medviewer info PATH [--json]       study listing          (viewer.cli_study)
    medviewer export PATH OUT.png ...  grey levels to PNG     (viewer.cli_study)
    medviewer measure PATH --roi ...   ROI statistics         (viewer.measure.cli)
    medviewer predict PATH --model F   AI inference           (engine.cli)
    medviewer convert-model IN OUT     .pt -> .safetensors    (engine.cli)
    medviewer --train ...              the trainer            (engine.train.cli)
    medviewer make-dataset OUT ...     synthetic dataset      (engine.train.cli)
    medviewer --self-test              support self-test      (viewer.selftest)

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

__all__ = ["COMMANDS", "EXIT_FAIL", "EXIT_OK", "EXIT_PARTIAL", "main", "run"]

# first argument -> (module, function)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("medviewer.viewer.cli_study", "main_info"),
    "export": ("medviewer.viewer.cli_study", "main_export"),
    "demo-study": ("medviewer.viewer.cli_study", "main_demo_study"),
    "measure": ("medviewer.viewer.measure.cli", "main_measure"),
    "predict": ("medviewer.engine.cli", "main_predict"),
    "convert-model": ("medviewer.engine.cli", "main_convert"),
    "--train": ("medviewer.engine.train.cli", "main_train"),
    "train": ("medviewer.engine.train.cli", "main_train"),
    "make-dataset": ("medviewer.engine.train.cli", "main_make_dataset"),
    "--self-test": ("medviewer.viewer.selftest", "main"),
    "self-test": ("medviewer.viewer.selftest", "main"),
}


def _resolve(argv: list[str]) -> tuple[Callable[[list[str]], int], list[str]]:
    if argv and argv[0] in COMMANDS:
        mod, fn = COMMANDS[argv[0]]
        return getattr(importlib.import_module(mod), fn), argv[1:]
    mod = importlib.import_module("medviewer.viewer.ui.app")
    return mod.main, argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(lambda rest: (lambda f, r: f(r))(*_resolve(rest)), argv)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
