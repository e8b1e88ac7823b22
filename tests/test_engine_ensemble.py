"""Ensembles: one model file with several members (engine.ensemble, modelfile, infer, cam)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import dicomgen
from test_engine_modelfile import _CARD, _raw_safetensors, make_model_file
from medviewer import engine
from medviewer.engine.card import METADATA_KEY, ModelCard
from medviewer.engine.ensemble import make_ensemble
from medviewer.engine.modelfile import EnsembleModel, LoadedModel, load_model, read_card
from medviewer.viewer.cli import main
from medviewer.viewer.errors import ModelFileError

CLASSES = ("normal", "lesion")


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two members of different architectures, input sizes and windows."""
    d = tmp_path_factory.mktemp("members")
    make_model_file(d / "a.safetensors", arch="resnet18", classes=CLASSES, size=32)
    torch.manual_seed(1)
    make_model_file(d / "b.safetensors", arch="mobilenet_v3_small", classes=CLASSES, size=48,
                    window={"center": 40, "width": 400})
    return d / "a.safetensors", d / "b.safetensors"


@pytest.fixture(scope="module")
def ensemble_file(members, tmp_path_factory):
    out = tmp_path_factory.mktemp("ens") / "e.safetensors"
    assert main(["ensemble", str(members[0]), str(members[1]), "--out", str(out), "--weights", "1,3",
                 "--name", "pair"]) == 0
    return out


def images():
    rng = np.random.default_rng(4)
    return [rng.integers(-1000, 1500, (40 + 9 * i, 56), dtype=np.int16) for i in range(5)]


def test_card_lists_members_and_weights(ensemble_file, members):
    card = read_card(ensemble_file)
    assert card.architecture == "ensemble" and card.format_version == 2 and card.is_ensemble
    assert [m["architecture"] for m in card.members] == ["resnet18", "mobilenet_v3_small"]
    assert [m["input_size"] for m in card.members] == [32, 48]
    assert card.members[1]["window"] == {"center": 40, "width": 400}
    assert card.member_weights == [1.0, 3.0] and card.classes == list(CLASSES)
    assert card.summary().startswith("pair 1.0 (ensemble of 2: resnet18, mobilenet_v3_small")


def test_probabilities_are_the_weighted_mean_of_the_members(ensemble_file, members, tmp_path):
    ens = engine.load_model(ensemble_file, device="cpu")
    assert isinstance(ens, EnsembleModel) and isinstance(ens, LoadedModel)
    a, b = (load_model(p, device="cpu", cache=False) for p in members)
    imgs = images()
    got = engine.predict(ens, imgs, batch_size=2)
    want = 0.25 * engine.predict(a, imgs) + 0.75 * engine.predict(b, imgs)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-5)
    # equal weights (no --weights): the plain mean
    make_ensemble(list(members), tmp_path / "eq.safetensors")
    eq = engine.load_model(tmp_path / "eq.safetensors", device="cpu")
    np.testing.assert_allclose(engine.predict(eq, imgs), (engine.predict(a, imgs) + engine.predict(b, imgs)) / 2,
                               atol=1e-6)


def test_gradcam_is_the_weighted_mean_of_the_members_maps_on_the_source_grid(ensemble_file, members):
    ens = engine.load_model(ensemble_file, device="cpu")
    a, b = (load_model(p, device="cpu", cache=False) for p in members)
    imgs = images()
    top = engine.predict(ens, imgs).argmax(1).tolist()
    maps = engine.gradcam(ens, imgs)
    ma = engine.gradcam(a, imgs, class_index=top)
    mb = engine.gradcam(b, imgs, class_index=top)
    for img, m, x, y in zip(imgs, maps, ma, mb):
        assert m.shape == img.shape and m.dtype == np.float32
        np.testing.assert_allclose(m, 0.25 * x + 0.75 * y, atol=1e-5)
    streamed = []
    engine.gradcam(ens, imgs[:2], class_index=1, on_batch=lambda s, mm, p: streamed.append(p))
    np.testing.assert_allclose(streamed[0], engine.predict(ens, imgs[:2]), atol=1e-6)


def test_ready_tensor_needs_members_of_one_input_size(ensemble_file, members, tmp_path):
    ens = engine.load_model(ensemble_file, device="cpu")
    with pytest.raises(ValueError, match=r"members take inputs of \[32, 48\] px"):
        engine.predict(ens, torch.zeros(2, 3, 32, 32))
    # same size: a tensor works
    out = tmp_path / "same.safetensors"
    make_ensemble([members[0], members[0]], out)
    same = engine.load_model(out, device="cpu")
    a = load_model(members[0], device="cpu", cache=False)
    x = torch.randn(3, 3, 32, 32)
    np.testing.assert_allclose(engine.predict(same, x), engine.predict(a, x), atol=1e-6)
    assert engine.gradcam(same, x)[0].shape == (32, 32)


def test_an_ensemble_member_is_flattened_and_class_order_is_checked(ensemble_file, members, tmp_path):
    out = tmp_path / "nested.safetensors"
    card = make_ensemble([ensemble_file, members[0]], out, weights=[2, 1])
    assert len(card.members) == 3
    np.testing.assert_allclose(card.member_weights, [0.5, 1.5, 1.0])
    flipped = tmp_path / "flipped.safetensors"
    make_model_file(flipped, arch="resnet18", classes=("lesion", "normal"), size=32)
    with pytest.raises(ModelFileError, match="in another order"):
        make_ensemble([members[0], flipped], tmp_path / "x.safetensors")


def test_predict_cli_on_a_dicom_series(ensemble_file, tmp_path, capsys):
    files, uid = dicomgen.ct_series(tmp_path / "ct", n=4, rows=40, cols=36)
    assert main(["predict", str(tmp_path / "ct"), "--model", str(ensemble_file), "--json", "-",
                 "--cam-dir", str(tmp_path / "cams")]) == 0
    doc = json.loads(capsys.readouterr().out)
    items = doc["series"][0]["items"]
    assert len(items) == 4 and doc["model"]["architecture"] == "ensemble"
    cam = np.load(tmp_path / "cams" / items[0]["cam"])
    assert cam.shape == (40, 36) and 0 <= cam.min() and cam.max() <= 1


def test_ensemble_cli_errors_are_one_line(members, tmp_path, capsys):
    assert main(["ensemble", str(members[0]), "--out", str(tmp_path / "e.safetensors")]) == 2
    assert "at least two models" in capsys.readouterr().err
    assert main(["ensemble", str(members[0]), str(members[1]), "--out", str(tmp_path / "e.safetensors"),
                 "--weights", "1"]) == 2
    assert "one weight per model" in capsys.readouterr().err
    assert main(["ensemble", str(members[0]), str(members[1]), "--out", str(tmp_path / "e.onnx")]) == 2
    assert "must end in .safetensors" in capsys.readouterr().err


def _member(**kw):
    return {**_CARD, **kw}


@pytest.mark.parametrize("patch, match", [
    ({"architecture": "ensemble", "format_version": 2}, "card field 'members'"),
    ({"architecture": "ensemble", "members": [_member(), _member()], "member_weights": [1, 1]},
     "card field 'format_version'.*at least 2"),
    ({"format_version": 2, "members": [_member(), _member()], "member_weights": [1, 1]},
     "card field 'architecture'.*ensemble"),
    ({"architecture": "ensemble", "format_version": 2, "members": [_member()], "member_weights": [1]},
     "card field 'members'"),
    ({"architecture": "ensemble", "format_version": 2, "members": [_member(), _member(classes=["b", "a"])],
      "member_weights": [1, 1]}, "entry 2 .* predicts"),
    ({"architecture": "ensemble", "format_version": 2, "members": [_member(), _member()],
      "member_weights": [1, -1]}, "card field 'member_weights'"),
    ({"architecture": "ensemble", "format_version": 2, "members": [_member(), _member()],
      "member_weights": [1]}, "card field 'member_weights'"),
    ({"architecture": "ensemble", "format_version": 2, "members": [_member(), "x"], "member_weights": [1, 1]},
     "entry 2 is not a card"),
    ({"architecture": "ensemble", "format_version": 2,
      "members": [_member(), _member(architecture="resnet9000")], "member_weights": [1, 1]},
     "member 2: card field 'architecture'"),
    ({"architecture": "ensemble", "format_version": 2,
      "members": [_member(), _member(architecture="ensemble", format_version=2,
                                     members=[_member(), _member()], member_weights=[1, 1])],
      "member_weights": [1, 1]}, "cannot nest"),
    ({"format_version": 3}, "newer"),
    ({"tta": {"hflip": "yes"}}, "card field 'tta'"),
    ({"tta": {"hflip": True, "shift": 0.9}}, "card field 'tta'"),
    ({"tta": {"rotate": 10}}, "card field 'tta'"),
])
def test_every_ensemble_card_field_is_checked(tmp_path, patch, match):
    p = tmp_path / "m.safetensors"
    _raw_safetensors(p, {METADATA_KEY: json.dumps({**_CARD, **patch})})
    with pytest.raises(ModelFileError, match=match) as e:
        read_card(p)
    assert "\n" not in str(e.value)


def test_member_tensors_must_fit_their_members(ensemble_file, tmp_path):
    from safetensors.torch import load_file

    state = load_file(str(ensemble_file))
    card_json = read_card(ensemble_file).to_json()
    del state["members.1.classifier.3.weight"]
    p = tmp_path / "broken.safetensors"
    _raw_safetensors(p, {METADATA_KEY: card_json}, state)
    with pytest.raises(ModelFileError, match="1 missing .*members.1.classifier.3.weight"):
        load_model(p, device="cpu", cache=False)


def test_single_model_files_keep_format_1_and_load_as_before(members):
    card = read_card(members[0])
    assert card.format_version == 1 and card.members == [] and card.tta == {}
    assert json.loads(card.to_json())["format_version"] == 1
    m = load_model(members[0], device="cpu", cache=False)
    assert type(m) is LoadedModel
    old_style = {k: v for k, v in card.to_dict().items() if k not in ("tta", "members", "member_weights")}
    assert ModelCard.from_dict(old_style) == card   # a card written before these fields existed
