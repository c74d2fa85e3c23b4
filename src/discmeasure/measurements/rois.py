"""Disc regions of interest: nucleus pulposus, anterior and posterior annulus.

Operational definitions in each level's anatomical frame (docs/methods.md):

- position along the disc's AP axis is normalised to 0 (posterior corners of the adjacent
  bodies) ... 1 (anterior corners), i.e. to the endplate span on the mid-sagittal plane (the
  disc's own AP extent when the corners are unavailable), so a posterior bulge does not shift
  the regions;
- **posterior annulus** (code ``label*10 + 3``): AP position < 0.2;
- **anterior annulus** (``label*10 + 2``): AP position > 0.8;
- **nucleus pulposus** (``label*10 + 1``): AP position 0.3-0.7, within the
  central half of the disc's left-right extent (when the scan covers it), and
  at least 25 % of the mid-disc height away from both endplates (distance
  transform of the disc mask, in mm).

These follow the common "central third / peripheral fifth" regions of
quantitative disc T2 studies (e.g. Marinelli et al. 2010; Stelzeneder et al.
2012), with the NP kept off the endplates to avoid partial volume with bone.

References
----------
Marinelli NL, Haughton VM, Anderson PA. "T2 relaxation times correlated with
stage of lumbar intervertebral disk degeneration and patient age." AJNR Am J
Neuroradiol 2010;31:1278-1282. doi:10.3174/ajnr.A2080

Stelzeneder D, et al. "Quantitative T2 evaluation at 3.0T compared to
morphological grading of the lumbar intervertebral disc." Eur J Radiol
2012;81:324-330. doi:10.1016/j.ejrad.2010.12.093
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .frame import LevelFrame

__all__ = ["NP", "AF_ANTERIOR", "AF_POSTERIOR", "roi_code", "disc_rois"]

NP, AF_ANTERIOR, AF_POSTERIOR = 1, 2, 3


def roi_code(disc_label: int, roi: int) -> int:
    """ROI code of a disc region (e.g. 1231 = L4-L5 nucleus)."""
    return int(disc_label) * 10 + int(roi)


def disc_rois(labels: np.ndarray, affine: np.ndarray, frame: LevelFrame, *, height_mm: float | None = None,
              ap_span=None, out: np.ndarray | None = None, index=None) -> np.ndarray:
    """Write the NP / anterior AF / posterior AF codes of one disc into ``out`` (int32, labels' grid).

    ``index`` (a :class:`~discmeasure.measurements.frame.LabelIndex` of ``labels``) only makes
    the voxel look-up faster."""
    if out is None:
        out = np.zeros(labels.shape, np.int32)
    idx = index.indices(frame.label) if index is not None else np.argwhere(labels == frame.label)
    if not len(idx):
        return out
    world = idx @ affine[:3, :3].T + affine[:3, 3]
    loc = frame.to_local(world)
    lr, ap = loc[:, 0], loc[:, 1]
    if ap_span is not None and np.all(np.isfinite(ap_span)) and ap_span[1] > ap_span[0]:
        # AP position relative to the endplate span (posterior to anterior corners, mid-sagittal):
        # a posterior bulge does not drag the nucleus window backwards
        a0, a1 = ap_span
        p = (ap - a0) / (a1 - a0)
    else:
        # fallback: the disc's own AP extent per sagittal plane (2 mm left-right bins)
        p = np.empty_like(ap)
        bins = np.round(lr / 2.0).astype(int)
        for b in np.unique(bins):
            sel = bins == b
            a0, a1 = np.percentile(ap[sel], [1, 99])
            p[sel] = (ap[sel] - a0) / max(a1 - a0, 1e-6)
    code_np, code_aa, code_ap = (roi_code(frame.label, r) for r in (NP, AF_ANTERIOR, AF_POSTERIOR))
    sel_post = p < 0.2
    sel_ant = p > 0.8
    central = (p >= 0.3) & (p <= 0.7)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    l0, l1 = np.percentile(lr, [1, 99])
    lr_step = float(np.max(np.abs(frame.u_lr @ affine[:3, :3])))  # mm per voxel step along lr, roughly
    if l1 - l0 > 2 * max(lr_step, 1.0):
        lc = 0.5 * (l0 + l1)
        central &= np.abs(lr - lc) <= 0.25 * (l1 - l0)
    # distance to the disc surface (mm); the endplates are the nearest surface in the disc's middle
    sl = tuple(slice(max(a - 1, 0), b + 2) for a, b in zip(idx.min(axis=0), idx.max(axis=0)))
    sub = labels[sl] == frame.label
    # one-slice scans: distance within the slice only (padding a length-1 axis would put the
    # "surface" half a slice away)
    flat = [ax for ax in range(3) if labels.shape[ax] == 1]
    keep_axes = [ax for ax in range(3) if ax not in flat]
    sub2 = sub.reshape([sub.shape[ax] for ax in keep_axes])
    padded = np.pad(sub2, 1)
    inner = tuple(slice(1, -1) for _ in keep_axes)
    dist = ndimage.distance_transform_edt(padded, sampling=spacing[keep_axes])[inner].reshape(sub.shape)
    d_vox = dist[tuple((idx - [s.start for s in sl]).T)]
    if height_mm is None or not np.isfinite(height_mm):
        height_mm = 2.0 * float(np.percentile(d_vox, 99))
    central &= d_vox >= 0.25 * height_mm
    ii = tuple(idx.T)
    out[ii] = np.where(sel_post, code_ap, np.where(sel_ant, code_aa, np.where(central, code_np, 0)))
    return out
