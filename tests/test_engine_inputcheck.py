"""engine.inputcheck: the input check compares real DICOM headers (pydicom's test files, the demo
phantom) and plain images with what the card says the model was trained on."""

from __future__ import annotations

import shutil

import pytest
from pydicom.data import get_testdata_file

import dicomgen
from medviewer.engine import inputcheck
from medviewer.engine.card import ModelCard
from medviewer.viewer.io.pixels import PixelStore
from medviewer.viewer.io.scan import open_path

CT_CHEST = {"modality": ["CT"], "photometric": ["MONOCHROME2"], "body_part": ["CHEST"]}


def _card(trained_on=CT_CHEST, **kw) -> ModelCard:
    return ModelCard(name="m", architecture="resnet18", classes=["a", "b"], trained_on=trained_on, **kw).validate()


def _series(path):
    result = open_path(path)
    (series,) = result.all_series()
    return series


def _check(card, path):
    store = PixelStore(workers=1)
    try:
        series = _series(path)
        store.add_headers(series.headers)
        return inputcheck.check_series(card, series, store)
    finally:
        store.close()


def test_matching_ct_chest_series_gives_no_warning(tmp_path):
    from medviewer.viewer.io.demo import make_demo_study

    assert _check(_card(), make_demo_study(tmp_path)) == []      # CT, MONOCHROME2, CHEST


def test_other_modality_colour_and_body_part_are_named(tmp_path):
    card = _card()
    mr = _check(card, get_testdata_file("MR_small.dcm"))
    assert [(w.field, w.found) for w in mr] == [("modality", "MR")]
    assert mr[0].text() == "modality MR; the model was trained on CT"
    # the chest radiograph: CR and MONOCHROME1, body part CHEST (matches)
    cr = _check(card, get_testdata_file("RG1_UNCR.dcm"))
    assert [(w.field, w.found) for w in cr] == [("modality", "CR")]
    # the radiograph of an extremity: modality and body part
    ext = _check(card, get_testdata_file("RG3_UNCR.dcm"))
    assert {(w.field, w.found) for w in ext} == {("modality", "CR"), ("body_part", "EXTREMITY")}
    # a colour secondary capture
    rgb = _check(card, get_testdata_file("SC_rgb.dcm"))
    assert {w.field for w in rgb} == {"modality", "photometric"}
    text = inputcheck.summary(rgb)
    assert "a colour image (RGB); the model was trained on greyscale images (MONOCHROME2)" in text
    # a head CT whose header names the body part
    head = tmp_path / "head.dcm"
    shutil.copy(get_testdata_file("J2K_pixelrep_mismatch.dcm"), head)
    assert [(w.field, w.found) for w in _check(card, head)] == [("body_part", "HEAD")]


def test_monochrome1_counts_only_when_the_card_keeps_raw_polarity(tmp_path):
    p = dicomgen.monochrome1(tmp_path / "cr.dcm")
    cr_card = {"modality": ["CR"], "photometric": ["MONOCHROME2"]}
    assert _check(_card(cr_card), p) == []   # shown inverted: the model sees MONOCHROME2 polarity
    raw = _check(_card(cr_card, monochrome1="raw"), p)
    assert [(w.field, w.found) for w in raw] == [("photometric", "MONOCHROME1")]


def test_plain_images_are_checked_for_colour_only(tmp_path):
    grey = dicomgen.plain_images(tmp_path / "grey", n=2)
    colour = dicomgen.plain_images(tmp_path / "colour", n=2, colour=True)
    assert _check(_card(), grey[0].parent) == []
    assert [w.field for w in _check(_card(), colour[0].parent)] == ["photometric"]


@pytest.mark.parametrize("trained_on", [{}, {"modality": ["CT"]}])
def test_unknown_training_values_are_not_checked(trained_on):
    card = _card(trained_on)
    assert inputcheck.check(card, photometric=["RGB"], body_part=["HEAD"]) == []
    assert inputcheck.check(card, modality=["", " "]) == []


def test_body_part_spelling_is_normalised():
    card = _card({"body_part": ["WHOLE BODY"]})
    assert inputcheck.check(card, body_part=["wholebody", "Whole_Body"]) == []
