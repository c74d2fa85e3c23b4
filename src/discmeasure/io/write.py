"""Writers: NIfTI + BIDS JSON sidecar, atomically."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ..atomic import atomic_path

__all__ = ["save_nifti", "sidecar_path", "nifti_path"]


def nifti_path(path: str | os.PathLike, *, example: str = "labels.nii.gz") -> Path:
    """``path`` checked as a NIfTI file to write: a ``.nii`` or ``.nii.gz`` name, not a folder.

    :func:`save_nifti` checks it; the CLI commands call it before their work, so that a wrong
    ``-o`` is refused at once, not after a segmentation or a fit. ``example``: the file name the
    hint suggests (each command its own: ``labels.nii.gz``, ``t2.nii.gz``).
    """
    from ..errors import OutputError

    p = Path(path)
    if not p.name.endswith((".nii", ".nii.gz")):
        raise OutputError("a NIfTI output needs a .nii or .nii.gz name", path=p, hint=f"e.g. -o {example}")
    if p.is_dir():
        raise OutputError("output is a folder", path=p, hint=f"give a file name, e.g. -o {example}")
    return p


def sidecar_path(path: str | os.PathLike) -> Path:
    """The BIDS JSON sidecar path of a NIfTI path (``x.nii.gz`` -> ``x.json``)."""
    p = Path(path)
    name = p.name
    for ext in (".nii.gz", ".nii"):
        if name.endswith(ext):
            return p.with_name(name[: -len(ext)] + ".json")
    return p.with_suffix(".json")


def _as_scan(obj):
    """The Scan :func:`save_nifti` writes for ``obj``: a Scan itself, a Segmentation's labels
    (:meth:`~discmeasure.Segmentation.to_scan`); InputError (one line, what to call instead) for
    anything else."""
    from ..errors import InputError
    from ..scan import Scan
    from ..segmentation.core import Segmentation

    if isinstance(obj, Scan):
        return obj
    if isinstance(obj, Segmentation):
        return obj.to_scan()
    name = type(obj).__name__
    hints = {
        "Result": "write a visit with discmeasure.report.outputs.write_visit(result, folder), or save "
                  "result.segmentation",
        "T2Fit": "a fit's maps are written by fit.save(prefix)",
        "ndarray": "wrap it with its geometry first: dm.Scan(array, affine)",
    }
    raise InputError(f"save writes a Scan or a Segmentation, got {name}",
                     hint=hints.get(name, "pass a Scan (dm.load / dm.Scan) or a Segmentation"))


def save_nifti(scan, path: str | os.PathLike, *, sidecar: bool = True, sidecar_extra: dict | None = None) -> Path:
    """Write ``scan`` as NIfTI at ``path`` (and its BIDS sidecar, with ``sidecar_extra``'s keys
    added, e.g. a fit's summary), atomically.

    ``scan`` is a :class:`~discmeasure.Scan` or a :class:`~discmeasure.Segmentation` (its label
    map, int16); anything else is refused (InputError) before any file is written. The image and
    the sidecar are both built before either is written, and each is written to a temporary file
    renamed into place: a failure leaves neither a half-written file nor an image without its
    sidecar. Patient-identifying fields are never written.
    """
    import nibabel as nib

    from ..errors import OutputError

    scan = _as_scan(scan)
    if not isinstance(path, (str, os.PathLike)):
        raise OutputError(f"the output path must be a file name, got {type(path).__name__}",
                          hint="e.g. 'labels.nii.gz'")
    path = nifti_path(path)
    img = scan.to_nifti()
    text = None
    if sidecar:
        text = json.dumps({**scan.bids_sidecar(), **(sidecar_extra or {})}, indent=2) + "\n"
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(path))
        if text is not None:
            # entered second, so renamed first: the image never appears without its sidecar
            side_tmp = stack.enter_context(atomic_path(sidecar_path(path)))
            side_tmp.write_text(text, encoding="utf-8")
        nib.save(img, str(tmp))
    return path
