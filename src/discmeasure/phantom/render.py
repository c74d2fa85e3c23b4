"""Render the phantom on any voxel grid: partial volume, bias field, Rician noise, EPG echoes.

Partial volume: each voxel is supersampled on a regular sub-grid (``supersample``
points per in-plane axis, and across the slice thickness), tissue fractions are
averaged, and the signal is the fraction-weighted mix of per-tissue signals.
The truth label of a voxel is the most frequent label of its sub-samples (ties: background
when it is among them, else the lower label).

Signal models: spin-echo T2-weighted contrast S = PD (1 - exp(-TR/T1)) exp(-TE/T2);
multi-echo CPMG echoes from the extended phase graph
(:func:`discmeasure.epg.cpmg_signal`) with the refocusing angle scaled by a
smooth B1 field. Magnitude noise is Rician (Gudbjartsson & Patz 1995,
doi:10.1002/mrm.1910340618): |S + n1 + i n2| with n ~ N(0, sigma^2),
sigma = (mean signal of the reference tissue) / SNR.
"""

from __future__ import annotations

import numpy as np

from .. import labels as lab
from ..epg import cpmg_signal
from ..scan import Scan
from .anatomy import LEVELS, NUCLEUS, TISSUES, Phantom, rotation_matrix

__all__ = ["make_grid", "render_t2w", "render_mese", "tissue_fractions"]

# LPS-derived standard DICOM orientations, written as RAS column directions (i, j, k)
_ORIENT = {
    # sagittal: rows run anterior->posterior, columns superior->inferior, slices towards the left
    "sagittal": np.array([[0, -1, 0], [0, 0, -1], [-1, 0, 0]], float).T,
    # axial: i -> left, j -> posterior, slices -> superior
    "axial": np.array([[-1, 0, 0], [0, -1, 0], [0, 0, 1]], float).T,
    # coronal: i -> left, j -> inferior, slices -> posterior
    "coronal": np.array([[-1, 0, 0], [0, 0, -1], [0, -1, 0]], float).T,
}


def make_grid(*, orientation: str = "sagittal", spacing=(0.7, 0.7, 4.0), fov_mm=(220.0, 220.0), n_slices: int = 13,
              rotation_deg=(0.0, 0.0, 0.0), center_mm=(0.0, 0.0, 12.0)):
    """A voxel grid (shape, affine) through the lumbar spine.

    Parameters
    ----------
    orientation : {"sagittal", "axial", "coronal"}
        Base plane; slices along the third array axis.
    spacing : (float, float, float)
        In-plane pixel size (i, j) and slice spacing (mm).
    fov_mm : (float, float)
        In-plane field of view (mm) along i and j.
    n_slices : int
        Number of slices.
    rotation_deg : (float, float, float)
        Oblique tilt: rotation about world x, y, z (degrees) applied to the plane directions
        about the grid centre.
    center_mm : (float, float, float)
        World position of the grid centre.

    Returns
    -------
    shape : tuple of int
    affine : (4, 4) ndarray (RAS+ mm)
    """
    try:
        d = _ORIENT[orientation]
    except KeyError:
        raise ValueError(f"orientation must be one of {sorted(_ORIENT)}") from None
    R = rotation_matrix(*rotation_deg)
    spacing = np.asarray(spacing, float)
    shape = (int(round(fov_mm[0] / spacing[0])), int(round(fov_mm[1] / spacing[1])), int(n_slices))
    a = np.eye(4)
    a[:3, :3] = R @ d * spacing[None, :]
    centre_idx = (np.asarray(shape) - 1) / 2
    a[:3, 3] = np.asarray(center_mm, float) - a[:3, :3] @ centre_idx
    return shape, a


def _subsamples(shape, supersample):
    s = int(supersample)
    off = (np.arange(s) + 0.5) / s - 0.5
    offs = np.stack(np.meshgrid(off, off, off, indexing="ij"), -1).reshape(-1, 3)
    return offs


def tissue_fractions(ph: Phantom, shape, affine, *, supersample: int = 3, chunk: int = 400_000,
                     with_body_fraction: bool = False):
    """Per-voxel tissue fractions, truth labels (most frequent among sub-samples) and disc-level index.

    Voxels are first classified at their centres; those whose 3x3x3 neighbourhood is not
    uniform (boundary voxels) are then supersampled on a ``supersample``^3 sub-grid (only
    in-plane where an axis has length 1). Uniform voxels take their centre's class.

    Returns
    -------
    frac : ndarray (n_tissues, *shape) float32
        Fraction of each tissue (:data:`~discmeasure.phantom.anatomy.TISSUES`) per voxel.
    labels : ndarray int16
        Most frequent label per voxel (discmeasure convention; ties: background when it is
        among them, else the lower label).
    disc_frac : ndarray (len(LEVELS), 2, *shape) float32
        NP and AF fraction per disc level (for level-specific T2).
    body_fraction : ndarray float32
        Only with ``with_body_fraction``: the fraction of each voxel's sub-samples inside a
        vertebral body (the truth for :attr:`Segmentation.body_fraction
        <discmeasure.segmentation.Segmentation.body_fraction>`).
    """
    from scipy import ndimage

    shape = tuple(int(n) for n in shape)
    nvox = int(np.prod(shape))
    skel = ph.skeleton()
    nt = len(TISSUES)
    ijk_all = np.stack(np.unravel_index(np.arange(nvox), shape), axis=1).astype(np.float32)
    # pass 1: centres
    t0 = np.empty(nvox, np.int8)
    l0 = np.empty(nvox, np.int16)
    v0 = np.empty(nvox, np.int8)
    for start in range(0, nvox, chunk):
        w = ijk_all[start:start + chunk] @ affine[:3, :3].T.astype(np.float32) + affine[:3, 3]
        t0[start:start + chunk], l0[start:start + chunk], v0[start:start + chunk] = ph.classify(w, skel=skel)
    key = (t0.astype(np.int32) * 1000 + l0.astype(np.int32)).reshape(shape)
    boundary = (ndimage.maximum_filter(key, size=3, mode="nearest") != ndimage.minimum_filter(key, size=3, mode="nearest")).ravel()

    frac = np.zeros((nt, nvox), np.float32)
    frac[t0.astype(np.intp), np.arange(nvox)] = 1.0
    disc_frac = np.zeros((len(LEVELS), 2, nvox), np.float32)
    inside = v0 >= 0
    disc_frac[v0[inside], (t0[inside] != NUCLEUS).astype(np.intp), np.flatnonzero(inside)] = 1.0
    labels = l0.copy()
    body = lab.vertebra_mask(l0).astype(np.float32)

    ids_b = np.flatnonzero(boundary)
    if len(ids_b) and supersample > 1:
        offs = _subsamples(shape, supersample)
        single = np.array([n == 1 for n in shape])
        offs = np.unique(np.where(single, 0.0, offs), axis=0)
        n = len(offs)
        frac[:, ids_b] = 0
        disc_frac[:, :, ids_b] = 0
        per = max(1, chunk // n)
        for start in range(0, len(ids_b), per):
            ids = ids_b[start:start + per]
            ijk = ijk_all[ids]
            pts = (ijk[:, None, :] + offs[None, :, :]).reshape(-1, 3)
            w = pts @ affine[:3, :3].T + affine[:3, 3]
            t, lbl, lev = ph.classify(w, skel=skel)
            rep = np.repeat(ids, n)
            np.add.at(frac, (t.astype(np.intp), rep), 1.0 / n)
            m = lev >= 0
            np.add.at(disc_frac, (lev[m].astype(np.intp), (t[m] != NUCLEUS).astype(np.intp), rep[m]), 1.0 / n)
            body[ids] = lab.vertebra_mask(lbl).reshape(len(ids), n).mean(axis=1)
            # the most frequent label among the sub-samples; background wins a tie it is part
            # of, and between two structures the lower label (bodies, then canal, then discs).
            # (Requiring a strict majority left a voxel split evenly between a body and a disc --
            # half of the faces on an even sub-grid -- as background: a row of "background"
            # between every such body and disc, which any segmentation was counted wrong on.)
            lbl2 = lbl.reshape(len(ids), n)
            best = np.zeros(len(ids), np.int16)
            best_n = (lbl2 == 0).sum(axis=1)
            for v in np.unique(lbl2):  # ascending: a later label must be strictly more frequent
                if v == 0:
                    continue
                cnt = (lbl2 == v).sum(axis=1)
                better = cnt > best_n
                best[better] = v
                best_n[better] = cnt[better]
            labels[ids] = best
    out = frac.reshape((nt,) + shape), labels.reshape(shape), disc_frac.reshape((len(LEVELS), 2) + shape)
    return out + (body.reshape(shape),) if with_body_fraction else out


def _bias(shape, affine, strength, seed):
    """Smooth multiplicative bias field (low-order polynomial in world mm)."""
    if not strength:
        return np.ones(shape, np.float32)
    rng = np.random.default_rng(seed + 7)
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    w = ijk @ affine[:3, :3].T + affine[:3, 3]
    w = (w - w.reshape(-1, 3).mean(axis=0)) / 150.0
    c = rng.uniform(-1, 1, 6)
    f = 1 + strength * (c[0] * w[..., 0] + c[1] * w[..., 1] + c[2] * w[..., 2] + 0.5 * c[3] * w[..., 1] ** 2
                        + 0.5 * c[4] * w[..., 2] ** 2 + 0.5 * c[5] * w[..., 1] * w[..., 2])
    return np.clip(f, 0.5, 1.5).astype(np.float32)


def _rician(signal, sigma, rng):
    return np.abs(signal + rng.normal(0, sigma, signal.shape) + 1j * rng.normal(0, sigma, signal.shape)).astype(np.float32)


def _tissue_values(ph: Phantom, fn):
    """Per-tissue scalar from fn(pd, t1, t2), and per-level NP/AF values."""
    base = np.array([fn(t.pd, t.t1_ms, t.t2_ms) for t in TISSUES], float)
    disc = np.array([[fn(ph.np_pd[lv], 1200.0, ph.np_t2_ms[lv]), fn(0.70, 900.0, ph.af_t2_ms[lv])] for lv in LEVELS])
    return base, disc


def _mix(frac, disc_frac, base, disc):
    """Signal of mixed voxels: tissue fractions x tissue signals; disc tissue per level."""
    from .anatomy import ANNULUS

    out = np.tensordot(base, frac, axes=(0, 0))
    # replace generic NP/AF contributions by the level-specific ones
    out -= base[NUCLEUS] * frac[NUCLEUS] + base[ANNULUS] * frac[ANNULUS]
    out += np.tensordot(disc[:, 0], disc_frac[:, 0], axes=(0, 0)) + np.tensordot(disc[:, 1], disc_frac[:, 1], axes=(0, 0))
    return out


def render_t2w(ph: Phantom, shape, affine, *, snr: float | None = 40.0, bias: float | bool = 0.15, supersample: int = 3,
               te_ms: float = 100.0, tr_ms: float = 3500.0, seed: int = 0, scale: float = 1000.0,
               meta: dict | None = None, with_body_fraction: bool = False):
    """T2-weighted (spin-echo) image of the phantom on a grid, and its truth labels.

    ``snr`` is the disc nucleus signal (healthy level) divided by the noise sigma; None = noiseless.
    Returns ``(Scan, labels)``, and the bodies' partial volume as a third item with
    ``with_body_fraction`` (:func:`tissue_fractions`).
    """
    frac, labels, disc_frac, body_fraction = tissue_fractions(ph, shape, affine, supersample=supersample,
                                                               with_body_fraction=True)

    def se(pd, t1, t2):
        return pd * (1 - np.exp(-tr_ms / t1)) * np.exp(-te_ms / t2)

    base, disc = _tissue_values(ph, se)
    img = _mix(frac, disc_frac, base, disc) * scale
    if bias:
        img = img * _bias(shape, affine, 0.15 if bias is True else float(bias), seed)
    if ph.modic_level:
        img = _apply_modic(ph, img, frac, shape, affine, se, scale)
    if snr:
        ref = scale * se(1.0, 1200.0, 120.0)
        img = _rician(img, ref / snr, np.random.default_rng(seed))
    m = {
        "modality": "MR", "series_description": "T2 TSE SAG", "vendor": "discmeasure phantom",
        "repetition_time_ms": tr_ms, "echo_time_ms": te_ms, "flip_angle_deg": 90.0,
        "field_strength_t": 3.0, "slice_thickness_mm": float(np.linalg.norm(affine[:3, 2])),
        "spacing_between_slices_mm": float(np.linalg.norm(affine[:3, 2])),
    }
    m.update(meta or {})
    scan = Scan(img.astype(np.float32), affine, meta=m)
    return (scan, labels, body_fraction) if with_body_fraction else (scan, labels)


def _apply_modic(ph, img, frac, shape, affine, fn, scale):
    from .anatomy import MARROW

    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)
    w = ijk @ affine[:3, :3].T + affine[:3, 3]
    pd, t1, t2 = ph.properties(np.full(len(w), MARROW, np.int8), np.full(len(w), -1, np.int8), world=w)
    bright = (t2 > 100).reshape(shape)
    delta = (fn(0.95, 550.0, 110.0) - fn(TISSUES[MARROW].pd, TISSUES[MARROW].t1_ms, TISSUES[MARROW].t2_ms)) * scale
    return img + bright * frac[MARROW] * delta


def b1_field(shape, affine, b1_range=(0.7, 1.0), seed: int = 0) -> np.ndarray:
    """Smooth B1 (actual/nominal flip) map spanning ``b1_range`` over the field of view."""
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    w = ijk @ affine[:3, :3].T + affine[:3, 3]
    rng = np.random.default_rng(seed + 11)
    d = rng.normal(size=3)
    d /= np.linalg.norm(d)
    proj = w @ d
    u = (proj - proj.min()) / max(np.ptp(proj), 1e-9)
    lo, hi = b1_range
    return (lo + (hi - lo) * (0.5 - 0.5 * np.cos(np.pi * u))).astype(np.float32)


def render_mese(ph: Phantom, shape, affine, *, n_echoes: int = 10, echo_spacing_ms: float = 10.0,
                refocusing_angle_deg: float = 180.0, b1_range=(0.7, 1.0), snr: float | None = 100.0,
                tr_ms: float = 2000.0, supersample: int = 3, seed: int = 0, scale: float = 1000.0,
                meta: dict | None = None):
    """Multi-echo spin-echo (CPMG) series of the phantom.

    Each tissue's echo train is computed with the EPG model at every voxel's B1 and mixed by
    tissue fractions. ``snr`` = first-echo healthy-NP signal / noise sigma.

    Returns
    -------
    (Scan, labels, b1)
        4-D Scan (echoes last, ``echo_times_ms`` set), truth labels, B1 map.
    """
    frac, labels, disc_frac = tissue_fractions(ph, shape, affine, supersample=supersample)
    b1 = b1_field(shape, affine, b1_range, seed)
    nvox = int(np.prod(shape))
    b1f = b1.reshape(-1)
    out = np.zeros((nvox, n_echoes), np.float32)
    ff = frac.reshape(len(TISSUES), -1)
    df = disc_frac.reshape(len(LEVELS), 2, -1)

    def add(pd, t1, t2, weight):
        sel = weight > 0
        if not sel.any():
            return
        s = cpmg_signal(t2, b1f[sel], n_echoes=n_echoes, echo_spacing_ms=echo_spacing_ms,
                        refocusing_angle_deg=refocusing_angle_deg, t1_ms=t1)
        out[sel] += (pd * (1 - np.exp(-tr_ms / t1)) * weight[sel])[:, None] * s

    from .anatomy import ANNULUS

    for ti, t in enumerate(TISSUES):
        if ti in (NUCLEUS, ANNULUS) or t.pd == 0:
            continue
        add(t.pd, t.t1_ms, t.t2_ms, ff[ti])
    for li, lv in enumerate(LEVELS):
        add(ph.np_pd[lv], 1200.0, ph.np_t2_ms[lv], df[li, 0])
        add(0.70, 900.0, ph.af_t2_ms[lv], df[li, 1])
    out *= scale
    img = out.reshape(tuple(shape) + (n_echoes,))
    if snr:
        ref = scale * (1 - np.exp(-tr_ms / 1200.0)) * float(np.exp(-echo_spacing_ms / 120.0))
        img = _rician(img, ref / snr, np.random.default_rng(seed + 1))
    tes = [echo_spacing_ms * (n + 1) for n in range(n_echoes)]
    m = {
        "modality": "MR", "series_description": "T2 MAP MESE SAG", "vendor": "discmeasure phantom",
        "repetition_time_ms": tr_ms, "echo_spacing_ms": echo_spacing_ms, "refocusing_angle_deg": refocusing_angle_deg,
        "flip_angle_deg": refocusing_angle_deg, "echo_train_length": n_echoes, "field_strength_t": 3.0,
        "slice_thickness_mm": float(np.linalg.norm(affine[:3, 2])),
        "spacing_between_slices_mm": float(np.linalg.norm(affine[:3, 2])),
    }
    m.update(meta or {})
    return Scan(img.astype(np.float32), affine, echo_times_ms=tes, meta=m), labels, b1
