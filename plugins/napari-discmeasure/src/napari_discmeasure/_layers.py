"""Conversions between discmeasure objects and napari layer data (no science here).

A Scan's voxel -> world affine A = R diag(s) + t becomes the layer's ``scale`` (s), ``rotate``
(R) and ``translate`` (t), so series of one study overlay in world (RAS+ mm) coordinates.
Multi-echo data get the echo axis first (an echo slider). Layer metadata hold the affine,
echo times and acquisition metadata -- never patient-identifying fields -- and the path the
scan was read from (in memory only, for the DICOM SEG export of labels drawn on it).
"""

from __future__ import annotations

import numpy as np

from discmeasure import Scan
from discmeasure import labels as dl

META_KEY = "discmeasure"


#: napari world axes = (R, S, A): the 2-D view shows S (rows) x A (columns); with the camera
#: oriented ("up", "left") that is a radiological sagittal view: superior up, anterior left
AXES = ("R", "S", "A")
_P = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]], float)  # RAS -> RSA


def to_napari_world(xyz):
    """RAS+ mm point(s) -> napari world coordinates (R, S, A)."""
    return np.asarray(xyz, float) @ _P.T


def from_napari_world(w):
    """napari world (R, S, A) -> RAS+ mm."""
    return np.asarray(w, float)[..., -3:] @ _P


def canonical(data: np.ndarray, affine: np.ndarray, volume_axis_last: bool = False):
    """Flip/permute the spatial axes so they run R, S, A (nibabel orientation); returns (data, affine)."""
    from nibabel import orientations as o

    return _apply_ornt(data, affine, o.axcodes2ornt(AXES), volume_axis_last)


def _apply_ornt(data, affine, target_ornt, volume_axis_last=True):
    from nibabel import orientations as o

    t = o.ornt_transform(o.io_orientation(affine), target_ornt)
    arr = o.apply_orientation(data, t) if data is not None and (data.ndim == 3 or volume_axis_last) else None
    return arr, np.asarray(affine, float) @ o.inv_ornt_aff(t, np.shape(data)[:3] if data is not None else None)


def reorient_to(data: np.ndarray, affine: np.ndarray, target_affine: np.ndarray, target_shape=None):
    """Data on ``affine`` flipped/permuted (no interpolation) onto the grid of ``target_affine``.

    Returns the array when the two grids differ only by axis order and direction (the layer of a
    scan vs the scan itself), else None. Volumes, if any, stay on the last axis.
    """
    from nibabel import orientations as o

    arr, aff = _apply_ornt(np.asarray(data), affine, o.io_orientation(np.asarray(target_affine, float)))
    if not np.allclose(aff, target_affine, atol=1e-4):
        return None
    if target_shape is not None and tuple(arr.shape[:3]) != tuple(target_shape[:3]):
        return None
    return arr


def transform_kwargs(affine: np.ndarray, extra_leading: int = 0) -> dict:
    """scale / rotate / translate of a layer whose data axes run (about) R, S, A."""
    A = np.asarray(affine, float)
    M = _P @ A[:3, :3]
    s = np.linalg.norm(M, axis=0)
    R = M / s
    t = _P @ A[:3, 3]
    n = 3 + extra_leading
    rot = np.eye(n)
    rot[extra_leading:, extra_leading:] = R
    kw = {"scale": tuple([1.0] * extra_leading + list(s)), "translate": tuple([0.0] * extra_leading + list(t))}
    if not np.allclose(R, np.eye(3), atol=1e-6):
        kw["rotate"] = rot
    return kw


def scan_to_layer(scan: Scan, name: str, *, source=None, **kw) -> tuple:
    """Image LayerDataTuple of a Scan, axes R, S, A (echo axis first when 4-D); ``source``: the path
    it was read from (kept in the layer's metadata for :func:`labels_source`)."""
    data, aff = canonical(np.asarray(scan.data), scan.affine, volume_axis_last=True)
    lead = 0
    if data.ndim == 4:
        data = np.moveaxis(data, -1, 0)
        lead = 1
    meta = {META_KEY: {"affine": np.array(aff), "source_affine": np.array(scan.affine, float),
                       "echo_times_ms": scan.echo_times_ms, "meta": dict(scan.meta),
                       "source_path": None if source is None else str(source)}}
    lo, hi = np.percentile(data[..., ::4], [0.5, 99.5]) if data.size else (0, 1)
    kwargs = {"name": name, "metadata": meta, "contrast_limits": (float(lo), float(hi) if hi > lo else float(lo) + 1),
              **transform_kwargs(aff, lead), **kw}
    if lead:
        kwargs["axis_labels"] = ("echo", "R", "S", "A")
    return (data, kwargs, "image")


def layer_to_scan(layer) -> Scan:
    """Rebuild a Scan (RAS+ affine) from an image/labels layer.

    For layers made by this plugin the voxel axes are put back in the order of the scan they
    were read from (a pure flip/permutation of the layer's R, S, A array, exact), so every
    computation runs on the same array and affine as the CLI / library would use and gives
    identical numbers. Other layers are rebuilt from their scale/rotate/translate.
    """
    md = layer.metadata.get(META_KEY)
    data = np.asarray(layer.data)
    if md is not None:
        if data.ndim == 4:
            data = np.moveaxis(data, 0, -1)
        aff = np.asarray(md["affine"], float)
        src = md.get("source_affine")
        if src is not None:
            back = reorient_to(data, aff, src)
            if back is not None:
                data, aff = back, np.asarray(src, float)
        return Scan(data, aff, echo_times_ms=md.get("echo_times_ms"), meta=md.get("meta"))
    A = np.eye(4)
    M = np.asarray(layer.rotate)[-3:, -3:] @ np.diag(np.asarray(layer.scale)[-3:])
    A[:3, :3] = _P.T @ M
    A[:3, 3] = _P.T @ np.asarray(layer.translate)[-3:]
    return Scan(data, A)


def labels_source(layer):
    """The path an image layer's scan was read from (a DICOM series or study folder, a file), or None."""
    md = layer.metadata.get(META_KEY) or {}
    return md.get("source_path")


def labels_layer(seg, name="discmeasure labels", affine=None) -> tuple:
    """Labels LayerDataTuple (axes R, S, A) with level names as features."""
    lab = np.asarray(seg.labels if hasattr(seg, "labels") else seg)
    src_aff = np.asarray(affine if affine is not None else seg.affine, float)
    lab, aff = canonical(lab, src_aff)
    values = sorted(int(v) for v in np.unique(lab) if v)
    names = [dl.disc_level_name(v) if dl.is_disc(v) else ("canal" if v == dl.CANAL else dl.vertebra_name(v)) for v in values]
    md = {"affine": np.array(aff), "source_affine": np.array(src_aff)}
    qc = getattr(seg, "qc", None)
    if isinstance(qc, dict):
        # the segmentation's own per-level QC (auto: sacrum_not_confirmed, ...): measured again from
        # the unedited layer, the table carries them, not "imported"
        md["qc"] = {lv: {"confidence": q.get("confidence"), "flags": list(q.get("flags", []))} for lv, q in qc.items()}
    frac = getattr(seg, "body_fraction", None)
    if frac is not None:
        # the bodies' partial volume (read by the disc heights), in the layer's axis order; used
        # again only while the layer's bodies are the ones it was made with
        md["body_fraction"] = canonical(np.asarray(frac, np.float32), src_aff)[0]
        md["bodies_at_creation"] = seg.bodies_at_creation
    kw = {"name": name, **transform_kwargs(aff), "features": {"index": values, "name": names},
          "metadata": {META_KEY: md}}
    return (lab.astype(np.int32), kw, "labels")


#: disc colours by level (cranio-caudal), bodies a muted blue-grey, canal light blue
_DISC_COLOURS = ["#e6194b", "#f58231", "#ffe119", "#3cb44b", "#42d4f4", "#4363d8", "#f032e6", "#fabed4"]


def labels_colormap(values) -> dict:
    """{label: colour} for a napari Labels layer: one bright colour per disc level."""
    cmap = {None: "transparent", 0: "transparent"}
    discs = sorted(v for v in values if dl.is_disc(v))
    for k, v in enumerate(discs):
        cmap[int(v)] = _DISC_COLOURS[(v - discs[0]) % len(_DISC_COLOURS)] if discs else "red"
    for v in values:
        if dl.is_vertebra(v):
            cmap[int(v)] = "#8c9bb5"
        elif v == dl.CANAL:
            cmap[int(v)] = "#1f6fd1"  # a dark blue: light text and marks stay readable on the bright CSF
    return cmap


def level_text_points(lab: np.ndarray, kw: dict, name: str = "level names") -> tuple | None:
    """Points LayerDataTuple with the level name at each disc's centre, on every slice of axis 0.

    ``lab`` is a canonical (R, S, A) label array and ``kw`` the transform of its layer; the
    points share that transform so they land on the discs in every sagittal slice.
    """
    pts, names = [], []
    for v in sorted(int(v) for v in np.unique(lab) if dl.is_disc(v)):
        for i in range(lab.shape[0]):
            idx = np.argwhere(lab[i] == v)
            if len(idx) < 4:
                continue
            c = idx.mean(axis=0)
            pts.append([i, c[0], c[1]])
            names.append(dl.disc_level_name(v))
    if not pts:
        return None
    tr = {k: kw[k] for k in ("scale", "translate", "rotate") if k in kw}
    return (np.array(pts, float), {"name": name, "features": {"level": names}, "size": 0.5, "face_color": "transparent",
                                   "border_color": "transparent",
                                   "text": {"string": "{level}", "size": 9, "color": "white", "anchor": "center"}, **tr},
            "points")
