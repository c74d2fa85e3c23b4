"""T2 fitting: simulation truth, real reference fits (prostate NLLS, NIST/MR-BIAS), API errors."""

import numpy as np
import pandas as pd
import pytest

from discmeasure import Scan
from discmeasure.epg import cpmg_signal
from discmeasure.errors import FitError
from discmeasure.t2 import fit_t2, flags, t2_stats

TRUE_T2 = (40.0, 60.0, 80.0, 120.0, 160.0, 200.0)


def _sim(n_echoes, snr=100.0, n=300, seed=0, esp=10.0):
    rng = np.random.default_rng(seed)
    t2 = np.repeat(TRUE_T2, n)
    b1 = rng.uniform(0.7, 1.0, t2.size)
    s = 1000 * cpmg_signal(t2, b1, n_echoes=n_echoes, echo_spacing_ms=esp)
    sigma = 1000 * np.exp(-esp / 120) / snr
    noisy = np.abs(s + rng.normal(0, sigma, s.shape) + 1j * rng.normal(0, sigma, s.shape))
    return noisy, esp * np.arange(1, n_echoes + 1), t2, b1, sigma


@pytest.mark.parametrize("n_echoes", [8, 12, 16])
def test_epg_within_2_percent(n_echoes):
    sig, te, t2, b1, sigma = _sim(n_echoes)
    f = fit_t2(sig, te, method="epg", noise_sigma=sigma)
    for v in TRUE_T2:
        med = np.median(f.t2_ms[t2 == v])
        assert abs(med - v) / v < 0.02, (v, med)
    assert np.median(np.abs(f.b1 - b1)) < 0.03


def test_mono_recovers_exponential_exactly():
    te = 10.0 * np.arange(1, 11)
    t2 = np.array([[25.0, 50.0], [90.0, 250.0]])
    s = 800 * np.exp(-te / t2[..., None])
    f = fit_t2(s, te, method="mono", drop_first_echo=False, noise_sigma=0)
    np.testing.assert_allclose(f.t2_ms, t2, rtol=1e-4)
    np.testing.assert_allclose(f.s0, 800, rtol=1e-4)
    f = fit_t2(s + 30.0, te, method="mono", offset=True, drop_first_echo=False, noise_sigma=0)
    np.testing.assert_allclose(f.t2_ms, t2, rtol=2e-3)
    ll = fit_t2(s, te, method="loglinear", drop_first_echo=False, noise_sigma=0)
    np.testing.assert_allclose(ll.t2_ms, t2, rtol=1e-6)


def test_flags_and_mask():
    te = 10.0 * np.arange(1, 9)
    s = 500 * np.exp(-te / np.array([[30.0], [400.0], [60.0]]))
    s[2] = np.nan
    mask = np.array([True, True, False])
    f = fit_t2(s, te, method="mono", mask=mask, noise_sigma=0)
    assert f.flags[1] & flags.SHORT_TRAIN
    assert f.flags[2] & flags.OUTSIDE_MASK and np.isnan(f.t2_ms[2])
    assert not f.flags[0] & flags.EXCLUDE


def test_noise_floor_truncation_removes_bias():
    rng = np.random.default_rng(1)
    te = 10.0 * np.arange(1, 33)
    t2 = 40.0
    sigma = 10.0
    s = 1000 * np.exp(-te / t2)
    noisy = np.abs(s + rng.normal(0, sigma, (2000, te.size)) + 1j * rng.normal(0, sigma, (2000, te.size)))
    plain = fit_t2(noisy, te, method="mono", noise_sigma=0, drop_first_echo=False)
    trunc = fit_t2(noisy, te, method="mono", noise_sigma=sigma, drop_first_echo=False)
    assert abs(np.median(trunc.t2_ms) - t2) / t2 < 0.02
    assert np.median(plain.t2_ms) > np.median(trunc.t2_ms)  # the Rician floor inflates plain fits


def test_errors():
    with pytest.raises(FitError, match="echo times unknown"):
        fit_t2(np.ones((3, 5)))
    with pytest.raises(FitError, match="at least 3"):
        fit_t2(np.ones((3, 2)), [10, 20])
    with pytest.raises(FitError, match="unknown method"):
        fit_t2(np.ones((3, 5)), [1, 2, 3, 4, 5], method="magic")
    with pytest.raises(FitError, match="one volume"):
        fit_t2(Scan(np.ones((2, 2, 2)), np.eye(4)))


def test_scan_maps_and_stats(tmp_path):
    te = 10.0 * np.arange(1, 9)
    t2 = np.full((4, 4, 2), 80.0)
    t2[2:] = 40.0
    data = 900 * cpmg_signal(t2, 0.85, n_echoes=8, echo_spacing_ms=10.0)
    scan = Scan(data.astype(np.float32), np.diag([0.5, 0.5, 3, 1.0]), echo_times_ms=te,
                meta={"echo_spacing_ms": 10.0, "refocusing_angle_deg": 180.0})
    f = fit_t2(scan, method="epg", noise_sigma=0)
    lab = np.zeros((4, 4, 2), int)
    lab[:2] = 5
    st = t2_stats(f, lab, 5)
    assert st["median_ms"] == pytest.approx(80, rel=0.01) and st["n_voxels"] == 16
    assert st["curve_t2_ms"] == pytest.approx(80, rel=0.01)
    paths = f.save(tmp_path / "fit")
    import discmeasure as dm

    back = dm.load(paths["t2_ms"])
    np.testing.assert_allclose(np.asarray(back.data), f.t2_ms)
    assert np.allclose(back.affine, scan.affine)


def test_prostate_matches_authors_nlls(testdata):
    import nibabel as nib

    d = testdata / "t2map" / "t2mapdemo_prostate"
    img = np.asarray(nib.load(str(d / "invivo2D_set1" / "images" / "invivo_000198.nii.gz")).dataobj, float)
    ref = np.asarray(nib.load(str(d / "INVIVO2D_SET1" / "FIT_NLLS" / "preds_000198.nii.gz")).dataobj, float)
    te = 26.4 + 13.2 * np.arange(10)
    sig = img.reshape(img.shape[0], img.shape[1], -1)
    ref_t2 = ref[..., 1].reshape(sig.shape[:2]) * 145.2 if ref.shape[-1] >= 2 else None
    f = fit_t2(sig, te, method="mono", drop_first_echo=False, noise_sigma=0)
    sel = (ref_t2 >= 20) & (ref_t2 <= 300) & np.isfinite(f.t2_ms)
    rel = np.abs(f.t2_ms[sel] - ref_t2[sel]) / ref_t2[sel]
    assert sel.sum() > 1000
    assert np.median(rel) <= 0.01, np.median(rel)


def test_nist_mrbias_roi_fits(testdata):
    d = testdata / "t2map" / "mrbias_nist_A" / "expected"
    vox = pd.read_csv(d / "t2-mse_voxel_data.csv")
    summ = pd.read_csv(d / "t2-mse_model_fit_summary.csv")
    checked = 0
    for _, row in summ.iterrows():
        if not np.isfinite(row["T2 (mean)"]) or not (10 <= row["T2 (mean)"] <= 400):
            continue
        pts = vox[(vox.RoiLabel == row.RoiLabel) & (vox.Included)]
        te = pts["echo time (ms)"].to_numpy(float)
        s = pts["VoxelSignal"].to_numpy(float)
        f = fit_t2(s[None, :], te, method="mono", offset=True, drop_first_echo=False, noise_sigma=0)
        assert abs(f.t2_ms[0] - row["T2 (mean)"]) / row["T2 (mean)"] < 0.03, (row.RoiLabel, f.t2_ms[0], row["T2 (mean)"])
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("method", ["epg", "mono", "loglinear"])
def test_results_independent_of_threads_and_blocks(method, monkeypatch):
    """Voxels are fitted in blocks by worker threads: the maps must not depend on either."""
    from discmeasure.t2 import fit as fit_mod

    sig, te, *_ , sigma = _sim(10, snr=40, n=200)
    sig[::7, 6:] = 0.0  # some truncated voxels: several echo-weight patterns in a block
    monkeypatch.setenv("DISCMEASURE_THREADS", "1")
    ref = fit_t2(sig, te, method=method, noise_sigma=sigma)
    monkeypatch.setenv("DISCMEASURE_THREADS", "3")
    monkeypatch.setattr(fit_mod, "_BLOCK", {k: 37 for k in fit_mod._BLOCK})
    got = fit_t2(sig, te, method=method, noise_sigma=sigma)
    for name in ("t2_ms", "s0", "b1", "r2", "rmse", "flags"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)


def test_epg_b1_twins_resolve_to_lower_b1():
    """At 180 degrees B1 = 1 -/+ d give identical echo trains: the fit reports the lower one, always."""
    te = 10.0 * np.arange(1, 11)
    s = 1000 * cpmg_signal(np.full(50, 80.0), np.full(50, 1.1), n_echoes=10, echo_spacing_ms=10.0)
    f = fit_t2(s, te, method="epg", noise_sigma=0)
    np.testing.assert_allclose(f.b1, 0.9, atol=0.01)
    np.testing.assert_allclose(f.t2_ms, 80.0, rtol=0.01)


@pytest.mark.parametrize("k,m", [(2, 3), (2, 8), (2, 9), (3, 10), (3, 32)])
def test_normal_equations_equal_einsum(k, m):
    """The LM normal equations are summed echo by echo in einsum's order: bit-identical to einsum."""
    from discmeasure.t2.fitters import _normal_equations

    rng = np.random.default_rng(m)
    J = [rng.normal(size=(500, m)) * rng.lognormal(0, 4, (500, 1)) for _ in range(k)]
    w = rng.integers(0, 2, (500, m)).astype(float)
    Jw = [j * w for j in J]
    r = rng.normal(size=(500, m))
    JtJ, Jtr = _normal_equations(Jw, J, r)
    Js, Jws = np.stack(J, axis=2), np.stack(Jw, axis=2)
    assert np.array_equal(JtJ, np.einsum("nmk,nml->nkl", Jws, Js))
    assert np.array_equal(Jtr, np.einsum("nmk,nml->nk", Jws, r[:, :, None]))
