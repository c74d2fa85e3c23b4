"""Loader vs the dcm2niix authors' reference NIfTIs, transfer syntaxes, broken files."""

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import discmeasure as dm
from discmeasure.errors import DiscmeasureError, SeriesSelectionError


def _canon(data, affine):
    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data), affine))
    return np.asarray(img.dataobj), img.affine


def _ref(path):
    img = nib.as_closest_canonical(nib.load(str(path)))
    return np.asanyarray(img.dataobj), img.affine


def _assert_same(scan_data, scan_aff, ref_path):
    ours, a1 = _canon(scan_data, scan_aff)
    theirs, a2 = _ref(ref_path)
    np.testing.assert_allclose(a1, a2, atol=1e-3)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours.astype(np.float64), np.asarray(theirs, np.float64))


@pytest.mark.parametrize("n", range(1, 10))
def test_transfer_syntaxes_match_dcm2niix(testdata, n):
    d = testdata / "dicom" / "dcm_qa_ts"
    s = dm.load(d / "In" / f"{n}.dcm")
    _assert_same(s.data, s.affine, d / "Ref" / f"{n}.nii")


def test_pdt2_dual_echo_with_gap(testdata):
    d = testdata / "dicom" / "dcm_qa_pdt2"
    s = dm.load(d / "In")
    assert s.echo_times_ms == pytest.approx((11.0, 92.0), abs=0.5)
    assert s.spacing[2] == pytest.approx(2.34, abs=0.01)  # slice gap kept: spacing, not thickness
    for e in (0, 1):
        ref = next((d / "Ref").glob(f"*_e{e + 1}.nii"))
        _assert_same(s.data[..., e], s.affine, ref)


def test_xa30_enhanced(testdata):
    d = testdata / "dicom" / "dcm_qa_xa30"
    s = dm.load(d / "In")
    _assert_same(s.data, s.affine, d / "Ref" / "5_anat-T1w_acq-tfl.nii")


def test_philips_enhanced_gz_magnitude_echoes(testdata):
    d = testdata / "dicom" / "dcm_qa_philips_enh"
    s = dm.load(d / "In")
    assert len(s.echo_times_ms) == 2
    for e in (0, 1):
        ref_img = nib.as_closest_canonical(nib.load(str(d / "Ref" / f"2001_WIP_fcMRI_Field_Mapping_enh_e{e + 1}.nii.gz")))
        ours, a1 = _canon(s.data[..., e], s.affine)
        np.testing.assert_allclose(a1, ref_img.affine, atol=1e-3)
        np.testing.assert_allclose(ours, ref_img.get_fdata(), rtol=1e-4, atol=1e-3)


def test_nifti_round_trip_of_dicom(testdata, tmp_path):
    s = dm.load(testdata / "dicom" / "dcm_qa_pdt2" / "In")
    s.save(tmp_path / "x.nii.gz")
    b = dm.load(tmp_path / "x.nii.gz")
    assert np.array_equal(np.asarray(b.data), np.asarray(s.data))
    assert np.allclose(b.affine, s.affine, atol=1e-5)
    assert b.echo_times_ms == pytest.approx(s.echo_times_ms)


def test_phi_kept_apart(testdata):
    s = dm.load(testdata / "dicom" / "dcm_qa_pdt2" / "In")
    for k in s.meta:
        assert not k.startswith("patient")
    assert "patient_name" not in repr(s)


BROKEN = ["emri_small_jpeg_2k_lossless_too_short.dcm", "bad_sequence.dcm"]


@pytest.mark.parametrize("name", sorted(p.name for p in Path(__file__).resolve().parents[2].joinpath("shared/testdata/dicom/pydicom_data").glob("*.dcm")) or ["none"])
def test_pydicom_data_loads_or_clear_error(testdata, name):
    p = testdata / "dicom" / "pydicom_data" / name
    try:
        s = dm.load(p)
    except DiscmeasureError as exc:
        msg = str(exc)
        assert name in msg and "\n" not in msg
        return
    assert s.data.size > 0 and np.isfinite(s.affine).all()


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "MR_small_RLE.dcm",
                                  "rtplan.dcm", "no_meta.dcm", "meta_missing_tsyntax.dcm", "SC_rgb.dcm"])
def test_pydicom_own_files(name):
    from pydicom.data import get_testdata_file

    p = get_testdata_file(name)
    if p is None:
        pytest.skip(f"{name} not shipped with this pydicom")
    try:
        s = dm.load(p)
        assert s.data.size > 0
    except DiscmeasureError as exc:
        assert "\n" not in str(exc)


def test_bad_inputs(tmp_path):
    with pytest.raises(DiscmeasureError, match="no such file"):
        dm.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DiscmeasureError, match="empty"):
        dm.load(tmp_path / "empty")
    (tmp_path / "rand.dcm").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(DiscmeasureError):
        dm.load(tmp_path / "rand.dcm")
    (tmp_path / "zero.nii").write_bytes(b"")
    with pytest.raises(DiscmeasureError, match="empty"):
        dm.load(tmp_path / "zero.nii")
    nib.save(nib.Nifti1Image(np.full((3, 3, 3), np.nan, np.float32), np.eye(4)), tmp_path / "nan.nii.gz")
    with pytest.raises(DiscmeasureError, match="NaN"):
        dm.load(tmp_path / "nan.nii.gz")
    img = nib.Nifti1Image(np.ones((3, 3, 3), np.float32), None)
    img.header.set_sform(None, 0)
    img.header.set_qform(None, 0)
    img.header["pixdim"][1:4] = 0
    nib.save(img, tmp_path / "zero_aff.nii.gz")
    with pytest.raises(DiscmeasureError):
        dm.load(tmp_path / "zero_aff.nii.gz")


def test_two_series_need_choice(testdata, tmp_path):
    for n in (1, 2):
        shutil.copy(testdata / "dicom" / "dcm_qa_ts" / "In" / f"{n}.dcm", tmp_path / f"{n}.dcm")
    with pytest.raises(SeriesSelectionError, match="2 series found"):
        dm.load(tmp_path)
    s = dm.load(tmp_path, series=2)
    assert s.meta["series_number"] == 2


def _native_files(testdata):
    from pydicom.data import get_testdata_file

    files = [p for p in (testdata / "dicom").rglob("*") if p.is_file() and p.suffix == ".dcm"]
    files += [Path(get_testdata_file(n)) for n in ("MR_small.dcm", "MR_small_implicit.dcm", "CT_small.dcm")
              if get_testdata_file(n)]
    return sorted(files)


def test_direct_pixel_read_equals_pydicom(testdata, tmp_path):
    """The loader reads uncompressed pixels straight from the file: same values as pydicom's pixel_array."""
    import pydicom

    from discmeasure.io.dicom import _read_head, _read_native

    n_native = 0
    for p in _native_files(testdata):
        try:
            ds, layout = _read_head(p)
        except Exception:  # noqa: BLE001 -- not DICOM
            continue
        if layout is None:
            continue
        n_native += 1
        ref = pydicom.dcmread(p, force=True).pixel_array
        got = _read_native(p, layout)
        assert got.dtype == ref.dtype.newbyteorder("=") and got.shape == ref.shape, p
        np.testing.assert_array_equal(got, ref, err_msg=str(p))
    assert n_native >= 5
    # bits stored < bits allocated: high bits masked (unsigned) or sign-extended (signed), as pydicom
    src = Path(pydicom.data.get_testdata_file("MR_small.dcm"))
    for rep in (0, 1):
        ds = pydicom.dcmread(src)
        vals = np.frombuffer(ds.PixelData, "<u2").copy()
        vals[:50] |= 0xF000
        vals[50:100] |= 0x0800
        ds.PixelData, ds.PixelRepresentation, ds.BitsStored, ds.HighBit = vals.tobytes(), rep, 12, 11
        out = tmp_path / f"bs12_{rep}.dcm"
        ds.save_as(out)
        _, layout = _read_head(out)
        assert layout is not None
        np.testing.assert_array_equal(_read_native(out, layout), pydicom.dcmread(out).pixel_array)


def test_truncated_native_pixels_clear_error(testdata, tmp_path):
    src = testdata / "dicom" / "dcm_qa_ts" / "In" / "1.dcm"
    raw = src.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(raw[: len(raw) - 1000])
    with pytest.raises(DiscmeasureError, match="pixel data"):
        dm.load(tmp_path / "cut.dcm")
