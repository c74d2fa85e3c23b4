"""QA findings on choosing a series: a series number given as text (finding 1), a dual-echo PD/T2
study folder (finding 2), the phase component of a series (finding 14)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import discmeasure as dm
from discmeasure.errors import InputError, SeriesSelectionError
from discmeasure.io import load, load_study
from discmeasure.io.dicom import SeriesInfo, scan_folder, select_series

EXE = [sys.executable, "-m", "discmeasure"]
PDT2 = Path("dicom") / "dcm_qa_pdt2"
PHILIPS = Path("dicom") / "dcm_qa_philips_enh"


def run(*args):
    return subprocess.run(EXE + [str(a) for a in args], capture_output=True, text=True, timeout=600)


def _renumbered_pre(sample_scans, dest: Path, *, number: int = 2, description: str | None = None) -> Path:
    """A copy of the sample pre study whose T2-weighted series (#3 'T2 TSE SAG') has SeriesNumber
    ``number`` (and ``description``); the multi-echo series stays #7 'T2 MAP MESE SAG'."""
    import pydicom

    shutil.copytree(sample_scans / "pre", dest)
    for f in sorted((dest / "T2W_SAG").iterdir()):
        ds = pydicom.dcmread(f)
        ds.SeriesNumber = number
        if description is not None:
            ds.SeriesDescription = description
        ds.save_as(f)
    return dest


def _fake(uid: str, number: int | None, description: str, comp: str = "M") -> SeriesInfo:
    """A series entry without images, for the selection rules alone."""
    return SeriesInfo(f"{uid}|{'' if number is None else number}|{comp}", uid, number, description)


def _comp(info: SeriesInfo) -> str:
    return info.key.rsplit("|", 1)[-1]


# 1. a series number given as text ---------------------------------------------------------------

def test_series_number_text_wins_over_description_digits(sample_scans, tmp_path):
    """'2' is the number of 'T2 TSE SAG' and a digit of 'T2 MAP MESE SAG' (#7): the series numbered 2
    is chosen (it was refused: "2 series match '2'"), by load, load_study and Study.load."""
    study = _renumbered_pre(sample_scans, tmp_path / "pre2")
    scan = load(study, series="2")
    assert scan.meta["series_number"] == 2 and scan.meta["series_description"] == "T2 TSE SAG"
    st = load_study(study, t2w="2", mese="7")
    assert st.t2w.meta["series_number"] == 2 and st.mese.meta["series_number"] == 7
    assert [s["role"] for s in st.series] == ["t2w", "mese"]
    assert st.load("2").meta["series_number"] == 2
    assert load(study, series=" 2 ").meta["series_number"] == 2  # as typed, with spaces
    assert load(study, series=2).meta["series_number"] == 2  # an int, as before


def test_cli_series_number_text(sample_scans, tmp_path):
    """Every CLI value is a string: `measure --t2w 2` and `segment --series 2` take series #2."""
    study = _renumbered_pre(sample_scans, tmp_path / "pre2")
    r = run("segment", study, "--series", "2", "-o", tmp_path / "seg.nii.gz")
    assert r.returncode == 0, r.stderr
    assert "L4-L5" in r.stdout and "series match" not in r.stderr
    r = run("measure", study, "--t2w", "2", "--out", tmp_path / "m")
    assert r.returncode == 0, r.stderr
    import json

    series = json.loads((tmp_path / "m" / "measurements.json").read_text())["provenance"]["series"]
    assert series["t2w"]["series_number"] == 2 and series["mese"]["series_number"] == 7


def test_series_number_text_among_same_descriptions(testdata):
    """dcm_qa_ts: nine series all described 'ax_asc_35sl' (and the UIDs hold the digit 3): '3' is #3."""
    folder = testdata / "dicom" / "dcm_qa_ts" / "In"
    assert load(folder, series="3").meta["series_number"] == 3
    assert load(folder, series="9").meta["series_number"] == 9


def test_number_no_series_has_still_matches_description(sample_scans, tmp_path):
    """Digits that are no series' number still match a description ('384' of 't2_tse_sag_384')."""
    study = _renumbered_pre(sample_scans, tmp_path / "pre384", number=3, description="t2_tse_sag_384")
    assert load(study, series="384").meta["series_description"] == "t2_tse_sag_384"
    assert load(study, series="3").meta["series_number"] == 3


def test_series_sharing_a_number_keep_the_rules_among_them():
    """Several series with the number asked for: magnitude preferred over phase; two magnitude
    series of one number (two acquisitions) stay ambiguous, listing only those two."""
    a_m, a_p = _fake("1.2.3", 5, "gre_field_map"), _fake("1.2.3", 5, "gre_field_map", "P")
    other = _fake("1.2.9", 6, "t2_tse_sag_5")
    assert select_series([a_m, a_p, other], "5", "study") is a_m
    b_m = _fake("1.2.4", 5, "gre_field_map_2")
    with pytest.raises(SeriesSelectionError) as ei:
        select_series([a_m, b_m, other], "5", "study")
    msg = str(ei.value)
    assert "2 series match '5'" in msg and "t2_tse_sag_5" not in msg and "\n" not in msg


# 2. a dual-echo PD/T2 study folder --------------------------------------------------------------

def test_load_study_takes_dual_echo_as_t2w(testdata):
    """dcm_qa_pdt2 (only a sagittal pd+t2_tse, TE 11/92 ms, TR 4320 ms): the T2-weighted candidate
    (it was refused: "no T2-weighted or multi-echo series recognised"); the pipeline measures its
    92 ms echo with a warning."""
    from discmeasure.pipeline import load_anatomy, t2_weighted_volume

    folder = testdata / PDT2 / "In"
    st = load_study(folder)
    assert st.t2w_key is not None and st.mese_key is None
    assert [s["role"] for s in st.series] == ["t2w"]
    assert st.t2w.echo_times_ms == pytest.approx([11.0, 92.0], abs=0.5)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        t2 = t2_weighted_volume(st.t2w, folder)
        anat = load_anatomy(folder)  # what pair registers
    assert t2.ndim == 3 and anat.ndim == 3
    np.testing.assert_array_equal(np.asarray(t2.data), np.asarray(st.t2w.data)[..., 1])
    assert sum("dual-echo series (TE 11 / 92 ms)" in str(w.message) for w in rec) == 2


def test_dual_echo_after_single_echo_t2w_before_fallback(testdata, sample_scans, tmp_path):
    """In one folder: a single-echo T2-weighted series is still preferred to the dual-echo one; the
    dual-echo one is preferred to the fallback (a single-echo series with a short TE); a real
    multi-echo series (10 echoes) stays the mese, never the t2w."""
    folder = tmp_path / "study"
    shutil.copytree(testdata / PDT2 / "In", folder / "pdt2")
    shutil.copytree(sample_scans / "pre" / "T2MAP_MESE_SAG", folder / "mese")
    pdt2_key = scan_folder(testdata / PDT2 / "In")[0].key
    st = load_study(folder)
    assert st.t2w_key == pdt2_key
    assert st.mese is not None and len(st.mese.echo_times_ms) == 10
    # a single-echo series with TE 30 ms (axial, TR 3000): once the only candidate besides the PD/T2
    shutil.copy(testdata / "dicom" / "dcm_qa_ts" / "In" / "1.dcm", folder / "te30.dcm")
    assert load_study(folder).t2w_key == pdt2_key
    shutil.copytree(sample_scans / "pre" / "T2W_SAG", folder / "t2w")
    st = load_study(folder)
    assert st.t2w.meta["series_description"] == "T2 TSE SAG" and st.t2w.ndim == 3
    assert len(st.mese.echo_times_ms) == 10


def test_measure_pair_batch_reach_the_dual_echo_rule(testdata, tmp_path):
    """measure, pair and batch on the dual-echo folder get as far as segment does: the one-line
    warning that the 92 ms echo is measured, not the refusal (what segmentation then makes of
    this head phantom is not this test's concern)."""
    folder = testdata / PDT2 / "In"
    warned = "dual-echo series (TE 11 / 92 ms): measuring its T2-weighted echo, TE 92 ms"
    refused = "no T2-weighted or multi-echo series recognised"
    r = run("measure", folder, "--out", tmp_path / "m")
    assert warned in r.stderr and refused not in r.stderr, r.stderr
    r = run("pair", folder, folder, "--out", tmp_path / "p", "--no-parallel")
    assert warned in r.stderr and refused not in r.stderr, r.stderr
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(f"subject,timepoint,path\ns1,pre,{folder}\n")
    r = run("batch", manifest, "--out", tmp_path / "b", "--workers", "1", "--no-pictures")
    failures = tmp_path / "b" / "failures.csv"
    text = r.stderr + (failures.read_text() if failures.exists() else "")
    assert refused not in text, text


def test_no_t2w_hint_right_for_every_command(testdata, tmp_path):
    """A folder with neither (dcm_qa_philips_enh: a dual-echo gradient echo, TE 2.3/4.6 ms, not T2-
    weighted): the hint names the options where they exist (measure), not as if every command had
    --t2w / --mese (pair said so, without having them)."""
    folder = testdata / PHILIPS / "In"
    with pytest.raises(InputError) as ei:
        load_study(folder)
    hint = ei.value.hint
    assert "measure --t2w/--mese" in hint and "load_study" in hint
    assert "on the command line" not in hint
    r = run("pair", folder, folder, "--out", tmp_path / "p", "--no-parallel")
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert str(folder) in lines[0] and "no T2-weighted or multi-echo series recognised" in lines[0]
    assert "measure --t2w/--mese" in lines[0] and "--t2w / --mese on the command line" not in lines[0]


# 14. the phase component ------------------------------------------------------------------------

@pytest.mark.parametrize("sel", ["phase", "P", "[P]", "Phase", "2001 phase", "2001 [P]",
                                 "fcMRI Field Mapping [P]", "fcMRI Field Mapping (phase)", "Mapping (phase)"])
def test_phase_selected_by_component(testdata, sel):
    """dcm_qa_philips_enh: magnitude and phase share number 2001, UID and description; `info` shows
    the phase as 'fcMRI Field Mapping [P]', error listings as '(phase)'. Each of these selects the
    phase ('P' returned the magnitude, 'phase' found nothing)."""
    folder = testdata / PHILIPS / "In"
    assert _comp(select_series(scan_folder(folder), sel, folder)) == "P"


def test_phase_loaded_equals_dcm2niix_phase(testdata):
    d = testdata / PHILIPS
    s = dm.load(d / "In", series="phase")
    assert len(s.echo_times_ms) == 2
    for e in (0, 1):
        ref = nib.as_closest_canonical(nib.load(str(d / "Ref" / f"2001_WIP_fcMRI_Field_Mapping_enh_e{e + 1}_ph.nii.gz")))
        ours = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(s.data[..., e]), s.affine))
        np.testing.assert_allclose(ours.affine, ref.affine, atol=1e-3)
        np.testing.assert_allclose(ours.get_fdata(), ref.get_fdata(), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("sel", [None, 2001, "2001", "fcMRI", "fcMRI Field Mapping", "magnitude", "2001 magnitude"])
def test_magnitude_still_the_default(testdata, sel):
    """Nothing asked, or a number/description common to both: the magnitude, as documented."""
    folder = testdata / PHILIPS / "In"
    assert _comp(select_series(scan_folder(folder), sel, folder)) == "M"


def test_phase_request_never_answered_with_magnitude():
    """Asking for the phase gives a phase series or an error, never a magnitude: a phase of another
    number is no answer to '5 phase'; phases of two acquisitions are ambiguous (listed, one line)."""
    a_m, a_p = _fake("1.2.3", 5, "gre_field_map"), _fake("1.2.3", 5, "gre_field_map", "P")
    b_m, b_p = _fake("1.2.4", 6, "gre_field_map"), _fake("1.2.4", 6, "gre_field_map", "P")
    series = [a_m, a_p, b_m, b_p]
    assert select_series(series, "5 phase", "study") is a_p
    assert select_series(series, "6 [P]", "study") is b_p
    assert select_series([a_m, a_p], "gre_field_map", "study") is a_m  # magnitude preferred, as before
    with pytest.raises(SeriesSelectionError) as ei:
        select_series(series, "phase", "study")
    msg = str(ei.value)
    assert "2 series match 'phase'" in msg and "\n" not in msg
    assert "#5 'gre_field_map' (phase)" in msg and "#6 'gre_field_map' (phase)" in msg
    assert "phase or [P]" in msg
    with pytest.raises(SeriesSelectionError, match="no series matches '7 phase'"):
        select_series([a_m, a_p, _fake("1.2.5", 7, "t2_tse")], "7 phase", "study")
