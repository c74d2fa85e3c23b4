"""Conversions between discmeasure objects and napari layer data (no science here).

A Scan's voxel -> world affine A = R diag(s) + t becomes the layer's ``scale`` (s), ``rotate``
(R) and ``translate`` (t), so series of one study overlay in world (RAS+ mm) coordinates.
Multi-echo data get the echo axis first (an echo slider). Layer metadata hold the affine,
echo times and acquisition metadata -- never patient-identifying fields.
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
    import nibabel as nib
    from nibabel import orientations as o

    cur = o.io_orientation(affine)
    tgt = o.axcodes2ornt(AXES)
    t = o.ornt_transform(cur, tgt)
    spatial_shape = data.shape[:3]
    arr = o.apply_orientation(data, t) if data.ndim == 3 or volume_axis_last else None
    new_aff = affine @ o.inv_ornt_aff(t, spatial_shape)
    return arr, new_aff


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


def scan_to_layer(scan: Scan, name: str, **kw) -> tuple:
    """Image LayerDataTuple of a Scan, axes R, S, A (echo axis first when 4-D)."""
    data, aff = canonical(np.asarray(scan.data), scan.affine, volume_axis_last=True)
    lead = 0
    if data.ndim == 4:
        data = np.moveaxis(data, -1, 0)
        lead = 1
    meta = {META_KEY: {"affine": np.array(aff), "echo_times_ms": scan.echo_times_ms, "meta": dict(scan.meta)}}
    lo, hi = np.percentile(data[..., ::4], [0.5, 99.5]) if data.size else (0, 1)
    kwargs = {"name": name, "metadata": meta, "contrast_limits": (float(lo), float(hi) if hi > lo else float(lo) + 1),
              **transform_kwargs(aff, lead), **kw}
    if lead:
        kwargs["axis_labels"] = ("echo", "R", "S", "A")
    return (data, kwargs, "image")


def layer_to_scan(layer) -> Scan:
    """Rebuild a Scan (RAS+ affine) from an image/labels layer made by this plugin."""
    md = layer.metadata.get(META_KEY)
    data = np.asarray(layer.data)
    if md is not None:
        if data.ndim == 4:
            data = np.moveaxis(data, 0, -1)
        return Scan(data, md["affine"], echo_times_ms=md.get("echo_times_ms"), meta=md.get("meta"))
    A = np.eye(4)
    M = np.asarray(layer.rotate)[-3:, -3:] @ np.diag(np.asarray(layer.scale)[-3:])
    A[:3, :3] = _P.T @ M
    A[:3, 3] = _P.T @ np.asarray(layer.translate)[-3:]
    return Scan(data, A)


def labels_layer(seg, name="discmeasure labels", affine=None) -> tuple:
    """Labels LayerDataTuple (axes R, S, A) with level names as features."""
    lab = np.asarray(seg.labels if hasattr(seg, "labels") else seg)
    aff = np.asarray(affine if affine is not None else seg.affine)
    lab, aff = canonical(lab, aff)
    values = sorted(int(v) for v in np.unique(lab) if v)
    names = [dl.disc_level_name(v) if dl.is_disc(v) else ("canal" if v == dl.CANAL else dl.vertebra_name(v)) for v in values]
    kw = {"name": name, **transform_kwargs(aff), "features": {"index": values, "name": names},
          "metadata": {META_KEY: {"affine": np.array(aff)}}}
    return (lab.astype(np.int32), kw, "labels")
