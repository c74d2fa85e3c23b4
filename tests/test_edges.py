"""Image-edge refinement of label outlines (discmeasure.measurements.edges)."""

from __future__ import annotations

import numpy as np
import pytest

from discmeasure.measurements.edges import refine_edge


def _pv_profile(ap, edge_ap, *, dark, bright, voxel, noise=0.0, seed=0):
    """Along ``ap``: an image of ``voxel`` pixels, dark for ap > edge, bright behind.

    Each pixel holds the area fraction of each tissue (partial volume); the profile is the linear
    interpolation of the pixel values, as sample_planes does. The pixel grid is not aligned with
    the edge.
    """
    centres = np.arange(ap[0] - 2, ap[-1] + 2 + voxel / 2, voxel) + 0.123
    lo = centres - voxel / 2  # pixels' lower faces
    frac_bright = np.clip((edge_ap - lo) / voxel, 0, 1)  # share of the pixel behind (below) the edge
    vals = dark + (bright - dark) * frac_bright
    if noise:
        vals = vals + np.random.default_rng(seed).normal(0, noise, vals.shape)
    return np.interp(ap, centres, vals)


def _ramp_plane(edge_ap, *, dark=20.0, bright=400.0, voxel=0.7, step=0.25, noise=0.0, seed=0):
    """A plane sampled at ``step`` of an image with ``voxel`` pixels, the edge at ``edge_ap`` in every row."""
    ap = np.arange(-10, 10 + step / 2, step)
    si = np.arange(-5, 5 + step / 2, step)
    prof = _pv_profile(ap, edge_ap, dark=dark, bright=bright, voxel=voxel, noise=noise, seed=seed)
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


def _wall_plane(edge_of_si, *, dark=20.0, bright=400.0, voxel=1.0, step=0.25):
    """A plane whose dark body lies anterior (ap > edge) of a posterior wall at ``edge_of_si(si)``.

    Partial volume along AP in each row, pixel grid not aligned with the wall; below si = 0 the
    disc, as dark as the body, so the only edge is the posterior one.
    """
    ap = np.arange(-30, 0 + step / 2, step)
    si = np.arange(-6, 20 + step / 2, step)
    plane = np.column_stack([_pv_profile(ap, edge_of_si(s), dark=dark, bright=bright, voxel=voxel) for s in si])
    return plane, ap, si


def _body_outline(wall_of_si, *, top=20.0, front=-2.0):
    """Outline (ap, si) of an upper body: wall ``wall_of_si(si)`` for si in [0, top], endplate si = 0."""
    s = np.arange(0.0, top + 0.01, 0.25)
    a = np.arange(-14.0, front + 0.01, 0.25)
    return np.concatenate([np.column_stack([wall_of_si(s), s]), np.column_stack([a, np.zeros_like(a)])])


def _refine_on(plane, ap, si):
    return lambda p, d: refine_edge(plane, ap, si, p, d)


def test_jagged_wall_outline_is_moved_onto_a_straight_image_edge():
    """A label wall in saw-teeth of +-0.6 mm (coarse pixels, automatic segmentation) still gives
    the corner on the image's wall: the shifts onto the edge vary by as much, so only the check
    that the moved points are straight (``_straightened``) lets the refinement through."""
    from discmeasure.measurements.bulge import wall_corner_and_wall

    plane, ap, si = _wall_plane(lambda s: -15.0)
    outline = _body_outline(lambda s: -15.0 + 0.6 * (2 * ((s / 6.0) % 1) - 1))
    label_only, _ = wall_corner_and_wall(outline, -1)
    assert abs(label_only[0] + 15.0) > 0.5  # the label outline's own line misses the corner
    got, wall = wall_corner_and_wall(outline, -1, refine=_refine_on(plane, ap, si))
    assert wall is not None and abs(wall[1]) < 0.02  # the refined wall is upright, as the image's
    # half-way crossings of linearly interpolated pixels: up to 0.086 pixel off (1 mm pixels here)
    assert got[0] == pytest.approx(-15.0, abs=0.1)


def test_wall_edges_on_two_fronts_leave_the_label_outline():
    """Edges that scatter from row to row (here over 1.2 mm: bone here, a CSF front behind a dark
    band there, as on a real scan) are trusted by neither check: the wall stays on the label
    outline. (When most rows agree on one front, the shifts' robust SD is small and the wall line's
    outlier trimming keeps that front.)"""
    from discmeasure.measurements.bulge import wall_corner_and_wall

    fronts = lambda s: -15.0 - 0.6 * (np.floor(s) % 3)  # noqa: E731
    plane, ap, si = _wall_plane(fronts)
    outline = _body_outline(lambda s: np.full_like(s, -15.5))
    label_only, _ = wall_corner_and_wall(outline, -1)
    got, _ = wall_corner_and_wall(outline, -1, refine=_refine_on(plane, ap, si))
    np.testing.assert_allclose(got, label_only)
