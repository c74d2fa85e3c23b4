"""Disc heights, disc height index and AP length on the mid-sagittal plane.

Definitions (docs/methods.md):

- the endplate span runs from the posterior corners (mean AP position of C_PI
  and C_PS) to the anterior corners (C_AI, C_AS) of the adjacent bodies;
- anterior, middle and posterior disc heights are the gaps between the upper
  body's inferior endplate and the lower body's superior endplate, measured
  along the disc axis (perpendicular to the disc mid-plane) at the centres of
  the anterior, middle and posterior thirds of that span (Dabbs & Dabbs 1990
  measure anterior and posterior heights; the thirds keep all three off the
  rounded corners); each endplate's position there is a straight line fitted
  to its outline over the middle half of the third, not one column of the
  label staircase;
- AP length: the disc's extent along the level's AP axis on the same plane;
- disc height index (Farfan 1973): (anterior + posterior height) / AP length.

References
----------
Dabbs VM, Dabbs LG. "Correlation between disc height narrowing and low-back
pain." Spine 1990;15:1366-1369. doi:10.1097/00007632-199012000-00026

Farfan HF. Mechanical Disorders of the Low Back. Philadelphia: Lea & Febiger; 1973.
"""

from __future__ import annotations

import numpy as np

from .bulge import _near_disc, corner
from .planes import PlaneStack, contours

__all__ = ["plane_heights", "endplate_gap"]


def _crossing(profile: np.ndarray, coords: np.ndarray, level: float, from_top: bool) -> float:
    """Sub-sample coordinate where ``profile`` first crosses ``level`` scanning in one direction."""
    above = profile >= level
    if not above.any():
        return np.nan
    idx = np.flatnonzero(above)
    if from_top:
        # the body's lowest inside sample of its run nearest the disc: scan from bottom (low si) upwards
        j = idx[0]
        if j == 0:
            return coords[0]
        a, b = profile[j - 1], profile[j]
        return coords[j - 1] + (level - a) / (b - a) * (coords[j] - coords[j - 1])
    j = idx[-1]
    if j == len(profile) - 1:
        return coords[-1]
    a, b = profile[j], profile[j + 1]
    return coords[j] + (a - level) / (a - b) * (coords[j + 1] - coords[j])


def _endplate(profile: np.ndarray, si: np.ndarray, name: str) -> float:
    """SI position (mm) of body ``name``'s endplate facing the disc on one soft-mask column."""
    # only look at the part of each body on its own side of the disc centre
    if name == "upper":
        return _crossing(np.where(si > -2.0, profile, 0.0), si, 0.5, from_top=True)
    return _crossing(np.where(si < 2.0, profile, 0.0), si, 0.5, from_top=False)


def endplate_gap(stack: PlaneStack, k: int, ap_pos: float, *, min_gap_mm: float = 0.5,
                 half_window_mm: float = 0.0) -> float:
    """Gap (mm, along the disc axis) between the upper and lower body at AP position ``ap_pos`` on plane k.

    With ``half_window_mm`` > 0 each endplate's position at ``ap_pos`` is read off a straight
    line fitted (least squares, no trimming: the staircase's own steps are the information) to
    its 0.5 crossings in every sample column within that distance: a label outline is a
    staircase of voxel faces, and the line through it is closer to the true endplate than any
    one column (on the phantom from truth labels, max |error| of the heights 0.51 -> 0.37 mm;
    docs/methods.md).

    The bodies are read off their partial volume (``masks["upper_pv"]``, ``masks["lower_pv"]``)
    when the stack has it (:func:`~discmeasure.measurements.planes.sample_planes`), else off
    their labels.

    NaN where the two bodies come closer than ``min_gap_mm`` or no disc lies between them at
    that position: the segmentation is wrong there, and 0 mm would be reported as a disc height.
    """
    ap = stack.ap
    i = (ap_pos - ap[0]) / (ap[1] - ap[0])
    i0 = int(np.clip(np.floor(i), 0, len(ap) - 2))
    f = float(np.clip(i - i0, 0, 1))
    # the bodies' partial volume when the segmentation has it (sub-voxel faces), else the labels
    body = {name: stack.masks.get(f"{name}_pv", stack.masks[name]) for name in ("upper", "lower")}
    up = (1 - f) * body["upper"][k, i0] + f * body["upper"][k, i0 + 1]
    lo = (1 - f) * body["lower"][k, i0] + f * body["lower"][k, i0 + 1]
    si = stack.si
    s_up, s_lo = _endplate(up, si, "upper"), _endplate(lo, si, "lower")
    gap = float(s_up - s_lo)
    # the disc must lie between the two endplates there: bodies that touch (a nucleus taken
    # for marrow, a body grown over the disc) give no height, not a height of 0
    disc = (1 - f) * stack.masks["disc"][k, i0] + f * stack.masks["disc"][k, i0 + 1]
    inside = (si >= s_lo) & (si <= s_up)
    if not gap >= min_gap_mm or not (inside.any() and disc[inside].max() >= 0.5):
        return np.nan
    if half_window_mm <= 0:
        return gap
    cols = np.flatnonzero(np.abs(ap - ap_pos) <= half_window_mm)
    ends = []
    for name in ("upper", "lower"):
        s = np.array([_endplate(col, si, name) for col in body[name][k, cols]])
        ok = np.isfinite(s)
        u = ap[cols][ok] - ap_pos
        if len(u) < 4 or np.ptp(u) < 1.0:  # too few columns: the single column's crossing
            return gap
        ends.append(float(np.polyfit(u, s[ok], 1)[1]))
    fitted = float(ends[0] - ends[1])
    return fitted if fitted >= min_gap_mm else np.nan


def _area(c: np.ndarray) -> float:
    """Area enclosed by a contour (shoelace formula; an open contour is closed by its chord)."""
    x, y = c[:, 0], c[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _disc_pieces(disc_cs: list[np.ndarray], min_share: float = 0.1) -> list[np.ndarray]:
    """The disc's contours on a plane that hold at least ``min_share`` of the largest one's area.

    A disc can be cut in two on a plane (a bridge of body labels across it, an osteophyte, or a
    segmentation error): its AP length is the extent of its pieces, not of the longest one
    (sct_t2_lumbar, a moved copy: L2-L3 cut 10 mm from its back, 21.9 mm instead of 32-33 mm).
    Specks (< 10 % of the largest piece) are left out.
    """
    areas = [_area(c) for c in disc_cs]
    top = max(areas)
    return [c for c, a in zip(disc_cs, areas) if a >= min_share * top]


def plane_heights(stack: PlaneStack, k: int) -> dict[str, float]:
    """Heights, AP length and DHI on plane ``k`` (normally the mid-sagittal one)."""
    nan = dict(
        height_anterior_mm=np.nan,
        height_middle_mm=np.nan,
        height_posterior_mm=np.nan,
        dhi=np.nan,
        ap_length_mm=np.nan,
    )
    ap, si = stack.ap, stack.si
    disc_cs = contours(stack.masks["disc"][k], ap, si)
    if not disc_cs:
        return nan
    disc_pts = np.concatenate(disc_cs)
    up = _near_disc(contours(stack.masks["upper"][k], ap, si), disc_pts)
    lo = _near_disc(contours(stack.masks["lower"][k], ap, si), disc_pts)
    out = dict(nan)
    pieces = _disc_pieces(disc_cs)
    out["ap_length_mm"] = float(max(c[:, 0].max() for c in pieces) - min(c[:, 0].min() for c in pieces))
    if up is None or lo is None:
        return out
    a_post = 0.5 * (corner(up, (-1, -1))[0] + corner(lo, (-1, 1))[0])
    a_ant = 0.5 * (corner(up, (1, -1))[0] + corner(lo, (1, 1))[0])
    span = a_ant - a_post
    if span <= 0:
        return out
    out["endplate_span_ap_mm"] = (float(a_post), float(a_ant))
    # each endplate is a line fit over the middle half of its third (+-span/12)
    w = span / 12
    out["height_anterior_mm"] = endplate_gap(stack, k, a_ant - span / 6, half_window_mm=w)
    out["height_middle_mm"] = endplate_gap(stack, k, a_post + span / 2, half_window_mm=w)
    out["height_posterior_mm"] = endplate_gap(stack, k, a_post + span / 6, half_window_mm=w)
    if out["ap_length_mm"] > 0:
        out["dhi"] = (out["height_anterior_mm"] + out["height_posterior_mm"]) / out["ap_length_mm"]
    return out
