"""Seeded segmentation: one click per disc fixes the level labels.

The automatic segmentation finds the structures; the seeds say which disc is
which level. Each seed selects the disc segment containing it (or the nearest
within 10 mm); that disc and the bodies around it are renumbered so the labels
follow the radiologist's counting, not the automatic sacrum detection.
"""

from __future__ import annotations

import numpy as np

from .. import labels as lab
from ..errors import SegmentationError
from .core import Segmentation, levels_of

__all__ = ["segment_seeded", "parse_seeds"]


def parse_seeds(seeds, *, lowest_level: str = "L5-S1") -> list[tuple[int, np.ndarray]]:
    """Seeds as [(disc label, world point)], cranio-caudal order not required."""
    out = []
    if isinstance(seeds, dict):
        for key, pt in seeds.items():
            label = lab.disc_label_from_name(key) if isinstance(key, str) else int(key)
            if not lab.is_disc(label):
                raise SegmentationError(f"seed key {key!r} is not a disc level", hint="use names like 'L4-L5' or labels like 123")
            out.append((label, np.asarray(pt, float)))
        return out
    pts = np.asarray(seeds, float)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise SegmentationError(f"seeds must be an (N, 3) array of world points, got shape {pts.shape}")
    order = np.argsort(pts[:, 2])  # caudal first (world z)
    low = lab.disc_label_from_name(lowest_level)
    for k, i in enumerate(order):
        out.append((low - k, pts[i]))
    return out


def segment_seeded(scan, seeds, *, lowest_level: str = "L5-S1", max_distance_mm: float = 10.0) -> Segmentation:
    """Segment automatically, then label the discs (and bodies) as the seeds say."""
    from .auto import segment_auto

    parsed = parse_seeds(seeds, lowest_level=lowest_level)
    try:
        base = segment_auto(scan).labels
    except SegmentationError as exc:
        raise SegmentationError(f"seeded segmentation could not find the structures ({exc.reason})",
                                hint="check the image; seeds only relabel what is found") from None
    disc_vals = [int(v) for v in np.unique(base) if lab.is_disc(v)]
    centroids = {}
    for v in disc_vals:
        idx = np.argwhere(base == v)
        centroids[v] = idx
    mapping: dict[int, int] = {}
    for label, pt in parsed:
        best, best_d = None, np.inf
        for v, idx in centroids.items():
            w = idx @ scan.affine[:3, :3].T + scan.affine[:3, 3]
            d = float(np.min(np.linalg.norm(w - pt, axis=1)))
            if d < best_d:
                best, best_d = v, d
        if best is None or best_d > max_distance_mm:
            raise SegmentationError(f"no disc found within {max_distance_mm:g} mm of the {lab.disc_level_name(label)} seed "
                                    f"at R {pt[0]:.1f}, A {pt[1]:.1f}, S {pt[2]:.1f} mm (RAS+)",
                                    hint="place the point inside the disc")
        mapping[best] = label
    # shift all levels by the seeds' offset (consistent renumbering), seeds win where given
    offsets = {new - old for old, new in mapping.items()}
    if len(offsets) != 1:
        raise SegmentationError("the seeds disagree with the disc order found (levels skipped or swapped)",
                                hint="place one seed per consecutive disc")
    off = offsets.pop()
    out = np.zeros_like(base)
    for v in np.unique(base):
        if v == 0:
            continue
        m = base == v
        if lab.is_disc(v):
            out[m] = v + off
        elif lab.is_vertebra(v):
            nv = v if v == lab.SACRUM and off == 0 else v + off
            if v == lab.SACRUM and off != 0:
                nv = 24 + off + 1 if off < 0 else lab.SACRUM  # the "sacrum" was really a lumbar body
            out[m] = max(nv, 1)
        else:
            out[m] = v
    levels = levels_of(out)
    return Segmentation(out.astype(np.int16), np.array(scan.affine), levels,
                        {lv: {"confidence": 1.0, "flags": ["seeded"]} for lv in levels}, "seeded")
