"""Resampling between grids through world coordinates.

Two series of one visit (a sagittal T2-weighted image and a multi-echo series,
say) rarely share a voxel grid. Labels and maps are moved between them through
the world (RAS+ mm) coordinates of each voxel centre, never by array index.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["resample", "resample_mask", "resample_to_scan", "grid_affine", "bounding_grid", "bounding_box",
           "crop_affine", "slice_normal"]


def resample(
    data: np.ndarray,
    src_affine: np.ndarray,
    dst_shape: tuple[int, int, int],
    dst_affine: np.ndarray,
    *,
    order: int = 1,
    cval: float = 0.0,
    chunk: int = 4_000_000,
    mode: str = "constant",
) -> np.ndarray:
    """Resample a 3-D (or 3-D + volumes) array onto another grid.

    Parameters
    ----------
    data : ndarray
        Source array, spatial axes first; a 4th axis is resampled volume by volume.
    src_affine, dst_affine : (4, 4) ndarray
        Voxel -> world transforms of source and destination.
    dst_shape : tuple of int
        Spatial shape of the destination grid.
    order : int
        Spline order: 0 = nearest neighbour (use for labels), 1 = trilinear.
    cval : float
        Value outside the source field of view.
    mode : str
        How points beyond the outermost voxel centres are filled (:func:`scipy.ndimage.affine_transform`):
        ``"constant"`` (``cval``), ``"nearest"`` (the edge values), ``"grid-constant"`` (with
        ``order=0``: the outer half voxel is inside, i.e. the field of view ends at the voxel faces).

    Returns
    -------
    ndarray
        Array of shape ``dst_shape`` (+ volume axis), dtype of ``data`` for
        ``order=0``, float otherwise.
    """
    data = np.asarray(data)
    if data.ndim == 4:
        return np.stack(
            [resample(data[..., i], src_affine, dst_shape, dst_affine, order=order, cval=cval, mode=mode)
             for i in range(data.shape[3])],
            axis=-1,
        )
    m = np.linalg.inv(src_affine) @ dst_affine
    dst_shape = tuple(int(n) for n in dst_shape)
    flat = [a for a in range(3) if data.shape[a] == 1]
    if flat and mode != "nearest":  # ("nearest" already extends a single slice along its normal)
        return _resample_slab(data, m, dst_shape, flat, order=order, cval=cval, mode=mode)
    # affine_transform maps output index o to input index M o + t: exactly our m
    return _affine(data, m[:3, :3], m[:3, 3], dst_shape, order=order, cval=cval, mode=mode)


def slice_normal(affine: np.ndarray, shape) -> np.ndarray | None:
    """Unit normal of a one-slice grid's plane (the cross product of its two in-plane axes, so a
    sheared affine, e.g. a gantry tilt, is handled), pointing along its slice axis; None when no
    spatial axis of ``shape`` has a single voxel."""
    flat = [a for a in range(3) if tuple(shape)[a] == 1]
    if not flat:
        return None
    A = np.asarray(affine, float)[:3, :3]
    ax = flat[0]
    n = np.cross(A[:, (ax + 1) % 3], A[:, (ax + 2) % 3])
    n /= np.linalg.norm(n)
    return n if n @ A[:, ax] >= 0 else -n


def _resample_slab(data, m, dst_shape, flat, *, order, cval, mode):
    """:func:`resample` of a source with a single voxel along the axes ``flat`` (one slice).

    Such a slice stands for a slab one voxel thick: a destination voxel whose centre lies within
    half a voxel of it along that axis takes its values (interpolated in its plane), any other
    gets ``cval``. ``affine_transform`` alone cannot do this: its "constant" mode gives ``cval``
    anywhere off the one sample position, so a slice resampled onto itself after a rotation in
    its plane (coordinates 1e-15 off) came out blank, and an oblique slice onto any other grid
    hit only voxels exactly on its plane. The slice is replicated to three along those axes (the
    interpolation across them is then constant), and the slab is cut out afterwards.
    """
    src = data
    t = m[:3, 3].copy()
    for a in flat:
        src = np.concatenate([src] * 3, axis=a)
        t[a] += 1.0  # index 0 of the source is now index 1
    out = _affine(src, m[:3, :3], t, dst_shape, order=order, cval=cval, mode=mode)
    grids = np.ogrid[tuple(slice(0, n) for n in dst_shape)]
    outside = np.zeros(dst_shape, bool)
    for a in flat:
        coord = sum(m[a, k] * grids[k] for k in range(3)) + m[a, 3]
        outside |= np.abs(coord) > 0.5 + 1e-9
    out[outside] = cval
    return out


def _affine(data, matrix, offset, dst_shape, *, order, cval, mode):
    """``scipy.ndimage.affine_transform`` as :func:`resample` calls it (output index ``o`` -> input
    index ``matrix @ o + offset``): order 0 keeps the dtype (bool via uint8), higher orders are
    float without spline prefiltering."""
    if order == 0:
        out = ndimage.affine_transform(data, matrix, offset=offset, output_shape=dst_shape, order=0, mode=mode,
                                       cval=cval, output=data.dtype if data.dtype != bool else np.uint8)
        return out.astype(bool) if data.dtype == bool else out
    src = data.astype(np.float32 if data.dtype.itemsize <= 4 else np.float64, copy=False)
    return ndimage.affine_transform(src, matrix, offset=offset, output_shape=dst_shape, order=order, mode=mode,
                                    cval=cval, prefilter=False)


def resample_mask(mask: np.ndarray, src_affine: np.ndarray, dst_shape, dst_affine: np.ndarray) -> np.ndarray:
    """A binary mask on another grid, independent of either grid's axis order and direction.

    The mask is interpolated trilinearly and thresholded at one half (``>= 0.5``, with a 1e-6
    tolerance for rounding). Nearest-neighbour resampling (``resample(order=0)``) is not
    symmetric: a destination point exactly half-way between two source voxels takes one or the
    other depending on which way the array axes run, so the same data stored flipped or
    permuted (a NIfTI export of a DICOM series, say) gave different ROI contents and T2 medians
    (up to 1 ms). Linear weights are symmetric, so this is not.

    Parameters
    ----------
    mask : ndarray of bool
        Source mask (3-D).
    src_affine, dst_affine : (4, 4) ndarray
        Voxel -> world transforms.
    dst_shape : tuple of int
        Destination spatial shape.

    Returns
    -------
    ndarray of bool
    """
    m = np.asarray(mask, bool)
    dst_shape = tuple(int(n) for n in dst_shape)
    out = np.zeros(dst_shape, bool)
    box = bounding_box(m)
    if box is None:
        return out
    # Only voxels within one source voxel of the mask can get a weight: resample the mask's bounding
    # box plus one voxel of margin onto the part of the destination grid it covers (same result as
    # the whole volume, a fraction of the work for a small ROI in a large image).
    lo = np.maximum(box[0] - 1, 0)
    hi = np.minimum(box[1] + 1, m.shape[:3])
    sub = m[tuple(slice(a, b) for a, b in zip(lo, hi))]
    src_sub = crop_affine(src_affine, lo)
    corners = np.array([[i, j, k] for i in (0, hi[0] - lo[0] - 1) for j in (0, hi[1] - lo[1] - 1)
                        for k in (0, hi[2] - lo[2] - 1)], float)
    to_dst = np.linalg.inv(np.asarray(dst_affine, float)) @ src_sub
    c = corners @ to_dst[:3, :3].T + to_dst[:3, 3]
    d_lo = np.maximum(np.floor(c.min(axis=0)).astype(int) - 1, 0)
    d_hi = np.minimum(np.ceil(c.max(axis=0)).astype(int) + 2, dst_shape)
    if np.any(d_hi <= d_lo):
        return out
    w = resample(sub.astype(np.float32), src_sub, tuple(d_hi - d_lo), crop_affine(dst_affine, d_lo),
                 order=1)
    out[tuple(slice(a, b) for a, b in zip(d_lo, d_hi))] = w >= 0.5 - 1e-6
    return out


def bounding_box(mask: np.ndarray):
    """Index bounds of the True voxels of a mask.

    Returns
    -------
    (lo, hi) : pair of int ndarrays, or None
        ``mask[lo[0]:hi[0], lo[1]:hi[1], ...]`` holds every True voxel (``hi`` exclusive);
        None when the mask is empty.
    """
    lo, hi = [], []
    for ax in range(mask.ndim):
        nz = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != ax)))
        if not len(nz):
            return None
        lo.append(nz[0])
        hi.append(nz[-1] + 1)
    return np.array(lo), np.array(hi)


def crop_affine(affine: np.ndarray, offset) -> np.ndarray:
    """Voxel -> world transform of a sub-array starting at voxel index ``offset`` of ``affine``'s grid."""
    t = np.eye(4)
    t[:3, 3] = offset
    return np.asarray(affine, float) @ t


def resample_to_scan(data: np.ndarray, src_affine: np.ndarray, target, *, order: int = 1, cval: float = 0.0) -> np.ndarray:
    """Resample ``data`` (on ``src_affine``) onto the grid of Scan ``target``."""
    return resample(data, src_affine, target.shape, target.affine, order=order, cval=cval)


def grid_affine(direction: np.ndarray, spacing, origin) -> np.ndarray:
    """4x4 affine from a 3x3 matrix of unit column directions, voxel spacing and origin."""
    a = np.eye(4)
    a[:3, :3] = np.asarray(direction, float) * np.asarray(spacing, float)[None, :]
    a[:3, 3] = origin
    return a


def bounding_grid(affine: np.ndarray, shape, direction: np.ndarray, spacing, margin_mm: float = 0.0):
    """Grid with axes ``direction`` and ``spacing`` covering the field of view of (affine, shape).

    Returns
    -------
    (shape, affine)
    """
    shape = np.asarray(shape[:3])
    corners = np.array(np.meshgrid(*[[-0.5, n - 0.5] for n in shape], indexing="ij")).reshape(3, -1).T
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    direction = np.asarray(direction, float)
    local = world @ direction  # coordinates along the new axes
    lo = local.min(axis=0) - margin_mm
    hi = local.max(axis=0) + margin_mm
    spacing = np.asarray(spacing, float)
    n = np.maximum(1, np.ceil((hi - lo) / spacing - 1e-6)).astype(int)
    origin_local = lo + spacing / 2
    origin = direction @ origin_local
    return tuple(int(v) for v in n), grid_affine(direction, spacing, origin)
