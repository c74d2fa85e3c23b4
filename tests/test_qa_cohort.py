"""QA: cohort_summary scores each subject on one index level per follow-up (never silently on
another level or visit), run_batch reports a summary it cannot compute instead of raising after
the cohort ran, and write_pair / pair_files refuse timepoints that cannot name a visit folder."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import discmeasure as dm
from discmeasure.batch import MARKER, _hashes, inputs_fingerprint, run_batch
from discmeasure.comparison import cohort_summary
from discmeasure.errors import InputError
from discmeasure.pipeline import Result
from discmeasure.report.outputs import mark_output, pair_files, write_pair
from discmeasure.segmentation.core import Segmentation

LEVELS = ("L3-L4", "L4-L5", "L5-S1")


def _rows(subject, bulges, t2=None, timepoint=None):
    """compare()-like rows of one subject: ``bulges`` = {level: (pre, post)} (NaN: not measured),
    ``t2`` = {level: (pre, post)} for t2_np_ms."""
    rows = []
    for lv, (b0, b1) in bulges.items():
        r = {"subject": subject, "level": lv, "bulge_mm_pre": b0, "bulge_mm_post": b1, "bulge_mm_delta": b1 - b0,
             "bulge_mm_pct": 100 * (b1 - b0) / b0 if np.isfinite(b0) else np.nan,
             "bulge_mm_within_repeatability": bool(abs(b1 - b0) < 0.5) if np.isfinite(b1 - b0) else None}
        t0, t1 = (t2 or {}).get(lv, (np.nan, np.nan))
        r.update({"t2_np_ms_pre": t0, "t2_np_ms_post": t1, "t2_np_ms_delta": t1 - t0,
                  "t2_np_ms_pct": 100 * (t1 - t0) / t0 if np.isfinite(t0) else np.nan,
                  "t2_np_ms_within_repeatability": bool(abs(t1 - t0) < 5) if np.isfinite(t1 - t0) else None})
        if timepoint is not None:
            r = {"subject": subject, "timepoint": timepoint, **{k: v for k, v in r.items() if k != "subject"}}
        rows.append(r)
    return rows


def _three():
    """S1, S2 reduced at L4-L5 (their largest baseline bulge), S3 grown there; L3-L4 grows by 10 %."""
    rows = []
    for s, post in (("S1", 3.0), ("S2", 3.5), ("S3", 4.4)):
        rows += _rows(s, {"L3-L4": (2.0, 2.2), "L4-L5": (4.0, post), "L5-S1": (3.0, 3.0)},
                      t2={lv: (100.0, 90.0) for lv in LEVELS})
    return pd.DataFrame(rows)


def test_given_index_level_without_value_leaves_subject_out():
    """S1's treated level L4-L5 has no bulge change: S1 is left out of the bulge figures and
    counted, not scored on L3-L4 (+10 %) as before."""
    ch = _three()
    m = (ch.subject == "S1") & (ch.level == "L4-L5")
    ch.loc[m, ["bulge_mm_post", "bulge_mm_delta", "bulge_mm_pct"]] = np.nan
    s = cohort_summary(ch, metrics=("bulge_mm",), index_levels={"S1": "L4-L5", "S2": "L4-L5", "S3": "L4-L5"}).iloc[0]
    assert s.n_subjects == 2 and s.n_subjects_without_index_value == 1
    assert s.subjects_reduced_pct == pytest.approx(50.0)  # S2 of S2, S3
    assert s.mean_pct_change == pytest.approx(np.mean([-12.5, 10.0]))
    assert s.n_levels == 8  # every level with a change still counts level-wise


def test_index_level_not_a_level_of_the_subject_is_refused():
    """A misspelled level name (or subject) is an error naming the subject, not a silent default."""
    ch = _three()
    with pytest.raises(InputError, match="'L4L5' is not a level of subject 'S1'") as e:
        cohort_summary(ch, metrics=("bulge_mm",), index_levels={"S1": "L4L5"})
    assert "\n" not in str(e.value)
    with pytest.raises(InputError, match="subject 'S9'"):
        cohort_summary(ch, metrics=("bulge_mm",), index_levels={"S9": "L4-L5"})


def test_default_index_level_is_one_per_subject_for_all_metrics():
    """The index level is the largest baseline bulge over all the subject's rows, the same for every
    metric: with no T2 at L4-L5 the subjects are left out of the T2 figures (before, T2 was
    summarised over another level than the bulge)."""
    ch = _three()
    ch.loc[ch.level == "L4-L5", ["t2_np_ms_post", "t2_np_ms_delta", "t2_np_ms_pct"]] = np.nan
    out = cohort_summary(ch, metrics=("bulge_mm", "t2_np_ms")).set_index("metric")
    assert out.loc["bulge_mm", "n_subjects"] == 3
    assert out.loc["t2_np_ms", "n_subjects"] == 0 and out.loc["t2_np_ms", "n_subjects_without_index_value"] == 3
    assert out.attrs["index_levels"] == {"S1": "L4-L5", "S2": "L4-L5", "S3": "L4-L5"}


def test_subject_without_baseline_bulge_does_not_crash():
    """All of S2's baseline bulges withheld: no index level for S2 (counted), the others summarised
    (before: pandas 'Encountered all NA values')."""
    ch = _three()
    ch["height_middle_mm_delta"] = -0.5
    ch["height_middle_mm_pct"] = -5.0
    ch["height_middle_mm_within_repeatability"] = True
    ch.loc[ch.subject == "S2", "bulge_mm_pre"] = np.nan
    s = cohort_summary(ch, metrics=("height_middle_mm",)).iloc[0]
    assert s.n_subjects == 2 and s.n_subjects_without_index_value == 1
    assert s.subjects_reduced_pct == pytest.approx(100.0)


def test_several_follow_ups_are_summarised_per_follow_up():
    """A subject with base->m6 and base->m12: one row per follow-up and metric, each saying which
    follow-up it is for; neither the subject figures nor the level counts mix the two."""
    rows = []
    for s, post in (("A", 3.0), ("B", 3.5)):
        rows += _rows(s, {"L3-L4": (2.0, 2.0), "L4-L5": (4.0, post)}, timepoint="m6")
    rows += _rows("A", {"L3-L4": (2.0, 2.0), "L4-L5": (4.0, 4.0)}, timepoint="m12")
    out = cohort_summary(pd.DataFrame(rows), metrics=("bulge_mm",))
    assert list(out.timepoint) == ["m6", "m12"]
    m6, m12 = out.iloc[0], out.iloc[1]
    assert m6.n_subjects == 2 and m6.n_levels == 4 and m6.subjects_reduced_pct == pytest.approx(100.0)
    assert m12.n_subjects == 1 and m12.n_levels == 2 and m12.subjects_reduced_pct == pytest.approx(0.0)
    assert m12.mean_pct_change == pytest.approx(0.0)


def test_several_follow_ups_without_timepoint_are_refused():
    """Without a column saying which follow-up a row is for, a level twice for one subject is an error."""
    rows = _rows("A", {"L4-L5": (4.0, 3.0)}) + _rows("A", {"L4-L5": (4.0, 4.0)})
    with pytest.raises(InputError, match="subject 'A' has level L4-L5 more than once.*'timepoint'"):
        cohort_summary(pd.DataFrame(rows), metrics=("bulge_mm",))


# --- run_batch: the summary at the end ------------------------------------------------------------

def _resumable_batch(tmp_path: Path, changes: dict[str, pd.DataFrame]) -> Path:
    """A manifest and a batch output whose subjects are all complete (``--resume`` skips them),
    with the given changes.csv per subject: run_batch only assembles the tables and the summary."""
    out = tmp_path / "out"
    out.mkdir()
    mark_output(out, kind="batch")
    lines = ["subject,timepoint,path"]
    for s, ch in changes.items():
        visits = []
        for tp in ["base", *dict.fromkeys(ch["timepoint"])]:
            src = tmp_path / "in" / s / tp
            src.mkdir(parents=True)
            lines.append(f"{s},{tp},{src}")
            visits.append({"timepoint": tp, "path": str(src), "mese": "", "labels": ""})
        (out / s).mkdir()
        (out / s / "changes.csv").write_text(ch.to_csv(index=False))
        (out / s / MARKER).write_text(json.dumps({"files": _hashes(out / s), "inputs": inputs_fingerprint(visits),
                                                  "repeatability": {}, "dicom_seg": False, "uncertainty": 0}))
    (tmp_path / "manifest.csv").write_text("\n".join(lines) + "\n")
    return out


def _batch_changes(subject, bulges, timepoint="m6"):
    df = pd.DataFrame(_rows(subject, bulges, timepoint=timepoint))
    df.insert(1, "baseline", "base")
    df["height_middle_mm_delta"], df["height_middle_mm_pct"], df["height_middle_mm_within_repeatability"] = -0.2, -2.0, True
    return df


def test_batch_summary_with_a_subject_without_baseline_bulge(tmp_path):
    """A subject whose baseline bulges were all withheld no longer makes run_batch raise after the
    cohort ran: report.html holds the summary, with that subject counted as without index value.
    Subject '001' and follow-up '12' stay names (not the numbers 1 and 12)."""
    nan = float("nan")
    out = _resumable_batch(tmp_path, {
        "001": _batch_changes("001", {"L4-L5": (4.0, 3.0), "L3-L4": (2.0, 2.0)}, timepoint="12"),
        "002": _batch_changes("002", {"L4-L5": (nan, 3.0), "L3-L4": (nan, 2.0)}, timepoint="12"),
    })
    r = run_batch(tmp_path / "manifest.csv", out, resume=True, pictures=False)
    assert r["skipped"] == ["001", "002"]
    summary = r["summary"].set_index("metric")
    for m in ("bulge_mm", "height_middle_mm"):  # 002's heights changed, but it has no index level
        s = summary.loc[m]
        assert s.timepoint == "12" and s.n_subjects == 1 and s.n_subjects_without_index_value == 1
    assert list(r["changes"].subject.unique()) == ["001", "002"]
    assert "n_subjects_without_index_value" in (out / "report.html").read_text()


def test_batch_reports_a_summary_it_cannot_compute(tmp_path, monkeypatch):
    """Any failure of the summary is reported (warning, report.html, summary_error), not raised
    after every subject's outputs were written."""
    import discmeasure.comparison as comparison

    out = _resumable_batch(tmp_path, {"A": _batch_changes("A", {"L4-L5": (4.0, 3.0)})})

    def broken(changes, **kw):
        raise ValueError("Encountered all NA values")

    monkeypatch.setattr(comparison, "cohort_summary", broken)
    with pytest.warns(UserWarning, match="cohort summary not computed"):
        r = run_batch(tmp_path / "manifest.csv", out, resume=True, pictures=False)
    assert "Encountered all NA values" in r["summary_error"] and not len(r["summary"])
    html = (out / "report.html").read_text()
    assert "cohort summary not computed" in html
    assert (out / "changes.csv").is_file() and (out / "failures.csv").is_file()


# --- write_pair / pair_files: timepoints as folder names -----------------------------------------

def _result(timepoint, bulge):
    lab = np.zeros((8, 8, 4), np.int16)
    lab[2:5, 2:5, 1:3] = 123
    return Result(subject="P1", timepoint=timepoint, scan=dm.Scan(np.zeros((8, 8, 4), np.float32), np.eye(4)),
                  segmentation=Segmentation(labels=lab, affine=np.eye(4), levels=["L4-L5"]),
                  measurements=pd.DataFrame([{"level": "L4-L5", "label": 123, "bulge_mm": bulge}]))


@pytest.mark.parametrize("bad", ["..", ".", ".hidden", "a/b", "../x"])
def test_write_pair_refuses_a_timepoint_that_is_no_plain_folder_name(tmp_path, bad):
    """timepoint='..' wrote the pre visit's files into the output folder's parent: refused now,
    before anything is written."""
    pre, post = _result(bad, 3.0), _result("m6", 2.0)
    ch = dm.compare(pre, post, register=False)
    parent = tmp_path / "parent"
    parent.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match="timepoint .* cannot be a folder name"):
            write_pair(pre, post, ch, parent / "out", pictures=False)
    assert list(parent.iterdir()) == []


def test_write_pair_refuses_equal_timepoints(tmp_path):
    """Both visits 'v': the post visit's folder silently replaced the pre one's; refused now.
    Distinct timepoints still name the two visit folders."""
    pre, post = _result("v", 3.0), _result("v", 2.0)
    ch = dm.compare(pre, post, register=False)
    with pytest.raises(InputError, match="both visits have timepoint 'v'"):
        write_pair(pre, post, ch, tmp_path / "out", pictures=False)
    assert not (tmp_path / "out").exists()
    d = tmp_path / "d"
    d.mkdir()
    with pytest.raises(InputError, match="both visits"):
        pair_files(pre, post, ch, d, pictures=False)
    assert list(d.iterdir()) == []

    pre, post = _result("base", 3.0), _result("m6", 2.0)
    write_pair(pre, post, dm.compare(pre, post, register=False), tmp_path / "out", pictures=False)
    got = {tp: pd.read_csv(tmp_path / "out" / tp / "measurements.csv").bulge_mm[0] for tp in ("base", "m6")}
    assert got == {"base": 3.0, "m6": 2.0}


@pytest.mark.parametrize("name", ["..", ".", ".hidden"])
def test_analyze_refuses_dot_names_before_any_work(name, tmp_path):
    """``analyze`` refuses a subject or timepoint that would be a folder leaving or hiding in the
    output folder ('..' wrote a pair's pre visit into the output's parent), before loading."""
    import discmeasure as dm

    for kw in ("subject", "timepoint"):
        with pytest.raises(InputError, match=f"invalid {kw}"):
            dm.analyze(tmp_path / "does-not-exist", **{kw: name})
