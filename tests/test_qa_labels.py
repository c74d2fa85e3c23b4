"""QA findings: label-convention detection and the automatic segmentation's sacrum flag.

A. A SPINEPS subregion map (``seg-subreg``: vertebral parts 41-49, cord/canal/endplate 60-62,
   every disc 100) was detected as TotalSpineSeg (whose L1-L5 are 41-45): one made-up level L5-S1,
   all discs merged, exit 0. Auto-detection now takes a convention only when it defines every value
   present, and a subregion map is refused with a request for the instance mask (``seg-vert``).
B. The automatic segmentation of a cervical scan (tptbox_cervical) named its levels L5-S1 without
   ``sacrum_not_confirmed``: the lowest disc's inclination was measured against the SI axis instead
   of the AP axis, so a flat disc counted as inclined like L5-S1.
"""

import subprocess
import sys

import numpy as np
import pytest

import discmeasure as dm
from discmeasure import Scan
from discmeasure.errors import SegmentationError
from discmeasure.segmentation import segment
from discmeasure.segmentation import conventions
from discmeasure.segmentation.conventions import detect_convention


def _tptbox(testdata):
    return testdata / "spine" / "tptbox_cervical"


# ---- A: label conventions


def test_spineps_subregion_map_is_refused(testdata):
    d = _tptbox(testdata)
    scan = dm.load(d / "sub-mri_label-6_T2w.nii.gz")
    with pytest.raises(SegmentationError, match="SPINEPS subregion map") as e:
        segment(scan, method="labels", labels=d / "sub-mri_seg-subreg_label-6_msk.nii.gz")
    assert "seg-vert" in str(e.value) and "\n" not in str(e.value)
    # also when the user says it is SPINEPS: the subregions are not instances
    with pytest.raises(SegmentationError, match="SPINEPS subregion map"):
        segment(scan, method="labels", labels=d / "sub-mri_seg-subreg_label-6_msk.nii.gz", convention="spineps")


def test_spineps_instance_mask_still_imports(testdata):
    d = _tptbox(testdata)
    scan = dm.load(d / "sub-mri_label-6_T2w.nii.gz")
    seg = segment(scan, method="labels", labels=d / "sub-mri_seg-vert_label-6_msk.nii.gz")
    assert seg.method == "labels:spineps" and seg.levels == ["C5-C6", "C6-C7"]


def test_subregion_values_not_taken_for_totalspineseg():
    subreg = [0, 41, 42, 43, 44, 45, 46, 47, 48, 49, 60, 61, 62, 100]
    assert conventions.is_spineps_subregion_map(subreg)
    assert detect_convention(subreg) is None
    # a real TotalSpineSeg map, and the values it shares with SPINEPS subregions, stay TotalSpineSeg
    assert detect_convention([0, 1, 2, 41, 42, 43, 44, 45, 50, 91, 92, 93, 94, 95, 100]) == "totalspineseg"
    assert detect_convention([0, 41, 42, 43, 100]) == "totalspineseg"
    assert not conventions.is_spineps_subregion_map([0, 41, 42, 43, 100])
    assert detect_convention([0, 5, 6, 7, 105, 106, 205, 206, 207]) == "spineps"


def test_auto_detection_refuses_values_the_convention_does_not_define():
    aff = np.eye(4)
    a = np.zeros((8, 8, 40), np.int16)
    a[:, :, 2:8] = 44   # TotalSpineSeg L4
    a[:, :, 8:11] = 95  # L4-L5
    a[:, :, 11:17] = 45  # L5
    a[:, :, 17:20] = 100  # L5-S
    a[:, :, 20:26] = 50  # sacrum
    a[:, :, 26:28] = 150  # not a TotalSpineSeg value
    assert detect_convention(np.unique(a)) is None
    scan = Scan(np.ones(a.shape, np.float32), aff)
    with pytest.raises(SegmentationError, match=r"values 150 are not totalspineseg labels.*convention="):
        segment(scan, method="labels", labels=a)
    # told explicitly, the map is converted (the unknown value is left out)
    seg = segment(scan, method="labels", labels=a, convention="totalspineseg")
    assert seg.levels == ["L4-L5", "L5-S1"]
    # without the stray value, auto-detection is unchanged
    a[a == 150] = 0
    assert segment(scan, method="labels", labels=a).method == "labels:totalspineseg"
    # a SPINEPS instance map with a value SPINEPS/discmeasure does not define
    assert detect_convention([0, 23, 24, 26, 123, 124, 300]) is None


def test_cli_subregion_map_one_line_error(testdata, tmp_path):
    d = _tptbox(testdata)
    r = subprocess.run([sys.executable, "-m", "discmeasure", "measure", str(d / "sub-mri_label-6_T2w.nii.gz"),
                        "--labels", str(d / "sub-mri_seg-subreg_label-6_msk.nii.gz"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode != 0, r.stdout[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and "SPINEPS subregion map" in last and "seg-vert" in last, r.stderr
    assert not (tmp_path / "o").exists()


# ---- B: sacrum_not_confirmed


def test_cervical_scan_levels_carry_sacrum_not_confirmed(testdata):
    """tptbox_cervical T2w (C5-C7, 1.5 mm): the automatic pipeline takes two cervical blocks for
    L5 and S1; the disc between them is flat (0.3 degrees from AP; an L5-S1 disc under a sacrum is
    inclined: 22-43 degrees on vesal, 32 on the phantom), so the sacrum is not confirmed."""
    scan = dm.load(_tptbox(testdata) / "sub-mri_label-6_T2w.nii.gz")
    seg = segment(scan)
    assert seg.levels, "no level found"
    for lv in seg.levels:
        assert "sacrum_not_confirmed" in seg.qc[lv]["flags"], (lv, seg.qc)
        assert seg.qc[lv]["confidence"] <= 0.5
    df = dm.measure(scan, seg)
    lowest = df.set_index("level").loc[seg.levels[-1]]
    assert "segmentation: sacrum_not_confirmed" in lowest.qc_flags.split(";"), lowest.qc_flags


def test_inclined_lumbosacral_disc_is_not_flagged(testdata):
    """Real lumbar slice (vesal_lumbar_2d image 3, S1 found, L5-S1 inclined 40 degrees): no flag."""
    from PIL import Image

    im = np.asarray(Image.open(testdata / "spine" / "vesal_lumbar_2d" / "images" / "3.png").convert("L"), float)
    aff = np.array([[0, 0, 1.0, 0], [-1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1]])  # as in test_segment
    seg = segment(Scan(im.T[:, :, None], aff))
    assert seg.levels[-1] == "L5-S1"
    assert "sacrum_not_confirmed" not in seg.qc["L5-S1"]["flags"], seg.qc
