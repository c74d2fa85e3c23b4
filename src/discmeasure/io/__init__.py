"""Reading and writing scans: DICOM, NIfTI (+ BIDS sidecar), MHA/NRRD."""

from __future__ import annotations

from .load import load
from .study import Study, load_study
from .write import save_nifti as save

__all__ = ["load", "load_study", "Study", "save"]
