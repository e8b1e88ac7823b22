"""Trainer faults (issue 9, section 3): one clean line, nothing left behind, no hang.

--out naming a file; an earlier run in --out; a full disk while checkpointing;
damaged checkpoints on --resume; a labels CSV with a field over 128 kB or rows
naming a FIFO or /dev/zero; empty class folders.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from medviewer.engine.train.cli import parse
from medviewer.engine.train.images import read_file
from medviewer.engine.train.loop import CHECKPOINT, fit, load_checkpoint
from medviewer.viewer.cli import main
from medviewer.viewer.errors import ModelFileError

FAST = ["--arch", "mobilenet_v3_small", "--image-size", "32", "--epochs", "1", "--batch-size", "8",
        "--device", "cpu", "--no-report"]


def data(root: Path, classes=("a", "b"), n: int = 6) -> Path:
    """A class = a bright square in its own corner, on noise (learnable), 32 px PNG."""
    rng = np.random.default_rng(0)
    for k, c in enumerate(classes):
        for i in range(n):
            img = rng.integers(0, 80, (32, 32), dtype=np.uint8)
            r, q = (k // 2) * 16, (k % 2) * 16
            img[r + 4:r + 12, q + 4:q + 12] = 230
            p = root / c / f"{c}_{i}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), img)
    return root


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(["--train", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("medviewer: WARNING")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    d = data(tmp_path / "d")
    f = tmp_path / "out.txt"
    f.write_text("notes")
    code, _, err = run(capsys, ["--data", str(d), "--out", str(f), *FAST])
    assert code == 2 and "is a file, not a folder" in error_line(err)
    assert f.read_text() == "notes"
    code, _, err = run(capsys, ["--data", str(d), "--out", str(f / "sub"), *FAST])
    assert code == 2 and "--out" in error_line(err)


def test_an_earlier_run_is_refused_then_replaced_or_resumed(tmp_path, capsys):
    d = data(tmp_path / "d")
    out = tmp_path / "o"
    assert run(capsys, ["--data", str(d), "--out", str(out), *FAST])[0] == 0
    (out / "my_notes.txt").write_text("keep me")
    first = (out / "model.safetensors").stat().st_mtime_ns
    code, _, err = run(capsys, ["--data", str(d), "--out", str(out), *FAST])
    line = error_line(err)
    assert code == 2 and "holds an earlier run" in line and "model.safetensors" in line
    assert "--resume" in line and "--overwrite" in line
    assert (out / "model.safetensors").stat().st_mtime_ns == first          # nothing touched
    code, outp, _ = run(capsys, ["--data", str(d), "--out", str(out), *FAST, "--overwrite"])
    assert code == 0 and "--overwrite: removed the earlier run's model.safetensors" in outp
    assert (out / "my_notes.txt").read_text() == "keep me"                 # only the trainer's files
    code, outp, _ = run(capsys, ["--data", str(d), "--out", str(out), *FAST[:-5], "--epochs", "2",
                                 "--device", "cpu", "--no-report", "--resume"])
    assert code == 0 and "resumed from" in outp and "epoch 2/2" in outp
    code, _, err = run(capsys, ["--data", str(d), "--out", str(out), *FAST, "--resume", "--overwrite"])
    assert code == 2 and "choose one" in error_line(err)


def test_full_disk_while_checkpointing_leaves_no_temporary_file(tmp_path):
    d = data(tmp_path / "d")
    out = tmp_path / "o"
    # a first epoch checkpoints normally
    assert subprocess.run([sys.executable, "-m", "medviewer", "--train", "--data", str(d), "--out", str(out),
                           *FAST], capture_output=True, timeout=300).returncode == 0
    before = (out / CHECKPOINT).read_bytes()
    # the file size limit makes the next checkpoint fail half-way (EFBIG), as a full disk (ENOSPC) would
    code_py = ("import resource, signal, sys\n"
               "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
               "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
               "from medviewer.viewer.cli import main\n"
               f"sys.exit(main(['--train', '--data', {str(d)!r}, '--out', {str(out)!r}, '--arch', "
               "'mobilenet_v3_small', '--image-size', '32', '--epochs', '2', '--batch-size', '8', "
               "'--device', 'cpu', '--no-report', '--resume']))\n")
    res = subprocess.run([sys.executable, "-c", code_py], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if not ln.startswith("medviewer: WARNING")]
    assert len(lines) == 1 and "cannot write the checkpoint" in lines[0] and "Traceback" not in res.stderr
    assert not (out / (CHECKPOINT + ".tmp")).exists()
    assert (out / CHECKPOINT).read_bytes() == before                        # the previous one is kept
    assert load_checkpoint(out / CHECKPOINT)["epoch"] == 0


# -- damaged checkpoints -------------------------------------------------------------------------
def tiny():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, 32, 32, generator=g).half()
    y = torch.arange(16) % 2
    return x, y, list(range(12)), list(range(12, 16))


def args_for(*extra: str):
    return parse(["--data", "unused", "--arch", "mobilenet_v3_small", "--image-size", "32", "--epochs", "1",
                  "--batch-size", "8", "--device", "cpu", "--scheduler", "cosine", *extra])


def _bad(st: dict, field: str) -> None:
    if field == "epoch":
        st["epoch"] = "0"
    elif field == "history":
        st["history"] = None
    elif field == "model":
        k = next(iter(st["model"]))
        st["model"][k] = torch.zeros(3)
    elif field == "model-nan":
        k = next(k for k, v in st["model"].items() if v.is_floating_point())
        st["model"][k] = st["model"][k].clone().fill_(float("nan"))
    elif field == "optimizer":
        st["optimizer"]["param_groups"][0]["lr"] = "fast"
    elif field == "optimizer-state":
        k = next(iter(st["optimizer"]["state"]))
        st["optimizer"]["state"][k]["exp_avg"] = torch.zeros(7)
    elif field == "scheduler":
        st["scheduler"]["T_max"] = "eight"
    elif field == "best_state":
        st["best_state"] = {"x": 1}
    elif field == "args":
        st["args"]["epochs"] = -3
    elif field == "best_loss":
        st["best_loss"] = [1]
    elif field == "arch":
        st["arch"] = 5


@pytest.mark.parametrize("field", ["epoch", "history", "model", "model-nan", "optimizer", "optimizer-state",
                                   "scheduler", "best_state", "args", "best_loss", "arch"])
def test_checkpoint_with_wrong_field_types_is_refused_naming_the_field(tmp_path, field):
    x, y, tr, va = tiny()
    fit(args_for(), x, y, tr, va, 2, tmp_path, log=lambda m: None)
    st = load_checkpoint(tmp_path / CHECKPOINT)
    _bad(st, field)
    torch.save(st, tmp_path / CHECKPOINT)
    name = field.split("-")[0]
    with pytest.raises(ModelFileError, match=f"checkpoint field '{name}'"):
        fit(args_for("--epochs", "2", "--resume"), x, y, tr, va, 2, tmp_path, log=lambda m: None)


def test_damaged_checkpoint_on_the_command_line_is_one_line(tmp_path, capsys):
    d = data(tmp_path / "d")
    out = tmp_path / "o"
    assert run(capsys, ["--data", str(d), "--out", str(out), *FAST])[0] == 0
    st = load_checkpoint(out / CHECKPOINT)
    st["bad_epochs"] = 1.5
    torch.save(st, out / CHECKPOINT)
    code, _, err = run(capsys, ["--data", str(d), "--out", str(out), *FAST[:-5], "--epochs", "2",
                                "--device", "cpu", "--no-report", "--resume"])
    assert code == 2 and "checkpoint field 'bad_epochs'" in error_line(err)
    (out / CHECKPOINT).write_bytes(b"PK\x03\x04 not a zip")
    code, _, err = run(capsys, ["--data", str(d), "--out", str(out), *FAST[:-5], "--epochs", "2",
                                "--device", "cpu", "--no-report", "--resume"])
    assert code == 2 and "unreadable checkpoint" in error_line(err)


# -- labels CSV ------------------------------------------------------------------------------------
def test_csv_field_over_128_kB_is_one_line(tmp_path, capsys):
    d = data(tmp_path / "d")
    csv_path = tmp_path / "labels.csv"
    rows = [f"{p},{p.parent.name}" for p in sorted(d.rglob("*.png"))]
    rows.insert(3, "x" * 200_000 + ",a")
    csv_path.write_text("path,label\n" + "\n".join(rows) + "\n")
    code, _, err = run(capsys, ["--labels", str(csv_path), "--out", str(tmp_path / "o"), *FAST])
    line = error_line(err)
    assert code == 2 and str(csv_path) in line and "line 5" in line and "field larger than field limit" in line


def _reads_in_time(path: Path, seconds: float = 10.0) -> str:
    box: dict[str, str] = {}

    def target() -> None:
        try:
            read_file(path)
            box["r"] = "read"
        except ValueError as exc:
            box["r"] = str(exc)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"reading {path} hangs"
    return box["r"]


def test_fifo_and_dev_zero_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)
    assert "a FIFO" in _reads_in_time(fifo)
    assert "a device" in _reads_in_time(Path("/dev/zero"))
    big = tmp_path / "big.png"
    with big.open("wb") as fh:
        fh.truncate(3 << 20)
    assert "over the 2 MiB limit" in str(pytest.raises(ValueError, read_file, big, 2 << 20).value)


def test_csv_rows_naming_a_fifo_or_dev_zero_are_skipped_and_the_rest_trains(tmp_path):
    d = data(tmp_path / "d")
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    rows = [f"{p},{p.parent.name}" for p in sorted(d.rglob("*.png"))] + [f"{fifo},a", "/dev/zero,b"]
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("path,label\n" + "\n".join(rows) + "\n")
    res = subprocess.run([sys.executable, "-m", "medviewer", "--train", "--labels", str(csv_path),
                          "--out", str(tmp_path / "o"), *FAST], capture_output=True, text=True, timeout=300)
    assert res.returncode == 1, res.stderr          # done, with skipped items
    assert f"skipped {fifo}: ValueError: not a regular file (a FIFO)" in res.stdout
    assert "skipped /dev/zero: ValueError: not a regular file (a device)" in res.stdout
    assert (tmp_path / "o" / "model.safetensors").is_file()


def test_fifo_as_the_labels_file_is_one_line(tmp_path, capsys):
    fifo = tmp_path / "labels.csv"
    os.mkfifo(fifo)
    code, _, err = run(capsys, ["--labels", str(fifo), "--out", str(tmp_path / "o"), *FAST])
    assert code == 2 and "not a regular file" in error_line(err)


# -- empty class folders -----------------------------------------------------------------------
def test_empty_class_folders_are_reported_not_dropped_silently(tmp_path, capsys):
    d = data(tmp_path / "d", ("a", "b"), n=6)
    (d / "cyst").mkdir()
    (d / "cyst" / "readme.txt").write_text("images to come")
    code, outp, err = run(capsys, ["--data", str(d), "--out", str(tmp_path / "o"), *FAST])
    assert code == 0
    assert "WARNING: class 'cyst' is left out: its folder cyst holds no images" in err
    # split folders: an empty test folder of a class that has training images
    s = tmp_path / "s"
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        data(s / split, ("a", "b"), n=n)
    for p in (s / "test" / "b").iterdir():
        p.unlink()
    code, outp, err = run(capsys, ["--data", str(s), "--out", str(tmp_path / "o2"), *FAST])
    assert code == 0 and "WARNING: class folder 'test/b' holds no images" in err
