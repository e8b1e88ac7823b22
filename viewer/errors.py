"""One place for the errors a user can cause, each with an actionable message.

Errors cross thread and process boundaries as values (see STYLE.md pattern 6):
workers catch `MedviewerError` and hand it to the UI or CLI, which shows
`str(err)` in one line.  Anything else reaching the top level is a bug and is
logged with its traceback, never shown raw to the user.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

#: exit codes of every headless command
EXIT_OK, EXIT_PARTIAL, EXIT_FAIL = 0, 1, 2


class MedviewerError(Exception):
    """Base class: `str(err)` is a complete, one-line message for the user."""


class UsageError(MedviewerError):
    """Bad command-line arguments or options."""


class NothingToShowError(MedviewerError):
    """A path holds no image that medviewer can display."""


class DecodeError(MedviewerError):
    """Pixel data could not be decoded (missing decoder, truncated data...)."""


class ModelFileError(MedviewerError):
    """A model file is missing, unsafe (pickle), or inconsistent with its card."""


class DatasetError(MedviewerError):
    """A training data folder or label file cannot be used."""


class DiskFullError(MedviewerError):
    """Writing an output failed for lack of space or permission; partial files were removed."""


def _log_to_file_only() -> None:
    """Command-line runs log to the log file, never to stderr (stderr gets one line)."""
    from medviewer.viewer import logs

    root = logging.getLogger()
    if not any(isinstance(h, logging.FileHandler) for h in root.handlers):
        logs.setup_logging()
    if not root.handlers:  # the log folder is unwritable: drop records rather than print them
        root.addHandler(logging.NullHandler())
    logging.captureWarnings(True)


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush stays quiet."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def run_command(func: Callable[[list[str]], int], argv: list[str]) -> int:
    """Run one command: user errors become one line on stderr and exit code 2.

    Anything else is a bug: its traceback goes to the log file, the user gets one
    line naming the log.  Ctrl-C exits 130.  argparse's own exits keep their code.
    """
    log = logging.getLogger("medviewer")
    _log_to_file_only()
    try:
        return int(func(argv) or 0)
    except MedviewerError as err:
        print(f"medviewer: error: {err}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("medviewer: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `medviewer info ... | head`: the reader went away, not an error
        _silence_stdout()
        return EXIT_OK
    except SystemExit as exc:  # argparse exits 2 on bad arguments already
        code = exc.code
        return code if isinstance(code, int) else (EXIT_FAIL if code else EXIT_OK)
    except MemoryError:
        log.exception("out of memory")
        print("medviewer: error: out of memory (see the log for details)", file=sys.stderr)
        return EXIT_FAIL
    except Exception as exc:  # a bug: one line for the user, the trace for the log
        log.exception("unexpected error")
        from medviewer.viewer import logs

        print(f"medviewer: internal error: {type(exc).__name__}: {exc} (details in {logs.log_path()})",
              file=sys.stderr)
        return EXIT_FAIL
