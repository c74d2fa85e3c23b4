"""Anatomical frame of one disc level, estimated from the label map in world mm.

Every disc measurement is made in the level's own frame, not along array axes:

- ``u_lr`` -- normal of the level's sagittal planes (towards the patient's right);
- ``u_si`` -- disc axis, perpendicular to the disc mid-plane (towards superior);
- ``u_ap`` -- in the sagittal plane, perpendicular to ``u_si`` (towards anterior);
- ``origin`` -- the disc centre, moved left-right onto the canal midline.

The sagittal plane normal comes from the canal-to-disc and lower-to-upper
vertebral body directions (so axial rotation of the patient, scoliosis and
oblique slice planes are followed); the disc axis is the minor principal axis
of the disc's outline within that plane.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .. import labels as lab
from ..errors import MeasurementError
from ..geometry import slice_normal

__all__ = ["LevelFrame", "level_frame", "voxel_points"]


@dataclass(frozen=True)
class LevelFrame:
    """Orthonormal frame of a disc level (world RAS+ mm)."""

    level: str
    label: int
    upper: int
    lower: int
    origin: np.ndarray
    u_lr: np.ndarray
    u_ap: np.ndarray
    u_si: np.ndarray
    has_canal: bool

    def to_world(self, lr, ap, si) -> np.ndarray:
        """World points of local coordinates (broadcast), shape (..., 3)."""
        lr, ap, si = np.broadcast_arrays(np.asarray(lr, float), np.asarray(ap, float), np.asarray(si, float))
        return (
            self.origin
            + lr[..., None] * self.u_lr
            + ap[..., None] * self.u_ap
            + si[..., None] * self.u_si
        )

    def to_local(self, xyz) -> np.ndarray:
        """Local (lr, ap, si) coordinates of world points, shape (..., 3)."""
        d = np.asarray(xyz, float) - self.origin
        return np.stack([d @ self.u_lr, d @ self.u_ap, d @ self.u_si], axis=-1)


class LabelIndex:
    """Voxel indices of each label of a map, found once.

    One :func:`scipy.ndimage.find_objects` pass gives every label's bounding box; a label's
    voxels are then looked up inside its box only (and cached), instead of scanning the whole
    volume for each structure of each level (that scan was most of ``measure``'s time on
    512 x 512 slices). Results are identical to ``np.argwhere(labels == value)``.
    """

    def __init__(self, labels: np.ndarray, affine: np.ndarray):
        self.labels = labels
        self.affine = np.asarray(affine, float)
        lo = int(labels.min()) if labels.size else 0
        hi = int(labels.max()) if labels.size else 0
        self._boxes = ndimage.find_objects(labels) if lo >= 0 and hi <= 100_000 else None
        self._idx: dict[int, np.ndarray] = {}
        self._pts: dict[int, np.ndarray] = {}

    def box(self, value: int):
        """Bounding box (tuple of slices) of ``value``, or None when absent."""
        value = int(value)
        if self._boxes is None:
            idx = self.indices(value)
            if not len(idx):
                return None
            return tuple(slice(int(a), int(b) + 1) for a, b in zip(idx.min(axis=0), idx.max(axis=0)))
        if value < 1 or value > len(self._boxes):
            return None
        return self._boxes[value - 1]

    def indices(self, value: int) -> np.ndarray:
        """(N, 3) voxel indices of ``value`` (C order, as ``np.argwhere``)."""
        value = int(value)
        if value not in self._idx:
            if self._boxes is None:
                self._idx[value] = np.argwhere(self.labels == value)
            else:
                sl = self.box(value)
                if sl is None:
                    self._idx[value] = np.zeros((0, self.labels.ndim), np.intp)
                else:
                    self._idx[value] = np.argwhere(self.labels[sl] == value) + [s_.start for s_ in sl]
        return self._idx[value]

    def points(self, value: int) -> np.ndarray:
        """(N, 3) world coordinates of the voxels of ``value`` (cached like the indices)."""
        value = int(value)
        if value not in self._pts:
            self._pts[value] = self.indices(value) @ self.affine[:3, :3].T + self.affine[:3, 3]
        return self._pts[value]


def voxel_points(mask: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """World coordinates (N, 3) of the voxels set in ``mask``."""
    idx = np.argwhere(mask)
    return idx @ affine[:3, :3].T + affine[:3, 3]


def _unit(v) -> np.ndarray:
    v = np.asarray(v, float)
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n < 1e-9:
        raise ValueError("zero vector")
    return v / n


def level_frame(labels: np.ndarray, affine: np.ndarray, disc: int, *, upper: int | None = None, lower: int | None = None,
                index: LabelIndex | None = None) -> LevelFrame:
    """Estimate the anatomical frame of disc ``disc`` from a label map.

    Parameters
    ----------
    labels : ndarray of int
        Label map in the discmeasure convention, on the grid of ``affine``.
    affine : (4, 4) ndarray
        Voxel -> world (RAS+ mm).
    disc : int
        Disc label (e.g. 123 for L4-L5).
    upper, lower : int, optional
        Labels of the vertebral bodies above and below (default from the convention).
    index : LabelIndex, optional
        A :class:`LabelIndex` of ``labels`` (reused across levels: faster, same result).

    Raises
    ------
    MeasurementError
        When the disc or one of its vertebral bodies is missing.
    """
    level = lab.disc_level_name(disc)
    upper = disc - lab.DISC_OFFSET if upper is None else upper
    if lower is None:
        lower = lab.vertebra_below(upper)
        # an L6 (25) present below L5 is the lower body of L5-L6
    index = index if index is not None else LabelIndex(labels, affine)
    pts_d = index.points(disc)
    if len(pts_d) < 3:
        raise MeasurementError(f"disc {level} ({disc}) not in the label map", hint="segment again or add a seed for it")
    pts_u = index.points(upper)
    pts_l = index.points(lower)
    if len(pts_u) == 0 or len(pts_l) == 0:
        missing = lab.vertebra_name(upper) if len(pts_u) == 0 else lab.vertebra_name(lower)
        raise MeasurementError(
            f"level {level}: vertebral body {missing} not in the label map",
            hint="the bulge baseline needs both adjacent vertebral bodies",
        )
    c_d = pts_d.mean(axis=0)
    c_u = pts_u.mean(axis=0)
    c_l = pts_l.mean(axis=0)
    # local parts of the bodies near the disc: the whole sacrum would bias the axis
    si0 = _unit(c_u - c_l)
    near_u = pts_u[np.abs((pts_u - c_d) @ si0) < 25]
    near_l = pts_l[np.abs((pts_l - c_d) @ si0) < 25]
    if len(near_u):
        c_u = near_u.mean(axis=0)
    if len(near_l):
        c_l = near_l.mean(axis=0)
    si0 = _unit(c_u - c_l)

    has_canal = False
    ap0 = None
    pts_c = index.points(lab.CANAL)
    if len(pts_c):
        half = max(8.0, float(np.ptp((pts_d - c_d) @ si0)) / 2 + 4.0)
        sel = pts_c[np.abs((pts_c - c_d) @ si0) < half]
        if len(sel) >= 3:
            c_c = sel.mean(axis=0)
            v = c_d - c_c
            v = v - (v @ si0) * si0
            if np.linalg.norm(v) > 3.0:
                ap0 = _unit(v)
                has_canal = True
    if ap0 is None:
        # no canal: anterior is world +y projected off the disc axis
        v = np.array([0.0, 1.0, 0.0]) - si0[1] * si0
        ap0 = _unit(v)
    u_lr = _unit(np.cross(ap0, si0))
    n = slice_normal(affine, np.shape(labels)) if np.ndim(labels) == 3 else None
    if n is not None:
        # one slice: its own plane is the only one with data. Without a canal at the level (a
        # slice leaning out of the canal) the plane from world anterior left it, and the band's
        # planes met the slice along a line only (phantom, 6 degrees lean: an L5-S1 bulge of 13.6 mm)
        u_lr = n if n @ u_lr >= 0 else -n

    # disc axis: minor principal axis of the disc outline within the sagittal plane
    rel = pts_d - c_d
    inplane = rel - np.outer(rel @ u_lr, u_lr)
    cov = inplane.T @ inplane / max(len(rel) - 1, 1)
    w, v = np.linalg.eigh(cov)
    cand = [v[:, i] for i in range(3) if abs(v[:, i] @ u_lr) < 0.5]
    cand.sort(key=lambda e: e @ cov @ e)
    u_si = cand[0] if cand else si0
    u_si = u_si - (u_si @ u_lr) * u_lr
    u_si = _unit(u_si)
    if u_si @ si0 < 0:
        u_si = -u_si
    # the minor axis of a thin disc is well defined; guard against round blobs
    if abs(u_si @ si0) < 0.7:
        u_si = _unit(si0 - (si0 @ u_lr) * u_lr)
    u_ap = _unit(np.cross(u_si, u_lr))
    if u_ap @ ap0 < 0:  # keep anterior
        u_ap = -u_ap
        u_lr = -u_lr

    origin = c_d.copy()
    if has_canal:
        # put the origin on the canal midline (left-right)
        origin = origin + ((c_c - c_d) @ u_lr) * u_lr
    return LevelFrame(level, int(disc), int(upper), int(lower), origin, u_lr, u_ap, u_si, has_canal)
