"""Calibration and the OOD check through test-time augmentation, ensembles and exports:
TTA averages each view's calibrated softmax and keeps the image's own OOD score; an
ensemble calibrates each member by its temperature (in predict and in the exported
graph) and has no OOD check; ensemble files never carry a member's OOD entry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medviewer import engine
from medviewer.engine.ensemble import make_ensemble
from medviewer.engine.infer import predict_full
from medviewer.engine.modelfile import load_model, read_card
from medviewer.engine.tta import TTASpec, views
from test_engine_modelfile import make_model_file
from test_engine_ood import make_ood_model_file


def _images(n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    out = []
    for k in range(n):
        disk = np.hypot(yy - 16 + k % 5 - 2, xx - 14 - k % 3) < 5 + k % 4
        out.append((disk * 180 + rng.normal(40, 8, (32, 32))).clip(0, 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def ood_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("trustpaths") / "ood.safetensors"
    imgs = [(im, None) for im in _images(40, 0)]
    make_ood_model_file(path, imgs[:24], [k % 2 for k in range(24)], temperature=1.7, calib_images=imgs[24:])
    return path


def test_tta_averages_calibrated_views_and_keeps_the_images_own_ood_score(ood_file):
    model = load_model(ood_file, device="cpu", cache=False)
    imgs = _images(5, 1) + [np.random.default_rng(2).integers(0, 255, (32, 32), dtype=np.uint8)]
    spec = TTASpec(hflip=True, shift=0.1)
    plain = predict_full(model, imgs)
    tta = predict_full(model, imgs, tta=spec)
    np.testing.assert_allclose(tta.ood, plain.ood, rtol=1e-5)          # scored on the image itself
    x = torch.stack([model.preprocess(im)[0] for im in imgs])
    with torch.inference_mode():
        want = sum(torch.softmax(model.module(v) / 1.7, 1) for v in views(x, spec)) / spec.n_views()
    np.testing.assert_allclose(tta.probs, want.numpy(), atol=1e-5)
    assert not np.allclose(tta.probs, plain.probs, atol=1e-4)           # the views do change them


def test_ensemble_members_are_calibrated_and_the_ensemble_has_no_ood_check(ood_file, tmp_path):
    other = tmp_path / "plain.safetensors"
    make_model_file(other, arch="mobilenet_v3_small", size=32, temperature=0.6)
    ens_path = tmp_path / "ens.safetensors"
    card = make_ensemble([ood_file, other], ens_path, weights=[3, 1])
    assert all(m["ood"] == {} for m in card.members)                     # no member OOD entry stored
    assert [m["temperature"] for m in card.members] == [1.7, 0.6]
    assert read_card(ens_path).format_version == 2
    ens = load_model(ens_path, device="cpu", cache=False)
    assert ens.ood is None
    imgs = _images(4, 3)
    pred = predict_full(ens, imgs)
    assert pred.ood is None and pred.flags is None
    a, b = load_model(ood_file, device="cpu", cache=False), load_model(other, device="cpu", cache=False)
    want = 0.75 * engine.predict(a, imgs) + 0.25 * engine.predict(b, imgs)   # each calibrated
    np.testing.assert_allclose(pred.probs, want, atol=1e-5)
    # the ensemble's own module (what export-model writes) applies the members' temperatures too
    x = torch.stack([ens.members[0].preprocess(im)[0] for im in imgs])
    with torch.inference_mode():
        exported = torch.softmax(ens.module(x), 1).numpy()
    np.testing.assert_allclose(exported, want, atol=1e-5)


def test_predict_cli_says_an_ensemble_has_no_ood_check(ood_file, tmp_path, capsys):
    from pydicom.data import get_testdata_file

    from medviewer.viewer.cli import main

    other = tmp_path / "plain.safetensors"
    make_model_file(other, arch="resnet18", size=32)
    ens_path = tmp_path / "ens.safetensors"
    make_ensemble([ood_file, other], ens_path)
    assert main(["predict", get_testdata_file("CT_small.dcm"), "--model", str(ens_path), "--json", "-"]) == 0
    out = capsys.readouterr()
    assert "no out-of-distribution check (an ensemble)" in out.err
    import json

    doc = json.loads(out.out)
    assert doc["model"]["ood_check"] is False and doc["series"][0]["ood"] is None
    assert doc["series"][0]["items"][0]["ood"] is None
