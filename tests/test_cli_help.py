"""What a new user sees first: `medviewer --help` and `medviewer --train --help` (issue 10, section 4)."""

from __future__ import annotations

import subprocess
import sys

from medviewer.engine.registry import ARCHITECTURES
from medviewer.viewer.cli import ALIASES, COMMANDS, SUMMARIES, main


def test_help_lists_every_sub_command_with_one_line(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: medviewer [PATH] [--demo]")
    lines = out.splitlines()
    for name in COMMANDS:
        shown = ALIASES.get(name, name)
        assert SUMMARIES.get(shown), f"COMMANDS[{name!r}] has no line in viewer.cli.SUMMARIES"
        row = [ln for ln in lines if ln.split()[:1] == [shown]]
        assert len(row) == 1 and SUMMARIES[shown] in row[0], (name, row)
    assert main(["-h"]) == 0


def test_help_from_the_installed_entry_point_exits_0_without_starting_qt():
    proc = subprocess.run([sys.executable, "-c",
                           "import sys; from medviewer.viewer.cli import main; rc = main(['--help']); "
                           "print('QT', 'PySide6.QtWidgets' in sys.modules); sys.exit(rc)"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "convert-model" in proc.stdout and "QT False" in proc.stdout and proc.stderr == ""


def test_train_help_shows_defaults_and_every_architecture(capsys):
    assert main(["--train", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())   # argparse wraps lines
    assert "(default: resnet18)" in out and "(default: 0.15)" in out and "(default: 10)" in out
    assert "(default: 0.0)" in out                     # zero defaults are shown too
    assert "(default: None)" not in out and "(default: )" not in out
    for arch in ARCHITECTURES:
        assert arch in out, arch
    assert "examples:" in out
