"""``discmeasure info PATH``: the series found, orientation, shape, spacing, echoes (no PHI)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from . import app
from ._common import console


@app.command()
def info(path: Path = typer.Argument(..., help="DICOM folder/file, study folder, NIfTI, or MHA/NRRD.")):
    """List the series of PATH with their geometry and echoes (no patient-identifying data)."""
    from ..io import load
    from ..io.dicom import scan_folder, series_summary
    from ..io.load import is_volume_file

    p = Path(path)
    if is_volume_file(p):
        s = load(p)
        t = Table(title=str(p))
        for c in ("orientation", "shape", "spacing mm", "echoes ms"):
            t.add_column(c)
        t.add_row("".join(s.orientation), "x".join(map(str, s.data.shape)), "x".join(f"{v:.3g}" for v in s.spacing),
                  ", ".join(f"{v:g}" for v in (s.echo_times_ms or [])) or str(s.meta.get("echo_time_ms", "")))
        console.print(t)
        return
    infos = scan_folder(p)
    t = Table(title=f"{p}: {len(infos)} series")
    for c in ("#", "description", "plane", "orientation", "shape", "spacing mm", "echoes ms", "TR ms", "images"):
        t.add_column(c)
    for i in infos:
        s = series_summary(i)
        t.add_row(_number(s.get("number")), s.get("description", "") + ("" if s.get("component") == "M" else f" [{s.get('component')}]"),
                  str(s.get("plane") or "?"), str(s.get("orientation") or "no geometry"), "x".join(map(str, s.get("shape", []))),
                  _spacing(s), ", ".join(f"{v:g}" for v in s.get("echo_times_ms") or []),
                  f"{s['repetition_time_ms']:g}" if isinstance(s.get("repetition_time_ms"), float) else "", str(s["images"]))
    console.print(t)


def _number(num) -> str:
    """Series number; "?" when the series has none (as in the series listings of errors: ``#?``)."""
    return "?" if num is None else str(num)


def _spacing(summary: dict) -> str:
    """Voxel spacing; a single-slice series shows its slice thickness (if known) and "(1 slice)"."""
    sp = summary.get("spacing_mm") or []
    if not sp:
        return ""
    shape = summary.get("shape") or []
    text = "x".join(f"{v:.3g}" for v in sp if v is not None)
    return f"{text} (1 slice)" if len(shape) >= 3 and shape[2] == 1 else text
