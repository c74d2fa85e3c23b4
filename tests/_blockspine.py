"""An analytic two-vertebra spine segment (labels only) with a known posterior bulge.

Independent of discmeasure.phantom: boxes with sharp corners, so C_PI / C_PS are
exactly the boxes' posterior corners and the baseline is the posterior wall line.
Anatomical frame: x = right, y = anterior, z = superior (mm). The disc's
posterior boundary is y = -15 - B * (1 - (x/w)^2)_+ * (1 - (z/h)^2)_+, so the
bulge is B (mid-sagittal, at the disc's mid-height).
"""

import numpy as np


def rotation(rx=0.0, ry=0.0, rz=0.0):
    rx, ry, rz = np.deg2rad([rx, ry, rz])
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


def sagittal_affine(spacing=(0.6, 0.6, 4.0), shape=(110, 140, 11), rot=(0, 0, 0), shift=(0, 0, 0)):
    """Array axes: i -> posterior-to-anterior (y), j -> inferior-to-superior (z), k -> left-to-right (x)."""
    d = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float)  # columns: i->y, j->z, k->x
    R = rotation(*rot)
    a = np.eye(4)
    a[:3, :3] = R @ d * np.asarray(spacing)[None, :]
    centre = (np.asarray(shape) - 1) / 2
    a[:3, 3] = R @ np.asarray(shift, float) - a[:3, :3] @ centre
    return a, R


def block_labels(shape, affine, R=np.eye(3), *, bulge_mm=3.0, width_mm=10.0, disc_half_height=5.0,
                 shift=(0, 0, 0), supersample=3, upper=23, lower=24, disc=123):
    """Label map on (shape, affine) with majority partial volume over supersamples."""
    ss = supersample
    offs = (np.arange(ss) + 0.5) / ss - 0.5
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3).astype(float)
    votes = np.zeros((grid.shape[0], 4), np.int16)  # bg, upper, lower, disc; canal separately
    canal_votes = np.zeros(grid.shape[0], np.int16)
    single = [n == 1 for n in shape]
    for o in np.stack(np.meshgrid(offs, offs, offs, indexing="ij"), -1).reshape(-1, 3):
        o = np.where(single, 0.0, o)
        w = (grid + o) @ affine[:3, :3].T + affine[:3, 3]
        p = (w - R @ np.asarray(shift, float)) @ R  # anatomical coordinates
        x, y, z = p[:, 0], p[:, 1], p[:, 2]
        inside_xy = (np.abs(x) <= 20) & (y <= 15)
        up = inside_xy & (y >= -15) & (z >= disc_half_height) & (z <= 30)
        lo = inside_xy & (y >= -15) & (z <= -disc_half_height) & (z >= -30)
        prof = np.clip(1 - (x / width_mm) ** 2, 0, None) * np.clip(1 - (z / disc_half_height) ** 2, 0, None)
        y_post = -15 - bulge_mm * prof if bulge_mm >= 0 else -15 - bulge_mm * np.ones_like(prof)
        dsc = (np.abs(x) <= 21) & (y <= 15) & (y >= y_post) & (np.abs(z) < disc_half_height)
        can = (np.abs(x) <= 7) & (y >= -33) & (y <= -23) & (np.abs(z) <= 30)
        votes[:, 1] += up
        votes[:, 2] += lo
        votes[:, 3] += dsc
        votes[:, 0] += ~(up | lo | dsc)
        canal_votes += can
    n = len(offs) ** (3 - sum(single))
    lab = np.array([0, upper, lower, disc])[np.argmax(votes, axis=1)]
    lab = np.where((lab == 0) & (canal_votes * 2 > n), 61, lab)
    return lab.reshape(shape).astype(np.int16)
