"""``segment()`` and the :class:`Segmentation` result."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from .. import labels as lab
from ..errors import SegmentationError

__all__ = ["Segmentation", "segment", "levels_of"]


@dataclass
class Segmentation:
    """Labels of a scan in the discmeasure convention.

    Attributes
    ----------
    labels : ndarray (int16)
        On the scan's spatial grid: vertebral bodies = vertebra number (L1 = 20 ... S1 = 26),
        discs = 100 + number of the vertebra above, canal = 61.
    affine : ndarray
        The scan's voxel -> world transform.
    levels : list of str
        Disc levels present, cranio-caudal (e.g. ["T12-L1", "L1-L2", ..., "L5-S1"]).
    qc : dict
        Per level: ``{"confidence": 0..1, "flags": [...]}``.
    method : str
        "auto", "seeded" or "labels:<convention>".
    body_fraction : ndarray (float32) or None
        Partial volume of the vertebral bodies, on the labels' grid: the fraction of each voxel
        that lies inside a vertebral body (1 inside, 0 far from any body). The disc heights read
        the endplates off it to sub-voxel precision, from the voxels labelled as the body and
        their neighbours that are no body's (docs/methods.md). None when not known (imported or
        seeded labels; an automatic segmentation of a scan whose in-plane pixels are under 0.5 or
        over 1.25 mm, or of an axial stack: no working grid has the scan's own pixels). It need
        not agree with the labels voxel by voxel: the labels follow the segmentation's own rule
        (automatic: a cortical shell grown over whole voxels), so at an endplate a voxel
        labelled as a body can hold less than half of one, and a voxel the disc was given more.
        The fraction is ignored once the bodies' labels change after the Segmentation was made
        (edited in napari, say): see :func:`bodies_digest`.
    """

    labels: np.ndarray
    affine: np.ndarray
    levels: list = field(default_factory=list)
    qc: dict = field(default_factory=dict)
    method: str = ""
    body_fraction: np.ndarray | None = None
    bodies_at_creation: str | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if self.body_fraction is not None and self.bodies_at_creation is None:
            self.bodies_at_creation = bodies_digest(self.labels)

    def __repr__(self) -> str:  # a summary: the dataclass default printed the whole label array
        flagged = sorted(lv for lv, q in self.qc.items() if isinstance(q, dict) and q.get("flags"))
        pv = ", body_fraction" if self.body_fraction is not None else ""
        fl = f", flagged={flagged}" if flagged else ""
        return f"<Segmentation {self.method or '?'} shape={tuple(self.labels.shape)} levels={list(self.levels)}{fl}{pv}>"

    def to_scan(self):
        from ..scan import Scan

        return Scan(self.labels.astype(np.int16), self.affine, meta={"series_description": f"discmeasure labels ({self.method})"})

    def to_nifti(self):
        return self.to_scan().to_nifti(dtype=np.int16)


def bodies_digest(labels: np.ndarray) -> str:
    """SHA-1 of where a label map has vertebral bodies (labels 1-26): a changed body mask
    changes it, so a body partial volume made for other labels is recognised as stale."""
    body = lab.vertebra_mask(labels)
    return hashlib.sha1(np.packbits(body).tobytes() + str(body.shape).encode()).hexdigest()


def levels_of(labels: np.ndarray) -> list[str]:
    """Disc level names present in a label map, cranio-caudal."""
    return [lab.disc_level_name(int(v)) for v in np.unique(labels) if lab.is_disc(v)]


def segment(scan, *, method: str = "auto", seeds=None, labels=None, convention: str = "auto", **kwargs) -> Segmentation:
    """Segment discs, vertebral bodies and the canal of a T2-weighted lumbar scan.

    Parameters
    ----------
    scan : Scan
        T2-weighted image (sagittal or 3-D; any orientation and spacing; one slice or many).
    method : {"auto", "seeded", "labels"}
        ``auto``: classical segmentation (:mod:`discmeasure.segmentation.auto`); ``seeded``: from one
        point per disc (:mod:`discmeasure.segmentation.seeded`); ``labels``: import a label map
        (:mod:`discmeasure.segmentation.conventions`).
    seeds : mapping or (N, 3) array
        For ``seeded``: {level name or disc label: world point (mm)} or disc points ordered
        cranio-caudally, the lowest being L5-S1 unless ``lowest_level=`` is given.
    labels : path, Scan or ndarray
        For ``labels``: the label map (an array must be on the scan's grid).
    convention : str
        For ``labels``: "auto", "discmeasure", "spineps", "totalspineseg", "spider",
        "totalsegmentator_vertebrae_mr", "totalsegmentator_total_mr".

    Returns
    -------
    Segmentation
    """
    if scan.ndim == 4:
        raise SegmentationError(f"the image has {scan.n_volumes} volumes", hint="segment a single T2-weighted volume")
    if method == "auto":
        from .auto import segment_auto

        return segment_auto(scan, **kwargs)
    if method == "seeded":
        if seeds is None:
            raise SegmentationError("seeded segmentation needs seeds", hint="give one world point (mm) per disc")
        from .seeded import segment_seeded

        return segment_seeded(scan, seeds, **kwargs)
    if method == "labels":
        if labels is None:
            raise SegmentationError("method='labels' needs labels=", hint="give a label map path, Scan or array")
        from .conventions import import_labels

        return import_labels(scan, labels, convention=convention)
    raise SegmentationError(f"unknown method {method!r}", hint="use 'auto', 'seeded' or 'labels'")
