"""Sagittal planes of a level, resampled from the label map in world coordinates.

Each structure (disc, upper and lower vertebral body) becomes a soft mask:
its binary mask is trilinearly interpolated at the plane's sample points, so
the 0.5 iso-line runs half-way between inside and outside voxel centres, i.e.
on the voxel faces of a partial-volume (majority) label map. Contours are then
traced with marching squares (Lorensen & Cline 1987, as
:func:`skimage.measure.find_contours`), giving a sub-voxel boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .. import labels as lab
from .frame import LabelIndex, LevelFrame

__all__ = ["PlaneStack", "sample_planes", "contours"]


@dataclass
class PlaneStack:
    """Soft masks of one level on a stack of sagittal planes.

    ``masks[name]`` has shape ``(n_planes, n_ap, n_si)``; plane ``k`` lies at
    left-right offset ``lr[k]`` (mm from the canal midline); sample ``(i, j)`` at
    ``ap[i]``, ``si[j]`` (mm in the level frame).
    """

    frame: LevelFrame
    lr: np.ndarray
    ap: np.ndarray
    si: np.ndarray
    masks: dict[str, np.ndarray]
    step: float
    image: np.ndarray | None = None  # the scan's intensities on the planes (trilinear), if given

    def world(self, k: int | float, ap, si) -> np.ndarray:
        """World points of plane coordinates (plane index ``k`` or an lr offset in mm if float)."""
        lr = self.lr[k] if isinstance(k, (int, np.integer)) else float(k)
        return self.frame.to_world(lr, ap, si)


def sample_planes(
    labels: np.ndarray,
    affine: np.ndarray,
    frame: LevelFrame,
    *,
    lr_offsets,
    ap_range=(-40.0, 40.0),
    si_range=(-22.0, 22.0),
    step: float = 0.25,
    structures: dict[str, int] | None = None,
    index=None,
    image: np.ndarray | None = None,
    image_ap_range: tuple[float, float] | None = None,
    body_fraction: np.ndarray | None = None,
) -> PlaneStack:
    """Resample soft masks of the level's structures onto sagittal planes.

    Parameters
    ----------
    labels, affine
        Label map and its voxel -> world transform.
    frame : LevelFrame
        The level's frame (:func:`~discmeasure.measurements.frame.level_frame`).
    lr_offsets : sequence of float
        Left-right offsets (mm) of the planes from the canal midline.
    ap_range, si_range : (float, float)
        Extent of each plane (mm) along the frame's AP and SI axes.
    step : float
        In-plane sampling step (mm).
    structures : dict, optional
        Name -> label; default disc, upper and lower vertebral bodies.
    index : LabelIndex, optional
        Bounding boxes of the labels (:class:`~discmeasure.measurements.frame.LabelIndex`).
    image : ndarray, optional
        The scan's intensities on the label map's grid. When given, they are interpolated
        (trilinear) onto the planes within the structures' box (``PlaneStack.image``, 0 outside),
        for the image-based edge refinement of :mod:`~discmeasure.measurements.edges`.
    image_ap_range : (float, float), optional
        Sample the image only within this AP range (mm; the refinement needs the posterior part).
    body_fraction : ndarray, optional
        The bodies' partial volume on the label map's grid (:attr:`Segmentation.body_fraction
        <discmeasure.segmentation.Segmentation.body_fraction>`). When given, the upper and
        lower bodies are also sampled from it (``masks["upper_pv"]``, ``masks["lower_pv"]``):
        in a voxel labelled as the body and in a voxel next to it that is no body's, the
        fraction there; else 0. Their 0.5 crossing follows the sub-voxel face instead of the
        voxel faces.
    """
    if structures is None:
        structures = {"disc": frame.label, "upper": frame.upper, "lower": frame.lower}
    lr = np.asarray(lr_offsets, float)
    ap = np.arange(ap_range[0], ap_range[1] + step / 2, step)
    si = np.arange(si_range[0], si_range[1] + step / 2, step)
    shape = (len(lr), len(ap), len(si))
    # voxel coordinates of the samples: inv(affine) applied to the frame's world points, as a
    # sum of three broadcast terms (no meshgrid / world array: most of the time for big planes)
    inv = np.linalg.inv(affine)
    m = inv[:3, :3]
    c0 = m @ frame.origin + inv[:3, 3]
    a_lr, a_ap, a_si = m @ frame.u_lr, m @ frame.u_ap, m @ frame.u_si
    index = index if index is not None else LabelIndex(labels, affine)
    lr_increasing = bool(np.all(np.diff(lr) > 0))

    def interpolate(box, values_of, mode, ap_limits=None):
        """``values_of(crop)`` (the array over index slices ``crop`` around ``box``) on the planes.

        Linear weights are zero more than a voxel outside the crop: only the samples inside the
        frame-aligned bounding box of the crop (grown by 1.5 voxels) are interpolated, the rest
        stay 0 (a body's crop covers about half of the planes' area, the disc's less).
        """
        out = np.zeros(shape, np.float32)
        if box is None:
            return out
        lo = np.maximum(np.array([b.start for b in box]) - 2, 0)
        hi = np.minimum(np.array([b.stop for b in box]) + 2, labels.shape)
        corners = np.array([[x, y, z] for x in (lo[0] - 1.5, hi[0] + 0.5) for y in (lo[1] - 1.5, hi[1] + 0.5)
                            for z in (lo[2] - 1.5, hi[2] + 0.5)])
        w = corners @ np.asarray(affine)[:3, :3].T + np.asarray(affine)[:3, 3] - frame.origin
        sel = []
        for axis, u in ((lr, frame.u_lr), (ap, frame.u_ap), (si, frame.u_si)):
            t = w @ u
            sel.append(slice(int(np.searchsorted(axis, t.min(), "left")), int(np.searchsorted(axis, t.max(), "right"))))
        k, i, j = sel
        if ap_limits is not None:
            i = slice(max(i.start, int(np.searchsorted(ap, ap_limits[0], "left"))),
                      min(i.stop, int(np.searchsorted(ap, ap_limits[1], "right"))))
        if any(sl.stop <= sl.start for sl in (k, i, j)):
            return out
        if not lr_increasing:  # no search along unsorted offsets
            k = slice(0, len(lr))
        sub = np.asarray(values_of(tuple(slice(a, b) for a, b in zip(lo, hi))), np.float32)
        coords = np.stack([(c0[d] + lr[k, None, None] * a_lr[d] + ap[None, i, None] * a_ap[d]
                            + si[None, None, j] * a_si[d] - lo[d]).ravel() for d in range(3)])
        for d in range(3):
            if sub.shape[d] == 1:
                # a single slice: a point within its thickness takes its value. map_coordinates'
                # "constant" mode gives cval anywhere off the one sample position, so a plane
                # lying in an oblique slice up to rounding (1e-15 voxel) read nothing at all
                inside = np.abs(coords[d]) <= 0.5
                coords[d][inside] = 0.0
        vals = ndimage.map_coordinates(sub, coords, order=1, mode=mode, cval=0.0, prefilter=False)
        out[k, i, j] = vals.reshape(k.stop - k.start, i.stop - i.start, j.stop - j.start)
        return out

    masks = {name: interpolate(index.box(value), lambda crop, v=value: labels[crop] == v, "constant")
             for name, value in structures.items()}
    if body_fraction is not None:
        def partial(crop, v):
            own = labels[crop] == v
            nb = ndimage.binary_dilation(own) & ~own & ~lab.vertebra_mask(labels[crop])
            f = body_fraction[crop]
            return np.where(own | nb, f, 0.0)

        for name in ("upper", "lower"):
            if name in structures:
                masks[f"{name}_pv"] = interpolate(index.box(structures[name]),
                                                  lambda crop, v=structures[name]: partial(crop, v), "constant")
    img_out = None
    present = [b for b in (index.box(v) for v in structures.values()) if b is not None]
    if image is not None and present:
        # the image over the union of the structures' boxes (grown by 2 mm worth of voxels); it
        # does not fall to 0 at its crop's edge (mode "nearest")
        grow = int(np.ceil(2.0 / min(np.linalg.norm(np.asarray(affine)[:3, :3], axis=0))))
        union = tuple(slice(max(min(b[d].start for b in present) - grow, 0),
                            min(max(b[d].stop for b in present) + grow, labels.shape[d])) for d in range(3))
        img_out = interpolate(union, lambda crop: image[crop], "nearest", image_ap_range)
    return PlaneStack(frame, lr, ap, si, masks, step, img_out)


def contours(plane: np.ndarray, ap: np.ndarray, si: np.ndarray, level: float = 0.5) -> list[np.ndarray]:
    """Iso-contours of a 2-D soft mask as arrays of (ap, si) points in mm (marching squares)."""
    from skimage import measure

    if plane.max() < level:
        return []
    step_ap = ap[1] - ap[0] if len(ap) > 1 else 1.0
    step_si = si[1] - si[0] if len(si) > 1 else 1.0
    # marching squares only over the rows/columns that reach the level (+1 sample): the same
    # contours, without scanning the empty rest of the plane
    rows = np.flatnonzero((plane >= level).any(axis=1))
    cols = np.flatnonzero((plane >= level).any(axis=0))
    i0, j0 = max(rows[0] - 1, 0), max(cols[0] - 1, 0)
    sub = plane[i0:rows[-1] + 2, j0:cols[-1] + 2]
    padded = np.pad(sub, 1)
    out = []
    for c in measure.find_contours(padded, level):
        c = c - 1.0
        out.append(np.column_stack([ap[0] + (c[:, 0] + i0) * step_ap, si[0] + (c[:, 1] + j0) * step_si]))
    return out
