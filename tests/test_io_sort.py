"""Display order of slices (viewer.io.sort): geometry, Instance Number, natural names."""

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
    infos = [_info("a", 5.0, 1), _info("b", -5.0, 3), _info("c", 0.0, 2)]
    assert _names(sort_slices(infos)) == ["b", "c", "a"]


def test_tilted_gantry_sorted_along_tilted_normal() -> None:
    t = math.radians(25)
    ori = (1.0, 0.0, 0.0, 0.0, math.cos(t), math.sin(t))
    # positions step along z; projection on the tilted normal is still monotonic
    infos = [_info(f"s{k}", z, 10 - k, ori) for k, z in enumerate([6.0, -3.0, 0.0, 3.0])]
    assert _names(sort_slices(infos)) == ["s1", "s2", "s3", "s0"]


def test_sagittal_positions_sorted_by_x() -> None:
    ori = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # normal -x
    infos = [SliceInfo(ImageRef(Path(f"/s/{n}")), (x, 0.0, 0.0), ori, None)
             for n, x in [("l", 10.0), ("m", 0.0), ("r", -10.0)]]
    assert _names(sort_slices(infos)) == ["l", "m", "r"]  # ascending along -x


def test_missing_position_falls_back_to_instance_number() -> None:
    infos = [_info("a", 1.0, 3), _info("b", None, 1), _info("c", 2.0, 2)]
    assert _names(sort_slices(infos)) == ["b", "c", "a"]


def test_non_parallel_orientations_fall_back_to_instance_number() -> None:
    cor = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
    infos = [_info("a", 1.0, 2), _info("b", 0.0, 3, cor), _info("c", 2.0, 1)]
    assert _names(sort_slices(infos)) == ["c", "a", "b"]


def test_no_geometry_no_instance_uses_natural_names() -> None:
    infos = [_info("IM10", None), _info("IM2", None), _info("IM1", None)]
    assert _names(sort_slices(infos)) == ["IM1", "IM2", "IM10"]


def test_same_position_ties_broken_by_instance_then_frame() -> None:
    infos = [_info("a", 0.0, 2), _info("b", 0.0, 1), _info("c", -1.0, 9)]
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
