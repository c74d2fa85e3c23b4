"""QA findings on DICOM loading and ``info``: duplicate instances, info display, non-DICOM files
parsed by pydicom, pydicom warnings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from discmeasure.errors import DicomError
from discmeasure.io import load
from discmeasure.io.dicom import read_series, scan_folder, series_summary

EXE = [sys.executable, "-m", "discmeasure"]
PYD = Path("dicom") / "pydicom_data"


def run(*args):
    env = dict(os.environ, COLUMNS="220")  # rich: wide enough that no cell wraps
    return subprocess.run(EXE + [str(a) for a in args], capture_output=True, text=True, timeout=300, env=env)


def _dup_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "same SOPInstanceUID" in str(w.message)]


# 1. duplicate instances -------------------------------------------------------------------------

def test_duplicate_instance_counted_once(testdata, tmp_path):
    """MR2_J2KI (JPEG 2000) and MR2_UNCI (uncompressed) hold one instance (same SOPInstanceUID and
    position, same pixels): one image, not a 2-volume series; one warning naming the copies."""
    for name in ("MR2_J2KI.dcm", "MR2_UNCI.dcm"):
        shutil.copy(testdata / PYD / name, tmp_path / name)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        infos = scan_folder(tmp_path)
    assert len(infos) == 1 and infos[0].n_images == 1
    msgs = _dup_warnings(rec)
    assert len(msgs) == 1 and "MR2_J2KI.dcm" in msgs[0] and "MR2_UNCI.dcm" in msgs[0]
    # the uncompressed copy is the one read; the other is decoded and compared
    assert infos[0].frames[0].path.name == "MR2_UNCI.dcm"
    scan = read_series(infos[0], tmp_path)
    assert scan.ndim == 3 and scan.shape[2] == 1
    ref = load(testdata / PYD / "MR2_UNCI.dcm")  # the file alone
    assert np.array_equal(np.asarray(scan.data), np.asarray(ref.data))
    assert np.allclose(scan.affine, ref.affine)


def test_duplicate_instance_with_other_pixels_refused(testdata, tmp_path):
    """Same SOPInstanceUID and position but different pixel values: a one-line error naming both
    files and the UID (not a silent choice, not an extra volume)."""
    import pydicom

    src = testdata / PYD / "MR2_UNCI.dcm"
    shutil.copy(src, tmp_path / "a.dcm")
    ds = pydicom.dcmread(src)
    arr = ds.pixel_array.copy()
    arr[100:110, 100:110] += 7
    ds.PixelData = arr.tobytes()
    ds.save_as(tmp_path / "b.dcm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(DicomError) as ei:
            load(tmp_path)
    msg = str(ei.value)
    assert "\n" not in msg
    assert "a.dcm" in msg and "b.dcm" in msg and str(ds.SOPInstanceUID) in msg
    assert "different pixel data" in msg


def test_other_series_unchanged_by_deduplication(testdata):
    """Only true copies are merged: in pydicom_data MR2_J2KR is another instance (own UID) and stays;
    the six emri_small encodings (one UID) become one image; multi-echo series keep every echo."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        infos = scan_folder(testdata / PYD)
        pdt2 = scan_folder(testdata / "dicom" / "dcm_qa_pdt2" / "In")
        philips = scan_folder(testdata / "dicom" / "dcm_qa_philips_enh" / "In")
    assert len(_dup_warnings(rec)) == 1  # pydicom_data only
    mr2 = [s for s in infos if s.number == 1 and s.description.startswith("T1W")]
    assert len(mr2) == 1 and sorted(f.path.name for f in mr2[0].frames) == ["MR2_J2KR.dcm", "MR2_UNCI.dcm"]
    assert [s.n_images for s in infos if s.number == 301] == [1]
    assert len(pdt2) == 1 and pdt2[0].n_images == 70 and len(pdt2[0].echo_times) == 2 and not pdt2[0].duplicates
    assert all(not s.duplicates for s in philips) and sum(s.n_images for s in philips) > 2


# 2. info display ----------------------------------------------------------------------------------

def test_single_slice_summary_spacing_not_zero(testdata):
    s = {i.description: series_summary(i) for i in scan_folder(testdata / PYD)}
    assert s["Pancreas"]["number"] is None
    assert s["Pancreas"]["spacing_mm"][2] is None  # no thickness, no spacing in the header: unknown, not 0
    assert s["marked lesion<MPR Collection>"]["spacing_mm"][2] == 4.0  # its SliceThickness


def test_info_series_number_and_single_slice_spacing(testdata):
    r = run("info", testdata / PYD)
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if "Pancreas" in ln]
    assert len(rows) == 1
    assert "None" not in r.stdout
    cells = [c.strip() for c in rows[0].split("│")]
    assert cells[1] == "?"
    assert "0.859x0.859 (1 slice)" in rows[0] and "0.859x0.859x0" not in rows[0]
    assert "0.723x0.723x4 (1 slice)" in r.stdout
    # pydicom's VR mismatch messages are not shown; the duplicate-instance note is one line
    assert "Expected implicit VR" not in r.stderr and "Expected explicit VR" not in r.stderr
    assert sum("same SOPInstanceUID" in ln for ln in r.stderr.splitlines()) == 1


# 3. non-DICOM files are not parsed as DICOM ------------------------------------------------------

def test_npy_file_not_dicom_one_line(testdata):
    npy = testdata / "spine" / "vesal_lumbar_2d" / "masks" / "3.npy"
    r = run("info", npy)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [f"error: {npy}: not a DICOM or NIfTI file (discmeasure reads DICOM files and folders, "
                     "NIfTI .nii/.nii.gz and MHA/NRRD images)"], r.stderr


def test_output_folder_scanned_without_pydicom_warnings(tmp_path):
    """A folder of discmeasure outputs (NIfTI, HTML, NumPy, PNG...): no file is parsed as DICOM."""
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.int16), np.eye(4)), tmp_path / "labels.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((4, 4, 3), np.float32), np.eye(4)), tmp_path / "t2_t2_ms.nii")
    (tmp_path / "report.html").write_text("<!DOCTYPE html><html><body>report</body></html>" * 20)
    np.save(tmp_path / "mask.npy", np.arange(400, dtype=np.uint8).reshape(20, 20))
    (tmp_path / ".discmeasure-output").touch()
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        with pytest.raises(DicomError, match="no DICOM images found"):
            scan_folder(tmp_path)
        with pytest.raises(DicomError, match="not a DICOM or NIfTI file"):
            load(tmp_path / "mask.npy")
    assert [str(w.message) for w in rec] == []


def test_dicom_without_preamble_still_read(tmp_path):
    """The magic check keeps DICOM files written without the 128-byte preamble."""
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.preamble = None
    pydicom.dcmwrite(tmp_path / "nopreamble", ds, enforce_file_format=False)
    assert (tmp_path / "nopreamble").read_bytes()[128:132] != b"DICM"
    infos = scan_folder(tmp_path / "nopreamble")
    assert len(infos) == 1 and infos[0].n_images == 1
