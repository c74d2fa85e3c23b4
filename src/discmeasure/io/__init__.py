"""Reading and writing scans: DICOM, NIfTI (+ BIDS sidecar), MHA/NRRD."""

from __future__ import annotations

from .load import load
from .write import save_nifti as save

__all__ = ["load", "save"]
