"""Ground truth of the phantom's disc measurements, from the analytic anatomy.

The truth is the measurement definition of docs/methods.md evaluated on a fine
raster (default 0.05 mm) of the continuous anatomy in each disc's design frame
-- not on any rendered image -- so it is independent of voxel size, partial
volume, noise and of discmeasure.measurements's own code. The one piece shared
with the measurement is the *definition* of a body's posterior corner
(:func:`discmeasure.measurements.bulge.wall_corner`: posterior-wall line x
endplate line), applied here to the analytic outline.
"""

from __future__ import annotations

import numpy as np

from .. import labels as lab
from .anatomy import LEVELS, Phantom

__all__ = ["truth"]


def _boundary(mask: np.ndarray) -> np.ndarray:
    """Inside pixels with an outside 4-neighbour."""
    m = np.pad(mask, 1)
    inner = m[1:-1, 1:-1] & m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~inner


def _plane(ph, skel, level, x, ap, si):
    c, R, hp, ha = skel["discs"][level]
    A, S = np.meshgrid(ap, si, indexing="ij")
    local = np.stack([np.full(A.size, x), A.ravel(), S.ravel()], axis=1)
    anat = c + local @ R.T
    _, lbl, _ = ph.classify(ph.to_world(anat), skel=skel)
    return lbl.reshape(A.shape)


def _support(mask, ap, si, direction):
    b = np.argwhere(_boundary(mask))
    if not len(b):
        return None
    pts = np.column_stack([ap[b[:, 0]], si[b[:, 1]]])
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    return pts[np.argmax(pts @ d)]


def _wall_corner(mask, ap, si, vertical):
    from ..measurements.bulge import wall_corner

    b = np.argwhere(_boundary(mask))
    if not len(b):
        return None
    return wall_corner(np.column_stack([ap[b[:, 0]], si[b[:, 1]]]), vertical)


def _level_truth(ph: Phantom, skel, level, step, band_mm, plane_step):
    upper, lower = level.split("-")
    dl = lab.disc_label_from_name(level)
    ul, ll = lab.vertebra_number(upper), lab.vertebra_number(lower)
    c, R, hp, ha = skel["discs"][level]
    depth = 0.5 * (ph.body_depth[upper] + ph.body_depth[lower])
    hmax = max(hp, ha) / 2
    # wide enough for the corner fits (wall and endplate 3-9 mm from the corner), also when a
    # listhesis moves the two bodies' walls apart, or a coronal wedge makes a side taller
    shift, cw = ph.disc_deformity(level)
    half_shift = abs(shift) / 2
    hmax += band_mm * abs(cw)
    ap = np.arange(-depth / 2 - 9 - half_shift, -depth / 2 + 12 + half_shift, step)
    si = np.arange(-hmax - 11, hmax + 11, step)
    best = None
    mid = None
    for x in np.arange(-band_mm, band_mm + 1e-9, plane_step):
        L = _plane(ph, skel, level, x, ap, si)
        cpi = _wall_corner(L == ul, ap, si, -1)
        cps = _wall_corner(L == ll, ap, si, +1)
        db = np.argwhere(_boundary(L == dl))
        if cpi is None or cps is None or not len(db):
            continue
        pts = np.column_stack([ap[db[:, 0]], si[db[:, 1]]])
        t = (cps - cpi) / np.linalg.norm(cps - cpi)
        n = np.array([-t[1], t[0]])
        if n[0] > 0:
            n = -n
        rel = pts - cpi
        along = rel @ t
        keep = (along >= -3) & (along <= np.linalg.norm(cps - cpi) + 3)
        dist = rel[keep] @ n
        # pixel centres are inside: the boundary lies half a pixel further out
        b = float(dist.max()) + step / 2
        if best is None or b > best[0]:
            best = (b, x, cpi, cps)
        if abs(x) < 1e-9:
            mid = (b, cpi, cps)
    # heights on the mid-sagittal plane, full AP range
    ap_full = np.arange(-depth / 2 - 9 - half_shift, depth / 2 + 4 + half_shift, step)
    L = _plane(ph, skel, level, 0.0, ap_full, si)
    up, lo, dm = L == ul, L == ll, L == dl
    a_post = 0.5 * (_support(up, ap_full, si, (-1, -1))[0] + _support(lo, ap_full, si, (-1, 1))[0])
    a_ant = 0.5 * (_support(up, ap_full, si, (1, -1))[0] + _support(lo, ap_full, si, (1, 1))[0])
    span = a_ant - a_post

    def gap(a):
        i = int(np.argmin(np.abs(ap_full - a)))
        su = si[up[i]]
        sl = si[lo[i]]
        su = su[su > -2].min() if (su > -2).any() else np.nan
        sl = sl[sl < 2].max() if (sl < 2).any() else np.nan
        return float(su - sl - step)  # pixel centres: the gap is one pixel less than centre distance + 2 half pixels

    cols = np.flatnonzero(dm.any(axis=1))
    ap_len = float(ap_full[cols.max()] - ap_full[cols.min()] + step) if len(cols) else np.nan
    ha_, hm_, hp_ = gap(a_ant - span / 6), gap(a_post + span / 2), gap(a_post + span / 6)

    def world(pt, x):
        return ph.to_world(c + R @ np.array([x, pt[0], pt[1]])).tolist()

    return {
        "level": level,
        "label": dl,
        "bulge_design_mm": float(ph.bulge_mm.get(level, 0.0)),
        "bulge_width_mm": float(ph.bulge_width_mm.get(level, 0.0)),
        "bulge_mm": best[0] if best else None,
        "bulge_lr_offset_mm": float(best[1]) if best else None,
        "bulge_midsagittal_mm": mid[0] if mid else None,
        "c_pi_mm": world(best[2], best[1]) if best else None,
        "c_ps_mm": world(best[3], best[1]) if best else None,
        "height_anterior_mm": ha_,
        "height_middle_mm": hm_,
        "height_posterior_mm": hp_,
        "ap_length_mm": ap_len,
        "dhi": (ha_ + hp_) / ap_len if ap_len else None,
        "disc_height_design_mm": {"posterior": hp, "anterior": ha},
        "np_t2_ms": float(ph.np_t2_ms[level]),
        "af_t2_ms": float(ph.af_t2_ms[level]),
        "disc_center_mm": ph.to_world(c).tolist(),
    }


def truth(ph: Phantom, *, step: float = 0.1, band_mm: float = 5.0, plane_step: float = 1.0, levels=LEVELS) -> dict:
    """JSON-able truth of a phantom: per-level bulge, heights, T2, corner points (world mm).

    Parameters
    ----------
    ph : Phantom
    step : float
        Raster step (mm) of the analytic evaluation.
    band_mm, plane_step : float
        Band of sagittal planes (about the anatomy's midline) searched for the maximum bulge.
    """
    skel = ph.skeleton()
    return {
        "definition": "docs/methods.md (bulge: max over +-%g mm band of the signed distance behind C_PI-C_PS)" % band_mm,
        "raster_step_mm": step,
        "pose": {"rotation_deg": list(ph.pose[0]), "translation_mm": list(ph.pose[1]), "center_mm": list(ph.pose_center)},
        "levels": {lv: _level_truth(ph, skel, lv, step, band_mm, plane_step) for lv in levels},
    }
