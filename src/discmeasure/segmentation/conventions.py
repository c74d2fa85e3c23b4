"""Import label maps of other spine tools and convert them to the discmeasure convention.

Mappings (source documentation in brackets; see docs/segmentation.md):

- ``discmeasure`` / ``spineps`` [SPINEPS seg-vert instance masks, Möller et al. 2025,
  doi:10.1007/s00330-024-11155-y]: vertebrae 1-26 (L1 = 20, S1 = 26) and discs 100 + upper
  vertebra are already ours; SPINEPS endplates 200 + v are merged into vertebra v; canal 61.
- ``totalspineseg`` [TotalSpineSeg README, Warszawer et al. 2025]: C1-C7 = 11-17, T1-T12 = 21-32,
  L1-L5 = 41-45, sacrum = 50; discs C2-C3 ... C6-C7 = 63-67, C7-T1 ... T11-T12 = 71-82,
  T12-L1 ... L4-L5 = 91-95, L5-S = 100; canal = 2 (CSF), cord = 1 (merged into canal 61).
- ``totalsegmentator_vertebrae_mr`` [TotalSegmentator map_to_binary.py, task vertebrae_mr]:
  1 = sacrum, 2 = L5, 3 = L4, ..., 6 = L1, 7 = T12, ..., 18 = T1, 19 = C7 ... 25 = C1. No discs.
- ``totalsegmentator_total_mr`` [same file, task total_mr]: 18 = sacrum, 19 = vertebrae (all,
  one class), 20 = intervertebral discs (all), 21 = spinal cord. Individual vertebrae and discs are
  separated into connected components and numbered upward from the sacrum.
- a DICOM SEG file [DICOM PS3.3 A.51]: segments mapped by their SNOMED CT property type codes
  (vertebrae CID 7603, discs CID 7604, spinal canal / CSF / cord = canal;
  :func:`discmeasure.io.dicom_seg.read_dicom_seg`), then ``discmeasure``.
- SPINEPS ``seg-subreg`` maps (vertebral parts 41-50, cord 60, canal 61, endplates 62, every
  disc 100; TPTBox ``Location``) are not convertible: they do not tell one vertebra or disc from
  another. They are recognised and refused with a request for the instance mask (``seg-vert``).
- ``spider`` [SPIDER dataset, van der Graaf et al. 2024, doi:10.1038/s41597-024-03090-w]:
  vertebrae 1-25 and discs 201-225 numbered upward from the most caudal vertebra, canal 100.
  The anatomical name of label 1 is not in the masks: discmeasure takes it as ``spider_lowest``
  (default "S1" = the sacrum, as SPIDER's most caudal labelled vertebra); check and override.
"""

from __future__ import annotations

import os

import numpy as np
from scipy import ndimage

from .. import labels as lab
from ..errors import SegmentationError
from .core import Segmentation, levels_of

__all__ = ["import_labels", "convert", "CONVENTIONS", "detect_convention", "is_spineps_subregion_map"]

CONVENTIONS = ("discmeasure", "spineps", "totalspineseg", "spider", "totalsegmentator_vertebrae_mr",
               "totalsegmentator_total_mr")


def _tss_map() -> dict[int, int]:
    m = {1: lab.CANAL, 2: lab.CANAL, 50: lab.SACRUM}
    for i in range(7):
        m[11 + i] = 1 + i  # C1..C7
    for i in range(12):
        m[21 + i] = 8 + i  # T1..T12
    for i in range(5):
        m[41 + i] = 20 + i  # L1..L5
    for i, v in enumerate(range(63, 68)):  # C2-C3 .. C6-C7: upper vertebra C2 (2) .. C6 (6)
        m[v] = lab.disc_label(2 + i)
    for i, v in enumerate(range(71, 83)):  # C7-T1 .. T11-T12: upper C7 (7) .. T11 (18)
        m[v] = lab.disc_label(7 + i)
    for i, v in enumerate(range(91, 96)):  # T12-L1 .. L4-L5: upper T12 (19) .. L4 (23)
        m[v] = lab.disc_label(19 + i)
    m[100] = lab.disc_label(24)  # L5-S1
    return m


def _vertebrae_mr_map() -> dict[int, int]:
    m = {1: lab.SACRUM}
    # 2 = L5 (24) ... 6 = L1 (20), 7 = T12 (19) ... 25 = C1 (1)
    for k in range(2, 26):
        m[k] = 26 - k
    return m


#: SPINEPS subregion (semantic) labels, TPTBox ``Location``: vertebral parts 40-53 (41 arcus ...
#: 48 inferior articular right, 49/50 corpus), 58/59 disc halves, cord 60, canal 61, endplate 62,
#: ribs 63/64, disc 100, canal at disc level 126
_SPINEPS_SUBREG = frozenset(range(40, 54)) | frozenset(range(58, 65)) | {100, 126}


def _defined(convention: str) -> frozenset[int]:
    """The label values ``convention`` defines (what :func:`convert` maps), for the auto-detection."""
    if convention in ("discmeasure", "spineps"):
        return frozenset(range(1, 27)) | frozenset(range(101, 126)) | frozenset(range(201, 227)) | {60, 61}
    if convention == "totalspineseg":
        return frozenset(_tss_map())
    if convention == "spider":
        return frozenset(range(1, 26)) | frozenset(range(201, 226)) | {100}
    if convention == "totalsegmentator_vertebrae_mr":
        return frozenset(range(1, 26))
    return frozenset(range(1, 51))  # total_mr: its other classes (organs) are left out


def is_spineps_subregion_map(values) -> bool:
    """True for a SPINEPS ``seg-subreg`` map: only subregion values, some of them not TotalSpineSeg's."""
    v = set(int(x) for x in values) - {0}
    return bool(v) and v <= _SPINEPS_SUBREG and bool(v & set(range(40, 60))) and not v <= _defined("totalspineseg")


def _detect(values) -> tuple[str | None, str]:
    """(convention, "") or (None, why not): the values present decide; a convention is only taken
    when it defines every value present (a SPINEPS subregion map read as TotalSpineSeg, whose
    L1-L5 are 41-45, merged every disc into L5-S1)."""
    v = set(int(x) for x in values) - {0}
    if not v:
        return None, "the map holds no labels"
    if is_spineps_subregion_map(v):
        return None, "it is a SPINEPS subregion map"
    guess = None
    if v <= {18, 19, 20, 21} or ({19, 20} <= v and max(v) <= 50 and not (v & set(range(100, 126)))):
        guess = "totalsegmentator_total_mr"
    elif v & set(range(201, 226)) and not (v & set(range(100, 126)) - {100}):
        guess = "spider"
    elif v & {91, 92, 93, 94, 95} or v & set(range(41, 46)) and not (v & set(range(101, 126))):
        guess = "totalspineseg"
    elif v & set(range(101, 126)) or v & set(range(201, 227)):
        guess = "spineps"
    if guess is None:
        return None, ""  # e.g. vertebrae 1-25 only: vertebrae_mr, SPIDER or ours without discs
    extra = sorted(v - _defined(guess))
    if extra:
        shown = ", ".join(map(str, extra[:12])) + (", ..." if len(extra) > 12 else "")
        return None, f"values {shown} are not {guess} labels, the closest match"
    return guess, ""


def detect_convention(values) -> str | None:
    """Best guess of a label map's convention from its values, or None when ambiguous or when the
    best match does not define every value present (see :func:`import_labels` for the reason)."""
    return _detect(values)[0]


def _components_upward(mask, affine, min_voxels=20):
    """Connected components of a mask ordered from caudal to cranial (world z of centroid)."""
    cc, n = ndimage.label(mask)
    out = []
    for i in range(1, n + 1):
        idx = np.argwhere(cc == i)
        if len(idx) < min_voxels:
            continue
        z = (idx.mean(0) @ affine[:3, :3].T + affine[:3, 3])[2]
        out.append((z, cc == i))
    out.sort(key=lambda t: t[0])
    return [m for _, m in out]


def convert(values: np.ndarray, convention: str, affine: np.ndarray | None = None, *, spider_lowest: str = "S1") -> np.ndarray:
    """Convert a label array from ``convention`` to discmeasure labels (int16)."""
    a = np.asarray(values)
    if not np.issubdtype(a.dtype, np.integer):
        if not np.all(np.equal(np.mod(a, 1), 0)):
            raise SegmentationError("label map holds non-integer values", hint="give an integer label map")
        a = a.astype(np.int32)
    out = np.zeros(a.shape, np.int16)
    if convention in ("discmeasure", "spineps"):
        for v in np.unique(a):
            if v == 0:
                continue
            if lab.is_vertebra(v) or lab.is_disc(v) or v == lab.CANAL:
                out[a == v] = v
            elif 201 <= v <= 226:  # SPINEPS endplates -> their vertebra
                out[a == v] = v - 200
            elif v == 60:  # SPINEPS spinal cord -> canal
                out[a == v] = lab.CANAL
        return out
    if convention == "totalspineseg":
        m = _tss_map()
    elif convention == "totalsegmentator_vertebrae_mr":
        m = _vertebrae_mr_map()
    elif convention == "spider":
        base = lab.vertebra_number(spider_lowest)
        m = {100: lab.CANAL}
        for k in range(1, 26):
            num = base - (k - 1) if base != lab.SACRUM else (lab.SACRUM if k == 1 else 26 - k)
            if num >= 1:
                m[k] = num
        for k in range(201, 226):
            upper = m.get(k - 199)  # disc 201 lies between vertebra 1 (below) and 2 (above)
            if upper is not None:
                m[k] = lab.disc_label(upper)
    elif convention == "totalsegmentator_total_mr":
        if affine is None:
            raise SegmentationError("total_mr labels need their affine to order vertebrae")
        sac = a == 18
        out[sac] = lab.SACRUM
        out[a == 21] = lab.CANAL
        verts = _components_upward(a == 19, affine)
        discs = _components_upward(a == 20, affine)
        # vertebrae upward from L5 (the sacrum is its own class)
        for k, mk in enumerate(verts):
            num = 24 - k
            if num >= 1:
                out[mk] = num
        for k, mk in enumerate(discs):
            upper = 24 - k  # lowest disc = L5-S1
            if upper >= 1:
                out[mk] = lab.disc_label(upper)
        return out
    else:
        raise SegmentationError(f"unknown label convention {convention!r}", hint=f"use one of {', '.join(CONVENTIONS)}")
    for src, dst in m.items():
        out[a == src] = dst
    return out


def import_labels(scan, labels, *, convention: str = "auto", spider_lowest: str = "S1") -> Segmentation:
    """A Segmentation on ``scan``'s grid from a label map (path, Scan or array on the scan grid)."""
    from ..geometry import resample
    from ..scan import Scan

    if isinstance(labels, (str, os.PathLike)):
        from ..io import load
        from ..io.dicom_seg import is_dicom_seg, read_dicom_seg

        if is_dicom_seg(labels):
            # segments mapped to our labels by their SNOMED CT codes
            labels = read_dicom_seg(labels)
            if convention == "auto":
                convention = "discmeasure"
        else:
            labels = load(labels)
    if isinstance(labels, Scan):
        arr, aff = np.asarray(labels.data), labels.affine
        if arr.ndim == 4:
            raise SegmentationError("label map has 4 dimensions", hint="give a 3-D label map")
    else:
        arr, aff = np.asarray(labels), scan.affine
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.shape != tuple(scan.shape):
            raise SegmentationError(f"label array shape {arr.shape} differs from the scan's {scan.shape}",
                                    hint="give a label Scan/NIfTI with its affine, or an array on the scan grid")
    values = np.unique(arr)
    if convention in ("auto", "spineps", "discmeasure") and is_spineps_subregion_map(values):
        raise SegmentationError("the label map is a SPINEPS subregion map (seg-subreg: vertebral parts 41-50, "
                                "one label 100 for every disc), which does not tell the vertebrae and discs apart",
                                hint="give the SPINEPS instance mask, seg-vert (*_seg-vert_msk.nii.gz), instead")
    if convention == "auto":
        convention, why = _detect(values)
        if convention is None:
            raise SegmentationError("cannot tell the label convention from the values present"
                                    + (f" ({why})" if why else ""),
                                    hint=f"pass --convention (CLI) / convention= one of {', '.join(CONVENTIONS)}")
    conv = convert(arr, convention, aff, spider_lowest=spider_lowest)
    if conv.shape != tuple(scan.shape) or not np.allclose(aff, scan.affine, atol=1e-4):
        conv = resample(conv, aff, scan.shape, scan.affine, order=0)
    if not (conv > 0).any():
        raise SegmentationError("no spine labels left after conversion", hint="check the convention and that the map covers the scan")
    levels = levels_of(conv)
    return Segmentation(conv.astype(np.int16), np.array(scan.affine), levels,
                        {lv: {"confidence": 1.0, "flags": ["imported"]} for lv in levels}, f"labels:{convention}")
