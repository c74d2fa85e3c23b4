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


#: every map t2map can write beside its ``-o`` (any method; ``fit.save``'s names, b1 for epg only)
_ALL_MAPS = ("t2_ms", "s0", "r2", "flags", "b1")


def _stale_maps(family, written, inputs, *, overwrite: bool) -> list[Path]:
    """The files of an earlier t2map run to ``-o`` that this run would not write (``stem_b1.*`` of an
    epg fit rerun with mono): refused without ``overwrite`` (an OutputError, before the work), else
    returned for removal once the new maps are written, so that no map of another fit is left
    beside them. Inputs and files inside an input folder are never among them."""
    from ..errors import OutputError

    stale = []
    for f in family:
        if f in written or not (f.exists() or f.is_symlink()):
            continue
        try:
            check_output_files([f], inputs, overwrite=True)
        except OutputError:  # an input, or inside the input folder: not ours to remove
            continue
        stale.append(f)
    if stale and not overwrite:
        raise OutputError("exists: a map of an earlier run, which this run would not replace", path=stale[0],
                          hint="give a new name, or --overwrite to replace the earlier run's maps")
    return stale


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

    nifti_path(out, example="t2.nii.gz")  # before the work, not after it
    p = Path(path)
    tes = _echo_times(echo_times_ms)
    name = out.name
    stem = out.with_name(name[: -len(".nii.gz")] if name.endswith(".nii.gz") else name[:-4])
    # the map, the quality maps beside it, their sidecars, and the fit's own name for the map
    maps = ("t2_ms", "s0", "r2", "flags") + (("b1",) if method == "epg" else ())
    written = [out, sidecar_path(out)] + [Path(f"{stem}_{k}.{e}") for k in maps for e in ("nii.gz", "json")]
    inputs = [p, sidecar_path(p) if p.is_file() else None]
    check_output_files(written, inputs, overwrite=overwrite)
    # maps of an earlier run to this name that this run does not write (its b1 map after an epg fit)
    family = [Path(f"{stem}_{k}.{e}") for k in _ALL_MAPS for e in ("nii.gz", "json")]
    stale = _stale_maps(family, written, inputs, overwrite=overwrite)
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
    if out.name.endswith(".nii.gz"):
        os.replace(paths["t2_ms"], out)
        if sidecar_path(paths["t2_ms"]).is_file():  # the map's BIDS sidecar follows its new name
            os.replace(sidecar_path(paths["t2_ms"]), sidecar_path(out))
    else:  # -o x.nii: written uncompressed (renaming the .nii.gz gave a gzip file named .nii, unreadable)
        from ..io.write import save_nifti

        save_nifti(fit.to_scan("t2_ms"), out, sidecar_extra={"T2Fit": fit.fit_record()})
        for f in (Path(paths["t2_ms"]), sidecar_path(paths["t2_ms"])):
            f.unlink(missing_ok=True)
    removed = []
    for f in stale:  # after the new maps are written: a failed fit leaves the earlier run whole
        f.unlink(missing_ok=True)
        removed.append(str(f))
    quality = ", ".join(str(v) for k, v in paths.items() if k != "t2_ms")
    no_b1 = "" if "b1" in paths else f" (no b1 map: {method} does not fit B1)"
    gone = f"; removed the earlier run's {', '.join(removed)} (--overwrite)" if removed else ""
    console.print(f"T2 map: {out}; quality maps: {quality}{no_b1}; "
                  f"{100 * fit.params['fitted_fraction']:.1f} % of voxels fitted{gone}", soft_wrap=True)
    if fit.params.get("warning"):
        print(f"warning: {p}: {fit.params['warning']}", file=sys.stderr)  # one line, never wrapped
