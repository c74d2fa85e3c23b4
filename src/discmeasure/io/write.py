"""Writers: NIfTI + BIDS JSON sidecar, atomically."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..atomic import atomic_path, write_text

__all__ = ["save_nifti", "sidecar_path", "nifti_path"]


def nifti_path(path: str | os.PathLike) -> Path:
    """``path`` checked as a NIfTI file to write: a ``.nii`` or ``.nii.gz`` name, not a folder.

    :func:`save_nifti` checks it; the CLI commands call it before their work, so that a wrong
    ``-o`` is refused at once, not after a segmentation or a fit.
    """
    from ..errors import OutputError

    p = Path(path)
    if not p.name.endswith((".nii", ".nii.gz")):
        raise OutputError("a NIfTI output needs a .nii or .nii.gz name", path=p, hint="e.g. -o labels.nii.gz")
    if p.is_dir():
        raise OutputError("output is a folder", path=p, hint="give a file name, e.g. -o labels.nii.gz")
    return p


def sidecar_path(path: str | os.PathLike) -> Path:
    """The BIDS JSON sidecar path of a NIfTI path (``x.nii.gz`` -> ``x.json``)."""
    p = Path(path)
    name = p.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return p.with_name(name[: -len(ext)] + ".json")
    return p.with_suffix(".json")


def save_nifti(scan, path: str | os.PathLike, *, sidecar: bool = True, sidecar_extra: dict | None = None) -> Path:
    """Write ``scan`` as NIfTI at ``path`` (and its BIDS sidecar, with ``sidecar_extra``'s keys
    added, e.g. a fit's summary), atomically.

    Patient-identifying fields are never written.
    """
    import nibabel as nib

    path = nifti_path(path)
    img = scan.to_nifti()
    with atomic_path(path) as tmp:
        nib.save(img, str(tmp))
    if sidecar:
        write_text(sidecar_path(path), json.dumps({**scan.bids_sidecar(), **(sidecar_extra or {})}, indent=2) + "\n")
    return path
