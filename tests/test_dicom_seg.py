"""DICOM SEG export (``discmeasure.io.dicom_seg``): geometry, codes and patient identity.

The oracle for the geometry is highdicom's own reading of the written SEG
(``Segmentation.get_volume``: the frames placed by their Plane Position / Orientation, as any
DICOM viewer places them), compared in world coordinates with the label map it came from.
The label maps are random, so a flipped, transposed or shifted frame cannot match by chance.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pydicom
import pytest

import discmeasure as dm
from discmeasure.errors import InputError
from discmeasure.io.dicom_seg import labels_on_frames, read_source, segment_code, write_dicom_seg
from discmeasure.segmentation.core import Segmentation

hd = pytest.importorskip("highdicom")

VALUES = (0, 20, 21, 22, 61, 121, 122)


def _random_labels(scan, seed=0):
    rng = np.random.default_rng(seed)
    return Segmentation(labels=rng.choice(VALUES, size=scan.shape[:3]).astype(np.int16), affine=np.array(scan.affine),
                        method="auto")


def _seg_volume_in_our_values(path):
    """The written SEG read back by highdicom: (values on its own grid, its RAS affine)."""
    seg = hd.seg.segread(path)
    number_to_value = {int(s.SegmentNumber): int(re.search(r"\((\d+)\)$", s.SegmentLabel).group(1))
                       for s in seg.SegmentSequence}
    vol = seg.get_volume(combine_segments=True)
    arr = np.asarray(vol.array)
    out = np.zeros(arr.shape, np.int16)
    for n, v in number_to_value.items():
        out[arr == n] = v
    lps_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0])
    return out, lps_to_ras @ np.asarray(vol.affine, float), seg


def _labels_at(seg_obj, values_aff):
    """Our labels at the world points of the voxels of another grid (nearest voxel)."""
    vals, aff = values_aff
    idx = np.indices(vals.shape).reshape(3, -1).T
    world = idx @ aff[:3, :3].T + aff[:3, 3]
    inv = np.linalg.inv(seg_obj.affine)
    ijk = world @ inv[:3, :3].T + inv[:3, 3]
    assert np.abs(ijk - np.rint(ijk)).max() < 1e-3, "the SEG's voxels are not the scan's voxel centres"
    ijk = np.rint(ijk).astype(int)
    return seg_obj.labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]].reshape(vals.shape)


def test_sample_series_round_trip_in_world_coordinates(sample_scans, tmp_path):
    src = sample_scans / "pre" / "T2W_SAG"
    scan = dm.load(src)
    seg = _random_labels(scan)
    out = write_dicom_seg(seg, src, tmp_path / "labels.seg.dcm")
    vals, aff, back = _seg_volume_in_our_values(out)
    np.testing.assert_array_equal(vals, _labels_at(seg, (vals, aff)))
    # every source frame is referenced, and the SEG belongs to the source's study
    first = pydicom.dcmread(next(src.glob("*.dcm")), stop_before_pixels=True)
    assert back.StudyInstanceUID == first.StudyInstanceUID
    assert back.FrameOfReferenceUID == first.FrameOfReferenceUID
    refs = {r.ReferencedSOPInstanceUID for s in back.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence}
    assert refs == {pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in src.glob("*.dcm")}
    # coded segments
    by_label = {s.SegmentLabel: s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in back.SegmentSequence}
    assert by_label == {"L1 (20)": "66794005", "L2 (21)": "14293000", "L3 (22)": "36470004",
                        "spinal canal (61)": "61853006", "L2-L3 disc (121)": "67459009",
                        "L3-L4 disc (122)": "62551000"}
    assert {s.SegmentAlgorithmType for s in back.SegmentSequence} == {"AUTOMATIC"}


def test_segment_codes():
    assert segment_code(123)[0] == "L4-L5 disc"
    assert segment_code(123)[1].value == "84020006"  # L4/L5 disc, CID 7604
    assert segment_code(124)[1].value == "715056000"  # L5/S1 disc
    assert segment_code(124, l6=True)[0] == "L5-L6 disc"
    assert segment_code(26)[1].value == "54735007"  # sacrum
    assert segment_code(19)[0] == "T12"
    with pytest.raises(ValueError):
        segment_code(99)


def test_enhanced_multiframe_source_and_identity(testdata, tmp_path):
    """A real enhanced MR image (Siemens XA30, one file of 96 frames, sagittal) holding a patient
    name, ID and birth date: the SEG's frames sit on the source frames, and the identity is
    replaced by the pseudonym unless kept."""
    src = testdata / "dicom" / "dcm_qa_xa30" / "In"
    scan = dm.load(src)
    seg = _random_labels(scan, seed=1)
    ds = read_source(src)
    assert len(ds) == 1 and int(ds[0].NumberOfFrames) == 96
    out = write_dicom_seg(seg, src, tmp_path / "a.seg.dcm", subject="sub-0007")
    vals, aff, back = _seg_volume_in_our_values(out)
    np.testing.assert_array_equal(vals, _labels_at(seg, (vals, aff)))
    raw = out.read_bytes()
    for secret in (str(ds[0].PatientName), str(ds[0].PatientID), str(ds[0].PatientBirthDate)):
        assert secret and secret.encode() not in raw, secret
    assert str(back.PatientID) == "sub-0007" and back.PatientIdentityRemoved == "YES"
    kept = write_dicom_seg(seg, src, tmp_path / "b.seg.dcm", keep_identity=True)
    back_kept = pydicom.dcmread(kept)
    assert back_kept.PatientID == ds[0].PatientID and back_kept.PatientBirthDate == ds[0].PatientBirthDate
    # the source file is untouched
    assert read_source(src)[0].PatientID == ds[0].PatientID


def test_labels_on_frames_follow_the_frame_geometry(sample_scans):
    """The frame sampler on its own: a label map that is the voxel's world x, y, z (coarsely
    binned) read back on the source frames gives each pixel's own world position."""
    src = sample_scans / "pre" / "T2W_SAG"
    scan = dm.load(src)
    idx = np.indices(scan.shape[:3]).reshape(3, -1).T
    world = (idx @ scan.affine[:3, :3].T + scan.affine[:3, 3]).reshape(*scan.shape[:3], 3)
    code = np.round(world[..., 0] + 1000 * np.round(world[..., 2])).astype(np.int64)  # x and z together
    ds = read_source(src)
    frames = labels_on_frames(code, scan.affine, ds)
    for k, d in enumerate(ds):
        ipp = np.array(d.ImagePositionPatient, float)
        iop = np.array(d.ImageOrientationPatient, float)
        r, c = 5, 7
        lps = ipp + c * float(d.PixelSpacing[1]) * iop[:3] + r * float(d.PixelSpacing[0]) * iop[3:]
        x, z = -lps[0], lps[2]
        assert frames[k, r, c] == np.round(x + 1000 * np.round(z))


def test_bad_sources(sample_scans, tmp_path):
    scan = dm.load(sample_scans / "pre" / "T2W_SAG")
    seg = _random_labels(scan)
    with pytest.raises(InputError, match="2 series found"):
        read_source(sample_scans / "pre")
    with pytest.raises(InputError, match="no DICOM images"):
        read_source(tmp_path)
    # a multi-echo series: several images per position, which a SEG cannot reference
    with pytest.raises(InputError, match="images per slice position"):
        write_dicom_seg(seg, sample_scans / "pre" / "T2MAP_MESE_SAG", tmp_path / "m.seg.dcm")
    assert not (tmp_path / "m.seg.dcm").exists()
    # labels of another scan: nothing on these frames
    far = Segmentation(labels=seg.labels, affine=seg.affine @ np.diag([1, 1, 1, 1.0]) + np.c_[np.zeros((4, 3)), [1e4, 0, 0, 0]])
    with pytest.raises(InputError, match="no vertebral body, disc or canal label"):
        write_dicom_seg(far, sample_scans / "pre" / "T2W_SAG", tmp_path / "x.seg.dcm")
    assert not (tmp_path / "x.seg.dcm").exists()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "discmeasure", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_cli_measure_and_segment_write_dicom_seg(sample_scans, tmp_path):
    src = tmp_path / "pre"
    shutil.copytree(sample_scans / "pre", src)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    res = _cli("measure", src, "--out", tmp_path / "out", "--dicom-seg", "--uncertainty", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    assert pd.read_csv(tmp_path / "out" / "measurements.csv")["bulge_sd_mm"].notna().all()  # into the SR too (below)
    seg_file = tmp_path / "out" / "labels.seg.dcm"
    vals, aff, back = _seg_volume_in_our_values(seg_file)
    labels = dm.load(tmp_path / "out" / "labels.nii.gz")
    ours = Segmentation(labels=np.asarray(labels.data).astype(np.int16), affine=labels.affine)
    np.testing.assert_array_equal(vals, _labels_at(ours, (vals, aff)))
    assert {s.SegmentLabel for s in back.SegmentSequence} >= {"L4-L5 disc (123)", "L5-S1 disc (124)"}
    subject = (tmp_path / "out" / "measurements.json").read_text().split('"subject": "')[1].split('"')[0]
    assert str(back.PatientID) == subject
    # the measurements as a TID 1500 report on the SEG's disc segments (tests/test_dicom_sr.py)
    from test_dicom_sr import check_report_matches_table

    check_report_matches_table(tmp_path / "out" / "measurements.sr.dcm", seg_file, tmp_path / "out" / "measurements.csv",
                               subject)
    # segment -o x.dcm: the same labels as the NIfTI of the same command
    res = _cli("segment", src / "T2W_SAG", "-o", tmp_path / "s.seg.dcm")
    assert res.returncode == 0, res.stdout + res.stderr
    vals2, aff2, _ = _seg_volume_in_our_values(tmp_path / "s.seg.dcm")
    np.testing.assert_array_equal(vals2, vals)
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before  # inputs untouched
    # a NIfTI input has no DICOM frames: one line, exit 2, nothing written
    nii = tmp_path / "t2w.nii.gz"
    dm.io.save(dm.load(src / "T2W_SAG"), nii)
    for args, made in ((("measure", nii, "--out", tmp_path / "out2", "--dicom-seg"), tmp_path / "out2"),
                       (("segment", nii, "-o", tmp_path / "n.seg.dcm"), tmp_path / "n.seg.dcm")):
        res = _cli(*args)
        lines = (res.stdout + res.stderr).strip().splitlines()
        assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and "DICOM" in lines[0], lines
        assert not made.exists()


def test_cli_pair_writes_a_dicom_seg_per_visit(sample_scans, tmp_path):
    res = _cli("pair", sample_scans / "pre", sample_scans / "post", "--out", tmp_path / "pair", "--dicom-seg")
    assert res.returncode == 0, res.stdout + res.stderr
    series = {}
    for tp in ("pre", "post"):
        vals, aff, back = _seg_volume_in_our_values(tmp_path / "pair" / tp / "labels.seg.dcm")
        labels = dm.load(tmp_path / "pair" / tp / "labels.nii.gz")
        ours = Segmentation(labels=np.asarray(labels.data).astype(np.int16), affine=labels.affine)
        np.testing.assert_array_equal(vals, _labels_at(ours, (vals, aff)))
        series[tp] = back.ReferencedSeriesSequence[0].SeriesInstanceUID
        assert series[tp] == dm.load(sample_scans / tp / "T2W_SAG").meta["series_uid"]
    assert series["pre"] != series["post"]


def test_dicom_seg_imports_as_labels_by_its_codes(sample_scans, tmp_path):
    """A SEG (ours, or another program's with the standard codes) imports as labels: segments are
    mapped by their SNOMED CT codes, not their text; unknown structures are left out."""
    from discmeasure.io.dicom_seg import read_dicom_seg

    src = sample_scans / "pre" / "T2W_SAG"
    scan = dm.load(src)
    auto = dm.segment(scan)
    path = write_dicom_seg(auto, src, tmp_path / "auto.seg.dcm")
    back = dm.segment(scan, method="labels", labels=path)
    np.testing.assert_array_equal(back.labels, auto.labels)
    assert back.levels == auto.levels and back.method == "labels:discmeasure"
    # another program's texts, and one segment (L4) coded as something else
    ds = pydicom.dcmread(path)
    for s in ds.SegmentSequence:
        s.SegmentLabel = f"segment {s.SegmentNumber}"
        if s.SegmentedPropertyTypeCodeSequence[0].CodeValue == "11994002":  # L4 vertebra
            s.SegmentedPropertyTypeCodeSequence[0].CodeValue = "10200004"  # liver
            s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning = "Liver"
    other = tmp_path / "other.seg.dcm"
    ds.save_as(other)
    got = read_dicom_seg(other)
    on_scan = dm.segment(scan, method="labels", labels=got).labels
    expected = np.where(auto.labels == 23, 0, auto.labels)
    np.testing.assert_array_equal(on_scan, expected)
    # the CLI takes it as --labels
    res = _cli("measure", src, "--labels", path, "--out", tmp_path / "m")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "labels:discmeasure" in (tmp_path / "m" / "measurements.json").read_text()
    # not a SEG: one clear error
    with pytest.raises(InputError, match="not a DICOM Segmentation"):
        read_dicom_seg(next(src.glob("*.dcm")))


def test_a_seg_in_the_study_folder_is_not_a_series(sample_scans, tmp_path):
    """A labels.seg.dcm saved into a study folder was listed as a series (243 x 314 x 126 frames,
    0 mm apart); the loader now skips Segmentation instances."""
    from discmeasure.io.dicom import scan_folder

    study = tmp_path / "pre"
    shutil.copytree(sample_scans / "pre", study)
    scan = dm.load(study / "T2W_SAG")
    write_dicom_seg(_random_labels(scan), study / "T2W_SAG", study / "labels.seg.dcm")
    write_dicom_seg(_random_labels(scan), study / "T2W_SAG", study / "T2W_SAG" / "labels.seg.dcm")
    assert [s.number for s in scan_folder(study)] == [s.number for s in scan_folder(sample_scans / "pre")]
    assert dm.load_study(study).t2w.meta["series_uid"] == scan.meta["series_uid"]
    # and the series' folder with a SEG in it is still one series for a new SEG
    assert len(read_source(study / "T2W_SAG")) == 11
    # a SEG alone is no image: one line says what it is and how to use it
    from discmeasure.errors import DicomError

    with pytest.raises(DicomError, match="holds a DICOM SEG.*--labels"):
        dm.load(study / "labels.seg.dcm")
