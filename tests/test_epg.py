"""EPG CPMG signal: ideal pulses, stimulated-echo pattern, and an independent Bloch simulation."""

import numpy as np
import pytest

from discmeasure.epg import cpmg_signal


def test_ideal_pulses_are_exponential():
    t2 = np.array([20.0, 45.0, 120.0, 300.0])
    s = cpmg_signal(t2, 1.0, n_echoes=16, echo_spacing_ms=8.0)
    te = 8.0 * np.arange(1, 17)
    np.testing.assert_allclose(s, np.exp(-te / t2[:, None]), rtol=1e-12)


def test_odd_even_pattern_below_b1_one():
    s = cpmg_signal(100.0, 0.7, n_echoes=10, echo_spacing_ms=10.0)
    # known CPMG behaviour: 2nd echo above 1st (stimulated echo refocuses), then oscillation decays
    assert s[1] > s[0]
    assert s[2] < s[1] and s[3] > s[2] - 0.03
    # first echo analytic: sin(a_ex) * sin^2(a_ref/2) * exp(-ESP/T2)
    a_ex, a_ref = np.deg2rad(90 * 0.7), np.deg2rad(180 * 0.7)
    assert s[0] == pytest.approx(np.sin(a_ex) * np.sin(a_ref / 2) ** 2 * np.exp(-10 / 100), rel=1e-12)


def _bloch_cpmg(t2, t1, b1, n_echoes, esp, n_iso=720):
    """Independent oracle: isochromats uniformly dephased over 2*pi per half echo spacing."""
    phi = np.linspace(-np.pi, np.pi, n_iso, endpoint=False)
    m = np.zeros((n_iso, 3))
    m[:, 2] = 1.0

    def rot(axis, a):
        c, s = np.cos(a), np.sin(a)
        if axis == "x":
            return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])

    def free(m, t):
        e2, e1 = np.exp(-t / t2), np.exp(-t / t1)
        c, s = np.cos(phi), np.sin(phi)
        mx = (c * m[:, 0] - s * m[:, 1]) * e2
        my = (s * m[:, 0] + c * m[:, 1]) * e2
        mz = m[:, 2] * e1 + (1 - e1)
        return np.stack([mx, my, mz], axis=1)

    m = m @ rot("x", np.pi / 2 * b1).T
    out = []
    for _ in range(n_echoes):
        m = free(m, esp / 2)
        m = m @ rot("y", np.pi * b1).T
        m = free(m, esp / 2)
        out.append(np.hypot(m[:, 0].mean(), m[:, 1].mean()))
    return np.array(out)


@pytest.mark.parametrize("b1", [1.0, 0.9, 0.75])
def test_matches_isochromat_bloch_simulation(b1):
    epg = cpmg_signal(80.0, b1, n_echoes=8, echo_spacing_ms=10.0, t1_ms=1000.0)
    bloch = _bloch_cpmg(80.0, 1000.0, b1, 8, 10.0)
    np.testing.assert_allclose(epg, bloch, atol=2e-3)


def test_broadcast_shapes():
    s = cpmg_signal(np.full((3, 1), 50.0), np.linspace(0.7, 1, 4), n_echoes=5, echo_spacing_ms=10)
    assert s.shape == (3, 4, 5)


@pytest.mark.parametrize("n_echoes,refoc", [(1, 180.0), (2, 150.0), (8, 180.0), (17, 120.0), (32, 160.0)])
def test_windowed_states_bit_identical_to_full_loop(n_echoes, refoc):
    """The fast loop (only the phase states that can still reach F0) equals the full loop bit for bit."""
    from discmeasure import epg

    rng = np.random.default_rng(n_echoes)
    t2 = rng.uniform(5, 2000, 300)
    b1 = rng.uniform(0.4, 1.3, 300)
    t1 = rng.uniform(300, 3000, 300)
    fast = epg.cpmg_signal(t2, b1, n_echoes=n_echoes, echo_spacing_ms=9.0, refocusing_angle_deg=refoc, t1_ms=t1)
    calls = []
    orig = epg._cpmg_windowed
    try:
        epg._cpmg_windowed = lambda *a: (calls.append(1), epg._cpmg_full(*a))
        full = epg.cpmg_signal(t2, b1, n_echoes=n_echoes, echo_spacing_ms=9.0, refocusing_angle_deg=refoc, t1_ms=t1)
    finally:
        epg._cpmg_windowed = orig
    assert calls and np.array_equal(fast, full)


def test_nonfinite_inputs_propagate():
    s = cpmg_signal(np.array([np.nan, 50.0]), np.array([1.0, np.nan]), n_echoes=4, echo_spacing_ms=10)
    assert np.isnan(s).all()
