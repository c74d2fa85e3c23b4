"""``discmeasure pair PRE POST --out DIR``: two visits of one patient.

On POSIX systems with more than one CPU the two visits are analysed (and their folders written)
in two forked worker processes while this process loads the two T2-weighted series and runs the
rigid registration of the level-correspondence check; the comparison and the pair report follow.
Every step computes exactly what the one-process path computes, so the outputs are the same.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import (DICOM_SEG_HELP, RC_HELP, UNCERTAINTY_HELP, change_table, console,
                      level_table, progress_bar)


def _visit_job(path: str, subject: str, timepoint: str, t2_method: str, out_dir: str, pictures: bool,
               dicom_seg: bool = False, uncertainty: int = 0):
    """Worker process: analyse one visit and write its folder; returns the Result."""
    from ..pipeline import analyze
    from ..report.outputs import visit_files
    from ..t2._parallel import single_blas_thread

    # the other visit and the registration use the other core(s): no nested threads here
    # (per-visit results do not depend on the thread counts)
    os.environ["DISCMEASURE_THREADS"] = "1"
    with single_blas_thread():
        res = analyze(path, subject=subject, timepoint=timepoint, t2_method=t2_method, uncertainty=uncertainty)
        visit_files(res, Path(out_dir), pictures=pictures, dicom_source=path if dicom_seg else None)
    return res


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def parallel_possible() -> bool:
    """Fork-based worker processes are available and there is more than one CPU."""
    return "fork" in mp.get_all_start_methods() and _usable_cpus() > 1


def _run_pair_parallel(pre: Path, post: Path, out: Path, *, subject, t2_method, pictures, cb, repeatability=None,
                       dicom_seg=False, uncertainty=0):
    from concurrent.futures import ProcessPoolExecutor

    from ..batch import preload_modules
    from ..comparison import compare, register_rigid
    from ..pipeline import default_subject, load_anatomy
    from ..report.outputs import pair_files, staged_dir

    scan_pre = load_anatomy(pre)  # needed anyway for the registration; also fixes the subject id
    subject = subject or default_subject(scan_pre)
    preload_modules(pictures)  # imported once, shared copy-on-write by the forked workers
    with staged_dir(out) as d, ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as ex:
        futs = [ex.submit(_visit_job, str(path), subject, tp, t2_method, str(d / tp), pictures, dicom_seg, uncertainty)
                for path, tp in ((pre, "pre"), (post, "post"))]
        cb("registration", 0.1)
        try:
            reg = register_rigid(scan_pre, load_anatomy(post))
        except Exception:  # noqa: BLE001 -- a bad post input: report the workers' (same) error first
            for f in futs:
                f.result()
            raise
        cb("pre/post analyses", 0.4)
        a, b = (f.result() for f in futs)
        cb("compare", 0.9)
        ch = compare(a, b, registration=reg, repeatability=repeatability)
        pair_files(a, b, ch, d, pictures=pictures, visits=False)
    return a, b, ch


def run_pair(pre: Path, post: Path, out: Path, *, subject: Optional[str] = None, t2_method: str = "epg",
             pictures: bool = True, show=True, parallel: Optional[bool] = None, repeatability: Optional[dict] = None,
             dicom_seg: bool = False, uncertainty: int = 0):
    """Analyse, compare and report two visits. ``parallel``: default :func:`parallel_possible`;
    ``repeatability``: overrides of :data:`discmeasure.comparison.REPEATABILITY`; ``dicom_seg``: also
    write each visit's labels as a DICOM SEG on its T2-weighted series, and its measurements as a
    DICOM SR on that SEG; ``uncertainty``: moved re-analyses per visit for each level's own
    uncertainty (``analyze(..., uncertainty=)``; 0 = none)."""
    from ..comparison import compare
    from ..pipeline import analyze, check_t2_method
    from ..report import write_pair
    from ..report.outputs import check_output_dir
    from ..uncertainty import check_uncertainty

    check_output_dir(out)  # refuse before the work, not after it
    check_uncertainty(uncertainty)
    check_t2_method(t2_method)  # before the workers and the staged output folder
    if dicom_seg:
        from ..io.load import require_dicom_input

        for p in (pre, post):
            require_dicom_input(p)
    if Path(pre).resolve() == Path(post).resolve():
        print(f"warning: {pre}: PRE and POST are the same input; every change will be zero", file=sys.stderr)
    if parallel is None:
        parallel = parallel_possible()
    prog, cb = progress_bar("pre/post")
    with prog:
        if parallel:
            a, b, ch = _run_pair_parallel(Path(pre), Path(post), Path(out), subject=subject, t2_method=t2_method,
                                          pictures=pictures, cb=cb, repeatability=repeatability, dicom_seg=dicom_seg,
                                          uncertainty=uncertainty)
        else:
            a = analyze(pre, subject=subject, timepoint="pre", t2_method=t2_method, uncertainty=uncertainty,
                        progress=lambda s, f: cb(f"pre {s}", f / 2))
            b = analyze(post, subject=subject or a.subject, timepoint="post", t2_method=t2_method,
                        uncertainty=uncertainty, progress=lambda s, f: cb(f"post {s}", 0.5 + f / 2))
            ch = compare(a, b, repeatability=repeatability)
            write_pair(a, b, ch, out, pictures=pictures, dicom_sources=(pre, post) if dicom_seg else None)
    if show:
        console.print(level_table(a.measurements, f"{a.subject} pre"))
        console.print(level_table(b.measurements, f"{b.subject} post"))
        console.print(change_table(ch, "change post - pre"))
        console.print(f"written: {out}")
    return a, b, ch


@app.command("pair")
def pair_cmd(
    pre: Path = typer.Argument(..., help="Baseline study folder."),
    post: Path = typer.Argument(..., help="Follow-up study folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (written atomically)."),
    subject: Optional[str] = typer.Option(None, help="Pseudonymous subject id (default: made from PRE as by measure: "
                                                   "a hash of its study UID, or of its image content)."),
    t2_method: str = typer.Option("epg", help="T2 fit: epg, mono or loglinear."),
    parallel: bool = typer.Option(True, help="Analyse the two visits in two processes (when possible)."),
    rc: Optional[list[str]] = typer.Option(None, "--rc", help=RC_HELP),
    dicom_seg: bool = typer.Option(False, "--dicom-seg", help=DICOM_SEG_HELP),
    uncertainty: int = typer.Option(0, "--uncertainty", metavar="N", help=UNCERTAINTY_HELP),
):
    """Measure two visits of one patient and compare them level by level."""
    from ..comparison import parse_repeatability

    repeatability = parse_repeatability(rc)  # a bad --rc fails before the work
    run_pair(pre, post, out, subject=subject, t2_method=t2_method, parallel=None if parallel else False,
             repeatability=repeatability, dicom_seg=dicom_seg, uncertainty=uncertainty)
