"""The `medviewer` command: dispatches to the GUI or to a headless sub-command.

    medviewer [PATH] [--demo]          the window (viewer.ui.app)
    medviewer info PATH [--json]       study listing          (viewer.cli_study)
    medviewer export PATH OUT.png ...  grey levels to PNG     (viewer.cli_study)
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
import logging
import sys
from collections.abc import Callable

from viewer.errors import MedviewerError

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_FAIL = 2

# first argument -> (module, function)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("viewer.cli_study", "main_info"),
    "export": ("viewer.cli_study", "main_export"),
    "predict": ("engine.cli", "main_predict"),
    "convert-model": ("engine.cli", "main_convert"),
    "--train": ("engine.train.cli", "main_train"),
    "train": ("engine.train.cli", "main_train"),
    "make-dataset": ("engine.train.cli", "main_make_dataset"),
    "--self-test": ("viewer.selftest", "main"),
    "self-test": ("viewer.selftest", "main"),
}

log = logging.getLogger("medviewer")


def _resolve(argv: list[str]) -> tuple[Callable[[list[str]], int], list[str]]:
    if argv and argv[0] in COMMANDS:
        mod, fn = COMMANDS[argv[0]]
        return getattr(importlib.import_module(mod), fn), argv[1:]
    mod = importlib.import_module("viewer.ui.app")
    return mod.main, argv


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        func, rest = _resolve(argv)
        return int(func(rest) or 0)
    except MedviewerError as err:
        print(f"medviewer: error: {err}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("medviewer: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # argparse exits 2 on bad arguments already
        code = exc.code
        return code if isinstance(code, int) else (EXIT_FAIL if code else EXIT_OK)
    except Exception as exc:  # a bug: one line for the user, the trace for the log
        log.exception("unexpected error")
        print(f"medviewer: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAIL


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
