"""QA findings 7, 8 and 19: a DICOM SEG only on the series its labels were made on; a folder of
several studies is not mixed; errors name the input that is wrong (labels, multi-echo series).

Every test refuses or names something the old code let through or named wrongly.
"""

from __future__ import annotations

import shutil
import warnings

import nibabel as nib
import numpy as np
import pandas as pd
import pydicom
import pytest

import discmeasure as dm
from discmeasure.errors import FitError, InputError, SegmentationError, SeriesSelectionError
from discmeasure.segmentation.core import Segmentation

VALUES = (0, 20, 21, 22, 61, 121, 122)


def _random_labels(scan, seed=0):
    rng = np.random.default_rng(seed)
    return Segmentation(labels=rng.choice(VALUES, size=scan.shape[:3]).astype(np.int16), affine=np.array(scan.affine),
                        method="auto")


def _uid(folder, attr="SeriesInstanceUID"):
    return str(getattr(pydicom.dcmread(next(folder.glob("*.dcm")), stop_before_pixels=True), attr))


def _moved_copy(src, dest, shift_lps):
    """A copy of a series whose every image sits ``shift_lps`` mm away (a re-planned field of view)."""
    shutil.copytree(src, dest)
    for f in dest.glob("*.dcm"):
        ds = pydicom.dcmread(f)
        ds.ImagePositionPatient = [f"{float(v) + d:.6f}" for v, d in zip(ds.ImagePositionPatient, shift_lps)]
        ds.save_as(f)
    return dest


# finding 7: write_dicom_seg ---------------------------------------------------------------------

def test_seg_refuses_a_source_off_the_labels_grid(sample_scans, tmp_path):
    """Labels made on pre/T2W_SAG, SEG asked on the same series moved 2, -3, 4 mm (the patient
    re-scanned, the field of view re-planned): refused before writing (it was written, outlines
    shifted). Written on its own series, with the labels reoriented (same grid), and with
    allow_other_source=True."""
    from discmeasure.io.dicom_seg import write_dicom_seg

    src = sample_scans / "pre" / "T2W_SAG"
    scan = dm.load(src)
    seg = _random_labels(scan)
    moved = _moved_copy(src, tmp_path / "moved", (2.0, -3.0, 4.0))
    out = tmp_path / "x.seg.dcm"
    with pytest.raises(InputError) as ei:
        write_dicom_seg(seg, moved, out)
    msg = str(ei.value)
    assert "not on the labels' voxel grid" in msg and "allow_other_source" in msg and "\n" not in msg
    assert not out.exists()
    # a shift of a whole number of voxels in-plane and across slices: off the labels' grid's extent
    whole = _moved_copy(src, tmp_path / "whole", (-4.0 * 3, 0.7 * 5, 0.0))  # 3 slices, 5 rows
    with pytest.raises(InputError, match="reach beyond the labels' grid"):
        write_dicom_seg(seg, whole, out)
    assert not out.exists()
    # still written: its own series; the labels reoriented (same grid); a finer grid that holds it
    assert write_dicom_seg(seg, src, tmp_path / "own.seg.dcm").exists()
    canon = nib.as_closest_canonical(nib.Nifti1Image(seg.labels, seg.affine))
    assert write_dicom_seg(Segmentation(np.asarray(canon.dataobj).astype(np.int16), canon.affine), src,
                           tmp_path / "canon.seg.dcm").exists()
    assert write_dicom_seg(seg, moved, out, allow_other_source=True).exists()


def test_seg_refuses_another_visit_on_the_same_grid(sample_scans, tmp_path):
    """pre and post share their grid (same planning), not their session: labels of the pre scan
    on the post series are refused when the scan they were made on is given (scan=) or recorded in
    the Segmentation (``source``); the pre series itself is accepted."""
    from discmeasure.io.dicom_seg import write_dicom_seg

    pre = dm.load(sample_scans / "pre" / "T2W_SAG")
    post_src = sample_scans / "post" / "T2W_SAG"
    seg = _random_labels(pre)
    out = tmp_path / "y.seg.dcm"
    with pytest.raises(InputError, match="another frame of reference") as ei:
        write_dicom_seg(seg, post_src, out, scan=pre)
    assert "\n" not in str(ei.value)
    assert not out.exists()
    recorded = _random_labels(pre)
    recorded.source = dict(pre.meta)
    with pytest.raises(InputError, match="another frame of reference"):
        write_dicom_seg(recorded, post_src, out)
    assert not out.exists()
    assert write_dicom_seg(seg, sample_scans / "pre" / "T2W_SAG", out, scan=pre).exists()
    assert write_dicom_seg(recorded, sample_scans / "pre" / "T2W_SAG", tmp_path / "z.seg.dcm").exists()


def test_segment_records_its_scan_so_another_visit_is_refused(sample_scans, tmp_path):
    """The QA's own call: the pre visit's automatic segmentation filed on the post series, no
    ``scan=`` given. ``segment`` records the scan's series, study and frame of reference UIDs in
    ``Segmentation.source``, so the SEG is refused; on its own series it is written."""
    from discmeasure.io.dicom_seg import write_dicom_seg

    pre = dm.load(sample_scans / "pre" / "T2W_SAG")
    seg = dm.segment(pre)
    assert seg.source["series_uid"] == pre.meta["series_uid"]
    out = tmp_path / "y.seg.dcm"
    with pytest.raises(InputError, match="another frame of reference"):
        write_dicom_seg(seg, sample_scans / "post" / "T2W_SAG", out)
    assert not out.exists()
    assert write_dicom_seg(seg, sample_scans / "pre" / "T2W_SAG", out).exists()


# finding 8: a folder of two studies -------------------------------------------------------------

@pytest.fixture
def two_visits(sample_scans, tmp_path):
    folder = tmp_path / "export"
    shutil.copytree(sample_scans / "pre", folder / "pre")
    shutil.copytree(sample_scans / "post", folder / "post")
    return folder


def test_folder_of_two_studies_is_refused(two_visits):
    """One patient's export of two visits: refused with the studies' count and dates (it took the
    T2w of one and the multi-echo series of the other); no patient name or ID, no study
    description; the same for analyze and with mese=False."""
    for kw in ({}, {"mese": False}):
        with pytest.raises(SeriesSelectionError) as ei:
            dm.load_study(two_visits, **kw)
        msg = str(ei.value)
        assert "2 studies" in msg and "2026-01-05" in msg and "2027-01-11" in msg, msg
        assert "\n" not in msg and "t2w=" in msg
        for secret in ("PHANTOM^", "DM-PHANTOM", "LUMBAR SPINE", "/pre", "/post"):
            assert secret not in msg, secret
    with pytest.raises(SeriesSelectionError, match="2 studies"):
        dm.analyze(two_visits)
    # each study's own folder: as before
    st = dm.load_study(two_visits / "post")
    assert [s["role"] for s in st.series] == ["t2w", "mese"]


def test_series_chosen_by_hand_keep_to_their_study(two_visits):
    """A T2w chosen by hand (UID): the multi-echo series of its own study (the old choice was the
    other visit's, on a tie); a multi-echo series chosen by hand brings the T2w of its study; both
    chosen by hand across studies: taken as given."""
    post_t2w = _uid(two_visits / "post" / "T2W_SAG")
    post_mese = _uid(two_visits / "post" / "T2MAP_MESE_SAG")
    pre_mese = _uid(two_visits / "pre" / "T2MAP_MESE_SAG")
    st = dm.load_study(two_visits, t2w=post_t2w)
    assert st.t2w.meta["series_uid"] == post_t2w and st.mese.meta["series_uid"] == post_mese
    st = dm.load_study(two_visits, mese=post_mese)
    assert st.t2w.meta["series_uid"] == post_t2w and st.mese.meta["series_uid"] == post_mese
    st = dm.load_study(two_visits, t2w=post_t2w, mese=pre_mese)
    assert st.t2w.meta["series_uid"] == post_t2w and st.mese.meta["series_uid"] == pre_mese


# finding 19: errors name the wrong input ---------------------------------------------------------

def test_label_errors_name_the_labels_file(sample_scans, tmp_path):
    """An empty label map: the error names the labels file, not the study folder."""
    study = sample_scans / "pre"
    scan = dm.load(study / "T2W_SAG")
    labels = tmp_path / "empty_labels.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(scan.shape[:3], np.int16), scan.affine), labels)
    with pytest.raises(SegmentationError) as ei:
        dm.analyze(study, labels=labels)
    assert ei.value.path == str(labels) and str(ei.value).startswith(f"{labels}: ")
    assert str(study) + ":" not in str(ei.value)


def test_mese_errors_name_the_mese_input_and_batch_hides_it(sample_scans, tmp_path):
    """A single-volume series given as mese: the FitError names it (it named no file); in a batch,
    failures.csv says ``<mese>:`` and holds no input path."""
    from discmeasure.batch import run_batch

    study = tmp_path / "study"
    shutil.copytree(sample_scans / "pre", study)
    mese = study / "T2W_SAG"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FitError) as ei:
            dm.analyze(study, mese=mese)
    assert ei.value.path == str(mese) and "one volume" in str(ei.value)
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"subject,timepoint,path,mese\nE,baseline,{study},{mese}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_batch(manifest, tmp_path / "out", workers=1, pictures=False)
    text = (tmp_path / "out" / "failures.csv").read_text()
    fails = pd.read_csv(tmp_path / "out" / "failures.csv")
    assert list(fails.subject) == ["E"] and fails.error[0].startswith("<mese>: scan has one volume"), text
    assert str(tmp_path) not in text and "T2W_SAG" not in text
