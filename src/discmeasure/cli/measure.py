"""``discmeasure measure STUDY --out DIR``: one visit."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import (DICOM_SEG_HELP, UNCERTAINTY_HELP, console, level_table,
                      progress_bar)


@app.command("measure")
def measure_cmd(
    study: Path = typer.Argument(..., help="Study folder (series chosen automatically) or one series / NIfTI."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (written atomically)."),
    t2w: Optional[str] = typer.Option(None, help="T2-weighted series (number, UID or description) in a study folder."),
    mese: Optional[str] = typer.Option(None, help="Multi-echo series for T2 (number/UID/description, or a path)."),
    labels: Optional[Path] = typer.Option(None, help="Label map to import instead of segmenting."),
    convention: str = typer.Option("auto", help="Convention of --labels: auto (from its values), discmeasure, spineps, "
                                                "totalspineseg, spider, totalsegmentator_vertebrae_mr, "
                                                "totalsegmentator_total_mr."),
    subject: Optional[str] = typer.Option(None, help="Pseudonymous subject id (default: a hash of the study UID; "
                                                   "of the image content for an input without one, e.g. a NIfTI)."),
    timepoint: str = typer.Option("visit", help="Visit name."),
    t2_method: str = typer.Option("epg", help="T2 fit: epg, mono or loglinear."),
    band_mm: float = typer.Option(5.0, help="Half-width of the sagittal band searched for the maximum bulge."),
    refine_edges: bool = typer.Option(True, "--refine-edges/--label-outlines",
                                      help="Bulge boundaries on the image's edges (default) or on the label outlines only."),
    dicom_seg: bool = typer.Option(False, "--dicom-seg", help=DICOM_SEG_HELP),
    uncertainty: int = typer.Option(0, "--uncertainty", metavar="N", help=UNCERTAINTY_HELP),
):
    """Segment, fit T2 and measure every disc level of one visit."""
    from ..pipeline import analyze, check_t2_method
    from ..report import write_visit
    from ..report.outputs import check_output_dir

    check_t2_method(t2_method)  # before any work or output (analyze checks it too)
    check_output_dir(out)  # refuse before the work, not after it (analyze refuses a bad --uncertainty first thing)
    if dicom_seg:
        from ..io.load import require_dicom_input

        require_dicom_input(study)
    mese_arg = mese if (mese and Path(mese).exists()) else None
    prog, cb = progress_bar("measure")
    with prog:
        res = analyze(study, mese=mese_arg, labels=labels, labels_convention=convention, subject=subject, timepoint=timepoint, t2_method=t2_method,
                      band_mm=band_mm, refine_edges=refine_edges, t2w_series=t2w, mese_series=None if mese_arg else mese,
                      uncertainty=uncertainty, progress=cb)
        write_visit(res, out, dicom_source=study if dicom_seg else None)
    console.print(level_table(res.measurements, f"{res.subject} {timepoint}"))
    console.print(f"written: {out}")
