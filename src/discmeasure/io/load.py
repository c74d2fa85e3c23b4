"""``discmeasure.load``: one entry point for every supported format (minimal: NIfTI)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import InputError
from ..scan import Scan
from .write import sidecar_path

__all__ = ["load"]


def load(path, *, series=None) -> Scan:
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or folder", path=p, hint="check the path")
    import nibabel as nib

    img = nib.load(str(p))
    side = None
    sc = sidecar_path(p)
    if sc.exists():
        side = json.loads(sc.read_text())
    return Scan.from_nifti(img, sidecar=side)
