"""The one window specification parser (auto | header | CENTER,WIDTH) and where it is used."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file

from medviewer.engine.card import ModelCard
from medviewer.engine.preprocess import PreprocessSpec, plan
from medviewer.viewer.display import Window, WindowSpec, WindowSpecError, auto_window, meta_from_dataset
from medviewer.viewer.errors import ModelFileError


@pytest.mark.parametrize("value, expected", [
    ("auto", WindowSpec("auto")),
    ("HEADER", WindowSpec("header")),
    ("40,400", WindowSpec("fixed", 40.0, 400.0)),
    (" -600 , 1500 ", WindowSpec("fixed", -600.0, 1500.0)),
    ("40 400", WindowSpec("fixed", 40.0, 400.0)),
    ({"center": 40, "width": 400}, WindowSpec("fixed", 40.0, 400.0)),
    ((40, 400.5), WindowSpec("fixed", 40.0, 400.5)),
    (Window(10.0, 20.0), WindowSpec("fixed", 10.0, 20.0)),
])
def test_accepted_spellings(value, expected):
    assert WindowSpec.parse(value) == expected


@pytest.mark.parametrize("value, match", [
    ("40", "expected auto"), ("40,0", "width must be >= 1"), ("nan,400", "finite"),
    ("40,inf", "finite"), ("a,b", "must be numbers"), ({"center": 1}, "exactly"),
    ({"center": 1, "width": 2, "x": 3}, "exactly"), (None, "expected auto"), (42, "expected auto"),
    ((True, 400), "must be numbers"),
])
def test_rejected_spellings(value, match):
    with pytest.raises(WindowSpecError, match=match):
        WindowSpec.parse(value)


def test_card_json_round_trip_and_card_validation():
    for text in ("auto", "header", "40,400"):
        spec = WindowSpec.parse(text)
        assert WindowSpec.parse(spec.to_json()) == spec
        card = ModelCard(name="m", architecture="resnet18", classes=["a", "b"], window=spec.to_json())
        assert card.validate().window == spec.to_json()
    with pytest.raises(ModelFileError, match="card field 'window'"):
        ModelCard(name="m", architecture="resnet18", classes=["a", "b"], window={"center": 1, "width": 0}).validate()


def test_resolve_matches_the_display_pipeline_on_a_real_ct():
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    meta, px = meta_from_dataset(ds), ds.pixel_array
    assert WindowSpec.parse("auto").resolve(px, meta) == auto_window(px, meta)
    assert WindowSpec.parse("header").resolve(px, meta) is None
    w = WindowSpec.parse("40,400").resolve(px, meta)
    assert (w.center, w.width, w.function) == (40.0, 400.0, "LINEAR")
    # the preprocessing spec parses once; the plan applies the same window
    spec = PreprocessSpec(window={"center": 40, "width": 400})
    assert spec.window == WindowSpec("fixed", 40.0, 400.0)
    p = plan(px, meta, spec.window)
    assert (p.window.center, p.window.width) == (40.0, 400.0) and not p.colour
    assert math.isclose(p.affine(px)[0], 255.0 / 399.0 * float(ds.RescaleSlope))
    grey = p.grey8(px)
    a, b = p.affine(px)
    np.testing.assert_array_equal(grey, np.clip(np.rint(a * px.astype(np.float64) + b), 0, 255).astype(np.uint8))
