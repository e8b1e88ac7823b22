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


def test_output_cut_short_by_a_pipe_is_not_an_error():
    """`medviewer info BIG | head -1`: the reader closes the pipe early; no error line, exit 0.

    The command writes far more than a pipe buffer holds, so the write really fails (EPIPE).
    """
    import subprocess
    import sys

    code = ("import sys\n"
            "from medviewer.viewer.errors import run_command\n"
            "def listing(argv):\n"
            "    for i in range(200000):\n"
            "        print(f'series {i:06d} ' + 'x' * 60)\n"
            "    return 0\n"
            "sys.exit(run_command(listing, []))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().startswith(b"series 000000")
    proc.stdout.close()          # as `head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert err == ""
