"""Display order of slices (viewer.io.sort): geometry in the stack convention
(axial head to feet, coronal anterior to posterior, sagittal right to left),
then Instance Number, then natural names."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydicom import Dataset

from medviewer.viewer.io.model import ImageRef
from medviewer.viewer.io.sort import SliceInfo, frame_geometry, natural_key, normal, sort_slices

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _info(name: str, z: float | None, inst: int | None = None, ori=AXIAL, frame=None) -> SliceInfo:
    pos = None if z is None else (0.0, 0.0, z)
    return SliceInfo(ImageRef(Path("/s") / name, frame), pos, ori, inst)


def _names(refs: list[ImageRef]) -> list[str]:
    return [r.path.name for r in refs]


def test_natural_key_orders_numbers_by_value() -> None:
    names = ["IM10", "im2", "IM1", "IM100", "IM9b", "IM9a"]
    assert sorted(names, key=natural_key) == ["IM1", "im2", "IM9a", "IM9b", "IM10", "IM100"]


@pytest.mark.parametrize("orientation, expected", [
    (AXIAL, (0.0, 0.0, 1.0)),
    ((0.0, 1.0, 0.0, 0.0, 0.0, -1.0), (-1.0, 0.0, 0.0)),   # sagittal
    ((1.0, 0.0, 0.0, 0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),    # coronal
])
def test_normal_is_row_cross_column(orientation, expected) -> None:
    assert normal(orientation) == pytest.approx(expected)


def test_geometry_beats_instance_number_and_names() -> None:
    # axial stacks run from head to feet: z descending
    infos = [_info("a", 5.0, 3), _info("b", -5.0, 1), _info("c", 0.0, 2)]
    assert _names(sort_slices(infos)) == ["a", "c", "b"]


@pytest.mark.parametrize("orientation", [
    AXIAL,                                   # CT, head first supine: normal +z
    (1.0, 0.0, 0.0, 0.0, -1.0, 0.0),         # rows flipped: normal -z
    (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0),         # columns flipped (eCT_Supplemental): normal -z
    (0.0, 1.0, 0.0, 1.0, 0.0, 0.0),          # transposed: normal -z
])
def test_axial_stacks_scroll_head_to_feet_whatever_the_normal(orientation) -> None:
    """A CT and an MR of one study scroll the same way whatever their row/column
    directions or instance numbers (issue: they scrolled in opposite directions)."""
    zs = [-30.0, 27.0, 0.0, -2.5, 12.0]
    infos = [_info(f"z{z:+}", z, k + 1, orientation) for k, z in enumerate(zs)]
    assert _names(sort_slices(infos)) == [f"z{z:+}" for z in sorted(zs, reverse=True)]


def test_tilted_gantry_sorted_along_tilted_normal() -> None:
    t = math.radians(25)
    ori = (1.0, 0.0, 0.0, 0.0, math.cos(t), math.sin(t))
    # positions step along z; projection on the tilted normal is still monotonic
    infos = [_info(f"s{k}", z, 10 - k, ori) for k, z in enumerate([6.0, -3.0, 0.0, 3.0])]
    assert _names(sort_slices(infos)) == ["s0", "s3", "s2", "s1"]  # superior first


@pytest.mark.parametrize("orientation", [
    (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),   # normal -x
    (0.0, -1.0, 0.0, 0.0, 0.0, -1.0),  # normal +x
])
def test_sagittal_stacks_run_from_patient_right_to_left(orientation) -> None:
    infos = [SliceInfo(ImageRef(Path(f"/s/{n}")), (x, 0.0, 0.0), orientation, None)
             for n, x in [("l", 10.0), ("m", 0.0), ("r", -10.0)]]
    assert _names(sort_slices(infos)) == ["r", "m", "l"]  # -x (right) first


@pytest.mark.parametrize("orientation", [
    (1.0, 0.0, 0.0, 0.0, 0.0, -1.0),   # normal +y
    (-1.0, 0.0, 0.0, 0.0, 0.0, -1.0),  # normal -y
])
def test_coronal_stacks_run_from_anterior_to_posterior(orientation) -> None:
    infos = [SliceInfo(ImageRef(Path(f"/s/{n}")), (0.0, y, 0.0), orientation, None)
             for n, y in [("p", 40.0), ("a", -40.0), ("m", 0.0)]]
    assert _names(sort_slices(infos)) == ["a", "m", "p"]  # -y (anterior) first


def test_oblique_stack_follows_its_dominant_axis() -> None:
    # MR2 of pydicom-data: rows (0.57, 0.82, 0), columns -z -> normal (-0.82, 0.57, 0),
    # an oblique sagittal: shown from patient right (smaller x) to left
    ori = (0.569486, 0.822001, 0.0, 0.0, 0.0, -1.0)
    n = normal(ori)
    assert n is not None and abs(n[0]) > abs(n[1])
    positions = {f"s{k}": tuple(t * c for c in n) for k, t in enumerate([5.0, -5.0, 0.0])}
    infos = [SliceInfo(ImageRef(Path(f"/s/{name}")), p, ori, None) for name, p in positions.items()]
    xs = {name: p[0] for name, p in positions.items()}
    order = _names(sort_slices(infos))
    assert [xs[name] for name in order] == sorted(xs.values())  # right (smaller x) first


def test_missing_position_falls_back_to_instance_number() -> None:
    infos = [_info("a", 1.0, 3), _info("b", None, 1), _info("c", 2.0, 2)]
    assert _names(sort_slices(infos)) == ["b", "c", "a"]  # no geometry: no convention either


def test_non_parallel_orientations_fall_back_to_instance_number() -> None:
    cor = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    infos = [_info("a", 1.0, 2), _info("b", 0.0, 3, cor), _info("c", 2.0, 1)]
    assert _names(sort_slices(infos)) == ["c", "a", "b"]


def test_no_geometry_no_instance_uses_natural_names() -> None:
    infos = [_info("IM10", None), _info("IM2", None), _info("IM1", None)]
    assert _names(sort_slices(infos)) == ["IM1", "IM2", "IM10"]


def test_same_position_ties_broken_by_instance_then_frame() -> None:
    infos = [_info("a", 0.0, 2), _info("b", 0.0, 1), _info("c", 1.0, 9)]
    assert _names(sort_slices(infos)) == ["c", "b", "a"]


def test_frame_geometry_per_frame_then_shared() -> None:
    ds = Dataset()
    shared, po = Dataset(), Dataset()
    po.ImageOrientationPatient = list(AXIAL)
    shared.PlaneOrientationSequence = [po]
    ds.SharedFunctionalGroupsSequence = [shared]
    per = []
    for z in (3.0, 1.0):
        item, pp = Dataset(), Dataset()
        pp.ImagePositionPatient = [0, 0, z]
        item.PlanePositionSequence = [pp]
        per.append(item)
    ds.PerFrameFunctionalGroupsSequence = per
    geo = frame_geometry(ds, 2)
    assert [g[0] for g in geo] == [(0.0, 0.0, 3.0), (0.0, 0.0, 1.0)]
    assert all(g[1] == AXIAL for g in geo)
