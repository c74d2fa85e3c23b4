"""compare() and cohort_summary() on analytic segments with a known rigid move and known changes."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from discmeasure import Scan
from discmeasure.comparison import REPEATABILITY, cohort_summary, compare, register_rigid
from discmeasure.measurements import measure

from _blockspine import block_labels, sagittal_affine


def _visit(bulge, rot=(0, 0, 0), shift=(0, 0, 0), seed=0):
    shape = (100, 120, 13)
    aff, R = sagittal_affine((0.8, 0.8, 3.0), shape)
    lab = block_labels(shape, aff, R @ __import__("_blockspine").rotation(*rot), bulge_mm=bulge, shift=shift,
                       supersample=2)
    rng = np.random.default_rng(seed)
    img = np.select([lab == 123, lab == 61, (lab == 23) | (lab == 24)], [250.0, 400.0, 120.0], 40.0)
    img = ndimage.gaussian_filter(img, 0.7) + rng.normal(0, 4, img.shape)
    scan = Scan(img.astype(np.float32), aff)
    seg = SimpleNamespace(labels=lab, affine=aff, levels=["L4-L5"], method="test")
    return SimpleNamespace(scan=scan, segmentation=seg, measurements=measure(scan, lab), subject="s", timepoint="t")


def test_registration_recovers_known_move():
    from _blockspine import rotation

    pre = _visit(3.0)
    post = _visit(3.0, rot=(0, 0, 3.0), shift=(2.0, -3.0, 4.0), seed=1)
    reg = register_rigid(pre.scan, post.scan)
    # truth: a pre-visit world point w maps to R w + R shift at the post visit
    R = rotation(0, 0, 3.0)
    pts = np.array([[0, -15, 5], [0, -15, -5], [0, 10, 0], [5, 0, 20]], float)
    truth = pts @ R.T + R @ np.array([2.0, -3.0, 4.0])
    got = pts @ reg["matrix"][:3, :3].T + reg["matrix"][:3, 3]
    # in-plane (AP, SI) sub-millimetre; left-right, across 3 mm slices of a laterally featureless
    # block, within half a slice
    assert np.max(np.abs(got - truth)[:, 1:]) < 0.5
    assert np.max(np.abs(got - truth)[:, 0]) < 1.5
    assert reg["rotation_deg"] == pytest.approx(3.0, abs=0.7)
    df = compare(pre, post)
    assert bool(df.iloc[0].level_match_ok)
    # disc centroids also move with the field-of-view cut (the 39 mm slab clips the disc laterally)
    assert df.iloc[0].level_match_distance_mm < 4.0


def test_changes_and_repeatability_flags():
    """A 1 mm smaller bulge: beyond a 0.5 mm repeatability coefficient, within the default one
    (1.69 mm, measured on real anatomy at 1 mm pixels)."""
    pre = _visit(4.0)
    post = _visit(3.0, seed=2)
    df = compare(pre, post, register=False, repeatability={"bulge_mm": ("abs", 0.5), "height_middle_mm": ("abs", 0.5)})
    r = df.iloc[0]
    assert r.bulge_mm_delta == pytest.approx(-1.0, abs=0.35)
    assert r.bulge_mm_pct == pytest.approx(-25.0, abs=9)
    assert not r.bulge_mm_within_repeatability
    assert r.height_middle_mm_within_repeatability  # heights unchanged
    assert compare(pre, post, register=False).iloc[0].bulge_mm_within_repeatability


def test_default_repeatability_is_the_measured_one():
    """The default repeatability coefficients are the ones benchmarks/validate_retest.py measured
    and wrote to docs/validation.md (they were goals, 0.5 mm for bulge and heights, not
    measurements: a real repositioning gave 1.72 mm for the bulge). A rerun of the benchmark
    that changes the table makes this fail until the defaults follow."""
    from pathlib import Path

    from discmeasure.comparison import REPEATABILITY

    text = (Path(__file__).resolve().parents[1] / "docs" / "validation.md").read_text()
    rows = text.split("<!-- RC_TABLE -->", 1)[1].strip().splitlines()[2:]
    measured = {}
    for row in rows:
        if not row.startswith("|"):
            break
        cells = [c.strip() for c in row.strip("|").split("|")]
        measured[cells[0]] = (cells[1], float(cells[2]))
    assert len(measured) >= 8
    for metric, (kind, rc) in measured.items():
        assert REPEATABILITY[metric] == (kind, pytest.approx(rc, abs=0.005)), metric


def test_default_t2_repeatability_is_the_published_long_term_one():
    """T2 changes are judged against the long-term in-vivo repeatability of disc T2 (Belavy et al.
    2021: RC = 2.77 x the largest per-level CV, nucleus 10.1 %, whole disc 3.2 %), not against an
    assumed 5 % that no measurement supported: a +10 % nucleus T2 (the sample pair's designed change)
    cannot be told from a year's variation in one level, +35 % can; the whole disc's +6 % cannot,
    +12 % can. The phantom's pipeline-only RC (docs/validation.md) is far below both."""
    from discmeasure.comparison import REPEATABILITY

    assert REPEATABILITY["t2_np_ms"] == ("rel", pytest.approx(2.77 * 0.101, abs=0.005))
    assert REPEATABILITY["t2_disc_ms"] == ("rel", pytest.approx(2.77 * 0.032, abs=0.001))

    def visit(np_t2, disc_t2):
        m = pd.DataFrame([{"level": "L4-L5", "label": 123, "t2_np_ms": np_t2, "t2_disc_ms": disc_t2}])
        return SimpleNamespace(measurements=m)

    pre = visit(100.0, 100.0)
    small = compare(pre, visit(110.0, 106.0), register=False).iloc[0]
    large = compare(pre, visit(135.0, 112.0), register=False).iloc[0]
    assert small.t2_np_ms_within_repeatability and small.t2_disc_ms_within_repeatability
    assert not large.t2_np_ms_within_repeatability and not large.t2_disc_ms_within_repeatability
    assert small.t2_np_ms_pct == pytest.approx(10.0)


def test_cohort_summary_registry_figures():
    rows = []
    for subj, (b0, b1) in {"a": (4.0, 3.0), "b": (5.0, 4.0), "c": (3.0, 3.3), "d": (4.0, 2.0)}.items():
        rows.append({"subject": subj, "level": "L4-L5", "bulge_mm_pre": b0, "bulge_mm_post": b1,
                     "bulge_mm_delta": b1 - b0, "bulge_mm_pct": 100 * (b1 - b0) / b0,
                     "bulge_mm_within_repeatability": abs(b1 - b0) < 0.5})
        rows.append({"subject": subj, "level": "L3-L4", "bulge_mm_pre": 1.0, "bulge_mm_post": 1.1,
                     "bulge_mm_delta": 0.1, "bulge_mm_pct": 10.0, "bulge_mm_within_repeatability": True})
    s = cohort_summary(pd.DataFrame(rows), metrics=("bulge_mm",)).iloc[0]
    assert s.n_subjects == 4 and s.n_levels == 8
    assert s.subjects_reduced_pct == pytest.approx(75.0)
    assert s.subjects_reduced_beyond_rc_pct == pytest.approx(75.0)
    assert s.mean_pct_change == pytest.approx(np.mean([-25, -20, 10, -50]))
    assert s.levels_reduced_pct == pytest.approx(37.5)
    assert "subjects_reduced_beyond_mdc95_pct" not in s.index  # no level carries its own uncertainty


def test_cohort_summary_against_each_index_levels_own_uncertainty():
    """With each level's own uncertainty (``analyze(..., uncertainty=N)`` at both visits) the
    summary also gives the share of subjects whose index level went down by more than its own
    MDC95, over the subjects where that is known (here b's index level has no flag: no SDs)."""
    rows = []
    for subj, (b0, b1, within) in {"a": (4.0, 3.0, False), "b": (5.0, 4.0, None), "c": (3.0, 2.8, True),
                                   "d": (4.0, 2.0, False), "e": (4.0, 4.5, False)}.items():
        rows.append({"subject": subj, "level": "L4-L5", "bulge_mm_pre": b0, "bulge_mm_post": b1,
                     "bulge_mm_delta": b1 - b0, "bulge_mm_pct": 100 * (b1 - b0) / b0,
                     "bulge_mm_within_repeatability": abs(b1 - b0) < 1.72, "bulge_mm_within_uncertainty": within})
    s = cohort_summary(pd.DataFrame(rows), metrics=("bulge_mm",)).iloc[0]
    assert s.n_subjects_with_uncertainty == 4
    assert s.subjects_reduced_beyond_mdc95_pct == pytest.approx(50.0)  # a and d of a, c, d, e
    assert s.subjects_reduced_beyond_rc_pct == pytest.approx(20.0)  # d of five


def test_registration_reproducible():
    """Fixed sampling seed: the same inputs give the same transform (SimpleITK's seed 0 = wall clock,
    which moved it by ~0.1 degree from run to run) and every ITK filter single-threaded during the
    registration (ITK's threads sum in scheduling order: up to 3e-6 mm of jitter was seen under
    load): two identical registrations give the identical transform."""
    pre = _visit(3.0)
    post = _visit(3.0, rot=(0, 0, 3.0), shift=(2.0, -3.0, 4.0), seed=1)
    a, b = register_rigid(pre.scan, post.scan), register_rigid(pre.scan, post.scan)
    np.testing.assert_array_equal(a["matrix"], b["matrix"])
    df = compare(pre, post, registration=a)
    assert df.iloc[0].registration_rotation_deg == a["rotation_deg"]


def test_registration_on_sample_pair_matches_designed_move():
    """The phantom pair in sample_scans: post = pre moved by a known rigid pose (truth.json).

    The registration runs without its full-resolution level (8-4-2 pyramid, for speed); the
    disc centres must still land within 0.7 mm of their known post-visit positions (measured
    0.23-0.57 mm; 0.36-0.49 mm with the full-resolution level).
    """
    import json
    from pathlib import Path

    import discmeasure as dm

    root = Path(__file__).resolve().parents[1] / "sample_scans"
    truth = json.loads((root / "truth.json").read_text())["visits"]
    pre, post = dm.load(root / "pre" / "T2W_SAG"), dm.load(root / "post" / "T2W_SAG")
    reg = register_rigid(pre, post)
    levels = list(truth["pre"]["levels"])
    c_pre = np.array([truth["pre"]["levels"][lv]["disc_center_mm"] for lv in levels])
    c_post = np.array([truth["post"]["levels"][lv]["disc_center_mm"] for lv in levels])
    got = c_pre @ reg["matrix"][:3, :3].T + reg["matrix"][:3, 3]
    assert np.max(np.linalg.norm(got - c_post, axis=1)) < 0.7


def test_change_table_and_report_name_the_coefficients_used(tmp_path):
    """The CLI's change table heads its flag column with the bulge RC the flags used, and the pair
    report's provenance lists every coefficient (the bare "beyond RC" did not say which)."""
    from rich.console import Console

    from discmeasure.cli._common import change_table
    from discmeasure.report.outputs import pair_files

    pre = _visit(4.0)
    post = _visit(3.0, seed=2)
    for rc, head in (({}, f"beyond RC ({REPEATABILITY['bulge_mm'][1]:.2f} mm)"), ({"bulge_mm": ("abs", 0.8)}, "beyond RC (0.80 mm)")):
        ch = compare(pre, post, register=False, repeatability=rc)
        con = Console(record=True, width=200)
        con.print(change_table(ch, "t"))
        assert head in con.export_text(), con.export_text()
    pair_files(pre, post, ch, tmp_path, pictures=False, visits=False)
    html = (tmp_path / "report.html").read_text()
    assert "repeatability coefficients" in html and "0.8" in html


def test_change_table_flags_nucleus_t2_and_leaves_unmeasured_changes_blank():
    """The trials' second endpoint, nucleus T2, gets its own 'beyond RC' column (headed with its
    RC, 28 % by default); a change that could not be measured (bulge withheld at one visit) is
    left blank. It was shown as 'yes', beyond the RC, because a NaN change is not within it."""
    from rich.console import Console

    from discmeasure.cli._common import change_table

    def visit(bulge, np_t2):
        m = pd.DataFrame([{"level": "L4-L5", "label": 123, "bulge_mm": bulge, "t2_np_ms": np_t2},
                          {"level": "L5-S1", "label": 124, "bulge_mm": 3.0, "t2_np_ms": 80.0}])
        return SimpleNamespace(measurements=m)

    ch = compare(visit(4.0, 100.0), visit(np.nan, 140.0), register=False)
    # neither within nor beyond: not measured (was False, i.e. "beyond", in changes.csv too)
    assert ch.set_index("level").loc["L4-L5", "bulge_mm_within_repeatability"] is None
    con = Console(record=True, width=250)
    con.print(change_table(ch, "t"))
    text = con.export_text()
    assert f"beyond RC ({REPEATABILITY['bulge_mm'][1]:.2f} mm)" in text and "beyond RC (28 %)" in text, text
    cells = {ln.split("│")[1].strip(): [c.strip() for c in ln.split("│")[1:-1]] for ln in text.splitlines()
             if ln.startswith("│ L")}
    # columns: level, bulge pre, bulge post, delta, %, beyond, NP pre, NP post, %, beyond, match
    assert cells["L4-L5"][5] == "" and cells["L4-L5"][9] == "yes", cells  # +40 % NP T2: beyond 28 %
    assert cells["L5-S1"][5] == "no" and cells["L5-S1"][9] == "no", cells


def test_parse_repeatability():
    """--rc METRIC=VALUE: the default's kind, percentages for relative metrics, one-line errors."""
    from discmeasure.comparison import parse_repeatability
    from discmeasure.errors import InputError

    assert parse_repeatability(None) == {}
    assert parse_repeatability(["bulge_mm=0.8", "volume_mm3=10%", "sir_np_csf=0.15"]) == {
        "bulge_mm": ("abs", 0.8), "volume_mm3": ("rel", pytest.approx(0.1)), "sir_np_csf": ("rel", 0.15)}
    for bad, words in (("bulge=0.8", "METRIC one of"), ("bulge_mm", "METRIC=VALUE"), ("bulge_mm=-1", "positive"),
                       ("bulge_mm=abc", "positive"), ("bulge_mm=5%", "not a percentage"), ("volume_mm3=0", "percentage")):
        with pytest.raises(InputError) as e:
            parse_repeatability([bad])
        assert words in str(e.value) and "\n" not in str(e.value), (bad, str(e.value))


def test_repeatability_coefficient_is_2_77_within_subject_sd():
    """Two measurements with independent errors of SD s (within-subject SD s): RC = 2.77 s
    (Bland & Altman 1999); NaN pairs are left out and counted; relative RC on relative errors."""
    from discmeasure.comparison import repeatability_coefficient
    from discmeasure.errors import InputError

    rng = np.random.default_rng(0)
    truth = rng.uniform(2.0, 6.0, 20000)
    s = 0.4
    a, b = truth + rng.normal(0, s, truth.size), truth + rng.normal(0, s, truth.size)
    b[:7] = np.nan
    rc, n, one = repeatability_coefficient(a, b)
    assert rc == pytest.approx(2.77 * s, rel=0.02) and n == truth.size - 7 and one == 7
    ra, rb = truth * (1 + rng.normal(0, 0.05, truth.size)), truth * (1 + rng.normal(0, 0.05, truth.size))
    assert repeatability_coefficient(ra, rb, kind="rel")[0] == pytest.approx(2.77 * 0.05, rel=0.03)
    assert np.isnan(repeatability_coefficient([np.nan], [1.0])[0])
    with pytest.raises(InputError):
        repeatability_coefficient([1.0, 2.0], [1.0])
