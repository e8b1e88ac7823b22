"""The front door: the wheel holds one top-level package and works after `pip install`.

Builds the wheel from this checkout, checks its contents with check-wheel-contents
(top level limited to `medviewer`), installs it into a fresh virtual environment
outside the checkout and runs the installed `medviewer` there: the self-test, and
`predict` on the demo study with the bundled model named instead of given by path.
A second distribution that ships a top-level `engine` package (what used to
overwrite ours) is installed and uninstalled next to it without harm.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd}: rc {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, check=True).stdout.split(b"\0")
    for rel in filter(None, files):
        path = ROOT / os.fsdecode(rel)
        if path.is_file():
            (src / os.fsdecode(rel)).parent.mkdir(parents=True, exist_ok=True)
            (src / os.fsdecode(rel)).write_bytes(path.read_bytes())
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
          str(src)], cwd=tmp, env=dict(os.environ))
    (whl,) = (tmp / "dist").glob("medviewer-*.whl")
    return whl


def test_wheel_has_one_top_level_package_and_the_resources(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"medviewer"}
    for need in ("medviewer/__init__.py", "medviewer/viewer/cli.py", "medviewer/engine/cam.py",
                 "medviewer/engine/train/run.py", "medviewer/viewer/ui/ai/controller.py",
                 "medviewer/resources/models/demo.safetensors", "medviewer/resources/icons/medviewer-64.png"):
        assert need in names, need
    assert not any(n.startswith(("medviewer/tests", "medviewer/bench", "medviewer/packaging")) for n in names)
    check = [sys.executable, "-m", "check_wheel_contents", "--toplevel", "medviewer", str(wheel)]
    res = subprocess.run(check, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip().endswith("OK"), res.stdout + res.stderr


def _other_engine_wheel(folder: Path) -> Path:
    """A distribution that ships its own top-level `engine` package."""
    src = folder / "other"
    (src / "engine").mkdir(parents=True)
    (src / "engine" / "__init__.py").write_text("def load_model(*a, **k):\n    raise RuntimeError('not ours')\n")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "other-engine"\nversion = "1.0"\n[tool.setuptools]\npackages = ["engine"]\n')
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(folder),
          str(src)], cwd=folder, env=dict(os.environ))
    return next(folder.glob("other_engine-*.whl"))


def test_installed_wheel_runs_outside_the_checkout(wheel, tmp_path):
    venv = tmp_path / "venv"
    # the heavy dependencies (torch, Qt) come from this interpreter's site-packages; no pip
    # or setuptools of the venv's own shadows them: this interpreter's pip installs into it
    _run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], cwd=tmp_path,
         env=dict(os.environ))
    py, exe = venv / "bin" / "python", venv / "bin" / "medviewer"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "MEDVIEWER_RESOURCES"))}
    env.update(QT_QPA_PLATFORM="offscreen", MEDVIEWER_HOME=str(tmp_path / "home"), PIP_NO_INDEX="1")
    pip = [sys.executable, "-m", "pip", "--python", str(py)]
    _run([*pip, "install", "-q", str(wheel)], cwd=tmp_path, env=env)
    where = _run([str(py), "-c", "import medviewer, medviewer.engine as e, medviewer.viewer as v; "
                  "print(medviewer.__file__); print(e.__file__); print(v.__file__)"], cwd=tmp_path, env=env)
    for line in where.stdout.split():
        assert Path(line).is_relative_to(venv), where.stdout  # not the checkout

    st = _run([str(exe), "--self-test"], cwd=tmp_path, env=env)
    assert "FAIL" not in st.stdout and "demo.safetensors" in st.stdout and "10 of 10 checks passed" in st.stdout, \
        st.stdout
    study = Path(_run([str(exe), "demo-study", str(tmp_path)], cwd=tmp_path, env=env).stdout.strip())
    assert len(list(study.glob("*.dcm"))) == 48
    _run([str(exe), "predict", str(study), "--model", "demo", "--json", str(tmp_path / "p.json")],
         cwd=tmp_path, env=env)
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["model"]["name"] == "medviewer-demo-lesions"
    assert len(doc["series"]) == 1 and len(doc["series"][0]["items"]) == 48

    # another package's top-level `engine` neither breaks medviewer nor takes it along when removed
    probe = [str(py), "-c", "from medviewer import engine; m = engine.load_model('demo'); print(m.card.name)"]
    _run([*pip, "install", "-q", "--no-deps", str(_other_engine_wheel(tmp_path))], cwd=tmp_path, env=env)
    assert _run(probe, cwd=tmp_path, env=env).stdout.strip() == "medviewer-demo-lesions"
    _run([*pip, "uninstall", "-q", "-y", "other-engine"], cwd=tmp_path, env=env)
    assert _run(probe, cwd=tmp_path, env=env).stdout.strip() == "medviewer-demo-lesions"
