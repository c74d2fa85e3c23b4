"""Batch: failures recorded, resume after SIGKILL gives the same cohort table, 1 vs 2 workers agree."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

EXE = [sys.executable, "-m", "discmeasure"]


def manifest(tmp: Path, sample: Path, bad: bool = True) -> Path:
    rows = ["subject,timepoint,path"]
    for s in ("A", "B"):
        rows += [f"{s},baseline,{sample / 'pre'}", f"{s},month12,{sample / 'post'}"]
    if bad:
        rows += [f"C,baseline,{tmp / 'nope'}"]
    p = tmp / "manifest.csv"
    p.write_text("\n".join(rows) + "\n")
    return p


@pytest.mark.slow
def test_batch_failures_and_kill_resume(tmp_path, sample_scans):
    m = manifest(tmp_path, sample_scans)
    ref = tmp_path / "ref"
    r = subprocess.run(EXE + ["batch", str(m), "--out", str(ref), "--no-pictures"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith("error:")
    fails = pd.read_csv(ref / "failures.csv")
    assert list(fails.subject) == ["C"] and "no such file" in fails.error[0]
    cohort = pd.read_csv(ref / "cohort.csv")
    assert set(cohort.subject) == {"A", "B"} and set(cohort.timepoint) == {"baseline", "month12"}
    ch = pd.read_csv(ref / "changes.csv")
    assert set(ch.subject) == {"A", "B"} and (ch.level == "L4-L5").sum() == 2

    # kill -9 after the first subject is complete, then resume
    out = tmp_path / "killed"
    p = subprocess.Popen(EXE + ["batch", str(m), "--out", str(out), "--no-pictures"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not (out / "A" / ".done.json").exists() and time.time() - t0 < 300:
        time.sleep(0.2)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    r2 = subprocess.run(EXE + ["batch", str(m), "--out", str(out), "--resume", "--no-pictures"], capture_output=True,
                        text=True, timeout=900)
    assert r2.returncode == 1
    assert "resumed 1" in r2.stdout
    pd.testing.assert_frame_equal(pd.read_csv(out / "cohort.csv"), cohort)
    assert not list(out.rglob(".*.tmp*"))

    # a manifest row that now points to other data: that subject runs again (before, --resume kept
    # its old outputs, since the marker held only the outputs' hashes)
    m.write_text(m.read_text().replace(f"A,month12,{sample_scans / 'post'}", f"A,month12,{sample_scans / 'pre'}"))
    r3 = subprocess.run(EXE + ["batch", str(m), "--out", str(out), "--resume", "--no-pictures"], capture_output=True,
                        text=True, timeout=900)
    assert r3.returncode == 1 and "resumed 1" in r3.stdout, r3.stdout  # B only
    a = pd.read_csv(out / "A" / "baseline" / "measurements.csv")
    b = pd.read_csv(out / "A" / "month12" / "measurements.csv")
    pd.testing.assert_frame_equal(a, b)  # both visits of A are now the same study
    assert not (pd.read_csv(out / "B" / "month12" / "measurements.csv")).equals(a)

    # other repeatability coefficients: every subject runs again and its changes carry the new flags
    r4 = subprocess.run(EXE + ["batch", str(m), "--out", str(out), "--resume", "--no-pictures", "--rc", "bulge_mm=0.5"],
                        capture_output=True, text=True, timeout=900)
    assert r4.returncode == 1 and "resumed 0" in r4.stdout, r4.stdout
    ch = pd.read_csv(out / "changes.csv").set_index(["subject", "level"])
    assert abs(ch.loc[("B", "L4-L5"), "bulge_mm_delta"]) > 0.5
    assert not ch.loc[("B", "L4-L5"), "bulge_mm_within_repeatability"]
    assert ch.loc[("B", "L3-L4"), "bulge_mm_within_repeatability"]
    r5 = subprocess.run(EXE + ["batch", str(m), "--out", str(out), "--resume", "--no-pictures", "--rc", "bulge_mm=0.5"],
                        capture_output=True, text=True, timeout=900)
    assert "resumed 2" in r5.stdout, r5.stdout

    # DICOM SEG asked for: subjects written without it run again and get one per visit
    assert not list(out.rglob("labels.seg.dcm"))
    r6 = subprocess.run(EXE + ["batch", str(m), "--out", str(out), "--resume", "--no-pictures", "--rc", "bulge_mm=0.5",
                               "--dicom-seg"], capture_output=True, text=True, timeout=900)
    assert r6.returncode == 1 and "resumed 0" in r6.stdout, r6.stdout
    for name in ("labels.seg.dcm", "measurements.sr.dcm"):  # and the measurements as a DICOM SR on it
        assert sorted(str(p.relative_to(out)) for p in out.rglob(name)) == [
            f"{s}/{tp}/{name}" for s in ("A", "B") for tp in ("baseline", "month12")]
    pd.testing.assert_frame_equal(pd.read_csv(out / "changes.csv").set_index(["subject", "level"]), ch)
    r7 = subprocess.run(EXE + ["batch", str(m), "--out", str(out), "--resume", "--no-pictures", "--rc", "bulge_mm=0.5",
                               "--dicom-seg"], capture_output=True, text=True, timeout=900)
    assert "resumed 2" in r7.stdout, r7.stdout
    # a subject written before the SEG came with its DICOM SR (marker consistent, no SR): runs again
    import json

    (out / "A" / "baseline" / "measurements.sr.dcm").unlink()
    (out / "A" / "month12" / "measurements.sr.dcm").unlink()
    mk = out / "A" / ".done.json"
    saved = json.loads(mk.read_text())
    saved["files"] = {k: v for k, v in saved["files"].items() if not k.endswith("measurements.sr.dcm")}
    mk.write_text(json.dumps(saved))
    r8 = subprocess.run(EXE + ["batch", str(m), "--out", str(out), "--resume", "--no-pictures", "--rc", "bulge_mm=0.5",
                               "--dicom-seg"], capture_output=True, text=True, timeout=900)
    assert "resumed 1" in r8.stdout, r8.stdout
    assert (out / "A" / "baseline" / "measurements.sr.dcm").is_file()



@pytest.mark.slow
def test_batch_one_and_two_workers_identical(tmp_path, sample_scans):
    """The in-process run and the 2-worker Dask run write the same tables and per-visit files."""
    m = manifest(tmp_path, sample_scans, bad=False)
    for w in (1, 2):
        r = subprocess.run(EXE + ["batch", str(m), "--out", str(tmp_path / f"w{w}"), "--workers", str(w), "--no-pictures"],
                           capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stderr[-3000:]
    one, two = tmp_path / "w1", tmp_path / "w2"
    files = ["cohort.csv", "changes.csv", "failures.csv"]
    for s in ("A", "B"):
        files.append(f"{s}/changes.csv")
        files += [f"{s}/{tp}/measurements.csv" for tp in ("baseline", "month12")]
    for f in files:
        assert (one / f).read_bytes() == (two / f).read_bytes(), f
    assert len(pd.read_csv(one / "cohort.csv")) > 0 and set(pd.read_csv(one / "changes.csv").subject) == {"A", "B"}

def test_manifest_errors(tmp_path):
    from discmeasure.batch import read_manifest
    from discmeasure.errors import InputError

    (tmp_path / "m.csv").write_text("subject,path\nA,x\n")
    with pytest.raises(InputError, match="timepoint"):
        read_manifest(tmp_path / "m.csv")
    (tmp_path / "d.csv").write_text("subject,timepoint,path\nA,t0,x\nA,t0,y\n")
    with pytest.raises(InputError, match="duplicate"):
        read_manifest(tmp_path / "d.csv")
    with pytest.raises(InputError, match="not found"):
        read_manifest(tmp_path / "nope.csv")


@pytest.mark.slow
def test_batch_uncertainty_flags_and_resume(tmp_path, sample_scans):
    """``batch --uncertainty N``: each visit carries its levels' SDs, each change is flagged against
    its level's own MDC95 (the sample pair's designed L4-L5 change is beyond it, the unchanged
    levels within theirs, as in the demo), the cohort summary says so, and a resume made with
    another N runs the subject again. A bad N is refused before anything is written."""
    m = tmp_path / "manifest.csv"
    m.write_text(f"subject,timepoint,path\nA,baseline,{sample_scans / 'pre'}\nA,month12,{sample_scans / 'post'}\n")
    bad = subprocess.run(EXE + ["batch", str(m), "--out", str(tmp_path / "bad"), "--uncertainty", "9"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "2 to 8" in bad.stderr, bad.stderr
    assert not (tmp_path / "bad").exists()

    out = tmp_path / "u"
    r = subprocess.run(EXE + ["batch", str(m), "--out", str(out), "--no-pictures", "--uncertainty", "4"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    visit = pd.read_csv(out / "A" / "baseline" / "measurements.csv").set_index("level")
    assert (visit["uncertainty_n"] == 5).all() and (visit["bulge_sd_mm"] > 0).all()
    ch = pd.read_csv(out / "changes.csv").set_index("level")
    beyond = ch.index[~ch["bulge_mm_within_uncertainty"].astype(bool)].tolist()
    assert beyond == ["L4-L5"], ch[["bulge_mm_delta", "bulge_mm_mdc95"]]
    assert ch["bulge_mm_within_repeatability"].astype(bool).all()
    assert "subjects_reduced_beyond_mdc95" in (out / "report.html").read_text()
    again = subprocess.run(EXE + ["batch", str(m), "--out", str(out), "--no-pictures", "--uncertainty", "4", "--resume"],
                           capture_output=True, text=True, timeout=900)
    assert "resumed 1" in again.stdout, again.stdout
    plain = subprocess.run(EXE + ["batch", str(m), "--out", str(out), "--no-pictures", "--resume"],
                           capture_output=True, text=True, timeout=900)
    assert plain.returncode == 0 and "resumed 0" in plain.stdout, plain.stdout
    assert not any(c.endswith("_mdc95") for c in pd.read_csv(out / "changes.csv").columns)
