"""PyInstaller: in a source checkout, medviewer.viewer / .engine / .resources live in the
repository's top-level folders (pyproject.toml's package-dir mapping); medviewer's
``__init__`` adds the checkout root to its ``__path__`` at run time, which PyInstaller's
static analysis cannot see, so tell it here.  From a wheel install nothing is added.
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def pre_safe_import_module(api):
    if (ROOT / "medviewer" / "__init__.py").is_file() and not (ROOT / "medviewer" / "viewer").is_dir() \
            and (ROOT / "viewer" / "__init__.py").is_file():
        api.append_package_path(str(ROOT))
