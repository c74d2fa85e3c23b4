"""Bulge accuracy against the phantom's analytic truth: truth labels and automatic segmentation.

The numbers behind the tolerances are in docs/validation.md (benchmarks/validate_measure.py).
The issue's goal is 0.3 mm; what is asserted here is what the method achieves today, so a
regression fails: truth labels <= 0.3 mm with the image-edge refinement (0.45 mm from the label
outlines alone, which the test also checks), automatic segmentation <= 0.45 mm on the sample scans.
Heights: truth labels <= 0.4 mm, with the bodies' true partial volume <= 0.3 mm; automatic
segmentation (which gives the partial volume) at SNR 15 and at 0.8 mm pixels <= 0.3 mm.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

import discmeasure as dm
from discmeasure import phantom


def render(ph, *, n_slices, snr=35, with_body_fraction=False, spacing=(0.7, 0.7, 4.0), **grid):
    """The phantom as a sagittal T2-weighted series (0.7 x 0.7 x 4 mm unless ``spacing``; 170 x 220
    mm field of view, seed 5): the image and its truth labels (and the bodies' partial volume)."""
    shape, aff = phantom.make_grid(fov_mm=(170.0, 220.0), center_mm=(0.0, 0.0, 10.0), spacing=spacing,
                                   n_slices=n_slices, **grid)
    return phantom.render_t2w(ph, shape, aff, snr=snr, supersample=3, seed=5, with_body_fraction=with_body_fraction)


def auto_height_errors(spacing):
    """The default phantom (11 slices, SNR 35) segmented automatically and measured: the
    segmentation and the measured - true heights (levels L1-L2 ... L5-S1, all finite)."""
    ph = phantom.default_phantom()
    img, _ = render(ph, n_slices=11, spacing=spacing)
    seg = dm.segment(img)
    df = dm.measure(img, seg)
    assert list(df.level) == list(phantom.LEVELS)
    err = height_errors(df, phantom.truth(ph)["levels"])
    assert np.all(np.isfinite(err)), err
    return img, seg, err


def auto_bulge_errors(**grid):
    """The default phantom rendered on ``grid`` (``render``'s arguments), segmented automatically and
    measured: measured - true bulge (mm) per level, L1-L2 ... L5-S1 all found."""
    ph = phantom.default_phantom()
    img, _ = render(ph, **grid)
    df = dm.measure(img, dm.segment(img))
    assert list(df.level) == list(phantom.LEVELS)
    tr = phantom.truth(ph)["levels"]
    return np.array([r.bulge_mm - tr[r.level]["bulge_mm"] for _, r in df.iterrows()])


def height_errors(df, tr):
    """Measured - true anterior, middle and posterior heights (mm), one row per level of ``df``."""
    return np.array([[r[f"height_{w}_mm"] - tr[r.level][f"height_{w}_mm"] for w in ("anterior", "middle", "posterior")]
                     for _, r in df.iterrows()])


@pytest.fixture(scope="module")
def truth_pair(sample_scans):
    return json.loads((sample_scans / "truth.json").read_text())


@pytest.fixture(scope="module")
def sample_measurements(sample_scans):
    out = {}
    for visit in ("pre", "post"):
        scan = dm.load_study(sample_scans / visit).t2w
        out[visit] = dm.measure(scan, dm.segment(scan)).set_index("level")
    return out


@pytest.fixture(scope="module")
def truth_label_case():
    """The default phantom at 0.7 x 0.7 x 4 mm, SNR 35, its truth labels, analytic truth and the
    bodies' true partial volume."""
    ph = phantom.default_phantom()
    img, lab, body_fraction = render(ph, n_slices=11, with_body_fraction=True)
    seg = dm.segment(img, method="labels", labels=lab, convention="discmeasure")
    return img, seg, phantom.truth(ph)["levels"], body_fraction


@pytest.mark.slow
def test_truth_labels_bulge_within_0_3_mm(truth_label_case):
    img, seg, tr, _ = truth_label_case
    errs = {}
    for refine in (True, False):
        df = dm.measure(img, seg, refine_edges=refine)
        errs[refine] = np.array([r.bulge_mm - tr[r.level]["bulge_mm"] for _, r in df.iterrows()])
        assert len(errs[refine]) == 5
    assert np.max(np.abs(errs[True])) <= 0.3, errs[True]
    # the label outlines alone are half a voxel off here and there: the refinement is what helps
    assert np.max(np.abs(errs[False])) > 0.4, errs[False]


@pytest.mark.slow
def test_truth_labels_heights(truth_label_case):
    """Heights from truth labels: each endplate is a line fitted over the middle half of its third.

    One column of the label staircase put the heights up to 0.51 mm off here (rms 0.25 mm); the
    line through the staircase brings them within 0.4 mm. The 0.3 mm goal is not met: where an
    endplate runs along the voxel rows the staircase has no steps to average (docs/methods.md).
    """
    img, seg, tr, _ = truth_label_case
    df = dm.measure(img, seg)
    err = height_errors(df, tr)
    assert err.shape == (5, 3) and np.all(np.isfinite(err)), err
    assert np.max(np.abs(err)) <= 0.4, err
    assert np.sqrt(np.mean(err**2)) <= 0.2, err


@pytest.mark.slow
def test_truth_partial_volume_heights_within_0_3_mm(truth_label_case):
    """Heights from the truth labels plus the bodies' true partial volume meet the 0.3 mm goal.

    From the labels alone they do not (0.39 mm here, test above): a label outline is only known
    to a voxel. With the partial volume (``Segmentation.body_fraction``) the endplates are read
    off its 0.5 crossing: max 0.20 mm (docs/validation.md).
    """
    img, seg, tr, body_fraction = truth_label_case
    with_pv = replace(seg, body_fraction=body_fraction)
    err = {}
    for name, s in (("labels", seg), ("partial volume", with_pv)):
        df = dm.measure(img, s)
        err[name] = height_errors(df, tr)
        assert err[name].shape == (5, 3) and np.all(np.isfinite(err[name])), (name, err[name])
    assert np.max(np.abs(err["partial volume"])) <= 0.3, err["partial volume"]
    assert np.max(np.abs(err["labels"])) > 0.3, err["labels"]


def test_body_fraction_is_ignored_once_the_bodies_are_edited():
    """A body partial volume made for other labels (a body voxel painted as disc) is not used."""
    from discmeasure.measurements.core import _body_fraction
    from discmeasure.segmentation import Segmentation

    labels = np.zeros((20, 20, 3), np.int16)
    labels[:, :8] = 22
    labels[:, 8:12] = 122
    labels[:, 12:] = 23
    frac = np.where((labels == 22) | (labels == 23), 1.0, 0.0).astype(np.float32)
    frac[:, 8] = 0.3  # the face 0.3 voxel into the disc's first row
    seg = Segmentation(labels=labels.copy(), affine=np.eye(4), body_fraction=frac)
    assert np.array_equal(_body_fraction(seg, seg.labels, np.eye(4)), frac)
    seg.labels[5, 7, 1] = 122  # edited in place after segmentation
    assert _body_fraction(seg, seg.labels, np.eye(4)) is None
    # disc voxels painted as body: also stale
    seg2 = Segmentation(labels=labels.copy(), affine=np.eye(4), body_fraction=frac)
    seg2.labels[5, 9, 1] = 22
    assert _body_fraction(seg2, seg2.labels, np.eye(4)) is None
    # an edit of the discs alone leaves the bodies, and the fraction, valid
    seg3 = Segmentation(labels=labels.copy(), affine=np.eye(4), body_fraction=frac)
    seg3.labels[5, 10, 1] = 0
    assert _body_fraction(seg3, seg3.labels, np.eye(4)) is not None
    # another grid (labels resampled onto the scan's): not used
    assert _body_fraction(seg3, seg3.labels, np.diag([2.0, 1, 1, 1])) is None


@pytest.mark.slow
def test_auto_bulge_on_sample_scans(sample_measurements, truth_pair):
    for visit, df in sample_measurements.items():
        t = truth_pair["visits"][visit]["levels"]
        err = np.array([df.loc[lv, "bulge_mm"] - t[lv]["bulge_mm"] for lv in t])
        assert np.max(np.abs(err)) <= 0.45, (visit, err)
        # no systematic offset (the corner definition removed a +0.6 mm bias)
        assert abs(np.mean(err)) <= 0.25, (visit, err)


@pytest.mark.slow
def test_auto_recovers_designed_bulge_change(sample_measurements, truth_pair):
    pre, post = sample_measurements["pre"], sample_measurements["post"]
    tp, tq = truth_pair["visits"]["pre"]["levels"], truth_pair["visits"]["post"]["levels"]
    true_pct = 100 * (tq["L4-L5"]["bulge_mm"] - tp["L4-L5"]["bulge_mm"]) / tp["L4-L5"]["bulge_mm"]
    got_pct = 100 * (post.loc["L4-L5", "bulge_mm"] - pre.loc["L4-L5", "bulge_mm"]) / pre.loc["L4-L5", "bulge_mm"]
    assert true_pct < -20
    assert got_pct == pytest.approx(true_pct, abs=6.0)
    # untreated levels: no change beyond the method's error
    for lv in ("L1-L2", "L2-L3", "L3-L4", "L5-S1"):
        assert abs(post.loc[lv, "bulge_mm"] - pre.loc[lv, "bulge_mm"]) <= 0.6, lv


@pytest.mark.slow
def test_auto_heights_at_snr_15():
    """Automatic segmentation at SNR 15: bodies must not reach into the disc.

    Noisy intermediate-class voxels in the annulus beyond the dark endplate used to be joined to
    the body when its opened corners were regrown (they lie within the opening radius, but are not
    connected to the marrow), and the cortical shell grew around them: the upper body reached 2 mm
    into the disc and anterior heights were up to 2.35 mm short. Regrowth is now connected.

    Since 2026-11-24 the heights read the bodies' partial volume (sub-voxel endplate faces):
    within the issue's 0.3 mm (max 0.18 mm; from the labels 0.38 mm, and 0.37 mm while the
    faces' share of voxels the disc was given was dropped, under L5-S1's inclined S1 face).
    """
    ph = phantom.default_phantom()
    tr = phantom.truth(ph)["levels"]
    img, _ = render(ph, n_slices=11, snr=15)
    df = dm.measure(img, dm.segment(img))
    assert list(df.level) == list(phantom.LEVELS)
    err = height_errors(df, tr)
    assert np.all(np.isfinite(err)), err
    assert np.max(np.abs(err)) <= 0.3, err


@pytest.mark.slow
def test_auto_heights_at_0_8_mm_pixels():
    """0.8 mm pixels: the heights read the bodies' sub-voxel endplate faces, not whole voxels.

    The cortical shell grown from the marrow mask's voxel faces covers 2 voxels, 1.6 mm for a
    1.2 mm cortex: read off the labels, every automatic height was short, by 0.55 mm on average
    and up to 1.14 mm (docs/validation.md, before 2026-11-24). The segmentation's body partial
    volume places each endplate 1.2 mm beyond the marrow's sub-voxel edge: mean +0.04 / +0.02 /
    +0.02 mm, max 0.19 mm.
    """
    _, _, err = auto_height_errors((0.8, 0.8, 4.0))
    assert np.max(np.abs(err)) <= 0.3, err
    assert np.all(np.abs(err.mean(axis=0)) <= 0.2), err.mean(axis=0)


@pytest.mark.slow
def test_auto_heights_at_1_mm_pixels():
    """1 mm pixels, coarser than the 0.8 mm working grid: the bodies' partial volume is made on the
    scan's own pixels (``_faces_on_scan_grid``), not on the interpolated working grid.

    Before, such scans had no partial volume and the heights read the labels: mean -0.20 / -0.38 /
    -0.55 mm, up to 0.96 mm off. Now mean +0.13 / +0.05 / -0.02 mm, max 0.23 mm.
    """
    img, seg, err = auto_height_errors((1.0, 1.0, 4.0))
    assert seg.body_fraction is not None and seg.body_fraction.shape == img.shape
    assert np.max(np.abs(err)) <= 0.3, err
    assert np.all(np.abs(err.mean(axis=0)) <= 0.2), err.mean(axis=0)


@pytest.mark.slow
def test_auto_bulge_at_1_mm_pixels():
    """1 mm pixels: the automatic bodies' posterior walls run in steps and bumps of +-0.5 mm, so
    the shifts onto the image's wall edge vary by as much and the old guard (shifts agree within
    0.35 mm) left whole walls on the label outline: bulge up to 0.82 mm off. A wall whose moved
    points are straight is now trusted too (``bulge._straightened``): 0.42 mm. The issue's goal
    of 0.3 mm is not met at these pixels (met at 0.6-0.8 mm; docs/validation.md)."""
    err = auto_bulge_errors(n_slices=11, spacing=(1.0, 1.0, 4.0))
    assert np.max(np.abs(err)) <= 0.5, err


@pytest.mark.slow
def test_auto_bulge_on_oblique_scan():
    """An oblique sagittal scan (slices turned 8 degrees about SI): automatic bulge within 0.3 mm.

    The working grid used to be world-aligned, so the scan's 4 mm slices were interpolated across
    and the labels came back to them by nearest neighbour: lateral planes of the band took epidural
    fat as disc and the bulge error reached 0.44 mm (1.69 mm from the label outlines alone). The
    working grid now follows the scan's slices (``_grid_direction``): 0.28 mm (0.71 mm).
    """
    err = auto_bulge_errors(n_slices=13, rotation_deg=(0, 0, 8))
    assert np.max(np.abs(err)) <= 0.3, err


@pytest.mark.slow
@pytest.mark.parametrize("case,level,limit", [("anterolisthesis_L4L5_narrow", "L4-L5", 0.3),
                                               ("retrolisthesis_L2L3_narrow", "L2-L3", 1.0)])
def test_listhesis_level_is_measured_and_flagged(case, level, limit):
    """A slipped vertebra over a narrowed disc makes the C_PI -> C_PS baseline steeper than 40
    degrees. The level was withheld as "review segmentation" though the labels were right (truth
    labels included); it is now measured and flagged with the walls' offset. Measured, automatic
    segmentation: L4-L5 8 mm anterolisthesis +0.01 mm (offset +8.0 mm), L2-L3 7 mm retrolisthesis
    +0.87 mm (offset -6.5; truth labels +0.31): over a retrolisthesis the baseline runs along the
    disc's sheared back, so small outline errors move the maximum (docs/methods.md)."""
    ph = phantom.default_phantom(**phantom.PATHOLOGIES[case])
    tr = phantom.truth(ph, levels=(level,))["levels"][level]
    shift = ph.listhesis_mm[level]
    img, lab = render(ph, n_slices=13)
    for seg in (dm.segment(img, method="labels", labels=lab, convention="discmeasure"), dm.segment(img)):
        row = dm.measure(img, seg).set_index("level").loc[level]
        assert np.isfinite(row.bulge_mm), row.qc_flags
        assert "bulge_withheld" not in row.qc_flags
        flag = next(f for f in row.qc_flags.split(";") if f.startswith("listhesis_"))
        assert float(flag.split("_")[1]) == pytest.approx(shift, abs=1.0)
        assert abs(row.bulge_mm - tr["bulge_mm"]) <= limit, (row.bulge_mm, tr["bulge_mm"])


@pytest.mark.slow
def test_heights_over_a_modic_band():
    """Bodies with a Modic band used to reach 0.2-0.3 mm further into the disc than without one
    (the band's partial-volume rim regrown as marrow): automatic L4-L5 heights -0.52 / -0.59 /
    -0.56 mm. The band is no longer regrown from: +0.08 / +0.18 / +0.02 mm.

    The heights now read the bodies' partial volume, whose endplate faces lie 1.2 mm beyond the
    marrow's sub-voxel edge: with the edge voxels read against the body's median marrow level,
    the bright band put the faces up to a voxel into the disc (-0.86 / -0.98 / -0.89 mm); against
    the marrow's level next to the face, -0.07 / -0.05 / -0.05 mm."""
    ph = phantom.default_phantom(**phantom.PATHOLOGIES["modic_L4L5"])
    tr = phantom.truth(ph, levels=("L4-L5",))["levels"]["L4-L5"]
    img, _ = render(ph, n_slices=13)
    row = dm.measure(img, dm.segment(img)).set_index("level").loc["L4-L5"]
    err = [row[f"height_{w}_mm"] - tr[f"height_{w}_mm"] for w in ("anterior", "middle", "posterior")]
    assert np.max(np.abs(err)) <= 0.3, err


@pytest.mark.slow
def test_a_single_oblique_slice_is_measured():
    """One 1 mm slice turned 3 degrees about SI (a scanner's small obliquity): every bulge was
    NaN (``no_bulge_plane``) even from the truth labels, because the planes' label samples lay
    1e-15 voxel off the slice and read nothing. Now measured: truth labels max error 0.33 mm
    against the mid-sagittal truth (the slice without the turn: 0.38 mm), and each level gets
    its uncertainty from moved copies (which were blank too)."""
    ph = phantom.default_phantom()
    truth = phantom.truth(ph)["levels"]
    shape, aff = phantom.make_grid(fov_mm=(170.0, 220.0), center_mm=(0.0, 0.0, 10.0), spacing=(1.0, 1.0, 1.0),
                                   n_slices=1, rotation_deg=(0, 0, 3))
    img, lab = phantom.render_t2w(ph, shape, aff, snr=35, supersample=3, seed=5)
    df = dm.measure(img, dm.segment(img, method="labels", labels=lab, convention="discmeasure")).set_index("level")
    err = [df.loc[lv, "bulge_mm"] - truth[lv]["bulge_midsagittal_mm"] for lv in phantom.LEVELS]
    assert np.all(np.abs(err) <= 0.45), err
    t = dm.analyze(img, uncertainty=4).measurements.set_index("level")
    assert (t["uncertainty_n"] == 5).all() and t["bulge_sd_mm"].notna().all(), t[["bulge_sd_mm", "uncertainty_n"]]


def test_single_slice_frame_is_the_slice_without_a_canal():
    """A single slice leaning 6 degrees (as in test_leaning_slice_with_part_of_the_sacrum) where the
    canal is not labelled: the level's sagittal plane came from world anterior, left the slice,
    and its planes met the slice along a line. A one-slice frame now lies in the slice."""
    from discmeasure.measurements.frame import level_frame

    shape, aff = phantom.make_grid(fov_mm=(180.0, 230.0), center_mm=(0.0, 0.0, 10.0), spacing=(1.0, 1.0, 1.0),
                                   n_slices=1, rotation_deg=(-2.2, -6.3, -3.1))
    _, lab, _ = phantom.tissue_fractions(phantom.default_phantom().replace(pose=((0.1, 4.7, 3.3), (0.0, 0.0, 0.0))),
                                         shape, aff, supersample=1)
    lab = np.where(lab == 61, 0, lab)
    normal = aff[:3, 2] / np.linalg.norm(aff[:3, 2])
    for d in (121, 122, 123):
        fr = level_frame(lab, aff, d)
        assert abs(fr.u_lr @ normal) > 1 - 1e-9 and abs(fr.u_ap @ normal) < 1e-9 and abs(fr.u_si @ normal) < 1e-9, d
