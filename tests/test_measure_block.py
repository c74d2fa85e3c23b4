"""measure() on an analytic labelled spine segment with known bulge and heights."""

import numpy as np
import pytest

from discmeasure import Scan
from discmeasure.measurements import measure, rois

from _blockspine import block_labels, sagittal_affine


def _measure(bulge, spacing=(0.6, 0.6, 4.0), shape=(110, 140, 11), rot=(0, 0, 0), shift=(0, 0, 0)):
    aff, R = sagittal_affine(spacing, shape, rot, shift)
    lab = block_labels(shape, aff, R, bulge_mm=bulge, shift=shift)
    scan = Scan(np.where(lab == 123, 300.0, np.where(lab == 61, 500.0, 100.0)), aff)
    return measure(scan, lab), lab, scan


@pytest.mark.parametrize("bulge", [0.0, 2.0, 4.0, -1.0])
def test_bulge_sagittal(bulge):
    df, _, _ = _measure(bulge)
    row = df.iloc[0]
    assert row.level == "L4-L5" and row.label == 123
    assert row.bulge_mm == pytest.approx(bulge, abs=0.3)
    assert row.bulge_midsagittal_mm == pytest.approx(bulge, abs=0.3)
    if bulge > 0:  # the bump is centred (|x| < 10 mm): the maximum is near the midline
        assert abs(row.bulge_lr_offset_mm) <= 4.0 + 1e-6


@pytest.mark.parametrize("rot", [(0, 0, 12), (8, 0, 0), (0, 10, 0), (5, -7, 9)])
def test_bulge_oblique_and_rotated(rot):
    df, _, _ = _measure(3.0, rot=rot, shift=(3, -2, 5))
    row = df.iloc[0]
    assert row.bulge_mm == pytest.approx(3.0, abs=0.3)
    # label-only input: each endplate is known only to a voxel face (majority labels), so a
    # height (two boundaries) can be off by up to one in-plane voxel (0.6 mm here); the
    # phantom validation measures the real accuracy on rendered images
    assert row.height_middle_mm == pytest.approx(10.0, abs=0.6)


def test_heights_and_world_points():
    df, lab, scan = _measure(2.0, spacing=(0.5, 0.5, 3.0), shape=(130, 160, 15))
    row = df.iloc[0]
    for h in ("height_anterior_mm", "height_middle_mm", "height_posterior_mm"):
        assert row[h] == pytest.approx(10.0, abs=0.3)
    # C_PI at (x, -15, +5), C_PS at (x, -15, -5) in world (no rotation/shift)
    assert row.c_pi_y_mm == pytest.approx(-15, abs=0.35) and row.c_pi_z_mm == pytest.approx(5, abs=0.35)
    assert row.c_ps_y_mm == pytest.approx(-15, abs=0.35) and row.c_ps_z_mm == pytest.approx(-5, abs=0.35)
    assert row.bulge_point_y_mm == pytest.approx(-17, abs=0.35)
    assert row.ap_length_mm == pytest.approx(32, abs=0.5)
    assert row.dhi == pytest.approx(20 / 32, abs=0.02)
    vol_true = (lab == 123).sum() * 0.5 * 0.5 * 3.0
    assert row.volume_mm3 == pytest.approx(vol_true)
    assert row.sir_np_csf == pytest.approx(300 / 500)


def test_single_slice_scan():
    df, _, _ = _measure(3.0, spacing=(0.5, 0.5, 1.0), shape=(130, 160, 1))
    assert df.iloc[0].bulge_mm == pytest.approx(3.0, abs=0.3)
    assert df.iloc[0].height_middle_mm == pytest.approx(10.0, abs=0.3)


def test_rois_partition_disc():
    _, lab, scan = _measure(2.0)
    r = rois(scan, lab)
    codes = set(np.unique(r)) - {0}
    assert codes == {1231, 1232, 1233}
    assert np.all(lab[r > 0] == 123)
    # NP is central: its AP centre lies between the annulus centres
    ii = {c: np.argwhere(r == c)[:, 0].mean() for c in codes}
    assert ii[1233] < ii[1231] < ii[1232]


def test_missing_body_is_flagged_not_crash():
    _, lab, scan = _measure(2.0)
    lab2 = lab.copy()
    lab2[lab2 == 24] = 0
    df = measure(scan, lab2)
    assert np.isnan(df.iloc[0].bulge_mm) and "L5" in df.iloc[0].qc_flags


def test_implausible_baseline_is_withheld_not_reported():
    """Corners at one height (bodies creeping over the disc's rim) must not give a bulge number."""
    from discmeasure.measurements.bulge import plausible_baseline

    assert plausible_baseline(np.array([-15.0, 5.0]), np.array([-15.5, -5.0]))  # normal: 10 mm apart in SI
    assert not plausible_baseline(np.array([-15.0, 0.2]), np.array([-10.0, 0.0]))  # same height
    assert not plausible_baseline(np.array([-15.0, 5.0]), np.array([-5.0, -2.0]))  # 55 deg from SI
    assert not plausible_baseline(np.array([-15.0, -5.0]), np.array([-15.0, 5.0]))  # upside down
    # a label map whose lower body climbs the posterior wall up to the upper body's corner
    df, lab, scan = _measure(2.0)
    assert np.isfinite(df.iloc[0].bulge_mm)
    ijk = np.argwhere(lab == 123)
    world = ijk @ scan.affine[:3, :3].T + scan.affine[:3, 3]
    post = world[:, 1] < -14.0  # the bulge and 1 mm of disc inside the posterior wall line (y = -15)
    bad = lab.copy()
    bad[tuple(ijk[post].T)] = 24
    row = measure(scan, bad).iloc[0]
    assert np.isnan(row.bulge_mm)
    assert "bulge_withheld_review_segmentation" in row.qc_flags and "implausible_baseline" in row.qc_flags


def test_roi_t2_independent_of_array_axis_order():
    """The same T2 map stored with flipped / permuted axes gives identical per-ROI T2 values.

    Each voxel's T2 is a smooth function of its world position, so any ROI-to-fit-grid
    mismatch shows as different medians.
    """
    from discmeasure import fit_t2

    df, lab, scan = _measure(2.0)
    # a multi-echo series on a coarser, half-voxel-shifted grid (ties for nearest neighbour)
    sp = np.array([1.2, 1.2, 4.0])
    aff = np.diag([*sp, 1.0])
    aff[:3, 3] = scan.affine[:3, 3] + 0.3
    aff[:3, :3] = scan.affine[:3, :3] @ np.diag(sp / np.linalg.norm(scan.affine[:3, :3], axis=0))
    shape = (55, 70, 11)
    ijk = np.indices(shape).reshape(3, -1).T
    world = ijk @ aff[:3, :3].T + aff[:3, 3]
    t2 = (80.0 + 0.7 * world[:, 1] + 0.4 * world[:, 2]).reshape(shape)
    te = np.arange(1, 9) * 10.0
    data = 1000.0 * np.exp(-te / t2[..., None])
    base = measure(scan, lab, t2=fit_t2(Scan(data, aff, echo_times_ms=te), method="loglinear"))
    cols = ["t2_np_ms", "t2_np_iqr_ms", "t2_af_anterior_ms", "t2_af_anterior_iqr_ms", "t2_af_posterior_ms",
            "t2_af_posterior_iqr_ms", "t2_disc_ms", "t2_disc_iqr_ms"]
    assert base[cols].notna().all().all()
    # every ROI has its median and IQR (issue 6: "median and IQR per ROI"; the annulus IQRs were
    # computed and dropped): T2 rises 0.7 ms per mm anteriorly and 0.4 ms per mm upwards, so each
    # ROI's spread is positive and the anterior annulus has the larger median
    r = base.iloc[0]
    assert all(r[c] > 0 for c in cols if c.endswith("_iqr_ms"))
    assert r.t2_af_anterior_ms > r.t2_np_ms > r.t2_af_posterior_ms
    assert r.t2_disc_iqr_ms > max(r.t2_af_anterior_iqr_ms, r.t2_af_posterior_iqr_ms)
    for flip in ((0,), (1, 2), (0, 1, 2)):
        d2, a2 = data, aff.copy()
        for ax in flip:  # flip the array axis and move the origin to the other end
            d2 = np.flip(d2, axis=ax)
            a2[:3, 3] = a2[:3, 3] + a2[:3, ax] * (shape[ax] - 1)
            a2[:3, ax] = -a2[:3, ax]
        other = measure(scan, lab, t2=fit_t2(Scan(np.ascontiguousarray(d2), a2, echo_times_ms=te), method="loglinear"))
        np.testing.assert_allclose(other[cols].to_numpy(float), base[cols].to_numpy(float), rtol=0, atol=1e-9)


def test_height_where_bodies_touch_is_withheld_not_zero():
    """A body grown through the disc's middle gives no middle height (was reported as 0 mm)."""
    df, lab, scan = _measure(2.0)
    assert "height_withheld" not in df.iloc[0].qc_flags
    ijk = np.argwhere(lab == 123)
    world = ijk @ scan.affine[:3, :3].T + scan.affine[:3, 3]
    mid = np.abs(world[:, 1]) < 3.0  # a 6 mm wide column through the disc centre becomes the lower body
    bad = lab.copy()
    bad[tuple(ijk[mid].T)] = 24
    row = measure(scan, bad).iloc[0]
    assert np.isnan(row.height_middle_mm)
    # the other two still measured (the hole in the disc tilts the level frame a little: ~9.6 mm)
    assert 9.0 < row.height_anterior_mm < 10.5 and 9.0 < row.height_posterior_mm < 10.5
    assert "height_withheld_review_segmentation" in row.qc_flags


def test_segmentation_flags_reach_the_table():
    """The segmentation's per-level QC flags (e.g. the automatic numbering not confirmed) are
    carried into ``qc_flags`` of the measurement table, prefixed ``segmentation:``; they used to
    stay in ``Segmentation.qc``, which no table, report or CLI output showed."""
    from discmeasure.segmentation.core import Segmentation

    _, lab, scan = _measure(2.0)
    seg = Segmentation(labels=lab, affine=scan.affine, levels=["L4-L5"], method="auto",
                       qc={"L4-L5": {"confidence": 0.5, "flags": ["canal_ends_above_s1"]}})
    row = measure(scan, seg).iloc[0]
    assert "segmentation: canal_ends_above_s1" in row.qc_flags.split(";")
    assert np.isfinite(row.bulge_mm)
    lab2 = lab.copy()
    lab2[lab2 == 24] = 0  # no lower body: no frame, the segmentation's flag still shown
    seg2 = Segmentation(labels=lab2, affine=scan.affine, levels=["L4-L5"], method="auto", qc=seg.qc)
    assert "segmentation: canal_ends_above_s1" in measure(scan, seg2).iloc[0].qc_flags


def test_listhesis_offset_accepts_offset_walls_only():
    """A steep baseline is a listhesis only when both corners are fitted junctions of upright walls."""
    from discmeasure.measurements.bulge import listhesis_offset

    up, lo = (-9.0, 0.05), (-15.0, -0.05)  # walls ap = a + b si: upper body 6 mm anterior
    c_pi, c_ps = np.array([-9.0, 2.5]), np.array([-15.0, -2.5])
    assert listhesis_offset(c_pi, c_ps, up, lo) == pytest.approx(6.0)
    assert listhesis_offset(c_pi, c_ps, None, lo) is None  # a support-point corner, not a junction
    assert listhesis_offset(c_pi, c_ps, (-9.0, 0.6), lo) is None  # a wall 31 deg off the SI axis
    assert listhesis_offset(np.array([-9.0, 0.5]), np.array([-15.0, -0.5]), up, lo) is None  # one height
    assert listhesis_offset(np.array([-13.0, 2.5]), np.array([-15.0, -2.5]), (-13.0, 0.05), lo) is None  # 2 mm: normal


def test_ap_length_of_a_disc_cut_in_two():
    """A 1 mm gap in the disc's labels from endplate to endplate (5.5 mm behind the disc's centre,
    between the heights' windows, every slice) cuts it in two on every plane: its AP length is
    still the extent of both pieces (it was the longest piece's, 21 mm instead of 32 mm; on a
    moved sct_t2_lumbar copy, cut by a body bridge, 21.9 mm instead of 33 mm and DHI 0.51
    instead of 0.33)."""
    spacing, shape = (0.5, 0.5, 3.0), (130, 160, 15)
    aff, R = sagittal_affine(spacing, shape)
    lab = block_labels(shape, aff, R, bulge_mm=2.0)
    ijk = np.indices(shape).reshape(3, -1).T
    y = (ijk @ aff[:3, :3].T + aff[:3, 3])[:, 1].reshape(shape)  # world AP (anterior +)
    lab[(lab == 123) & (np.abs(y + 5.5) <= 0.5)] = 0
    scan = Scan(np.where(lab == 123, 300.0, np.where(lab == 61, 500.0, 100.0)), aff)
    row = measure(scan, lab).iloc[0]
    assert row.ap_length_mm == pytest.approx(32, abs=0.5)
    assert row.dhi == pytest.approx(20 / 32, abs=0.02)


def test_rois_are_the_rois_measure_uses(sample_scans):
    """``rois()`` returns the ROIs whose T2 ``measure()`` reports: on the sample visit (automatic
    segmentation, with the bodies' partial volume) with a T2 map on the scan's own grid that
    varies with position, each ROI's median from ``rois()`` + ``t2_stats`` is measure()'s value.
    ``rois()`` used to sample the mid plane at 0.5 mm without the partial volume: its ROIs
    differed from measure()'s by up to 26 voxels."""
    import discmeasure as dm
    from discmeasure import fit_t2, t2_stats

    scan = dm.load(sample_scans / "pre" / "T2W_SAG")
    seg = dm.segment(scan)
    world = np.indices(scan.shape).reshape(3, -1).T @ scan.affine[:3, :3].T + scan.affine[:3, 3]
    t2 = (90.0 + 0.8 * world[:, 1] + 0.3 * world[:, 2] + 0.2 * world[:, 0]).reshape(scan.shape)
    te = np.arange(1, 9) * 10.0
    fit = fit_t2(Scan(1000.0 * np.exp(-te / np.clip(t2, 20, 300)[..., None]), scan.affine, echo_times_ms=te),
                 method="loglinear")
    table = measure(scan, seg, t2=fit).set_index("level")
    r = rois(scan, seg)
    for lv, row in table.iterrows():
        for col, k in (("t2_np_ms", 1), ("t2_af_anterior_ms", 2), ("t2_af_posterior_ms", 3)):
            got = t2_stats(fit, r, int(row.label) * 10 + k)["median_ms"]
            assert got == pytest.approx(row[col], abs=1e-9), (lv, col)
