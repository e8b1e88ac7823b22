"""Frozen-backbone feature cache: same head weights as the uncached run, and when it applies."""

from __future__ import annotations

import pytest
import torch

from test_train_loop import tiny_data
from medviewer.engine import registry
from medviewer.engine.train import featcache
from medviewer.engine.train.cli import parse
from medviewer.engine.train.loop import fit
from medviewer.engine.train.model import build, parse_hidden
from medviewer.viewer.errors import UsageError


def args_for(arch: str, *extra: str):
    return parse(["--data", "unused", "--arch", arch, "--image-size", "32", "--epochs", "3", "--batch-size", "8",
                  "--device", "cpu", "--freeze", "backbone", "--seed", "3", *extra])


def heads(arch: str, *extra: str):
    """(cached result, uncached result, initial head) for one recipe."""
    x, y, tr, va = tiny_data(8, 3, 32)
    on = fit(args_for(arch, *extra), x, y, tr, va, 3, None, log=lambda m: None)
    off = fit(args_for(arch, "--no-feature-cache", *extra), x, y, tr, va, 3, None, log=lambda m: None)
    a = args_for(arch, *extra)
    torch.manual_seed(3)                         # the initial weights of both runs
    init = build(arch, 3, a.weights, a.dropout, parse_hidden(a.hidden), a.head_batchnorm).state_dict()
    return on, off, init


@pytest.mark.parametrize("arch,extra", [
    ("resnet18", ()),
    # classifier = Linear, Hardswish, Dropout (frozen, random in training) + a hidden head with BatchNorm
    ("mobilenet_v3_small", ("--hidden", "16", "--head-batchnorm", "--dropout", "0.2", "--scheduler", "cosine")),
])
def test_cached_head_equals_uncached_head(arch, extra):
    on, off, init = heads(arch, *extra)
    assert on.extra["feature_cache"].startswith("on") and off.extra["feature_cache"].startswith("off")
    a, b = on.model.state_dict(), off.model.state_dict()
    prefix = registry.head_path(arch).split(".")[0] + "."
    head_keys = [k for k in a if k.startswith(prefix) and a[k].is_floating_point()]
    assert head_keys
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5, rtol=1e-4), k
    for key in ("train_loss", "val_loss", "val_accuracy"):
        assert [h[key] for h in on.history] == pytest.approx([h[key] for h in off.history], abs=1e-5)
    new_head = [k for k in head_keys if k.startswith(registry.head_path(arch) + ".")]
    moved = min(float((a[k].float() - init[k].float()).abs().max()) for k in new_head if "running" not in k)
    assert moved > 1e-4            # every tensor of the head really trained


def test_when_the_cache_applies():
    m = registry.build_model("resnet18", 3)
    assert featcache.decide(args_for("resnet18"), m, 10).reason == "on (1 pass)"
    off = featcache.decide(args_for("resnet18", "--augment", "light"), m, 10)
    assert not off.use and "augmentation" in off.reason
    forced = featcache.decide(args_for("resnet18", "--augment", "light", "--feature-cache",
                                       "--feature-cache-copies", "3"), m, 10)
    assert forced.use and forced.copies == 3
    assert not featcache.decide(args_for("resnet18", "--no-feature-cache"), m, 10).use
    trained = parse(["--data", "u", "--arch", "resnet18", "--device", "cpu"])
    assert not featcache.decide(trained, m, 10).use
    with pytest.raises(UsageError, match="needs --freeze backbone"):
        featcache.decide(parse(["--data", "u", "--feature-cache", "--device", "cpu"]), m, 10)
    eff = registry.build_model("efficientnet_b0", 3)
    no = featcache.decide(args_for("efficientnet_b0"), eff, 10)
    assert not no.use and "StochasticDepth" in no.reason
    with pytest.raises(UsageError, match="random layer"):
        featcache.decide(args_for("efficientnet_b0", "--feature-cache"), eff, 10)
    huge = featcache.decide(args_for("resnet18"), m, 10**9, feature_dim=512)
    assert not huge.use and "GiB" in huge.reason


def test_augmented_copies_cycle_through_epochs():
    x, y, tr, va = tiny_data(8, 3, 32)
    a = args_for("resnet18", "--augment", "light", "--feature-cache", "--feature-cache-copies", "2")
    res = fit(a, x, y, tr, va, 3, None, log=lambda m: None)
    assert res.extra["feature_cache"] == "on (2 augmented copies per image)"
    m = registry.build_model("resnet18", 3).eval()
    cache = featcache.build(a, m, x, y, tr, va, torch.device("cpu"), featcache.Decision(True, 2, ""))
    assert cache.train.shape == (2, len(tr), 512) and cache.val.shape == (len(va), 512)
    assert not torch.allclose(cache.train[0], cache.train[1])      # two different augmentations
    assert cache.train_features(0) is not None and torch.equal(cache.train_features(2), cache.train[0])
    assert torch.equal(cache.train_y, y[tr]) and int(cache.remap[tr[3]]) == 3
