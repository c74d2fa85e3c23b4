"""``segment()`` and the :class:`Segmentation` result."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

import numpy as np

from .. import labels as lab
from ..errors import InputError, SegmentationError

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
    source : dict
        The DICOM identity of the scan the labels were made on, as far as known (``series_uid``,
        ``study_uid``, ``frame_of_reference_uid`` from its ``meta``; empty for other inputs):
        :func:`~discmeasure.io.dicom_seg.write_dicom_seg` refuses to file the labels on another
        series (two visits can share one grid).
    """

    labels: np.ndarray
    affine: np.ndarray
    levels: list = field(default_factory=list)
    qc: dict = field(default_factory=dict)
    method: str = ""
    body_fraction: np.ndarray | None = None
    bodies_at_creation: str | None = field(default=None, repr=False, compare=False)
    source: dict = field(default_factory=dict, repr=False, compare=False)

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


#: the automatic segmentation expects magnitude intensities with background near 0. An image with
#: more than this share (%) of negative voxels is not one (z-scored or mean-subtracted arrays: 66-82 %
#: negative; magnitude images 0 %, resampled with cubic/quintic splines up to 3.8 % from ringing)
MAX_NEGATIVE_PCT = 20.0
#: ... nor one whose darkest 1 % (1st percentile) lies above this share (%) of its brightest (99th
#: percentile): magnitude images 0-2.4 % (central half of the field of view only: up to 6.1 %);
#: an offset of +50 on the sct lumbar volume 18.7 %, +500 69.6 %
MAX_DARKEST_PCT = 10.0


def intensity_stats(data) -> tuple[float, float]:
    """(% of negative voxels, 1st percentile as % of the 99th) over the finite voxels of ``data``
    (a strided sample of at most ~2 million); the second is NaN when the 99th percentile is not
    above 0."""
    arr = np.asarray(data)
    flat = arr.reshape(-1)[:: max(1, arr.size // 2_000_000)]
    flat = flat[np.isfinite(flat)] if flat.dtype.kind in "fc" else flat
    if flat.size == 0:
        return 0.0, float("nan")
    flat = flat.astype(np.float64, copy=False)
    neg = 100.0 * np.count_nonzero(flat < 0) / flat.size
    p1, p99 = np.percentile(flat, [1.0, 99.0])
    return float(neg), float(100.0 * p1 / p99) if p99 > 0 else float("nan")


def check_magnitude_image(scan) -> None:
    """SegmentationError (one line) when ``scan`` is clearly not a magnitude image with background
    near 0 (see :data:`MAX_NEGATIVE_PCT`, :data:`MAX_DARKEST_PCT`): the automatic segmentation
    reads tissue classes relative to a dark background, and an offset or a normalised array moved
    levels and bulges without a word."""
    neg, darkest = intensity_stats(scan.data)
    hint = "pass the scanner's magnitude image, not a normalised one"
    base = "magnitude images with background near 0 expected"
    if neg > MAX_NEGATIVE_PCT:
        raise SegmentationError(f"{base}; the image has {neg:.1f} % negative voxels", hint=hint)
    if darkest > MAX_DARKEST_PCT:
        raise SegmentationError(f"{base}; its darkest 1 % lies at {darkest:.1f} % of its brightest", hint=hint)


def segment(scan, *, method: str = "auto", seeds=None, labels=None, convention: str = "auto", **kwargs) -> Segmentation:
    """Segment discs, vertebral bodies and the canal of a T2-weighted lumbar scan.

    Parameters
    ----------
    scan : Scan
        T2-weighted image (sagittal or 3-D; any orientation and spacing; one slice or many). Not a
        path: ``dm.load(path)`` first. ``auto`` (and ``seeded``, which relabels its result) expects
        the scanner's magnitude image, background (air) near 0, at any scale: an image with more
        than :data:`MAX_NEGATIVE_PCT` (20) % negative voxels, or whose 1st percentile lies above
        :data:`MAX_DARKEST_PCT` (10) % of its 99th (z-scored, mean-subtracted, offset added), is
        refused (SegmentationError). NaN/infinite voxels are read as 0 (background), with a
        warning giving their count; an image without any finite voxel is refused (InputError).
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
    from ..scan import Scan, finite_scan

    if not isinstance(scan, Scan):
        if isinstance(scan, (str, os.PathLike)):
            raise InputError("segment takes a Scan, not a path", path=scan, hint="pass a Scan: dm.load(path) first")
        what = "an array" if isinstance(scan, np.ndarray) else type(scan).__name__
        fix = "dm.Scan(array, affine): the voxel geometry is needed" if isinstance(scan, np.ndarray) else \
            "dm.load(path) first"
        raise InputError(f"segment takes a Scan, got {what}", hint=f"pass a Scan: {fix}")
    if scan.ndim == 4:
        raise SegmentationError(f"the image has {scan.n_volumes} volumes", hint="segment a single T2-weighted volume")
    if method not in ("auto", "seeded", "labels"):
        raise SegmentationError(f"unknown method {method!r}", hint="use 'auto', 'seeded' or 'labels'")
    if method == "seeded" and seeds is None:
        raise SegmentationError("seeded segmentation needs seeds", hint="give one world point (mm) per disc")
    if method == "labels" and labels is None:
        raise SegmentationError("method='labels' needs labels=", hint="give a label map path, Scan or array")
    scan = finite_scan(scan)
    if method == "auto":
        from .auto import segment_auto

        check_magnitude_image(scan)
        seg = segment_auto(scan, **kwargs)
    elif method == "seeded":
        from .seeded import segment_seeded

        check_magnitude_image(scan)  # seeds relabel what the automatic segmentation finds
        seg = segment_seeded(scan, seeds, **kwargs)
    else:
        from .conventions import import_labels

        seg = import_labels(scan, labels, convention=convention)
    # the scan's DICOM identity, so that the labels are filed on their own series only (DICOM SEG)
    meta = getattr(scan, "meta", None) or {}
    seg.source = {k: str(meta[k]) for k in ("series_uid", "study_uid", "frame_of_reference_uid") if meta.get(k)}
    return seg
