"""engine.registry and engine.card: architectures, heads, Grad-CAM layers, card validation."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from medviewer.engine.card import ModelCard
from medviewer.engine.registry import ARCHITECTURES, build_model, default_cam_layer, head_path, head_spec
from medviewer.viewer.errors import ModelFileError

ISSUE_LIST = ([f"resnet{d}" for d in (18, 34, 50, 101, 152)]
              + [f"densenet{d}" for d in (121, 161, 169, 201)]
              + [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")]
              + ["alexnet", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"]
              + [f"efficientnet_b{i}" for i in range(5)])


def test_registry_covers_the_issue_list_exactly():
    assert sorted(ARCHITECTURES) == sorted(ISSUE_LIST)


@pytest.mark.parametrize("arch", ISSUE_LIST)
def test_every_architecture_resolves_with_head_and_cam_layer(arch):
    # meta device: no memory, no init cost, still the real torchvision module tree
    with torch.device("meta"):
        model = build_model(arch, 5)
    head = model.get_submodule(head_path(arch))
    assert isinstance(head, nn.Linear) and head.out_features == 5
    layer = model.get_submodule(default_cam_layer(arch))
    # the CAM layer is the last spatial block: nothing after it in its parent is a conv
    assert any(isinstance(m, nn.Conv2d) for m in layer.modules()) or isinstance(layer, (nn.ReLU, nn.BatchNorm2d))


@pytest.mark.parametrize("arch", ["resnet18", "densenet121", "vgg11_bn", "mobilenet_v3_small", "efficientnet_b0"])
def test_representative_models_run_on_tiny_inputs(arch):
    torch.manual_seed(0)
    model = build_model(arch, 3).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 3)
    # the CAM layer produces a spatial map
    feats = {}
    h = model.get_submodule(default_cam_layer(arch)).register_forward_hook(lambda m, i, o: feats.setdefault("a", o))
    with torch.inference_mode():
        model(torch.randn(1, 3, 64, 64))
    h.remove()
    assert feats["a"].ndim == 4 and feats["a"].shape[-1] >= 2


def test_mlp_head_shapes_and_plain_linear_default():
    m = build_model("resnet18", 4, hidden=(32, 16), dropout=0.3, head_batchnorm=True)
    kinds = [type(x).__name__ for x in m.fc]
    assert kinds == ["Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear", "BatchNorm1d", "ReLU", "Dropout", "Linear"]
    assert m.fc[-1].out_features == 4
    assert isinstance(build_model("resnet18", 2).fc, nn.Linear)
    assert [type(x).__name__ for x in build_model("resnet18", 2, dropout=0.5).fc] == ["Dropout", "Linear"]


def test_unknown_architecture_is_one_clear_error():
    with pytest.raises(ModelFileError, match="unknown architecture 'resnet9'"):
        build_model("resnet9", 2)
    with pytest.raises(ValueError):
        build_model("resnet18", 2, weights="bogus")


def _card(**kw):
    base = dict(name="demo", architecture="resnet18", classes=["normal", "lesion"], input_size=64)
    base.update(kw)
    return ModelCard(**base)


def test_card_round_trip_and_default_cam_layer():
    card = _card(window={"center": 40, "width": 400}, head=head_spec((8,), 0.1, True),
                 metrics={"auc": 0.91}, training_data={"summary": "synthetic", "sha256": "ab" * 32})
    card.validate()
    assert card.cam_layer == "layer4"
    back = ModelCard.from_json(card.to_json())
    assert back == card
    assert json.loads(card.to_json())["format_version"] == 1   # older releases read it
    assert card.needed_format() == 1


def test_cards_with_trust_fields_are_written_as_format_2(tmp_path):
    """A calibrated or OOD-checked model must not be read by a release that would ignore
    its temperature: such cards are saved as format 2 (older releases refuse them)."""
    from medviewer.engine.modelfile import read_card, save_model
    from medviewer.engine.registry import build_from_card

    for extra in ({"temperature": 1.3}, {"trained_on": {"modality": ["CT"]}},
                  {"operating_point": {"accuracy": 0.9}}):
        card = _card(architecture="mobilenet_v3_small", input_size=32, **extra)
        assert card.needed_format() == 2
        path = save_model(tmp_path / "m.safetensors", build_from_card(card), card)
        assert read_card(path).format_version == 2
    plain = _card(architecture="mobilenet_v3_small", input_size=32)
    path = save_model(tmp_path / "p.safetensors", build_from_card(plain), plain)
    assert read_card(path).format_version == 1


@pytest.mark.parametrize("change, message", [
    ({"architecture": "resnet9"}, "unknown architecture"),
    ({"classes": []}, "classes"),
    ({"classes": ["a", "a"]}, "duplicate"),
    ({"input_size": 8}, "input_size"),
    ({"window": "bright"}, "window"),
    ({"window": {"center": 1, "width": 0}}, "width"),
    ({"intended_use": "clinical"}, "intended_use"),
    ({"std": [1, 0, 1]}, "std"),
    ({"mean": [0.5]}, "mean"),
    ({"format_version": 99}, "newer"),
    ({"temperature": 0}, "temperature"),
    ({"temperature": "1.5"}, "temperature"),
    ({"ood": {"method": "energy", "threshold": 1.0, "layers": []}}, "ood.*unknown method"),
    ({"ood": {"method": "mahalanobis-ensemble", "threshold": 1.0, "layers": [{"name": "fc"}]}}, "ood"),
    ({"ood": {"method": "mahalanobis-ensemble", "threshold": 1.0,
              "layers": [{"name": "fc:input", "dim": 4, "components": 8, "residual_variance": 1.0,
                          "center": 0.0, "scale": 1.0}]}}, "components"),
    ({"ood": [1]}, "ood"),
    ({"trained_on": {"colour": ["RGB"]}}, "trained_on.*unknown key"),
    ({"trained_on": {"modality": "CT"}}, "trained_on"),
    ({"operating_point": {"accuracy": [1]}}, "operating_point"),
])
def test_card_validation_errors(change, message):
    data = _card().to_dict()
    data.update(change)
    with pytest.raises(ModelFileError, match=message) as exc:
        ModelCard.from_dict(data, where="m.safetensors")
    assert str(exc.value).startswith("m.safetensors: ") and "\n" not in str(exc.value)


def test_card_missing_fields_and_bad_json():
    data = _card().to_dict()
    del data["classes"], data["intended_use"]
    with pytest.raises(ModelFileError, match="lacks required field.*classes.*intended_use"):
        ModelCard.from_dict(data)
    with pytest.raises(ModelFileError, match="not valid JSON"):
        ModelCard.from_json("{nope")


def test_vgg_configurations_and_cam_layers_follow_torchvision():
    """The Grad-CAM layer of every VGG is its last ReLU, derived from the named configuration."""
    import torch.nn as nn
    from torchvision.models.vgg import cfgs

    from medviewer.engine.registry import VGG_CFGS

    assert {k: cfgs[v] for k, v in {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}.items()} == VGG_CFGS
    for name, spec in ARCHITECTURES.items():
        assert spec.name == name
        if spec.family != "vgg":
            continue
        with torch.device("meta"):
            model = build_model(name, 2, weights=None)
        relus = [n for n, m in model.features.named_children() if isinstance(m, nn.ReLU)]
        assert spec.cam_layer == f"features.{relus[-1]}"


def test_cam_methods_registry_is_what_the_cli_offers(capsys):
    from medviewer.engine.cam import CAM_METHODS, cam_method
    from medviewer.viewer.cli import main

    assert set(CAM_METHODS) == {"gradcam", "gradcampp"}
    with pytest.raises(ValueError, match="unknown CAM method"):
        cam_method("scorecam")
    assert main(["predict", "x", "--model", "demo", "--cam-method", "scorecam"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'scorecam'" in err and "gradcampp" in err
