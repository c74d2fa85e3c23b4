"""Writers: NIfTI + BIDS JSON sidecar, atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import atomic_path, write_text

__all__ = ["save_nifti", "sidecar_path"]


def sidecar_path(path: str | os.PathLike) -> Path:
    """The BIDS JSON sidecar path of a NIfTI path (``x.nii.gz`` -> ``x.json``)."""
    p = Path(path)
    name = p.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return p.with_name(name[: -len(ext)] + ".json")
    return p.with_suffix(".json")


def save_nifti(scan, path: str | os.PathLike, *, sidecar: bool = True) -> Path:
    """Write ``scan`` as NIfTI at ``path`` (and its BIDS sidecar), atomically.

    Patient-identifying fields are never written.
    """
    import nibabel as nib

    path = Path(path)
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        raise ValueError(f"{path}: NIfTI output needs a .nii or .nii.gz name")
    img = scan.to_nifti()
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    if sidecar:
        write_text(sidecar_path(path), json.dumps(scan.bids_sidecar(), indent=2) + "\n")
    return path
