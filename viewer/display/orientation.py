"""Patient orientation of images, stacks and reformats (Qt-free, pure math).

DICOM patient coordinates are LPS (PS3.3 C.7.6.2.1.1): +x towards the
patient's Left, +y Posterior, +z Head.  Image Orientation (Patient) (0020,0037)
holds the direction cosines of the first row (the direction in which column
indices grow, left -> right on screen) and of the first column (row indices
grow, top -> bottom).  Everything here takes such direction vectors, so the
same functions label acquired slices and any reformatted or oblique plane.

* `direction_letters(v)`: the letters of a direction, dominant axis first,
  as Patient Orientation (0020,0020) is written (PS3.3 C.7.6.1.1.1) and as
  David Clunie's algorithm used by OHIF/Cornerstone and Weasis produces them.
* `edge_labels(row_dir, col_dir)`: the letters on the four image edges
  (`patient_orientation_labels` for images that only carry Patient Orientation).
* `plane_kind(normal)`: axial / coronal / sagittal by the dominant axis.
* `stack_direction(normal)`: the one display order of stacks -- axial from
  head to feet, coronal anterior to posterior, sagittal patient right to left.
* `slice_location(position, orientation)`: the position shown in the corner:
  the coordinate of Image Position (Patient) along the patient axis that the
  slice normal is closest to (z for axial), not the projection on the normal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Vec = tuple[float, float, float]

AXES = ("x", "y", "z")
#: letter for the positive / negative direction of each LPS axis (PS3.3 C.7.6.1.1.1)
POSITIVE_LETTERS = ("L", "P", "H")
NEGATIVE_LETTERS = ("R", "A", "F")
PLANE_KINDS = ("sagittal", "coronal", "axial")  # plane whose normal is x, y, z
#: the way each kind of stack is shown: index 0 first, growing along this vector
STACK_DIRECTIONS: dict[str, Vec] = {
    "axial": (0.0, 0.0, -1.0),      # superior (head) first, towards the feet
    "coronal": (0.0, 1.0, 0.0),     # anterior first, towards posterior
    "sagittal": (1.0, 0.0, 0.0),    # patient right first, towards the left
}
MIN_COMPONENT = 1e-4  # components below this are rounding noise, not obliquity


def _unit(v: Sequence[float]) -> Vec | None:
    x, y, z = (float(c) for c in v[:3])
    n = math.sqrt(x * x + y * y + z * z)
    if not math.isfinite(n) or n < 1e-9:
        return None
    return (x / n, y / n, z / n)


def cross(a: Sequence[float], b: Sequence[float]) -> Vec:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(a[0] * b[0] + a[1] * b[1] + a[2] * b[2])


def slice_normal(orientation: Sequence[float]) -> Vec | None:
    """Unit normal row x column of six direction cosines (PS3.3 C.7.6.2.1.1), or None."""
    if len(orientation) < 6:
        return None
    return _unit(cross(orientation[:3], orientation[3:6]))


def dominant_axis(v: Sequence[float]) -> int:
    """0, 1 or 2: the patient axis with the largest |component| (ties: x before y before z)."""
    mags = [abs(float(c)) for c in v[:3]]
    return max(range(3), key=lambda i: (mags[i], -i))


def direction_letters(v: Sequence[float], max_letters: int = 3,
                      min_component: float = MIN_COMPONENT) -> str:
    """Letters of a direction in LPS, largest component first ('' for a null vector).

    (1, 0, 0) -> 'L'; (0, 0.5, -0.87) -> 'FP'.  Components under `min_component`
    are ignored; `max_letters=1` gives the dominant direction only.
    """
    u = _unit(v)
    if u is None:
        return ""
    order = sorted(range(3), key=lambda i: (-abs(u[i]), i))
    out = []
    for i in order[:max(1, max_letters)]:
        if abs(u[i]) <= min_component:
            break
        out.append(POSITIVE_LETTERS[i] if u[i] > 0 else NEGATIVE_LETTERS[i])
    return "".join(out)


def opposite(v: Sequence[float]) -> Vec:
    return (-float(v[0]), -float(v[1]), -float(v[2]))


@dataclass(frozen=True)
class EdgeLabels:
    """Orientation letters shown at the middle of each image edge."""

    left: str
    right: str
    top: str
    bottom: str

    def as_dict(self) -> dict[str, str]:
        return {"left": self.left, "right": self.right, "top": self.top, "bottom": self.bottom}


def edge_labels(row_dir: Sequence[float], col_dir: Sequence[float], max_letters: int = 3,
                min_component: float = MIN_COMPONENT) -> EdgeLabels:
    """Letters for the four edges of an image whose columns grow along `row_dir`
    and whose rows grow along `col_dir` (Image Orientation (Patient) split in two).

    The right edge is where the row direction points, the bottom edge where the
    column direction points; the other two are their opposites.
    """
    def letters(v: Sequence[float]) -> str:
        return direction_letters(v, max_letters, min_component)

    return EdgeLabels(left=letters(opposite(row_dir)), right=letters(row_dir),
                      top=letters(opposite(col_dir)), bottom=letters(col_dir))


def image_edge_labels(orientation: Sequence[float] | None, max_letters: int = 3,
                      min_component: float = MIN_COMPONENT) -> EdgeLabels | None:
    """`edge_labels` from six Image Orientation (Patient) values; None when absent/invalid."""
    if orientation is None or len(orientation) < 6:
        return None
    row, col = _unit(orientation[:3]), _unit(orientation[3:6])
    if row is None or col is None:
        return None
    return edge_labels(row, col, max_letters, min_component)


_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}


def patient_orientation_labels(value: Sequence[str] | str | None) -> EdgeLabels | None:
    """Edge letters from Patient Orientation (0020,0020), the row and column directions
    as letters (PS3.3 C.7.6.1.1.1, e.g. 'L\\F' on a chest radiograph): what projection
    images without Image Orientation (Patient) carry.  None when absent or malformed."""
    if value is None:
        return None
    parts = value.split("\\") if isinstance(value, str) else [str(v) for v in value]
    if len(parts) != 2:
        return None
    row, col = (p.strip().upper() for p in parts)
    if not row or not col or any(c not in _OPPOSITE for c in row + col):
        return None

    def flip(letters: str) -> str:
        return "".join(_OPPOSITE[c] for c in letters)

    return EdgeLabels(left=flip(row), right=row, top=flip(col), bottom=col)


def plane_kind(normal: Sequence[float]) -> str:
    """'axial', 'coronal' or 'sagittal': the plane the normal's dominant axis names."""
    return PLANE_KINDS[dominant_axis(normal)]


def obliquity_deg(normal: Sequence[float]) -> float:
    """Angle in degrees between the normal and the patient axis it is closest to."""
    u = _unit(normal)
    if u is None:
        return 0.0
    return math.degrees(math.acos(min(1.0, abs(u[dominant_axis(u)]))))


def stack_direction(normal: Sequence[float]) -> Vec:
    """The display direction of a stack of slices with this normal: the patient axis
    the normal is closest to, signed by the convention (`STACK_DIRECTIONS`)."""
    return STACK_DIRECTIONS[plane_kind(normal)]


def stack_sign(normal: Sequence[float]) -> float:
    """+1 when slices in display order advance along `normal`, -1 when against it."""
    return 1.0 if dot(normal, stack_direction(normal)) > 0 else -1.0


@dataclass(frozen=True)
class SliceLocation:
    """Where a slice lies along the patient axis it is closest to."""

    axis: int      # 0 x, 1 y, 2 z
    mm: float      # that coordinate of Image Position (Patient)

    @property
    def axis_name(self) -> str:
        return AXES[self.axis]

    @property
    def letter(self) -> str:
        """The side of the patient origin the slice lies on (L/R, P/A, H/F)."""
        if self.mm == 0:
            return ""
        return POSITIVE_LETTERS[self.axis] if self.mm > 0 else NEGATIVE_LETTERS[self.axis]

    def text(self, decimals: int = 2) -> str:
        """'27.00 mm' style text for overlays (no '-0.00')."""
        return f"{round(self.mm, decimals) + 0.0:.{decimals}f} mm"


def slice_location(position: Sequence[float] | None,
                   orientation: Sequence[float] | None) -> SliceLocation | None:
    """Location of a slice for display: Image Position (Patient) (0020,0032) along the
    patient axis closest to the slice normal -- z for an axial slice, y for coronal,
    x for sagittal.  Unlike the projection on the normal (whose sign follows the
    row/column directions), it reads the same for a CT and an MR at one level."""
    if position is None or orientation is None or len(position) < 3:
        return None
    n = slice_normal(orientation)
    if n is None:
        return None
    try:
        pos = [float(v) for v in position[:3]]
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in pos):
        return None
    axis = dominant_axis(n)
    return SliceLocation(axis, pos[axis])
