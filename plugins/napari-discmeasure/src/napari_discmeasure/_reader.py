"""Reader contribution: DICOM study/series folders, DICOM files, NIfTI -> image layers in mm;
a DICOM SEG file -> a labels layer in our label convention."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._layers import labels_layer, scan_to_layer


def get_reader(path):
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(path)
    if p.is_dir() or p.name.endswith((".nii", ".nii.gz", ".dcm", ".dcm.gz", ".mha", ".nrrd")) or (p.is_file() and "." not in p.name):
        return read_path
    return None


def _orient_viewer():
    """Show sagittal planes radiologically: superior up, anterior left."""
    try:
        import napari

        v = napari.current_viewer()
        if v is not None:
            cam = v.scene.camera if hasattr(v, "scene") else v.camera  # napari >= 0.9: scene.camera
            cam.orientation2d = ("up", "left")
    except Exception:  # noqa: BLE001 -- older napari: default orientation
        pass


def read_path(path):
    """Layers for a study folder (every series with geometry) or a single series/file."""
    import discmeasure as dm
    from discmeasure.errors import DiscmeasureError

    if isinstance(path, list):
        path = path[0]
    p = Path(path)
    if p.is_dir():
        try:
            st = dm.load_study(p)
            layers = []
            if st.t2w is not None:
                layers.append(scan_to_layer(st.t2w, f"{p.name} T2w", source=p))
            if st.mese is not None:
                layers.append(scan_to_layer(st.mese, f"{p.name} multi-echo", source=p, visible=False, colormap="gray"))
            if layers:
                _orient_viewer()
                return layers
        except DiscmeasureError:
            pass
    from discmeasure.io.dicom_seg import is_dicom_seg, read_dicom_seg

    if is_dicom_seg(p):
        # a DICOM SEG (ours or another program's): a labels layer, segments mapped by their codes
        seg = read_dicom_seg(p)
        _orient_viewer()
        return [labels_layer(np.asarray(seg.data), name=p.name, affine=seg.affine)]
    scan = dm.load(p)
    _orient_viewer()
    return [scan_to_layer(scan, p.name, source=p)]
