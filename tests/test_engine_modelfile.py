"""engine.modelfile: safetensors + card round trip, refusal of pickles and broken files."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch

from medviewer import engine
from medviewer.engine.card import METADATA_KEY, ModelCard
from medviewer.engine.modelfile import clear_cache, load_model, read_card, save_model
from medviewer.engine.registry import build_model, head_spec
from medviewer.viewer.errors import ModelFileError


def make_model_file(path, arch="resnet18", classes=("normal", "lesion"), size=32, **card_kw):
    torch.manual_seed(0)
    head = card_kw.pop("head", head_spec())
    module = build_model(arch, len(classes), hidden=head["hidden"], dropout=head["dropout"],
                         head_batchnorm=head["batchnorm"]).eval()
    card = ModelCard(name="tiny", architecture=arch, classes=list(classes), input_size=size, head=head, **card_kw)
    save_model(path, module, card)
    return module, card


def test_round_trip_same_outputs_and_card(tmp_path):
    p = tmp_path / "m.safetensors"
    module, card = make_model_file(p, head=head_spec((8,), 0.2, True), intended_use="demo",
                                   metrics={"auc": 0.8})
    loaded = engine.load_model(p, device="cpu")
    assert loaded.card == card and loaded.classes == ["normal", "lesion"]
    assert loaded.cam_layer == "layer4" and not loaded.module.training
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        ref = torch.softmax(module(x), 1).numpy()
    np.testing.assert_allclose(engine.predict(loaded, x), ref, atol=1e-6)
    assert read_card(p) == card
    assert engine.load_model(p, device="cpu") is loaded  # cached
    clear_cache()
    assert engine.load_model(p, device="cpu") is not loaded


def test_batch_and_single_agree(tmp_path):
    p = tmp_path / "m.safetensors"
    make_model_file(p, arch="mobilenet_v3_small", classes=("a", "b", "c"), size=48)
    loaded = load_model(p, device="cpu")
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 4096, (40 + 7 * i, 50), dtype=np.uint16) for i in range(5)]
    batched = engine.predict(loaded, images, batch_size=4)
    single = np.concatenate([engine.predict(loaded, [im], batch_size=1) for im in images])
    assert batched.shape == (5, 3)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(batched.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", ["model.pt", "model.pth"])
def test_pickle_files_refused_with_convert_hint(tmp_path, name):
    p = tmp_path / name
    torch.save(build_model("resnet18", 2).state_dict(), p)
    with pytest.raises(ModelFileError, match=r"refusing to load a pickled.*medviewer convert-model") as e:
        load_model(p)
    assert "\n" not in str(e.value)


def test_pickle_disguised_as_safetensors_refused(tmp_path):
    p = tmp_path / "evil.safetensors"
    torch.save({"x": torch.zeros(1)}, p)
    with pytest.raises(ModelFileError, match="refusing to load a pickled"):
        load_model(p)


def _raw_safetensors(path, metadata, tensors=None):
    from safetensors.torch import save_file

    save_file(tensors or {"w": torch.zeros(2)}, str(path), metadata=metadata)


@pytest.mark.parametrize("case, match", [
    ("missing", "model file not found"),
    ("garbage", "not a safetensors model file"),
    ("no_card", "has no medviewer model card"),
    ("bad_json", "not valid JSON"),
    ("missing_field", "lacks required field"),
    ("unknown_arch", "unknown architecture 'resnet7'"),
    ("wrong_tensors", "tensors do not fit resnet18 with 3 classes"),
    ("truncated", "cannot read tensors"),
])
def test_broken_files_give_one_line(tmp_path, case, match):
    p = tmp_path / "m.safetensors"
    card = ModelCard(name="x", architecture="resnet18", classes=["a", "b", "c"], input_size=32)
    if case == "garbage":
        p.write_bytes(b"hello world, not a model")
    elif case == "no_card":
        _raw_safetensors(p, {"format": "pt"})
    elif case == "bad_json":
        _raw_safetensors(p, {METADATA_KEY: "{"})
    elif case == "missing_field":
        d = card.to_dict()
        del d["classes"]
        _raw_safetensors(p, {METADATA_KEY: json.dumps(d)})
    elif case == "unknown_arch":
        _raw_safetensors(p, {METADATA_KEY: json.dumps({**card.to_dict(), "architecture": "resnet7"})})
    elif case == "wrong_tensors":
        # a 2-class resnet18 whose card claims 3 classes
        sd = build_model("resnet18", 2).state_dict()
        _raw_safetensors(p, {METADATA_KEY: card.to_json()}, {k: v.contiguous() for k, v in sd.items()})
    elif case == "truncated":
        make_model_file(p, classes=("a", "b", "c"))
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=match) as e:
        load_model(p, device="cpu", cache=False)
    msg = str(e.value)
    assert "\n" not in msg and ("m.safetensors" in msg)


def test_wrong_shape_message_names_the_tensor(tmp_path):
    p = tmp_path / "m.safetensors"
    make_model_file(p)
    card = read_card(p)
    hdr_len = struct.unpack("<Q", p.read_bytes()[:8])[0]
    assert hdr_len > 0
    card.classes = ["a", "b", "c", "d"]
    from safetensors.torch import load_file

    _raw_safetensors(p, {METADATA_KEY: card.to_json()}, load_file(str(p)))
    with pytest.raises(ModelFileError, match=r"wrong shape \(e.g. 'fc.weight': \(2, 512\) in file, \(4, 512\) expected\)"):
        load_model(p, cache=False)


def test_save_rejects_other_suffix_and_mismatched_card(tmp_path):
    module = build_model("resnet18", 2)
    card = ModelCard(name="x", architecture="resnet18", classes=["a", "b"])
    with pytest.raises(ModelFileError, match="must end in .safetensors"):
        save_model(tmp_path / "m.pt", module, card)
    card3 = ModelCard(name="x", architecture="resnet18", classes=["a", "b", "c"])
    with pytest.raises(ModelFileError, match="do not fit"):
        save_model(tmp_path / "m.safetensors", module, card3)
    assert not list(tmp_path.iterdir())


def test_float16_weights_load_into_float32_module(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    module = build_model("mobilenet_v3_small", 2).eval()
    card = ModelCard(name="half", architecture="mobilenet_v3_small", classes=["a", "b"], input_size=32)
    p = tmp_path / "half.safetensors"
    half = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in module.state_dict().items()}
    save_file(half, str(p), metadata={METADATA_KEY: card.validate().to_json()})
    loaded = load_model(p, device="cpu", cache=False)
    assert next(loaded.module.parameters()).dtype == torch.float32
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        np.testing.assert_allclose(engine.predict(loaded, x), torch.softmax(module(x), 1).numpy(), atol=2e-2)


def test_bundled_models_load_and_run():
    from medviewer.viewer.resources import resource

    files = sorted(resource("models").glob("*.safetensors"))
    if not files:
        pytest.skip("no bundled model in resources/models (see resources/models/make_demo.sh)")
    rng = np.random.default_rng(0)
    for f in files:
        card = read_card(f)
        loaded = load_model(f, device="cpu", cache=False)
        img = rng.integers(0, 255, (70, 90), dtype=np.uint8)
        probs = engine.predict(loaded, [img])
        assert probs.shape == (1, len(card.classes)) and abs(probs.sum() - 1) < 1e-5
        cam = engine.gradcam(loaded, [img])[0]
        assert cam.shape == (70, 90) and cam.dtype == np.float32


def _header_file(path, header_json: bytes, body: bytes = b"\0" * 8) -> None:
    """A file with a hand-written safetensors header (what save_file would never write)."""
    import struct

    path.write_bytes(struct.pack("<Q", len(header_json)) + header_json + body)


_CARD = {"format_version": 1, "name": "x", "version": "1", "architecture": "resnet18", "classes": ["a", "b"],
         "input_size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2], "window": "auto",
         "intended_use": "research"}


@pytest.mark.parametrize("patch, match", [
    ({"classes": 3}, "card field 'classes'"),
    ({"classes": "abc"}, "card field 'classes'"),
    ({"classes": ["a", 1]}, "card field 'classes'"),
    ({"format_version": "1"}, "card field 'format_version'"),
    ({"format_version": None}, "card field 'format_version'"),
    ({"format_version": True}, "card field 'format_version'"),
    ({"architecture": ["resnet18"]}, "card field 'architecture'"),
    ({"head": {"hidden": [-4], "dropout": 0.0, "batchnorm": False}}, "'hidden'"),
    ({"head": {"hidden": ["64"], "dropout": 0.0, "batchnorm": False}}, "'hidden'"),
    ({"head": {"hidden": [], "dropout": 2, "batchnorm": False}}, "'dropout'"),
    ({"head": {"hidden": [], "dropout": 0.0, "batchnorm": "yes"}}, "'batchnorm'"),
    ({"head": [1]}, "card field 'head'"),
    ({"input_size": 32.0}, "card field 'input_size'"),
    ({"input_size": 10**9}, "card field 'input_size'"),
    ({"mean": [0.5, 0.5]}, "card field 'mean'"),
    ({"std": [0.2, 0.0, 0.2]}, "card field 'std'"),
    ({"window": {"center": 40, "width": -1}}, "card field 'window'"),
    ({"window": 40}, "card field 'window'"),
    ({"name": ""}, "card field 'name'"),
    ({"name": "x" * 5000}, "card field 'name'"),
    ({"metrics": {"auc": "NaN-ish", "acc": [1]}}, "card field 'metrics'"),
    ({"training_data": "all of it"}, "card field 'training_data'"),
    ({"intended_use": "clinical"}, "card field 'intended_use'"),
])
def test_every_card_field_is_checked(tmp_path, patch, match):
    p = tmp_path / "m.safetensors"
    _raw_safetensors(p, {METADATA_KEY: json.dumps({**_CARD, **patch})})
    with pytest.raises(ModelFileError, match=match) as e:
        read_card(p)
    assert "\n" not in str(e.value) and "m.safetensors" in str(e.value)


@pytest.mark.parametrize("case, match", [
    ("nan_in_card", "not valid JSON"),
    ("deep_card", "nested more than"),
    ("deep_header", "nested more than"),
    ("metadata_list", "metadata is not an object"),
    ("card_not_string", "not a JSON string"),
    ("huge_declared_header", "not a safetensors model file"),
])
def test_hostile_headers_are_one_line(tmp_path, case, match):
    p = tmp_path / "m.safetensors"
    card_text = json.dumps(_CARD)
    if case == "nan_in_card":
        _raw_safetensors(p, {METADATA_KEY: card_text.replace('"input_size": 32', '"input_size": NaN')})
    elif case == "deep_card":
        _raw_safetensors(p, {METADATA_KEY: "[" * 100_000 + "]" * 100_000})
    elif case == "deep_header":
        _header_file(p, b"[" * 100_000 + b"]" * 100_000)
    elif case == "metadata_list":
        _header_file(p, json.dumps({"__metadata__": [1, 2]}).encode())
    elif case == "card_not_string":
        _header_file(p, json.dumps({"__metadata__": {METADATA_KEY: {"name": "x"}}}).encode())
    elif case == "huge_declared_header":
        import struct

        p.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(ModelFileError, match=match) as e:
        read_card(p)
    assert "\n" not in str(e.value)


def test_non_finite_weights_are_refused(tmp_path):
    p = tmp_path / "m.safetensors"
    module, card = make_model_file(p)
    sd = {k: v.clone().contiguous() for k, v in module.state_dict().items()}
    sd["fc.weight"][0, 0] = float("nan")
    _raw_safetensors(p, {METADATA_KEY: card.to_json()}, sd)
    with pytest.raises(ModelFileError, match="'fc.weight' holds NaN"):
        load_model(p, device="cpu", cache=False)
    module.fc.weight.data[0, 0] = float("inf")
    with pytest.raises(ModelFileError, match="'fc.weight' holds NaN or infinite"):
        save_model(tmp_path / "n.safetensors", module, card)
    assert not list(tmp_path.glob(".*tmp"))


def test_save_model_leaves_nothing_behind_when_the_target_is_a_folder(tmp_path):
    target = tmp_path / "out.safetensors"
    target.mkdir()
    module = build_model("resnet18", 2)
    with pytest.raises(ModelFileError, match="is a folder"):
        save_model(target, module, ModelCard(name="x", architecture="resnet18", classes=["a", "b"]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.safetensors"]
