"""``discmeasure batch MANIFEST.csv --out DIR [--workers N | --scheduler ADDRESS] [--resume]``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import DICOM_SEG_HELP, RC_HELP, UNCERTAINTY_HELP, console, err


@app.command("batch")
def batch_cmd(
    manifest: Path = typer.Argument(..., help="CSV with columns subject,timepoint,path (+ mese, labels)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder."),
    workers: int = typer.Option(1, help="Local worker processes (Dask LocalCluster when > 1)."),
    scheduler: Optional[str] = typer.Option(None, help="Address of an existing Dask scheduler (tcp://host:port)."),
    resume: bool = typer.Option(False, help="Skip subjects whose outputs are complete (checked by hashes)."),
    pictures: bool = typer.Option(True, help="Write QC pictures (--no-pictures: the per-visit HTML reports are still written, with tables only)."),
    rc: Optional[list[str]] = typer.Option(None, "--rc", help=RC_HELP),
    dicom_seg: bool = typer.Option(False, "--dicom-seg", help=DICOM_SEG_HELP),
    uncertainty: int = typer.Option(0, "--uncertainty", metavar="N", help=UNCERTAINTY_HELP),
):
    """Process every visit of a manifest, compare each subject's visits with the first, summarise the cohort."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..batch import run_batch
    from ..comparison import parse_repeatability

    repeatability = parse_repeatability(rc)  # a bad --rc fails before the work (run_batch refuses a bad --uncertainty first)

    with Progress(TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                  transient=True, disable=not sys.stderr.isatty()) as prog:
        task = prog.add_task("subjects", total=None)

        def cb(done, total):
            prog.update(task, completed=done, total=total)

        res = run_batch(manifest, out, workers=workers, scheduler=scheduler, resume=resume, pictures=pictures, progress=cb,
                        repeatability=repeatability, dicom_seg=dicom_seg, uncertainty=uncertainty)
    nf = len(res["failures"])
    console.print(f"cohort: {out / 'cohort.csv'} ({len(res['cohort'])} rows); changes: {out / 'changes.csv'}; "
                  f"resumed {len(res['skipped'])}; failures: {nf}", soft_wrap=True)
    if nf:
        for _, r in res["failures"].iterrows():
            print(f"failed {r.subject}/{r.timepoint}: {r.error}", file=sys.stderr)
        print(f"error: {nf} visit(s) failed; see {out / 'failures.csv'}", file=sys.stderr)
        raise typer.Exit(1)
