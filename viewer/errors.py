"""One place for the errors a user can cause, each with an actionable message.

Errors cross thread and process boundaries as values (see STYLE.md pattern 6):
workers catch `MedviewerError` and hand it to the UI or CLI, which shows
`str(err)` in one line.  Anything else reaching the top level is a bug and is
logged with its traceback, never shown raw to the user.
"""

from __future__ import annotations


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
