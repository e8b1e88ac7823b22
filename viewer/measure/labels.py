"""Where measurement labels go on screen (Qt-free): each label keeps its preferred
place beside its shape unless an earlier label of the same view already covers it;
then it moves to the nearest free place among rows stacked below and above the
preferred one, within the view.  Rectangles are (x, y, width, height) in screen
pixels, y downwards."""

from __future__ import annotations

from collections.abc import Sequence

Rect = tuple[float, float, float, float]

GAP = 2.0     # pixels kept between two labels


def overlaps(a: Rect, b: Rect, gap: float = GAP) -> bool:
    return (a[0] < b[0] + b[2] + gap and b[0] < a[0] + a[2] + gap
            and a[1] < b[1] + b[3] + gap and b[1] < a[1] + a[3] + gap)


def place_label(preferred: Rect, taken: Sequence[Rect], bounds: Rect, tries: int = 12) -> Rect:
    """The rectangle for a label: `preferred` when it is free, else the free
    candidate nearest to it (shifted by whole label heights down or up, also
    flipped to the left of its anchor), kept inside `bounds`; `preferred` when
    every candidate is taken (a crowded view: labels overlap rather than wander
    far from their shapes)."""
    x, y, w, h = preferred
    bx, by, bw, bh = bounds

    def inside(r: Rect) -> Rect:
        rx = min(max(r[0], bx), max(bx, bx + bw - r[2]))
        ry = min(max(r[1], by), max(by, by + bh - r[3]))
        return (rx, ry, r[2], r[3])

    first = inside(preferred)
    if not any(overlaps(first, t) for t in taken):
        return first
    step = h + GAP
    candidates = []
    for k in range(1, tries + 1):
        for dy in (k * step, -k * step):
            for dx in (0.0, -(w + 16.0)):
                candidates.append(inside((x + dx, y + dy, w, h)))
    candidates.sort(key=lambda r: abs(r[0] - first[0]) + abs(r[1] - first[1]))
    for cand in candidates:
        if not any(overlaps(cand, t) for t in taken):
            return cand
    return first
