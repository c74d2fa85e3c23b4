"""Writers for phantom images: a valid DICOM MR series (pydicom) and NIfTI + BIDS sidecar.

DICOM geometry follows PS3.3 C.7.6.2 (Image Plane module): ImageOrientationPatient
holds the LPS direction of a row (column index increasing) and of a column (row
index increasing); ImagePositionPatient is the LPS centre of the first pixel.
Our arrays are (i, j, k) with i = column index, j = row index, k = slice, so a
slice's pixel array is ``data[:, :, k].T``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path

__all__ = ["write_dicom_series", "write_nifti", "uid_from"]

_LPS = np.diag([-1.0, -1.0, 1.0])
_ROOT = "1.2.826.0.1.3680043.10.1172."  # pydicom's UID root range for generated UIDs is not used: a fixed private-style prefix


def uid_from(*parts) -> str:
    """Deterministic DICOM UID from the given parts (so regenerated data are byte-identical)."""
    from pydicom.uid import generate_uid

    return generate_uid(prefix="1.2.826.0.1.3680043.8.498.", entropy_srcs=[str(p) for p in parts])


def write_dicom_series(scan, folder, *, series_number: int, series_description: str, study_uid: str,
                       frame_uid: str | None = None, patient_name: str = "PHANTOM^DISC", patient_id: str = "DM-PH-0001",
                       study_date: str = "20260101", seed: int = 0, scanning_sequence: str = "SE",
                       sequence_name: str | None = None) -> list[Path]:
    """Write a Scan (3-D, or 4-D multi-echo) as an MR Image Storage series, one file per slice per echo.

    Pixels are stored as uint16 with RescaleSlope/Intercept chosen to keep the range.
    Returns the written paths. Files are written atomically; the folder is created.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    data = np.asarray(scan.data, dtype=np.float64)
    if data.ndim == 3:
        data = data[..., None]
    nx, ny, nz, ne = data.shape
    tes = scan.echo_times_ms or ([scan.meta.get("echo_time_ms", 0.0)] * ne)
    aff = scan.affine
    spacing = np.asarray(scan.spacing)
    row_dir = _LPS @ aff[:3, 0] / spacing[0]  # along a row: i increasing
    col_dir = _LPS @ aff[:3, 1] / spacing[1]  # down a column: j increasing
    vmax = float(np.nanmax(data)) if data.size else 1.0
    slope = max(vmax / 60000.0, 1e-6)
    series_uid = uid_from(study_uid, series_number, "series", seed)
    frame_uid = frame_uid or uid_from(study_uid, "frame", seed)
    meta = scan.meta
    paths = []
    inst = 0
    for e in range(ne):
        for k in range(nz):
            inst += 1
            pos = _LPS @ (aff[:3, :3] @ np.array([0.0, 0.0, k]) + aff[:3, 3])
            sop_uid = uid_from(series_uid, e, k)
            fm = FileMetaDataset()
            fm.MediaStorageSOPClassUID = MRImageStorage
            fm.MediaStorageSOPInstanceUID = sop_uid
            fm.TransferSyntaxUID = ExplicitVRLittleEndian
            fm.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
            fm.ImplementationVersionName = "DISCMEASURE01"
            ds = Dataset()
            ds.file_meta = fm
            ds.SOPClassUID = MRImageStorage
            ds.SOPInstanceUID = sop_uid
            ds.SpecificCharacterSet = "ISO_IR 100"
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
            ds.Modality = "MR"
            ds.Manufacturer = str(meta.get("vendor", "discmeasure phantom"))
            ds.ManufacturerModelName = "digital lumbar phantom"
            ds.SoftwareVersions = "discmeasure"
            ds.PatientName = patient_name
            ds.PatientID = patient_id
            ds.PatientBirthDate = ""
            ds.PatientSex = "O"
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            ds.FrameOfReferenceUID = frame_uid
            ds.StudyID = "1"
            ds.AccessionNumber = ""
            ds.StudyDate = study_date
            ds.SeriesDate = study_date
            ds.AcquisitionDate = study_date
            ds.ContentDate = study_date
            ds.StudyTime = "120000"
            ds.SeriesTime = "120000"
            ds.ContentTime = "120000"
            ds.ReferringPhysicianName = ""
            ds.StudyDescription = "LUMBAR SPINE PHANTOM"
            ds.SeriesDescription = series_description
            ds.ProtocolName = series_description
            ds.SeriesNumber = int(series_number)
            ds.InstanceNumber = inst
            ds.AcquisitionNumber = 1
            ds.ScanningSequence = scanning_sequence
            ds.SequenceVariant = "SK"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "2D"
            ds.SequenceName = sequence_name or ("se_mc" if ne > 1 else "tse")
            ds.SliceThickness = f"{float(meta.get('slice_thickness_mm', spacing[2])):.6g}"
            ds.SpacingBetweenSlices = f"{float(spacing[2]):.6g}"
            ds.RepetitionTime = f"{float(meta.get('repetition_time_ms', 2000.0)):.6g}"
            ds.EchoTime = f"{float(tes[e]):.6g}"
            ds.EchoNumbers = e + 1
            ds.EchoTrainLength = int(meta.get("echo_train_length", ne if ne > 1 else 16))
            ds.MagneticFieldStrength = f"{float(meta.get('field_strength_t', 3.0)):.6g}"
            ds.ImagingFrequency = "127.7"
            ds.ImagedNucleus = "1H"
            ds.FlipAngle = f"{float(meta.get('refocusing_angle_deg', meta.get('flip_angle_deg', 90.0))):.6g}"
            ds.PatientPosition = "HFS"
            ds.ImagePositionPatient = [f"{v:.6f}" for v in pos]
            ds.ImageOrientationPatient = [f"{v:.8f}" for v in np.concatenate([row_dir, col_dir])]
            ds.SliceLocation = f"{float(pos @ np.cross(row_dir, col_dir)):.6f}"
            ds.PixelSpacing = [f"{spacing[1]:.6g}", f"{spacing[0]:.6g}"]  # row spacing (j), column spacing (i)
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.Rows = ny
            ds.Columns = nx
            ds.BitsAllocated = 16
            ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 0
            ds.RescaleSlope = f"{slope:.8g}"
            ds.RescaleIntercept = "0"
            ds.RescaleType = "US"
            px = np.clip(np.round(data[:, :, k, e].T / float(f"{slope:.8g}")), 0, 65535).astype(np.uint16)
            ds.PixelData = px.tobytes()
            ds.WindowCenter = f"{vmax / 3:.1f}"
            ds.WindowWidth = f"{vmax / 1.5:.1f}"
            name = f"IM_{series_number:03d}_E{e + 1:02d}_S{k + 1:03d}.dcm"
            path = folder / name
            with atomic_path(path) as tmp:
                pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
            paths.append(path)
    return paths


def write_nifti(scan, path: str | os.PathLike) -> Path:
    """NIfTI + BIDS sidecar (EchoTime in seconds), atomically."""
    from ..io.write import save_nifti

    return save_nifti(scan, path)
