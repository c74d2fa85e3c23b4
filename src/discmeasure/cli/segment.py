"""``discmeasure segment PATH -o labels.nii.gz``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import console


@app.command("segment")
def segment_cmd(
    path: Path = typer.Argument(..., help="T2-weighted series, NIfTI or study folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output label map (.nii.gz)."),
    series: Optional[str] = typer.Option(None, help="Series in a folder with several (number/UID/description)."),
):
    """Segment discs, vertebral bodies and canal; write the label map (discmeasure convention)."""
    from ..io import load, load_study
    from ..io.write import save_nifti
    from ..errors import InputError
    from ..segmentation import segment

    if not out.name.endswith((".nii", ".nii.gz")):  # before the work, not after it
        raise InputError("output must end in .nii or .nii.gz", path=out, hint="e.g. -o labels.nii.gz")
    if out.is_dir():
        raise InputError("output is a folder", path=out, hint="give a file name, e.g. -o labels.nii.gz")
    p = Path(path)
    scan = None
    if p.is_dir() and series is None:
        try:
            scan = load_study(p).t2w
        except Exception:  # noqa: BLE001 -- not a study: load as a series below
            scan = None
    scan = scan or load(p, series=series)
    seg = segment(scan)
    save_nifti(seg.to_scan(), out, sidecar=False)
    console.print(f"levels: {', '.join(seg.levels)}; written: {out}")
