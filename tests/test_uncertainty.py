"""Per-level uncertainty from moved re-analyses (discmeasure.uncertainty) and its use in compare()."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

import discmeasure as dm
from discmeasure import Scan, phantom
from discmeasure.comparison import compare
from discmeasure.errors import InputError
from discmeasure.uncertainty import UNCERTAIN_METRICS, measurement_uncertainty, rigid_moves, sd_column

from test_compare import _visit


def _rotation_angle_deg(R):
    return float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))))


def test_moves_follow_the_design():
    """Four moves: each turns by 1.5 degrees about each world axis (about 2.6 degrees in all) and
    shifts by 1.5 mm along each; every sign pattern is balanced (the design's columns sum to 0)
    and the fold-over reverses the first four."""
    scan = Scan(np.zeros((20, 30, 40), np.float32), np.diag([0.7, 0.7, 4.0, 1.0]))
    moves = rigid_moves(scan, n=8)
    centre = scan.affine[:3, :3] @ ((np.array(scan.shape) - 1) / 2) + scan.affine[:3, 3]
    for T in moves:
        R = T[:3, :3]
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.linalg.det(R) > 0
        assert _rotation_angle_deg(R) == pytest.approx(2.6, abs=0.05)
        assert np.allclose(np.abs(T[:3, :3] @ centre + T[:3, 3] - centre), 1.5)  # the centre is only shifted
    shifts = np.array([T[:3, :3] @ centre + T[:3, 3] - centre for T in moves[:4]])
    assert np.allclose(shifts.sum(axis=0), 0.0)
    for T, U in zip(moves[:4], moves[4:]):
        assert np.abs(U[:3, :3] @ T[:3, :3] - np.eye(3)).max() < 2e-3  # opposite signs: cancel to first order
        assert np.allclose(U[:3, :3] @ centre + U[:3, 3] - centre, -(T[:3, :3] @ centre + T[:3, 3] - centre))
    with pytest.raises(InputError):
        rigid_moves(scan, n=1)


def test_single_slice_moves_stay_in_its_plane():
    """One sagittal slice can only be turned about its normal and shifted within its plane: every
    point of the slice's plane stays on it."""
    aff = np.array([[0, 0, -1.0, 3.0], [0.0, -0.8, 0, 50], [-0.8, 0, 0, 60], [0, 0, 0, 1]])
    scan = Scan(np.zeros((200, 220, 1), np.float32), aff)
    normal = aff[:3, 2] / np.linalg.norm(aff[:3, 2])
    pts = (aff[:3, :3] @ np.array([[0, 0, 0], [199, 0, 0], [0, 219, 0], [100, 50, 0]]).T).T + aff[:3, 3]
    for T in rigid_moves(scan, n=4):
        moved = pts @ T[:3, :3].T + T[:3, 3]
        assert np.allclose((moved - pts) @ normal, 0.0, atol=1e-9)
        assert 1.0 < _rotation_angle_deg(T[:3, :3]) < 2.0  # turned, by 1.5 degrees


def test_given_labels_move_with_the_anatomy():
    """A block spine whose labels are given (not segmented): moved with the image, the measurement
    repeats within a few tenths of a millimetre (bulge SD measured 0.18 mm); the SD is not zero
    (the moves resample the grid)."""
    v = _visit(3.0)
    u = measurement_uncertainty(v.scan, v.segmentation, v.measurements, n_moves=4)
    r = u.set_index("level").loc["L4-L5"]
    assert r.uncertainty_n == 5
    assert 0.0 < r.bulge_sd_mm < 0.25, r.bulge_sd_mm
    assert set(sd_column(m) for m in UNCERTAIN_METRICS) <= set(u.columns)


def _result(table):
    return SimpleNamespace(measurements=pd.DataFrame(table), scan=None, segmentation=None)


def test_compare_flags_changes_against_each_levels_own_uncertainty():
    """With SDs at both visits (numbers of analyses not given: the normal quantile), each level's
    change is set against 1.96 x sqrt(sd1^2 + sd2^2): a 0.6 mm change is beyond a precise level's
    limit and within an imprecise one's, though both are within the default repeatability
    coefficient (1.69 mm). Without SDs no such columns appear."""
    pre = _result({"level": ["L3-L4", "L4-L5"], "label": [122, 123], "bulge_mm": [3.0, 3.0],
                   "bulge_sd_mm": [0.1, 0.5], "height_middle_mm": [9.0, np.nan], "height_middle_sd_mm": [0.2, 0.2]})
    post = _result({"level": ["L3-L4", "L4-L5"], "label": [122, 123], "bulge_mm": [2.4, 2.4],
                    "bulge_sd_mm": [0.1, 0.4], "height_middle_mm": [9.1, 9.0], "height_middle_sd_mm": [0.2, np.nan]})
    df = compare(pre, post, register=False).set_index("level")
    assert df.loc["L3-L4", "bulge_mm_mdc95"] == pytest.approx(1.96 * np.hypot(0.1, 0.1))
    assert df.loc["L4-L5", "bulge_mm_mdc95"] == pytest.approx(1.96 * np.hypot(0.5, 0.4))
    flag = df.loc["L3-L4", "bulge_mm_within_uncertainty"]
    assert flag is not None and not flag
    assert bool(df.loc["L4-L5", "bulge_mm_within_uncertainty"]) is True
    assert bool(df.loc["L3-L4", "bulge_mm_within_repeatability"]) and bool(df.loc["L4-L5", "bulge_mm_within_repeatability"])
    assert bool(df.loc["L3-L4", "height_middle_mm_within_uncertainty"]) is True
    assert df.loc["L4-L5", "height_middle_mm_within_uncertainty"] is None  # no pre value, no post SD
    plain = compare(_result({"level": ["L4-L5"], "label": [123], "bulge_mm": [3.0]}),
                    _result({"level": ["L4-L5"], "label": [123], "bulge_mm": [2.0]}), register=False)
    assert not any(c.endswith(("_mdc95", "_within_uncertainty")) for c in plain.columns)


def test_mdc95_accounts_for_sds_estimated_from_few_analyses():
    """Each visit's SD comes from N + 1 = 5 analyses: 1.96 x sqrt(sd1^2 + sd2^2) then covers only
    about 90 % of the differences of unchanged anatomy (simulated: 0.90), Student's t with the
    Welch-Satterthwaite degrees of freedom 95 %. compare() uses it when the tables carry
    ``uncertainty_n``: a 0.3 mm change at a level with SDs of 0.1 mm at both visits was beyond
    the old 0.28 mm limit and is within the 0.33 mm one."""
    from discmeasure.uncertainty import mdc95

    assert mdc95(0.1, 0.1, 5, 5) == pytest.approx(2.306 * np.hypot(0.1, 0.1), rel=1e-3)  # t(0.975, 8)
    assert mdc95(0.1, 0.1) == pytest.approx(1.96 * np.hypot(0.1, 0.1))  # n not known: the normal quantile
    assert mdc95(0.3, 0.01, 5, 9) == pytest.approx(2.776 * np.hypot(0.3, 0.01), rel=2e-3)  # one SD dominates: ~4 dof
    assert np.isnan(mdc95(np.nan, 0.1, 5, 5)) and np.isnan(mdc95(0.1, 0.1, 1, 5))
    rng = np.random.default_rng(0)
    hits = []
    for _ in range(4000):
        s1, s2 = rng.uniform(0.05, 0.5, 2)
        d = rng.normal(0, s1) - rng.normal(0, s2)
        hits.append(abs(d) < mdc95(rng.normal(0, s1, 5).std(ddof=1), rng.normal(0, s2, 5).std(ddof=1), 5, 5))
    assert 0.94 <= np.mean(hits) <= 0.96, np.mean(hits)
    pre = _result({"level": ["L4-L5"], "label": [123], "bulge_mm": [3.0], "bulge_sd_mm": [0.1], "uncertainty_n": [5]})
    post = _result({"level": ["L4-L5"], "label": [123], "bulge_mm": [2.7], "bulge_sd_mm": [0.1], "uncertainty_n": [5]})
    r = compare(pre, post, register=False).iloc[0]
    assert r.bulge_mm_mdc95 == pytest.approx(mdc95(0.1, 0.1, 5, 5)) and bool(r.bulge_mm_within_uncertainty)


def test_analyze_refuses_a_bad_number_of_moves_before_any_work(tmp_path):
    with pytest.raises(InputError, match="2 to 8"):
        dm.analyze(tmp_path / "does-not-exist", uncertainty=1)


@pytest.mark.slow
def test_automatic_segmentation_uncertainty_on_the_phantom():
    """Automatic segmentation of the phantom at 0.7 x 0.7 x 4 mm, SNR 35, re-segmented after each
    of 4 moves: every level is measured in all five analyses and its bulge SD is below 0.3 mm, the
    accuracy goal (measured 0.05-0.25 mm)."""
    ph = phantom.default_phantom()
    shape, aff = phantom.make_grid(spacing=(0.7, 0.7, 4.0), n_slices=11, fov_mm=(170.0, 220.0), center_mm=(0.0, 0.0, 10.0))
    img, _ = phantom.render_t2w(ph, shape, aff, snr=35, supersample=2, seed=7)
    res = dm.analyze(img, uncertainty=4)
    t = res.measurements.set_index("level")
    assert list(t.index) == list(phantom.LEVELS)
    assert (t["uncertainty_n"] == 5).all()
    assert (t["bulge_sd_mm"] < 0.3).all() and (t["bulge_sd_mm"] > 0).all(), t["bulge_sd_mm"]
    assert res.provenance["parameters"]["uncertainty_moves"] == 4
    assert res.provenance["timings"]["uncertainty_s"] > 0


@pytest.mark.slow
def test_given_labels_keep_their_body_partial_volume_when_moved():
    """An automatic segmentation imported back as labels (napari, unedited) keeps its bodies'
    partial volume, from which measure() reads the heights. The moved copies used to lose it and
    read the heights off the labels, a different estimator whose offset (up to 0.26 mm) passed
    for uncertainty: height SDs up to 0.16 mm. The fraction now moves with the labels: measured
    0.01-0.04 mm. The bulge does not use it (same SDs either way)."""
    from dataclasses import replace

    ph = phantom.default_phantom()
    shape, aff = phantom.make_grid(spacing=(0.7, 0.7, 4.0), n_slices=11, fov_mm=(170.0, 220.0), center_mm=(0.0, 0.0, 10.0))
    img, _ = phantom.render_t2w(ph, shape, aff, snr=35, supersample=2, seed=7)
    auto = dm.segment(img)
    given = dm.segment(img, method="labels", labels=auto.labels, convention="discmeasure")
    with_pv = replace(given, body_fraction=auto.body_fraction, bodies_at_creation=auto.bodies_at_creation)
    u = measurement_uncertainty(img, with_pv, n_moves=4).set_index("level")
    plain = measurement_uncertainty(img, given, n_moves=4).set_index("level")
    heights = [sd_column(f"height_{w}_mm") for w in ("anterior", "middle", "posterior")]
    assert (u[heights].to_numpy() < 0.06).all(), u[heights]
    assert np.allclose(u["bulge_sd_mm"], plain["bulge_sd_mm"])


def test_moved_analyses_in_threads_give_the_serial_result(monkeypatch):
    """The moved analyses run in worker threads (DISCMEASURE_THREADS, default the usable CPUs):
    the SDs are the same, to the bit, as with one thread, and progress is reported once per move."""
    import threading

    import discmeasure.measurements as measurements

    v = _visit(3.0)
    plain = measurements.measure
    workers = set()

    def measure(*args, **kwargs):  # records which thread measured each moved copy
        workers.add(threading.get_ident())
        return plain(*args, **kwargs)

    monkeypatch.setattr(measurements, "measure", measure)
    runs = {}
    for threads in ("1", "3"):
        monkeypatch.setenv("DISCMEASURE_THREADS", threads)
        workers.clear()
        seen = []
        runs[threads] = measurement_uncertainty(v.scan, v.segmentation, v.measurements, n_moves=6,
                                                progress=lambda i, n: seen.append((i, n)))
        assert seen == [(i, 6) for i in range(1, 7)]
        if threads == "1":
            assert workers == {threading.get_ident()}  # serial, in the calling thread
        else:
            assert len(workers) >= 2 and threading.get_ident() not in workers, workers
    pd.testing.assert_frame_equal(runs["1"], runs["3"])


def test_a_level_lost_in_moved_analyses_is_flagged(monkeypatch):
    """A level whose bulge is measured on the scan but not in some moved copies (here forced: L4-L5
    withheld in 2 of 4) gets ``bulge_lost_in_2_of_4_moves``; its SD comes from the 3 values left.
    The other levels keep their flags as they were."""
    import discmeasure.measurements as measurements
    from discmeasure.uncertainty import with_uncertainty

    monkeypatch.setenv("DISCMEASURE_THREADS", "1")
    v = _visit(3.0)
    plain = measurements.measure
    calls = []

    def measure(*args, **kwargs):
        t = plain(*args, **kwargs)
        calls.append(1)
        if len(calls) in (1, 3):  # the first and third moved copies
            t.loc[t.level == "L4-L5", "bulge_mm"] = np.nan
        return t

    monkeypatch.setattr(measurements, "measure", measure)
    out = with_uncertainty(v.scan, v.segmentation, v.measurements, n_moves=4).set_index("level")
    before = v.measurements.set_index("level")["qc_flags"]
    assert out.loc["L4-L5", "uncertainty_n"] == 3 and np.isfinite(out.loc["L4-L5", "bulge_sd_mm"])
    assert out.loc["L4-L5", "qc_flags"].split(";")[-1] == "bulge_lost_in_2_of_4_moves"
    for lv in out.index.drop("L4-L5"):
        assert out.loc[lv, "qc_flags"] == (before[lv] if isinstance(before[lv], str) else ""), lv


def test_median_se_matches_the_spread_of_medians():
    """The order-statistic standard error of a median (Campbell & Gardner 1988's 95 % interval,
    half-width / 1.96) against the spread of medians over repeated samples: normal values (theory
    1.2533 sigma / sqrt(n)) within 12 % on average; two tissues like a whole disc (nucleus 120 ms,
    annulus 45 ms, 60 % annulus) conservative: at least the spread, below twice it (measured 1.6
    times with these draws, 1.4 with others: a few samples whose interval reaches into the
    nucleus's values weigh on the mean)."""
    from discmeasure.t2.stats import median_se

    rng = np.random.default_rng(3)
    for n in (100, 400):
        samples = [rng.normal(100.0, 10.0, n) for _ in range(1000)]
        spread = np.std([np.median(s) for s in samples])
        assert np.mean([median_se(s) for s in samples]) == pytest.approx(spread, rel=0.12)
    samples = [np.where(rng.random(400) < 0.6, rng.normal(45.0, 4.0, 400), rng.normal(120.0, 8.0, 400))
               for _ in range(1000)]
    spread = np.std([np.median(s) for s in samples])
    assert spread <= np.mean([median_se(s) for s in samples]) < 2.0 * spread
    assert median_se(rng.normal(0, 10, 1600)) == pytest.approx(1.2533 * 10 / np.sqrt(1600), rel=0.15)
    assert np.isnan(median_se([1.0, 2.0, 3.0, 4.0])) and np.isnan(median_se([]))


def _t2_visit():
    """The block spine visit (given labels) and a noiseless multi-echo series on another grid (1.2 x
    1.2 x 3 mm, shifted 0.3 mm) whose T2 rises 2 ms per mm anteriorly and 1 ms per mm upwards."""
    from discmeasure import fit_t2

    v = _visit(3.0)
    A = v.scan.affine
    c = A[:3, :3] @ ((np.array(v.scan.shape) - 1) / 2) + A[:3, 3]
    sp, shape = np.array([1.2, 1.2, 3.0]), (70, 85, 13)
    aff = np.diag([*sp, 1.0])
    aff[:3, 3] = c - sp * (np.array(shape) - 1) / 2 + 0.3
    world = np.indices(shape).reshape(3, -1).T @ aff[:3, :3].T + aff[:3, 3]
    t2 = (100.0 + 2.0 * (world[:, 1] - c[1]) + 1.0 * (world[:, 2] - c[2])).reshape(shape)
    te = np.arange(1, 9) * 10.0
    return v, fit_t2(Scan(1000.0 * np.exp(-te / t2[..., None]), aff, echo_times_ms=te), method="loglinear")


def test_t2_uncertainty_moves_the_t2_map_with_the_anatomy():
    """With a T2 fit the moved analyses also measure the ROIs' T2, on the T2 map moved with the
    anatomy (its affine; the values unchanged): on a map with a 2 ms/mm gradient the NP's SD
    (placement and the median's own standard error together) is 1.5 ms, the anterior annulus's
    0.26 ms. Measured on the unmoved map, the ROIs would sit 1.5 mm and 1.5 degrees off: 4.0 and
    3.2 ms. The SD is never below the median's own standard error, and compare() gives the NP T2
    change an MDC95 from the T2 counts (``t2_uncertainty_n``)."""
    v, fit = _t2_visit()
    m = dm.measure(v.scan, v.segmentation, t2=fit)
    r0 = m.set_index("level").loc["L4-L5"]
    assert 0 < r0.t2_np_se_ms < 1.5 and np.isfinite(r0.t2_disc_se_ms)
    u = dm.uncertainty.with_uncertainty(v.scan, v.segmentation, m, t2=fit, n_moves=4).set_index("level")
    r = u.loc["L4-L5"]
    assert r.t2_uncertainty_n == 5 and r.uncertainty_n == 5
    assert r0.t2_np_se_ms <= r.t2_np_sd_ms < 2.5, r.t2_np_sd_ms
    assert r.t2_af_anterior_sd_ms < 1.0, r.t2_af_anterior_sd_ms
    assert r.t2_disc_sd_ms >= r0.t2_disc_se_ms
    pre = _result(u.reset_index())
    post_table = u.reset_index().assign(t2_np_ms=u["t2_np_ms"].to_numpy() + 4.0 * r.t2_np_sd_ms)
    ch = compare(pre, _result(post_table), register=False).iloc[0]
    from discmeasure.uncertainty import mdc95

    assert ch.t2_np_ms_mdc95 == pytest.approx(mdc95(r.t2_np_sd_ms, r.t2_np_sd_ms, 5, 5))
    assert not ch.t2_np_ms_within_uncertainty  # 4 SDs: beyond 2.31 x sqrt(2) = 3.3 SDs


def test_no_t2_uncertainty_without_a_t2_fit():
    """Without a T2 fit the table gets the geometric SDs only (no empty T2 SD columns)."""
    v = _visit(3.0)
    u = measurement_uncertainty(v.scan, v.segmentation, v.measurements, n_moves=2)
    assert not any(c.startswith("t2_") for c in u.columns)
