"""Posterior disc bulge dimension.

Definition (docs/methods.md): on each sagittal plane within a band around the
canal midline, the baseline joins C_PI, the posterior-inferior corner of the
upper vertebral body, and C_PS, the posterior-superior corner of the lower one.
The bulge is the largest signed distance of the disc's posterior boundary from
that baseline, positive towards the canal (negative when the disc stays inside
the line). The level's value is the maximum over the band; the mid-sagittal
value is reported too.

The corner of a vertebral body's outline (:func:`wall_corner`) is the
intersection of two straight lines fitted to the outline next to the corner:
the posterior wall and the endplate, each over 3-9 mm from the corner. This is
where a reader places the corner ("the junction of the posterior wall and the
endplate") and, unlike the outline point farthest along the diagonal, it does
not move when a segmentation rounds or chamfers the corner by a millimetre or
two (a partial-volume effect of the dark cortex next to the dark annulus). The
diagonal support point (:func:`corner`) seeds the fit and is the fallback where
the wall or the endplate is too short to fit.

References
----------
Fardon DF, Williams AL, Dohring EJ, Murtagh FR, Gabriel Rothman SL, Sze GK.
"Lumbar disc nomenclature: version 2.0." Spine J 2014;14:2525-2545.
doi:10.1016/j.spinee.2014.04.022

Lorensen WE, Cline HE. "Marching cubes: a high resolution 3D surface
construction algorithm." SIGGRAPH 1987;21:163-169. doi:10.1145/37402.37422
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .edges import refine_edge
from .planes import PlaneStack, contours

__all__ = ["PlaneBulge", "corner", "wall_corner", "wall_corner_and_wall", "plausible_baseline", "listhesis_offset", "plane_bulge",
           "band_bulge"]


@dataclass
class PlaneBulge:
    """Bulge on one sagittal plane (plane coordinates (ap, si) in mm)."""

    lr: float
    bulge_mm: float
    c_pi: np.ndarray  # (ap, si)
    c_ps: np.ndarray
    point: np.ndarray  # disc boundary point of the maximum (ap, si)
    plausible: bool = True  # baseline passes :func:`plausible_baseline` (or :func:`listhesis_offset`)
    listhesis_mm: float | None = None  # wall offset when the baseline is steep because of a listhesis


def corner(outline: np.ndarray, direction) -> np.ndarray:
    """Support point of ``outline`` (N, 2) in ``direction``: the outline point farthest along it."""
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    return outline[int(np.argmax(outline @ d))]


def _fit_line(u: np.ndarray, v: np.ndarray) -> tuple[float, float] | None:
    """Least-squares ``v = a + b u`` with one pass of outlier trimming (> 2.5 robust SD); None if < 4 points."""
    if len(u) < 4 or np.ptp(u) < 1.0:
        return None
    b, a = np.polyfit(u, v, 1)
    r = v - (a + b * u)
    mad = 1.4826 * np.median(np.abs(r - np.median(r)))
    keep = np.abs(r) <= max(2.5 * mad, 0.2)
    if keep.sum() >= 4 and not keep.all():
        b, a = np.polyfit(u[keep], v[keep], 1)
    return float(a), float(b)


def wall_corner(outline: np.ndarray, vertical: int, *, near_mm: float = 3.0, far_mm: float = 9.0,
                max_shift_mm: float = 3.0, refine=None) -> np.ndarray:
    """Posterior corner of a vertebral body outline (see :func:`wall_corner_and_wall`)."""
    return wall_corner_and_wall(outline, vertical, near_mm=near_mm, far_mm=far_mm, max_shift_mm=max_shift_mm,
                                refine=refine)[0]


def wall_corner_and_wall(outline: np.ndarray, vertical: int, *, near_mm: float = 3.0, far_mm: float = 9.0,
                         max_shift_mm: float = 3.0, refine=None):
    """Posterior corner of a vertebral body outline: posterior wall x endplate line intersection.

    Parameters
    ----------
    outline : (N, 2) array
        Outline points (ap, si) in mm; posterior is -ap.
    vertical : {-1, +1}
        -1 for the posterior-inferior corner (C_PI, the upper body's lower endplate),
        +1 for the posterior-superior corner (C_PS, the lower body's upper endplate).
    near_mm, far_mm : float
        The wall and the endplate are fitted over this distance range from the corner, leaving
        out the corner's own rounding.
    max_shift_mm : float
        The fitted corner must lie within this distance of the support point, and not inside
        the body (more than 0.5 mm against the outward diagonal); otherwise the support point
        is returned.
    refine : callable, optional
        ``refine(points, direction) -> (points, moved)``, e.g. :func:`~.edges.refine_edge` on the
        plane's image: the posterior wall's points are moved onto the image edge (direction
        -ap) before the wall line is fitted, when the run of points can be trusted
        (:func:`_consistent_shift`: the label outline runs parallel to the edge, or
        :func:`_straightened`: a jagged outline became a straight wall).

    Returns
    -------
    (2,) array
        The corner (ap, si). Falls back to the diagonal support point (:func:`corner`)
        when a side has too few points, the lines are nearly parallel or the fit is implausible
        (see ``max_shift_mm``).
    wall : (a, b) or None
        The wall line ``ap = a + b si`` when the corner is the fitted junction, None when it is
        the support point.

    Notes
    -----
    The corner of the two fitted lines is the "junction of the posterior wall and the endplate"
    of manual protocols (Fardon et al. 2014; the posterior vertebral line of the Dabbs/Farfan
    disc-height methods). Lines: posterior wall ``ap = a1 + b1 si`` from the most posterior
    outline points of the rows 3-9 mm away from the corner along the wall; endplate
    ``si = a2 + b2 ap`` from the outline points nearest the disc in the columns 3-9 mm anterior
    of the corner.
    """
    seed = corner(outline, (-1.0, float(vertical)))
    ap, si = outline[:, 0], outline[:, 1]
    # posterior wall: rows away from the corner on the body's side (opposite to the disc)
    d_si = (si - seed[1]) * (-vertical)
    w = (d_si >= near_mm) & (d_si <= far_mm) & (ap <= seed[0] + near_mm)
    wall = None
    if w.any():
        rows = np.round(si[w] / 0.25)
        u_si, inv = np.unique(rows, return_inverse=True)
        post = np.full(len(u_si), np.inf)
        np.minimum.at(post, inv, ap[w])
        rows_si = u_si * 0.25
        if refine is not None:
            moved_pts, moved = refine(np.column_stack([post, rows_si]), (-1.0, 0.0))
            if _consistent_shift(moved_pts[:, 0] - post, moved) or _straightened(rows_si, post, moved_pts[:, 0], moved):
                post, rows_si = moved_pts[moved, 0], rows_si[moved]
        wall = _fit_line(rows_si, post)
    # endplate: columns anterior of the corner, the outline point nearest the disc
    d_ap = ap - seed[0]
    e = (d_ap >= near_mm) & (d_ap <= far_mm) & (d_si <= near_mm) & (d_si >= -near_mm)
    plate = None
    if e.any():
        cols = np.round(ap[e] / 0.25)
        u_ap, inv = np.unique(cols, return_inverse=True)
        ext = np.full(len(u_ap), -np.inf)
        np.maximum.at(ext, inv, si[e] * vertical)  # nearest the disc: lowest si (C_PI) / highest (C_PS)
        plate = _fit_line(u_ap * 0.25, ext * vertical)
    fallback = (seed, None)
    if wall is None or plate is None:
        return fallback
    a1, b1 = wall
    a2, b2 = plate
    den = 1.0 - b1 * b2
    if abs(den) < 0.2:  # nearly parallel: no well-defined corner
        return fallback
    s_c = (a2 + b2 * a1) / den
    a_c = a1 + b1 * s_c
    pt = np.array([a_c, s_c])
    # the wall/endplate junction lies outside a rounded or chamfered outline, along the outward
    # diagonal from the support point, within a few mm; a fit that lands inside the body or far
    # away was misled (a lateral plane cutting the wall obliquely, a short or curved side)
    d = pt - seed
    if d @ (np.array([-1.0, float(vertical)]) / np.sqrt(2.0)) < -0.5 or np.linalg.norm(d) > max_shift_mm:
        return fallback
    return pt, wall


def _consistent_shift(shift: np.ndarray, moved: np.ndarray, *, min_share: float = 0.75,
                      max_spread_mm: float = 0.35, min_points: int = 4) -> bool:
    """Whether an image-edge refinement of a run of outline points can be trusted.

    The label outline and the image edge must run parallel: most points (``min_share``) found
    an edge, and their shifts agree within ``max_spread_mm`` (robust SD; a label map's own
    jitter against a straight edge is within half a voxel). A label outline that crosses the
    edge, or edges found only here and there (a dark ligament between the structure and the
    bright fluid on a real scan), leave the label outline as it is.
    """
    if moved.sum() < min_points or moved.mean() < min_share:
        return False
    s = shift[moved]
    return bool(1.4826 * np.median(np.abs(s - np.median(s))) <= max_spread_mm)


def _line_spread(u: np.ndarray, v: np.ndarray) -> float:
    """Robust SD (mm) of ``v`` about its least-squares line in ``u``."""
    r = v - np.polyval(np.polyfit(u, v, 1), u)
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def _straightened(u: np.ndarray, before: np.ndarray, after: np.ndarray, moved: np.ndarray, *,
                  min_share: float = 0.75, max_spread_mm: float = 0.2, min_points: int = 4) -> bool:
    """Whether an image-edge refinement turned a jagged label outline of a straight wall straight.

    The second way (after :func:`_consistent_shift`) a wall's refinement is trusted: most points
    (``min_share``) found an edge and the moved points lie on a line within ``max_spread_mm``
    (robust SD), closer to one than the label outline's points were. A label map on coarse
    pixels (about 1 mm) or drawn by the automatic segmentation runs in steps and bumps of
    +-0.5 mm along a straight posterior wall, so the shifts onto the wall's edge vary by as
    much; edges found on two different fronts (bone and, further back, CSF) scatter instead.
    """
    if moved.sum() < min_points or moved.mean() < min_share or np.ptp(u[moved]) < 1.0:
        return False
    spread = _line_spread(u[moved], after[moved])
    return spread <= max_spread_mm and spread < _line_spread(u[moved], before[moved])


def _largest(cs: list[np.ndarray]) -> np.ndarray | None:
    if not cs:
        return None
    return max(cs, key=len)


def _near_disc(cs: list[np.ndarray], disc_pts: np.ndarray) -> np.ndarray | None:
    """The body outline closest to the disc (a body can show several islands on a lateral plane)."""
    if not cs:
        return None
    if disc_pts is None or not len(disc_pts):
        return _largest(cs)
    centre = disc_pts.mean(axis=0)

    def score(c):
        return np.min(np.linalg.norm(c - centre, axis=1)) - 0.01 * len(c)

    return min(cs, key=score)


def plausible_baseline(c_pi: np.ndarray, c_ps: np.ndarray, *, max_tilt_deg: float = 40.0, min_gap_mm: float = 1.5) -> bool:
    """Whether a baseline C_PI -> C_PS can be a disc's posterior baseline.

    C_PS must lie at least ``min_gap_mm`` below C_PI along the level's SI axis, and the line must
    run within ``max_tilt_deg`` of that axis. A segmentation whose bodies creep over the disc's
    posterior rim puts both corners at one height: the "baseline" then runs front to back and the
    distance "behind" it is meaningless. Such planes are left out (QC flag in ``measure``)
    instead of reporting a number.
    """
    base = np.asarray(c_ps, float) - np.asarray(c_pi, float)
    if base[1] > -min_gap_mm:
        return False
    return bool(abs(base[0]) <= np.tan(np.radians(max_tilt_deg)) * abs(base[1]))


def listhesis_offset(c_pi: np.ndarray, c_ps: np.ndarray, wall_up, wall_lo, *, max_wall_tilt_deg: float = 20.0,
                     min_gap_mm: float = 1.5, min_offset_mm: float = 3.0) -> float | None:
    """AP offset (mm, + = upper body anterior) of two upright posterior walls, when a listhesis
    explains a baseline that :func:`plausible_baseline` rejects as too steep; else None.

    A vertebra displaced on the one below (degenerative antero- or retrolisthesis; graded by
    Meyerding HW, "Spondylolisthesis", Surg Gynecol Obstet 1932;54:371-377) puts the
    two posterior corners several millimetres apart front to back, while a narrowed disc brings
    them close in SI: the C_PI -> C_PS baseline is then steeper than 40 degrees although both
    corners are right. That is accepted when both corners are fitted wall/endplate junctions
    (``wall_up``, ``wall_lo``: their walls' lines ``ap = a + b si``, None for a support-point
    fallback), both walls run within ``max_wall_tilt_deg`` of the level's SI axis, C_PS lies
    at least ``min_gap_mm`` below C_PI and the walls are at least ``min_offset_mm`` apart (the
    posterior walls of normal neighbours are 0-2 mm apart: concave walls, lipped corners; on the
    real sct_t2_lumbar volume steep planes with 2 mm offsets were scattered over normal levels).
    A body creeping over the disc's rim, the failure :func:`plausible_baseline` guards against,
    leaves the corners at one height or a corner off its wall.
    """
    if wall_up is None or wall_lo is None:
        return None
    if c_ps[1] - c_pi[1] > -min_gap_mm:
        return None
    t = np.tan(np.radians(max_wall_tilt_deg))
    if abs(wall_up[1]) > t or abs(wall_lo[1]) > t:
        return None
    s_mid = 0.5 * (c_pi[1] + c_ps[1])
    offset = float((wall_up[0] + wall_up[1] * s_mid) - (wall_lo[0] + wall_lo[1] * s_mid))
    return offset if abs(offset) >= min_offset_mm else None


def _outward_normals(mask: np.ndarray, ap: np.ndarray, si: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Unit outward normals (ap, si) of a soft mask's iso-line at ``pts`` (minus its gradient)."""
    fi = (pts[:, 0] - ap[0]) / (ap[1] - ap[0])
    fj = (pts[:, 1] - si[0]) / (si[1] - si[0])
    # the gradient only over the points' box (+2 samples), not the whole plane
    i0, j0 = max(int(fi.min()) - 2, 0), max(int(fj.min()) - 2, 0)
    i1, j1 = min(int(np.ceil(fi.max())) + 3, mask.shape[0]), min(int(np.ceil(fj.max())) + 3, mask.shape[1])
    g_ap, g_si = np.gradient(np.asarray(mask[i0:i1, j0:j1], float), ap[1] - ap[0], si[1] - si[0])
    idx = [fi - i0, fj - j0]
    g = -np.column_stack([ndimage.map_coordinates(g_ap, idx, order=1, mode="nearest"),
                          ndimage.map_coordinates(g_si, idx, order=1, mode="nearest")])
    return g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)


def plane_bulge(stack: PlaneStack, k: int, *, max_extension_mm: float = 3.0,
                refine_edges: bool = True) -> PlaneBulge | None:
    """Bulge on plane ``k`` of ``stack``; None where the disc or a body is absent on that plane.

    With ``refine_edges`` and an image on the stack (``stack.image``), the posterior walls of
    the bodies (for the corners) and the disc's posterior boundary are placed on the image's
    dark-to-bright edge next to the label outline (:func:`~.edges.refine_edge`), not on the
    label's voxel faces.
    """
    ap, si = stack.ap, stack.si
    disc_cs = contours(stack.masks["disc"][k], ap, si)
    if not disc_cs:
        return None
    disc_pts = np.concatenate(disc_cs)
    up = _near_disc(contours(stack.masks["upper"][k], ap, si), disc_pts)
    lo = _near_disc(contours(stack.masks["lower"][k], ap, si), disc_pts)
    if up is None or lo is None:
        return None
    refine = None
    if refine_edges and stack.image is not None:
        img = stack.image[k]

        def refine(p, direction):
            return refine_edge(img, ap, si, p, direction)

    c_pi, wall_up = wall_corner_and_wall(up, -1, refine=refine)  # posterior (-ap) and inferior (-si)
    c_ps, wall_lo = wall_corner_and_wall(lo, +1, refine=refine)  # posterior (-ap) and superior (+si)
    base = c_ps - c_pi
    length = np.linalg.norm(base)
    if length < 1e-6:
        return None
    t = base / length
    # normal pointing posterior (towards the canal, -ap)
    n = np.array([-t[1], t[0]])
    if n[0] > 0:
        n = -n
    rel = disc_pts - c_pi
    along = rel @ t
    keep = (along >= -max_extension_mm) & (along <= length + max_extension_mm)
    if not keep.any():
        return None
    cand = disc_pts[keep]
    dist = rel[keep] @ n
    if refine is not None:
        # posterior-facing boundary points near the maximum: onto the image edge along n
        facing = (_outward_normals(stack.masks["disc"][k], ap, si, cand) @ n > 0.7) & (dist >= dist.max() - 1.5)
        if facing.any():
            moved_pts, moved = refine(cand[facing], n)
            if _consistent_shift((moved_pts - cand[facing]) @ n, moved):
                cand = cand.copy()
                cand[np.flatnonzero(facing)[moved]] = moved_pts[moved]
                dist = (cand - c_pi) @ n
    i = int(np.argmax(dist))
    plausible, shift = plausible_baseline(c_pi, c_ps), None
    if not plausible:
        shift = listhesis_offset(c_pi, c_ps, wall_up, wall_lo)
        plausible = shift is not None
    return PlaneBulge(float(stack.lr[k]), float(dist[i]), c_pi, c_ps, cand[i], plausible, shift)


def band_bulge(stack: PlaneStack) -> tuple[PlaneBulge | None, PlaneBulge | None, list[PlaneBulge]]:
    """Maximum over the band, the mid-sagittal plane's value, and every plane's result.

    Planes whose baseline is implausible (:func:`plausible_baseline`) are in the returned list
    (``plausible`` False) but never give the maximum or the mid-sagittal value.
    """
    every = [b for k in range(len(stack.lr)) if (b := plane_bulge(stack, k)) is not None]
    per_plane = [b for b in every if b.plausible]
    if not per_plane:
        return None, None, every
    best = max(per_plane, key=lambda b: b.bulge_mm)
    mid_k = int(np.argmin(np.abs(stack.lr)))
    mid = next((b for b in per_plane if b.lr == stack.lr[mid_k]), None)
    return best, mid, every
