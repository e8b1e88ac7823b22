"""Find model files by name: the bundled models and the user's models folder.

Everywhere a model is asked for (``--model``, `medviewer.engine.load_model`, the viewer's
picker) a path or a name works.  A name matches a file's stem or its card's ``name``
(case-insensitive).  The folders are searched in this order: the user's models folder
(`medviewer.viewer.userdata.models_dir`), models of older releases, then the bundled
models (package data); when one name matches several different models, the error lists
them (name, version, file, date) so the user can pick a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medviewer.viewer.errors import ModelFileError

SUFFIX = ".safetensors"


@dataclass(frozen=True)
class ModelEntry:
    """One model file in a models folder; `card` is None when it cannot be read (`error`)."""

    path: Path
    card: Any  # ModelCard | None
    error: str | None
    bundled: bool

    def label(self) -> str:
        """What tells two models with the same name apart: version, file, date."""
        if self.card is None:
            return f"{self.path.name} (unreadable: {self.error})"
        date = (self.card.created or "")[:10] or "no date"
        where = "bundled" if self.bundled else str(self.path.parent)
        return f"{self.card.name} {self.card.version} ({self.path.name}, {date}, {where})"


def model_folders() -> list[tuple[Path, bool]]:
    """(folder, bundled) in search order."""
    from medviewer.viewer.resources import resource
    from medviewer.viewer.userdata import legacy_models_dirs, models_dir

    return [(models_dir(), False), *((p, False) for p in legacy_models_dirs()), (resource("models"), True)]


def list_models(folders: list[tuple[Path, bool]] | None = None) -> list[ModelEntry]:
    """Every ``*.safetensors`` in the folders with its card (cards only, no weights read)."""
    from medviewer.engine.modelfile import read_card

    out: list[ModelEntry] = []
    seen: set[Path] = set()
    for folder, bundled in folders if folders is not None else model_folders():
        try:
            files = sorted(p for p in folder.glob(f"*{SUFFIX}") if p.is_file())
        except OSError:
            continue
        for path in files:
            key = path.resolve()
            if key in seen:
                continue
            seen.add(key)
            try:
                out.append(ModelEntry(path, read_card(path), None, bundled))
            except ModelFileError as exc:
                out.append(ModelEntry(path, None, str(exc), bundled))
    return out


def _looks_like_path(text: str) -> bool:
    return any(sep in text for sep in ("/", "\\")) or text.lower().endswith(SUFFIX) or text.startswith(".")


def resolve_model(path_or_name: str | Path, folders: list[tuple[Path, bool]] | None = None) -> Path:
    """The model file for a path or a model name; ModelFileError (one line) when none or ambiguous."""
    if isinstance(path_or_name, Path):
        return path_or_name
    text = str(path_or_name).strip()
    if not text:
        raise ModelFileError("no model given (a .safetensors path or a model name such as 'demo')")
    as_path = Path(text).expanduser()
    if as_path.exists() or _looks_like_path(text):
        return as_path
    key = text.casefold()
    entries = list_models(folders)
    by_stem = [e for e in entries if e.path.stem.casefold() == key]
    by_name = [e for e in entries if e.card is not None and e.card.name.casefold() == key]
    for group in (by_stem, by_name):
        if not group:
            continue
        first = group[0]
        # the first folder in search order wins when the matches are the same model
        same = all(e.card is not None and first.card is not None and e.card.name == first.card.name
                   and e.card.version == first.card.version and e.card.created == first.card.created
                   for e in group)
        if len(group) == 1 or same:
            return first.path
        options = "; ".join(e.label() for e in group)
        raise ModelFileError(f"model name {text!r} matches {len(group)} different models: {options}; "
                             f"give the file's path instead")
    known = sorted({e.path.stem for e in entries} | {e.card.name for e in entries if e.card is not None})
    hint = f"; known models: {', '.join(known)}" if known else "; no models installed"
    raise ModelFileError(f"{text}: no such model file or model name{hint}")
