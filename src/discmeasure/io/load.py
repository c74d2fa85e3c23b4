"""``discmeasure.load``: one entry point for DICOM, NIfTI (+BIDS sidecar), lists of NIfTI, MHA/NRRD."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..scan import Scan, count_nonfinite
from .write import sidecar_path

__all__ = ["load", "load_nifti", "load_itk"]

_NIFTI = (".nii", ".nii.gz")
_ITK = (".mha", ".mhd", ".nrrd", ".nhdr")


def _is(p: Path, exts) -> bool:
    n = p.name.lower()
    return any(n.endswith(e) for e in exts)


def is_volume_file(path) -> bool:
    """True for an existing NIfTI or ITK (MHA/MHD/NRRD) image file, the non-DICOM files :func:`load` reads."""
    p = Path(path)
    return p.is_file() and _is(p, _NIFTI + _ITK)


def require_dicom_input(path, *, hint: str = "leave out --dicom-seg") -> None:
    """Refuse, before any work, an input that is an image file of another format (no DICOM SEG can
    reference it); a folder or a DICOM file passes (a folder's series is checked once loaded)."""
    if is_volume_file(path):
        raise InputError("is not DICOM: no DICOM SEG can reference it", path=path, hint=hint)


def load_nifti(path: str | os.PathLike) -> Scan:
    """A NIfTI file (+ its BIDS JSON sidecar, EchoTime in seconds -> ms)."""
    import nibabel as nib

    p = Path(path)
    try:
        img = nib.load(str(p))
        img.get_data_dtype()
        data_ok = np.asanyarray(img.dataobj)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"not a readable NIfTI file ({type(exc).__name__}: {str(exc)[:120]})", path=p,
                         hint="the file is damaged or not NIfTI") from None
    hdr = img.header
    if "sform_code" in hdr and int(hdr["sform_code"]) == 0 and int(hdr["qform_code"]) == 0:
        from ..errors import GeometryError

        raise GeometryError("no orientation in the header (sform and qform codes are 0)", path=p,
                            hint="re-export the image with its scanner geometry; measurements need millimetres")
    side = None
    sc = sidecar_path(p)
    if sc.exists():
        try:
            side = json.loads(sc.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"sidecar JSON unreadable ({exc})", path=sc, hint="fix or remove the .json file") from None
    if data_ok.size and count_nonfinite(data_ok) == data_ok.size:
        raise InputError("image holds only NaN/infinite values", path=p, hint="the file has no usable data")
    try:
        return Scan.from_nifti(img, sidecar=side)
    except InputError as exc:
        raise type(exc)(exc.reason, path=p, hint=exc.hint) from None


def load_itk(path: str | os.PathLike) -> Scan:
    """MHA/MHD/NRRD through SimpleITK (LPS -> RAS)."""
    import SimpleITK as sitk

    p = Path(path)
    try:
        img = sitk.ReadImage(str(p))
    except RuntimeError as exc:
        raise InputError(f"not readable by SimpleITK ({str(exc).strip().splitlines()[-1][:120]})", path=p) from None
    if img.GetDimension() not in (2, 3):
        raise InputError(f"{img.GetDimension()}-D image; discmeasure reads 2-D or 3-D MHA/NRRD", path=p)
    arr = sitk.GetArrayFromImage(img)  # (z, y, x) [+ components]
    if img.GetNumberOfComponentsPerPixel() > 1:  # (z, y, x, c) -> (x, y, z, c)
        data = np.moveaxis(arr, -1, 0).T if arr.ndim == 3 else arr.transpose(2, 1, 0, 3)
    else:
        data = arr.T
    dim = img.GetDimension()
    D = np.array(img.GetDirection()).reshape(dim, dim)
    sp = np.array(img.GetSpacing())
    org = np.array(img.GetOrigin())
    lps = np.eye(4)
    lps[:dim, :dim] = D * sp[None, :]
    lps[:dim, 3] = org
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps
    return Scan(data, ras, meta={"source_format": "sitk"})


def _load_list(paths) -> Scan:
    scans = [load(p) for p in paths]
    if not scans:
        raise InputError("empty list of files")
    ref = scans[0]
    for p, s in zip(paths, scans):
        if s.shape != ref.shape or not np.allclose(s.affine, ref.affine, atol=1e-3):
            raise InputError("echo images differ in grid or geometry", path=p, hint="give echoes of one series")
        if s.ndim != 3:
            raise InputError("each file of a list must hold one 3-D volume (one echo)", path=p)
    tes = [s.meta.get("echo_time_ms") for s in scans]
    if any(t is None for t in tes):
        missing = [str(p) for p, t in zip(paths, tes) if t is None]
        raise InputError("echo time unknown (no BIDS sidecar with EchoTime)", path=missing[0],
                         hint="add JSON sidecars with EchoTime, or build the Scan with echo_times_ms=")
    order = np.argsort(tes)
    data = np.stack([np.asarray(scans[i].data) for i in order], axis=-1)
    meta = dict(ref.meta)
    meta.pop("echo_time_ms", None)
    meta["volume_kind"] = "echo"
    return Scan(data, ref.affine, echo_times_ms=[tes[i] for i in order], meta=meta)


def load(path, *, series=None) -> Scan:
    """Load a scan.

    Parameters
    ----------
    path : str, PathLike, or list of them
        A DICOM folder (searched recursively; classic, enhanced multi-frame, ``.dcm.gz``, files
        without extension; stray non-DICOM files ignored), a DICOM file, a NIfTI ``.nii``/``.nii.gz``
        (with BIDS JSON sidecar), a list of NIfTI paths (one per echo), or MHA/NRRD.
    series : int or str, optional
        For folders holding several series: series number (an int or a string of digits; a series
        with that number wins over descriptions containing the digits), SeriesInstanceUID or
        description text; ``"phase"`` / ``"P"`` (as ``info`` shows ``[P]``), alone or after a number
        or description (``"2001 phase"``), for the phase component (real/R, imaginary/I likewise).
        Without it, the magnitude of a single acquisition is loaded
        (:func:`discmeasure.io.dicom.select_series`).

    Returns
    -------
    Scan

    Raises
    ------
    InputError, DicomError, GeometryError, SeriesSelectionError
        With a one-line message naming the file, the cause and what to do.
    """
    if isinstance(path, (list, tuple)):
        return _load_list([Path(p) for p in path])
    p = Path(path)
    if not p.exists():
        raise InputError("no such file or folder", path=p, hint="check the path")
    if p.is_file() and p.stat().st_size == 0:
        raise InputError("file is empty", path=p, hint="an interrupted copy or export? copy the file again")
    if p.is_file() and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif"):
        raise InputError("picture files carry no scanner geometry and are not read",
                         path=p, hint="give the DICOM series or a NIfTI file")
    if p.is_file() and _is(p, _NIFTI):
        return load_nifti(p)
    if p.is_file() and _is(p, _ITK):
        return load_itk(p)
    from .dicom import read_series, scan_folder, select_series

    infos = scan_folder(p)
    info = select_series(infos, series, p)
    return read_series(info, p)
