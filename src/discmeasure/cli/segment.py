"""``discmeasure segment PATH -o labels.nii.gz``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import OVERWRITE_HELP, check_output_files, console


@app.command("segment")
def segment_cmd(
    path: Path = typer.Argument(..., help="T2-weighted series, NIfTI or study folder."),
    out: Path = typer.Option(..., "--out", "-o", help="Output label map: .nii.gz, or .dcm for a DICOM SEG on the "
                                                       "input series (patient identity replaced by a pseudonym)."),
    series: Optional[str] = typer.Option(None, help="Series in a folder with several (number/UID/description)."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
):
    """Segment discs, vertebral bodies and canal; write the label map (discmeasure convention)."""
    from ..io import load, load_study
    from ..io.dicom_seg import require_dicom, seg_path, write_scan_seg
    from ..io.write import nifti_path, save_nifti, sidecar_path
    from ..errors import DiscmeasureError
    from ..pipeline import _naming, t2_weighted_volume
    from ..segmentation import segment

    as_seg = Path(out).name.lower().endswith(".dcm")
    # the output name checked before the work, not after it
    if as_seg:
        seg_path(out)
    else:
        nifti_path(out)
    p = Path(path)
    check_output_files([out], [p, sidecar_path(p) if p.is_file() else None], overwrite=overwrite)
    scan = None
    if p.is_dir() and series is None:
        try:
            scan = load_study(p).t2w
        except Exception:  # noqa: BLE001 -- not a study: load as a series below
            scan = None
    scan = t2_weighted_volume(scan or load(p, series=series), p)  # of a dual-echo PD/T2 series its T2 echo
    if as_seg:
        require_dicom(scan, p)  # before the work
    with _naming(p, DiscmeasureError):  # the error names the scan, as measure's does
        seg = segment(scan)
    if as_seg:
        write_scan_seg(seg, scan, p, out)
    else:
        save_nifti(seg.to_scan(), out, sidecar=False)
    console.print(f"levels: {', '.join(seg.levels)}; written: {out}")
