"""``discmeasure t2map PATH -o t2.nii.gz`` (+ quality maps beside it)."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import OVERWRITE_HELP, check_output_files, console

#: library keywords in error hints -> the options of this command
_CLI_HINTS = (
    (re.compile(r"method='(\w+)'"), r"--method \1"),
    (re.compile(r"\becho_spacing_ms=(?!\w)"), "--echo-spacing-ms"),
    (re.compile(r"\becho_times_ms=(?!\w)"), "--echo-times-ms"),
    (re.compile(r"\brefocusing_angle_deg=(?!\w)"), "--refocusing-angle-deg"),
    (re.compile(r"\bbuild the Scan with --echo-times-ms"), "give --echo-times-ms"),
)


def cli_hint(hint: Optional[str]) -> Optional[str]:
    """A library hint in this command's syntax (``echo_spacing_ms=`` -> ``--echo-spacing-ms``)."""
    if not hint:
        return hint
    for pat, repl in _CLI_HINTS:
        hint = pat.sub(repl, hint)
    return hint


def _echo_times(text: Optional[str]):
    from ..errors import InputError

    if text is None:
        return None
    try:
        tes = [float(t) for t in text.replace(";", ",").split(",") if t.strip()]
    except ValueError:
        raise InputError(f"--echo-times-ms {text!r} is not a comma-separated list of numbers",
                         hint="e.g. --echo-times-ms 10,20,30,40") from None
    return tes


@app.command("t2map")
def t2map_cmd(
    path: Path = typer.Argument(..., help="Multi-echo series, study folder, NIfTI (+ BIDS sidecar) ."),
    out: Path = typer.Option(..., "--out", "-o", help="T2 map (.nii.gz); s0/r2/flags maps (and b1 for epg) are written beside it."),
    method: str = typer.Option("epg", help="epg, mono or loglinear."),
    series: Optional[str] = typer.Option(None, help="Series in a folder with several."),
    echo_times_ms: Optional[str] = typer.Option(
        None, "--echo-times-ms", help="Echo times in ms, comma-separated (e.g. 10,20,30), when the input does not "
        "carry them (a NIfTI without a BIDS sidecar listing EchoTime in seconds); overrides the header's."),
    echo_spacing_ms: Optional[float] = typer.Option(
        None, "--echo-spacing-ms", help="epg: echo spacing of the CPMG train (ms), when the echo times are not "
        "multiples of the first (default: from the header, else the TE spacing)."),
    refocusing_angle_deg: Optional[float] = typer.Option(
        None, "--refocusing-angle-deg", help="epg: nominal refocusing angle (default: header, else 180)."),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
):
    """Fit T2 voxel by voxel and write the maps (b1 only for epg, the one method that fits B1)."""
    from ..errors import DiscmeasureError
    from ..io import load, load_study
    from ..io.write import nifti_path, sidecar_path
    from ..t2 import fit_t2

    nifti_path(out)  # before the work, not after it
    p = Path(path)
    tes = _echo_times(echo_times_ms)
    name = out.name
    stem = out.with_name(name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name[:-4])
    # the map, the quality maps beside it, their sidecars, and the fit's own name for the map
    maps = ("t2_ms", "s0", "r2", "flags") + (("b1",) if method == "epg" else ())
    written = [out, sidecar_path(out)] + [Path(f"{stem}_{k}.{e}") for k in maps for e in ("nii.gz", "json")]
    check_output_files(written, [p, sidecar_path(p) if p.is_file() else None], overwrite=overwrite)
    scan = None
    if p.is_dir() and series is None:
        try:
            scan = load_study(p).mese
        except Exception:  # noqa: BLE001
            scan = None
    try:
        scan = scan or load(p, series=series)
        fit = fit_t2(scan, tes, method=method, echo_spacing_ms=echo_spacing_ms,
                     refocusing_angle_deg=refocusing_angle_deg)
    except DiscmeasureError as exc:  # name the input, hints in this command's syntax
        raise type(exc)(exc.reason, path=exc.path or p, hint=cli_hint(exc.hint)) from None
    paths = fit.save(stem)
    os.replace(paths["t2_ms"], out)
    if sidecar_path(paths["t2_ms"]).is_file():  # the map's BIDS sidecar follows its new name
        os.replace(sidecar_path(paths["t2_ms"]), sidecar_path(out))
    quality = ", ".join(str(v) for k, v in paths.items() if k != "t2_ms")
    no_b1 = "" if "b1" in paths else f" (no b1 map: {method} does not fit B1)"
    console.print(f"T2 map: {out}; quality maps: {quality}{no_b1}; "
                  f"{100 * fit.params['fitted_fraction']:.1f} % of voxels fitted")
    if fit.params.get("warning"):
        print(f"warning: {p}: {fit.params['warning']}", file=sys.stderr)  # one line, never wrapped
