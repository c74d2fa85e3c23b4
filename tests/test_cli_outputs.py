"""Outputs never destroy the user's files, and options are checked before any work (QA, 2026-11-25).

Each case below was found by a QA walkthrough of the CLI and failed on the code before: the input
scan replaced by its own labels, a measure/pair output overwritten by a batch, a NaN band that
ended in an internal error, a scheduler address that left an empty output folder, the multi-echo
series dropped when the T2-weighted one was chosen by hand.
"""

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

EXE = [sys.executable, "-m", "discmeasure"]


def run(*args, cwd=None, timeout=600):
    return subprocess.run(EXE + [str(a) for a in args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stdout[-500:], r.stderr[-1500:])
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def small_nifti(tmp_path) -> Path:
    p = tmp_path / "in.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((8, 9, 3)).astype(np.float32), np.eye(4)), p)
    return p


def test_segment_never_writes_over_its_input(small_nifti):
    before = digest(small_nifti)
    one_line_error(run("segment", small_nifti, "-o", small_nifti), "is the input")
    # not even when asked to replace existing files
    one_line_error(run("segment", small_nifti, "-o", small_nifti, "--overwrite"), "is the input")
    assert digest(small_nifti) == before


def test_segment_and_t2map_refuse_existing_outputs_and_input_folders(tmp_path, small_nifti):
    victim = tmp_path / "keep.nii.gz"
    shutil.copy(small_nifti, victim)
    before = digest(victim)
    one_line_error(run("segment", small_nifti, "-o", victim), "exists", "--overwrite")
    one_line_error(run("t2map", small_nifti, "-o", victim), "exists", "--overwrite")
    # a quality map written beside the T2 map would replace a file of the user's too
    side = tmp_path / "t2_s0.nii.gz"
    shutil.copy(small_nifti, side)
    one_line_error(run("t2map", small_nifti, "-o", tmp_path / "t2.nii.gz"), "t2_s0.nii.gz", "exists")
    assert digest(victim) == before and not (tmp_path / "t2.nii.gz").exists()
    # into the input folder: refused, the folder unchanged
    folder = tmp_path / "series"
    folder.mkdir()
    shutil.copy(small_nifti, folder / "a.nii.gz")
    one_line_error(run("segment", folder, "-o", folder / "labels.nii.gz"), "inside the input folder")
    assert sorted(f.name for f in folder.iterdir()) == ["a.nii.gz"]


@pytest.mark.slow
def test_segment_overwrite_replaces_an_earlier_output(tmp_path, sample_scans):
    out = tmp_path / "labels.nii.gz"
    out.write_bytes(b"old")
    r = run("segment", sample_scans / "pre", "-o", out, "--overwrite")
    assert r.returncode == 0, r.stderr[-1500:]
    assert nib.load(out).shape[:2] == (243, 314)


def _single_output(folder: Path) -> Path:
    """A folder as `measure`/`pair` leave it (their marker, their tables)."""
    folder.mkdir()
    (folder / ".discmeasure-output").touch()
    (folder / "changes.csv").write_text("level,bulge_mm_pre\nL4-L5,4.4\n")
    return folder


def _manifest(tmp: Path, sample: Path) -> Path:
    p = tmp / "manifest.csv"
    p.write_text(f"subject,timepoint,path\nA,baseline,{sample / 'pre'}\n")
    return p


def test_batch_refuses_a_measure_or_pair_output(tmp_path, sample_scans):
    pair = _single_output(tmp_path / "pair1")
    before = digest(pair / "changes.csv")
    one_line_error(run("batch", _manifest(tmp_path, sample_scans), "--out", pair), "measure or pair output")
    assert digest(pair / "changes.csv") == before
    assert sorted(f.name for f in pair.iterdir()) == [".discmeasure-output", "changes.csv"]


@pytest.mark.parametrize("marker", ["batch\n", ""])
def test_measure_and_pair_refuse_a_batch_folder(tmp_path, sample_scans, marker):
    """Replacing a batch's root by one visit's output would delete the whole batch. A batch root
    written before its marker said "batch" is known by its failures.csv."""
    root = tmp_path / "cohort"
    root.mkdir()
    (root / ".discmeasure-output").write_text(marker)
    (root / "failures.csv").write_text("subject,timepoint,error\n")
    one_line_error(run("measure", sample_scans / "pre", "--out", root), "batch's output")
    one_line_error(run("pair", sample_scans / "pre", sample_scans / "post", "--out", root), "batch's output")
    assert sorted(f.name for f in root.iterdir()) == [".discmeasure-output", "failures.csv"]


def test_batch_root_marker_says_batch(tmp_path):
    from discmeasure.report.outputs import check_output_dir, mark_output, output_kind

    root = tmp_path / "b"
    root.mkdir()
    mark_output(root, kind="batch")
    assert output_kind(root) == "batch"
    assert check_output_dir(root, replace=False, kind="batch") == root.absolute()
    single = _single_output(tmp_path / "s")
    assert output_kind(single) == "single"
    assert check_output_dir(single) == single.absolute()


@pytest.mark.parametrize("args,words", [
    (["--workers", "0"], ["--workers", "at least 1"]),
    (["--workers", "-2"], ["--workers", "at least 1"]),
    (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], ["--workers and --scheduler"]),
    (["--scheduler", "notaurl"], ["--scheduler", "cannot connect"]),
    (["--scheduler", "tcp://127.0.0.1:1"], ["--scheduler", "cannot connect"]),
])
def test_batch_options_checked_before_any_output(tmp_path, sample_scans, args, words):
    out = tmp_path / "bo"
    one_line_error(run("batch", _manifest(tmp_path, sample_scans), "--out", out, *args, timeout=120), *words)
    assert not out.exists()


@pytest.mark.parametrize("band", ["nan", "-3", "inf"])
def test_band_checked_before_any_work(tmp_path, sample_scans, band):
    out = tmp_path / "m"
    one_line_error(run("measure", sample_scans / "pre", "--out", out, "--band-mm", band), "--band-mm", "mm")
    assert not out.exists()


def test_library_checks_repeatability_like_the_cli():
    import discmeasure as dm
    from discmeasure.comparison import check_repeatability
    from discmeasure.errors import InputError

    for bad in ({"bulge_mm": ("abs", -1.0)}, {"bulge_mm": ("abs", float("nan"))}, {"foo": ("abs", 0.8)},
                {"bulge_mm": 0.8}, {"bulge_mm": ("pct", 0.8)}, [("bulge_mm", ("abs", 0.8))]):
        with pytest.raises(InputError):
            check_repeatability(bad)
        with pytest.raises(InputError):  # checked first thing, before the visits are read
            dm.compare(None, None, repeatability=bad)
    assert check_repeatability({"bulge_mm": ("abs", 1)}) == {"bulge_mm": ("abs", 1.0)}
    assert check_repeatability(None) == {}


@pytest.mark.slow
def test_chosen_t2w_series_keeps_the_multi_echo_series(sample_scans):
    """`--t2w` on a study folder: the multi-echo series is still found (its T2 values were all
    missing, with no flag saying why)."""
    import discmeasure as dm

    r = dm.analyze(sample_scans / "pre", t2w_series="3")
    assert r.mese is not None
    assert np.isfinite(r.measurements["t2_np_ms"]).all(), r.measurements["t2_np_ms"]


def test_dual_echo_pd_t2_uses_its_t2_weighted_echo():
    """A dual-echo PD/T2 series was refused ("2 volumes") with a hint to an option that did not
    exist; its T2-weighted echo (TE >= 60 ms) is now the anatomical image, with a warning."""
    import discmeasure as dm
    from discmeasure.errors import InputError
    from discmeasure.pipeline import t2_weighted_volume

    rng = np.random.default_rng(1)
    data = np.stack([rng.normal(100.0, 3.0, (6, 7, 3)), rng.normal(40.0, 3.0, (6, 7, 3))], axis=-1).astype(np.float32)
    scan = dm.Scan(data, np.eye(4), echo_times_ms=(11.0, 92.0))
    with pytest.warns(UserWarning, match="TE 92 ms"):
        t2 = t2_weighted_volume(scan, "x")
    assert t2.ndim == 3 and np.array_equal(t2.data, data[..., 1]) and t2.meta["echo_time_ms"] == 92.0
    for tes in ((11.0, 30.0), None):  # two early echoes, or no echo times: no T2-weighted echo to take
        with pytest.raises(InputError, match="2 volumes"):
            t2_weighted_volume(dm.Scan(data, np.eye(4), echo_times_ms=tes))
    three = dm.Scan(np.concatenate([data, data[..., :1]], axis=-1), np.eye(4), echo_times_ms=(11.0, 50.0, 92.0))
    with pytest.raises(InputError, match="3 volumes"):
        t2_weighted_volume(three)


def test_dual_echo_real_series_reaches_segmentation(tmp_path, testdata):
    """dcm_qa_pdt2 (a head scan, PD/T2 TSE, TE 11 / 92 ms): the command now gets past the two
    volumes to the segmentation, which finds no vertebrae in a head."""
    src = testdata / "dicom" / "dcm_qa_pdt2" / "In"
    r = run("segment", src, "-o", tmp_path / "l.nii.gz")
    assert r.returncode == 2, r.stderr
    warn, error = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert warn.startswith("warning:") and "dual-echo series (TE 11 / 92 ms)" in warn, warn
    # the error names the scan (segment's errors named no file)
    assert error.startswith(f"error: {src}: ") and "vertebral bodies" in error, error
    assert not (tmp_path / "l.nii.gz").exists()


@pytest.mark.parametrize("subject", ["", " ", "a/b", "..", ".hidden"])
def test_empty_or_path_like_subject_refused(tmp_path, sample_scans, subject):
    out = tmp_path / "m"
    one_line_error(run("measure", sample_scans / "pre", "--out", out, "--subject", subject), "invalid subject")
    assert not out.exists()


def test_batch_failures_hold_no_input_paths(tmp_path):
    """failures.csv goes with the cohort tables; an input path can hold a patient's name."""
    from discmeasure.batch import _without_paths

    v = {"path": "/data/Doe_John/study", "mese": "", "labels": "/data/Doe_John/l.nii.gz"}
    msg = _without_paths("/data/Doe_John/study/IM0001.dcm: cannot decode; /data/Doe_John/l.nii.gz: bad", v)
    assert "Doe_John" not in msg and msg == "<path>/IM0001.dcm: cannot decode; <labels>: bad"


def test_multi_echo_series_of_another_frame_or_place_is_flagged(sample_scans):
    """T2 ROIs go to the multi-echo series through world coordinates: a series of another frame of
    reference, or one covering no disc, gave numbers (or none) without a word."""
    import discmeasure as dm
    from discmeasure.io import load_study

    st = load_study(sample_scans / "pre")
    mese = st.mese
    other = dm.Scan(mese.data, mese.affine, echo_times_ms=mese.echo_times_ms,
                    meta={**mese.meta, "frame_of_reference_uid": "1.2.3.4"})
    with pytest.warns(UserWarning, match="another frame of reference"):
        r = dm.analyze(st.t2w, mese=other)
    assert all("t2_other_frame_of_reference" in f for f in r.measurements.qc_flags)
    far = mese.affine.copy()
    far[:3, 3] += (0.0, 0.0, 400.0)  # 40 cm up: no disc inside
    with pytest.warns(UserWarning, match="covers none of the discs"):
        r = dm.analyze(st.t2w, mese=dm.Scan(mese.data, far, echo_times_ms=mese.echo_times_ms, meta=dict(mese.meta)))
    assert all("t2_series_covers_no_disc" in f for f in r.measurements.qc_flags)
    # the same session's series: no such flag
    r = dm.analyze(st.t2w, mese=mese)
    assert not any("t2_other" in f or "covers_no_disc" in f for f in r.measurements.qc_flags)


def test_batch_dicom_seg_refuses_a_nifti_visit_before_segmenting(tmp_path, small_nifti):
    """It segmented the visit first and failed only when writing the SEG."""
    import pandas as pd

    m = tmp_path / "m.csv"
    m.write_text(f"subject,timepoint,path\nP2,baseline,{small_nifti}\n")
    r = run("batch", m, "--out", tmp_path / "b", "--dicom-seg", "--no-pictures")
    assert r.returncode == 1, r.stderr
    err = pd.read_csv(tmp_path / "b" / "failures.csv").error[0]
    assert "is not DICOM" in err and str(small_nifti) not in err and err.startswith("<path>:"), err


def test_measure_takes_the_label_convention(tmp_path, testdata):
    """The import's error asked for convention=, which the CLI did not have."""
    d = testdata / "spine" / "tptbox_cervical"
    scan, vert = d / "sub-mri_label-6_T2w.nii.gz", d / "sub-mri_seg-vert_label-6_msk.nii.gz"
    one_line_error(run("measure", scan, "--labels", vert, "--convention", "bogus", "--out", tmp_path / "x"),
                   "unknown label convention")
    assert not (tmp_path / "x").exists()
    r = run("measure", scan, "--labels", vert, "--convention", "spineps", "--out", tmp_path / "y")
    assert r.returncode == 0, r.stderr[-1500:]
    import json

    prov = json.loads((tmp_path / "y" / "measurements.json").read_text())
    assert "labels:spineps" in json.dumps(prov)


def test_a_label_map_is_not_segmented(tmp_path, sample_scans):
    """`segment labels.nii.gz` "segmented" a label map and reported levels."""
    r = run("segment", sample_scans / "pre", "-o", tmp_path / "l.nii.gz")
    assert r.returncode == 0, r.stderr[-1500:]
    one_line_error(run("segment", tmp_path / "l.nii.gz", "-o", tmp_path / "l2.nii.gz"), "a label map, not an MR image")
    one_line_error(run("measure", tmp_path / "l.nii.gz", "--out", tmp_path / "m"), "a label map, not an MR image")
    assert not (tmp_path / "l2.nii.gz").exists() and not (tmp_path / "m").exists()
