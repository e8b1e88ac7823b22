"""Orientation letters, plane kinds, stack direction and slice location
(viewer.display.orientation), against PS3.3 C.7.6.1.1.1 / C.7.6.2.1.1."""

from __future__ import annotations

import math

import pydicom
import pytest
from pydicom.data import get_testdata_file

from medviewer.viewer.display.orientation import (
    direction_letters, edge_labels, image_edge_labels, obliquity_deg, plane_kind, slice_location,
    slice_normal, stack_direction, stack_sign)

# (Image Orientation (Patient), expected left, right, top, bottom)
AXIS_ALIGNED = [
    # axial, head-first supine: patient right on the image left, anterior at the top
    ((1, 0, 0, 0, 1, 0), ("R", "L", "A", "P")),
    # axial seen from above / feet-first prone style: rows run right->left
    ((-1, 0, 0, 0, 1, 0), ("L", "R", "A", "P")),
    # axial with posterior at the top
    ((1, 0, 0, 0, -1, 0), ("R", "L", "P", "A")),
    # coronal: patient right on the left, head at the top
    ((1, 0, 0, 0, 0, -1), ("R", "L", "H", "F")),
    # sagittal: anterior on the left, head at the top
    ((0, 1, 0, 0, 0, -1), ("A", "P", "H", "F")),
    # sagittal seen from the other side, feet at the top
    ((0, -1, 0, 0, 0, 1), ("P", "A", "F", "H")),
]


@pytest.mark.parametrize("iop, expected", AXIS_ALIGNED)
def test_edge_letters_of_axis_aligned_images(iop, expected) -> None:
    labels = image_edge_labels(iop)
    assert labels is not None
    assert (labels.left, labels.right, labels.top, labels.bottom) == expected


@pytest.mark.parametrize("iop, kind", [
    ((1, 0, 0, 0, 1, 0), "axial"), ((1, 0, 0, 0, 0, -1), "coronal"),
    ((0, 1, 0, 0, 0, -1), "sagittal"), ((-1, 0, 0, 0, 1, 0), "axial"),
])
def test_plane_kind_from_normal(iop, kind) -> None:
    n = slice_normal(iop)
    assert n is not None and plane_kind(n) == kind and obliquity_deg(n) == pytest.approx(0.0)


def test_oblique_letters_dominant_first_then_secondary() -> None:
    t = math.radians(30)
    # a coronal plane tilted 30 degrees towards axial: columns run mostly to the feet,
    # partly to the back
    col = (0.0, math.sin(t), -math.cos(t))
    assert direction_letters(col) == "FP"
    assert direction_letters(col, max_letters=1) == "F"
    assert direction_letters((0.0, -math.sin(t), math.cos(t))) == "HA"
    # three components, largest first (Clunie's algorithm, as OHIF/Cornerstone)
    v = (0.3, -0.5, 0.81)
    assert direction_letters(v) == "HAL"
    # rounding noise is not obliquity
    assert direction_letters((1.0, 1e-6, -1e-7)) == "L"
    assert direction_letters((0.0, 0.0, 0.0)) == ""


def test_tilted_gantry_letters_and_real_oblique_mr() -> None:
    # CT with 20 degree gantry tilt (columns rotated about x)
    t = math.radians(20)
    labels = edge_labels((1, 0, 0), (0, math.cos(t), math.sin(t)))
    assert (labels.left, labels.right, labels.top, labels.bottom) == ("R", "L", "AF", "PH")
    # pydicom-data MR2_UNCR.dcm: an oblique sagittal, rows (0.57, 0.82, 0), columns -z
    ds = pydicom.dcmread(get_testdata_file("MR2_UNCR.dcm"), stop_before_pixels=True)
    labels = image_edge_labels([float(v) for v in ds.ImageOrientationPatient])
    assert labels is not None
    assert labels.as_dict() == {"left": "AR", "right": "PL", "top": "H", "bottom": "F"}
    n = slice_normal([float(v) for v in ds.ImageOrientationPatient])
    assert n is not None and plane_kind(n) == "sagittal"
    assert obliquity_deg(n) == pytest.approx(math.degrees(math.acos(0.822001)), abs=0.01)


def test_real_enhanced_ct_with_reversed_rows() -> None:
    # eCT_Supplemental.dcm: Image Orientation (-1, 0, 0, 0, 1, 0) -- patient left on the image left
    ds = pydicom.dcmread(get_testdata_file("eCT_Supplemental.dcm"), stop_before_pixels=True)
    iop = [float(v) for v in
           ds.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0].ImageOrientationPatient]
    labels = image_edge_labels(iop)
    assert labels is not None and (labels.left, labels.right, labels.top, labels.bottom) == (
        "L", "R", "A", "P")


@pytest.mark.parametrize("normal, direction", [
    ((0, 0, 1), (0, 0, -1)), ((0, 0, -1), (0, 0, -1)),      # axial: head to feet
    ((0, 1, 0), (0, 1, 0)), ((0, -1, 0), (0, 1, 0)),        # coronal: anterior to posterior
    ((1, 0, 0), (1, 0, 0)), ((-1, 0, 0), (1, 0, 0)),        # sagittal: right to left
    ((0.1, 0.2, 0.97), (0, 0, -1)),                         # oblique axial
])
def test_stack_direction_convention(normal, direction) -> None:
    assert stack_direction(normal) == direction
    assert stack_sign(normal) == (1.0 if sum(a * b for a, b in zip(normal, direction)) > 0 else -1.0)


def test_slice_location_is_the_patient_coordinate_not_the_projection() -> None:
    # the MR: axial at z = +27 mm with rows flipped (normal -z) read "-27.00"
    loc = slice_location((10.0, -40.0, 27.0), (1, 0, 0, 0, -1, 0))
    assert loc is not None and (loc.axis_name, loc.mm, loc.letter) == ("z", 27.0, "H")
    assert loc.text() == "27.00 mm"
    assert slice_location((10.0, -40.0, 27.0), (1, 0, 0, 0, 1, 0)).mm == 27.0  # CT: the same
    cor = slice_location((-100.0, -12.5, 80.0), (1, 0, 0, 0, 0, -1))
    assert cor is not None and (cor.axis_name, cor.mm, cor.letter) == ("y", -12.5, "A")
    sag = slice_location((33.0, -100.0, 80.0), (0, 1, 0, 0, 0, -1))
    assert sag is not None and (sag.axis_name, sag.mm, sag.letter) == ("x", 33.0, "L")
    assert slice_location((0.0, 0.0, -0.001), (1, 0, 0, 0, 1, 0)).text() == "0.00 mm"
    assert slice_location(None, (1, 0, 0, 0, 1, 0)) is None
    assert slice_location((0, 0, 1), (1, 0, 0, 1, 0, 0)) is None  # degenerate orientation
