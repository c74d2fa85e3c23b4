"""``discmeasure t2map PATH -o t2.nii.gz`` (+ quality maps beside it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import OVERWRITE_HELP, check_output_files, console


@app.command("t2map")
def t2map_cmd(
    path: Path = typer.Argument(..., help="Multi-echo series, study folder, NIfTI (+ BIDS sidecar) ."),
    out: Path = typer.Option(..., "--out", "-o", help="T2 map (.nii.gz); s0/b1/r2/flags maps are written beside it."),
    method: str = typer.Option("epg", help="epg, mono or loglinear."),
    series: Optional[str] = typer.Option(None, help="Series in a folder with several."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
):
    """Fit T2 voxel by voxel and write the maps."""
    from ..io import load, load_study
    from ..io.write import nifti_path, sidecar_path
    from ..t2 import fit_t2

    nifti_path(out)  # before the work, not after it
    p = Path(path)
    name = out.name
    stem = out.with_name(name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name[:-4])
    # the map, the quality maps beside it, their sidecars, and the fit's own name for the map
    written = [out, sidecar_path(out)] + [Path(f"{stem}_{k}.{e}") for k in ("t2_ms", "s0", "b1", "r2", "flags")
                                           for e in ("nii.gz", "json")]
    check_output_files(written, [p, sidecar_path(p) if p.is_file() else None], overwrite=overwrite)
    scan = None
    if p.is_dir() and series is None:
        try:
            scan = load_study(p).mese
        except Exception:  # noqa: BLE001
            scan = None
    scan = scan or load(p, series=series)
    fit = fit_t2(scan, method=method)
    paths = fit.save(stem)
    os.replace(paths["t2_ms"], out)
    if sidecar_path(paths["t2_ms"]).is_file():  # the map's BIDS sidecar follows its new name
        os.replace(sidecar_path(paths["t2_ms"]), sidecar_path(out))
    console.print(f"T2 map: {out}; quality maps: {', '.join(str(v) for k, v in paths.items() if k != 't2_ms')}")
