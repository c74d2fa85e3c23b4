"""Posterior disc bulge dimension.

Definition (docs/methods.md): on each sagittal plane within a band around the
canal midline, the baseline joins C_PI, the posterior-inferior corner of the
upper vertebral body, and C_PS, the posterior-superior corner of the lower one.
The bulge is the largest signed distance of the disc's posterior boundary from
that baseline, positive towards the canal (negative when the disc stays inside
the line). The level's value is the maximum over the band; the mid-sagittal
value is reported too.

The corner of a vertebral body's outline is its support point in the diagonal
direction (posterior + inferior for C_PI, posterior + superior for C_PS), i.e.
the outline point farthest along that direction: a reproducible stand-in for
the hand-placed corner that follows rounded corners and wedged bodies.

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

from .planes import PlaneStack, contours

__all__ = ["PlaneBulge", "corner", "plane_bulge", "band_bulge"]


@dataclass
class PlaneBulge:
    """Bulge on one sagittal plane (plane coordinates (ap, si) in mm)."""

    lr: float
    bulge_mm: float
    c_pi: np.ndarray  # (ap, si)
    c_ps: np.ndarray
    point: np.ndarray  # disc boundary point of the maximum (ap, si)


def corner(outline: np.ndarray, direction) -> np.ndarray:
    """Support point of ``outline`` (N, 2) in ``direction``: the outline point farthest along it."""
    d = np.asarray(direction, float)
    d = d / np.linalg.norm(d)
    return outline[int(np.argmax(outline @ d))]


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


def plane_bulge(stack: PlaneStack, k: int, *, max_extension_mm: float = 3.0) -> PlaneBulge | None:
    """Bulge on plane ``k`` of ``stack``; None where the disc or a body is absent on that plane."""
    ap, si = stack.ap, stack.si
    disc_cs = contours(stack.masks["disc"][k], ap, si)
    if not disc_cs:
        return None
    disc_pts = np.concatenate(disc_cs)
    up = _near_disc(contours(stack.masks["upper"][k], ap, si), disc_pts)
    lo = _near_disc(contours(stack.masks["lower"][k], ap, si), disc_pts)
    if up is None or lo is None:
        return None
    c_pi = corner(up, (-1.0, -1.0))  # posterior (-ap) and inferior (-si)
    c_ps = corner(lo, (-1.0, 1.0))  # posterior (-ap) and superior (+si)
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
    dist = rel[keep] @ n
    i = int(np.argmax(dist))
    return PlaneBulge(float(stack.lr[k]), float(dist[i]), c_pi, c_ps, disc_pts[keep][i])


def band_bulge(stack: PlaneStack) -> tuple[PlaneBulge | None, PlaneBulge | None, list[PlaneBulge]]:
    """Maximum over the band, the mid-sagittal plane's value, and every plane's result."""
    per_plane = [b for k in range(len(stack.lr)) if (b := plane_bulge(stack, k)) is not None]
    if not per_plane:
        return None, None, []
    best = max(per_plane, key=lambda b: b.bulge_mm)
    mid_k = int(np.argmin(np.abs(stack.lr)))
    mid = next((b for b in per_plane if b.lr == stack.lr[mid_k]), None)
    return best, mid, per_plane
