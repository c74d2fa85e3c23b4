"""Image-edge refinement of label outlines (discmeasure.measurements.edges)."""

from __future__ import annotations

import numpy as np
import pytest

from discmeasure.measurements.edges import refine_edge


def _ramp_plane(edge_ap, *, dark=20.0, bright=400.0, voxel=0.7, step=0.25, noise=0.0, seed=0):
    """A plane sampled at ``step`` of an image with ``voxel`` pixels: dark for ap > edge, bright behind.

    Each pixel holds the area fraction of each tissue (partial volume); the plane is the linear
    interpolation of the pixel values, as sample_planes does.
    """
    ap = np.arange(-10, 10 + step / 2, step)
    si = np.arange(-5, 5 + step / 2, step)
    centres = np.arange(-12, 12 + voxel / 2, voxel) + 0.123  # pixel grid not aligned with the edge
    lo, hi = centres - voxel / 2, centres + voxel / 2
    frac_bright = np.clip((edge_ap - lo) / voxel, 0, 1)  # share of the pixel behind (below) the edge
    vals = dark + (bright - dark) * frac_bright
    if noise:
        vals = vals + np.random.default_rng(seed).normal(0, noise, vals.shape)
    prof = np.interp(ap, centres, vals)
    return np.repeat(prof[:, None], len(si), axis=1), ap, si


@pytest.mark.parametrize("edge", [-3.0, -2.87, -2.65, -2.5])
def test_subvoxel_edge_recovered_from_quantised_outline(edge):
    plane, ap, si = _ramp_plane(edge)
    # a label outline on the voxel face nearest the edge: up to half a voxel off
    start = np.array([[edge + 0.33, 0.0], [edge - 0.3, 1.0], [edge + 0.05, -1.0]])
    got, moved = refine_edge(plane, ap, si, start, (-1.0, 0.0))
    assert moved.all()
    # linear interpolation between pixel centres puts the half-way crossing up to ~0.06 pixel
    # (0.04 mm at 0.7 mm) off the partial-volume edge; the label outline was up to 0.35 mm off
    np.testing.assert_allclose(got[:, 0], edge, atol=0.06)
    np.testing.assert_allclose(got[:, 1], start[:, 1])  # moved along the direction only


def test_noisy_edge_within_a_tenth_of_a_millimetre():
    errs = []
    for seed in range(20):
        plane, ap, si = _ramp_plane(-2.8, noise=12.0, seed=seed)  # contrast/noise ~ 30
        got, moved = refine_edge(plane, ap, si, np.array([[-2.45, 0.0]]), (-1.0, 0.0))
        assert moved.all()
        errs.append(got[0, 0] + 2.8)
    assert np.max(np.abs(errs)) < 0.1, errs


def test_no_edge_or_wrong_polarity_leaves_points():
    flat = np.full((81, 41), 100.0)
    ap, si = np.arange(-10, 10.01, 0.25), np.arange(-5, 5.01, 0.25)
    pts = np.array([[-2.0, 0.0]])
    got, moved = refine_edge(flat, ap, si, pts, (-1.0, 0.0))
    assert not moved.any() and np.array_equal(got, pts)
    # bright inside, dark outside: not a dark structure against bright fluid -> not moved
    plane, ap, si = _ramp_plane(-2.8, dark=400.0, bright=20.0)
    got, moved = refine_edge(plane, ap, si, pts, (-1.0, 0.0))
    assert not moved.any() and np.array_equal(got, pts)


def test_edge_beyond_search_distance_is_not_taken():
    plane, ap, si = _ramp_plane(-5.0)
    got, moved = refine_edge(plane, ap, si, np.array([[-2.0, 0.0]]), (-1.0, 0.0), search_mm=1.5)
    assert not moved.any()
    got, moved = refine_edge(plane, ap, si, np.array([[-4.0, 0.0]]), (-1.0, 0.0), search_mm=1.5)
    assert moved.all() and got[0, 0] == pytest.approx(-5.0, abs=0.06)
