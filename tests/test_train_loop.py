"""The training loop: optimisers, schedulers, freezing, class weights, augmentation, resume."""

from __future__ import annotations

import pytest
import torch

from medviewer.engine.train.augment import augment_batch, make_spec
from medviewer.engine.train.cli import parse
from medviewer.engine.train.loop import CHECKPOINT, class_weights, fit, load_checkpoint
from medviewer.viewer.errors import UsageError

ARCH = "mobilenet_v3_small"


def tiny_data(n_per_class: int = 8, k: int = 3, size: int = 32):
    """Class i = a bright square in quadrant i on noise (learnable, 32 px)."""
    g = torch.Generator().manual_seed(0)
    xs, ys = [], []
    for c in range(k):
        for _ in range(n_per_class):
            x = torch.randn(1, size, size, generator=g) * 0.3
            r0, c0 = (c // 2) * size // 2, (c % 2) * size // 2
            x[:, r0 + 4:r0 + 12, c0 + 4:c0 + 12] += 2.0
            xs.append(x.expand(3, -1, -1))
            ys.append(c)
    x = torch.stack(xs).half()
    y = torch.tensor(ys)
    idx = list(range(len(y)))
    val = idx[::4]
    train = [i for i in idx if i not in val]
    return x, y, train, val


def args_for(*extra: str):
    return parse(["--data", "unused", "--arch", ARCH, "--image-size", "32", "--epochs", "1",
                  "--batch-size", "8", "--device", "cpu", *extra])


def params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("opt", ["adam", "adamw", "sgd", "adamax"])
def test_one_epoch_per_optimizer_changes_weights(opt):
    x, y, tr, va = tiny_data()
    extra = ["--optimizer", opt] + (["--nesterov"] if opt == "sgd" else [])
    res = fit(args_for(*extra), x, y, tr, va, 3, None, log=lambda m: None)
    h = res.history
    assert len(h) == 1 and set(h[0]) == {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr",
                                             "seconds"}
    assert h[0]["train_loss"] > 0 and 0 <= h[0]["val_accuracy"] <= 1


@pytest.mark.parametrize("sched,lr_after", [("step", 1e-3 * 0.5), ("cosine", 0.0), ("plateau", None),
                                            ("onecycle", None)])
def test_one_epoch_per_scheduler(sched, lr_after):
    x, y, tr, va = tiny_data()
    a = args_for("--scheduler", sched, "--step-size", "1", "--gamma", "0.5", "--epochs", "2")
    res = fit(a, x, y, tr, va, 3, None, log=lambda m: None)
    assert len(res.history) == 2
    if sched == "step":
        assert res.history[1]["lr"] == pytest.approx(lr_after)
    if sched == "cosine":
        assert res.history[1]["lr"] == pytest.approx(0.5e-3)     # cos annealing over 2 epochs
    if sched == "onecycle":
        assert res.history[0]["lr"] < 1e-3                      # warm-up then anneal, never above max


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    x, y, tr, va = tiny_data()
    flags = ["--epochs", "3", "--augment", "light", "--dropout", "0.2", "--scheduler", "cosine", "--seed", "5"]
    full = fit(args_for(*flags), x, y, tr, va, 3, tmp_path / "a", log=lambda m: None)
    (tmp_path / "b").mkdir()
    (tmp_path / "a").mkdir(exist_ok=True)
    epochs_done = []

    def stop_after_first_epoch() -> bool:     # like Ctrl-C after the first epoch's checkpoint
        return len(epochs_done) >= 1

    logs = []
    part = fit(args_for(*flags), x, y, tr, va, 3, tmp_path / "b",
               should_stop=stop_after_first_epoch, log=lambda m: (logs.append(m), epochs_done.append(1)
                                                                  if m.startswith("epoch") else None))
    assert part.interrupted and len(part.history) == 1
    assert any("--resume" in m for m in logs)
    ck = load_checkpoint(tmp_path / "b" / CHECKPOINT)
    assert ck["epoch"] == 0 and ck["args"]["seed"] == 5
    resumed = fit(args_for(*flags, "--resume"), x, y, tr, va, 3, tmp_path / "b", log=lambda m: None)
    assert not resumed.interrupted and len(resumed.history) == 3
    def timeless(h):    # seconds per epoch differ between any two runs
        return [{k: v for k, v in r.items() if k != "seconds"} for r in h]

    assert timeless(resumed.history) == timeless(full.history)
    a, b = params(full.model), params(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_early_stopping_restores_best_weights():
    x, y, tr, va = tiny_data()
    res = fit(args_for("--epochs", "6", "--lr", "0.5", "--optimizer", "sgd", "--patience", "1"),
              x, y, tr, va, 3, None, log=lambda m: None)
    losses = [h["val_loss"] for h in res.history]
    assert res.stopped_early and len(losses) < 6
    assert res.best_epoch == 1 + losses.index(min(losses))


@pytest.mark.parametrize("mode", ["backbone", "staged"])
def test_freeze_modes(mode):
    x, y, tr, va = tiny_data()
    a = args_for("--freeze", mode, "--epochs", "2", "--stage-epochs", "1", "--hidden", "16",
                 "--head-batchnorm", "--dropout", "0.1")
    torch.manual_seed(a.seed)
    from medviewer.engine.train.model import build

    before = params(build(ARCH, 3, "none", 0.1, (16,), True))
    res = fit(a, x, y, tr, va, 3, None, log=lambda m: None)
    after = params(res.model)
    stem = "features.0.0.weight"
    assert torch.equal(before[stem], after[stem]) == (mode == "backbone")
    assert not torch.equal(before["classifier.3.1.weight"], after["classifier.3.1.weight"])


def test_class_weights():
    y = torch.tensor([0, 0, 0, 1])
    assert torch.allclose(class_weights("auto", y, 2), torch.tensor([4 / 6, 2.0]))
    assert class_weights("none", y, 2) is None
    assert torch.equal(class_weights("1,3", y, 2), torch.tensor([1.0, 3.0]))
    with pytest.raises(UsageError):
        class_weights("1,2,3", y, 2)


def test_augmentation_is_seeded_and_changes_images():
    x = torch.randn(4, 3, 32, 32)
    spec = make_spec("strong")
    a = augment_batch(x, spec, torch.Generator().manual_seed(1))
    b = augment_batch(x, spec, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.allclose(a, x)
    flip = augment_batch(x, make_spec("none", hflip=1.0), torch.Generator())
    assert torch.allclose(flip, x.flip(-1), atol=1e-5)
    assert augment_batch(x, make_spec("none"), torch.Generator()) is x


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_weights_path_loads_backbone_and_keeps_new_head(tmp_path, suffix):
    from safetensors.torch import save_file

    from medviewer.engine.train.model import build

    torch.manual_seed(1)
    src = build(ARCH, 5)
    state = {k: v.contiguous() for k, v in src.state_dict().items()}
    path = tmp_path / f"w{suffix}"
    if suffix == ".pt":
        torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        save_file(state, str(path))
    torch.manual_seed(2)
    dst = build(ARCH, 3, str(path)).state_dict()
    assert torch.equal(dst["features.0.0.weight"], state["features.0.0.weight"])
    assert dst["classifier.3.weight"].shape == (3, 1024)     # head sized for the new classes


def test_weights_path_of_another_architecture_is_refused(tmp_path):
    from safetensors.torch import save_file

    from medviewer.engine.train.model import build
    from medviewer.viewer.errors import ModelFileError

    save_file({"conv.weight": torch.zeros(2, 2)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelFileError, match="no tensor matches"):
        build(ARCH, 3, str(tmp_path / "other.safetensors"))


def test_ctrl_c_mid_epoch_keeps_the_last_complete_epoch(tmp_path):
    x, y, tr, va = tiny_data()
    calls = []

    def ctrl_c_in_second_epoch() -> bool:       # 3 batches + 1 end-of-epoch check per epoch
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return False

    res = fit(args_for("--epochs", "3"), x, y, tr, va, 3, tmp_path, should_stop=ctrl_c_in_second_epoch,
              log=lambda m: None)
    assert res.interrupted and len(res.history) == 1
    ck = load_checkpoint(tmp_path / CHECKPOINT)
    assert ck["epoch"] == 0 and len(ck["history"]) == 1
    assert not (tmp_path / (CHECKPOINT + ".tmp")).exists()
