"""Shared CLI helpers: rich console, progress, per-level table."""

from __future__ import annotations

import math
import sys

from rich.console import Console
from rich.table import Table

# piped or redirected output (no terminal): rich would wrap and cut tables at 80 columns, losing
# QC flags and shapes in logs; give it room instead (a terminal keeps its own width)
_WIDTH = None if sys.stdout.isatty() else 240
console = Console(stderr=False, highlight=False, width=_WIDTH)
err = Console(stderr=True, highlight=False)


#: help of the ``--rc`` option of ``pair`` and ``batch``
RC_HELP = ("Repeatability coefficient METRIC=VALUE for the 'beyond RC' flags, repeatable (bulge_mm=0.8, "
           "volume_mm3=10%). Default: the ones measured on real anatomy (docs/methods.md).")


def progress_bar(description: str):
    """A rich progress bar and a callback(step, fraction) for :func:`discmeasure.analyze`."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[step]}"),
                    TimeElapsedColumn(), console=err, transient=True, disable=not sys.stderr.isatty())
    task = prog.add_task(description, total=1.0, step="")

    def cb(step, frac):
        prog.update(task, completed=frac, step=step)

    return prog, cb


def _fmt(v, nd=2):
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.{nd}f}"
    return str(v)


def level_table(df, title: str) -> Table:
    t = Table(title=title, title_justify="left")
    cols = [("level", "level"), ("bulge_mm", "bulge mm"), ("bulge_midsagittal_mm", "mid-sag mm"),
            ("height_middle_mm", "height mm"), ("dhi", "DHI"), ("t2_np_ms", "NP T2 ms"), ("t2_disc_ms", "disc T2 ms"),
            ("sir_np_csf", "NP/CSF"), ("qc_flags", "QC")]
    if "bulge_sd_mm" in df.columns:  # each level's own uncertainty (--uncertainty N)
        cols.insert(2, ("bulge_sd_mm", "± SD"))
    if "t2_np_sd_ms" in df.columns:  # ... and its NP T2's, with a multi-echo series
        cols.insert([c for c, _ in cols].index("t2_np_ms") + 1, ("t2_np_sd_ms", "± SD"))
    for _, name in cols:
        t.add_column(name, justify="left" if name in ("level", "QC") else "right")
    for _, r in df.iterrows():
        t.add_row(*[_fmt(r.get(c), 1 if c.startswith("t2") else 2) for c, _ in cols])
    return t


def _beyond_header(ch, metric: str) -> str:
    kind, value = ch.attrs.get("repeatability", {}).get(metric, ("abs", float("nan")))
    return f"beyond RC ({value:.2f} mm)" if kind == "abs" else f"beyond RC ({100 * value:.0f} %)"


def change_table(ch, title: str) -> Table:
    """The per-level change of the trials' two endpoints, bulge and nucleus T2, each with its
    'beyond the repeatability coefficient' flag (the RC in the header); with each level's own
    uncertainty (``--uncertainty N``) also the bulge's MDC95 and 'beyond' it, and the NP T2's
    when both visits had a multi-echo series."""
    t = Table(title=title, title_justify="left")
    own = "bulge_mm_within_uncertainty" in ch.columns  # each level's own uncertainty (--uncertainty N)
    own_t2 = "t2_np_ms_within_uncertainty" in ch.columns
    names = (("level", "bulge pre", "bulge post", "Δ mm", "Δ %", _beyond_header(ch, "bulge_mm"))
             + (("level's MDC95 mm", "beyond MDC95") if own else ())
             + ("NP T2 pre", "NP T2 post", "Δ %", _beyond_header(ch, "t2_np_ms"))
             + (("NP T2 MDC95 ms", "NP T2 beyond MDC95") if own_t2 else ()) + ("level match",))
    for name in names:
        t.add_column(name, justify="right")

    def beyond(r, m, key="repeatability"):
        within = r[f"{m}_within_{key}"]  # None: the change could not be measured
        return "" if within is None else ("no" if within else "yes")

    for _, r in ch.iterrows():
        t.add_row(r.level, _fmt(r.bulge_mm_pre), _fmt(r.bulge_mm_post), _fmt(r.bulge_mm_delta), _fmt(r.bulge_mm_pct, 0),
                  beyond(r, "bulge_mm"), *((_fmt(r.bulge_mm_mdc95), beyond(r, "bulge_mm", "uncertainty")) if own else ()),
                  _fmt(r.t2_np_ms_pre, 1), _fmt(r.t2_np_ms_post, 1), _fmt(r.t2_np_ms_pct, 0),
                  beyond(r, "t2_np_ms"),
                  *((_fmt(r.t2_np_ms_mdc95, 1), beyond(r, "t2_np_ms", "uncertainty")) if own_t2 else ()),
                  "" if r.get("level_match_ok") is None else ("ok" if r.level_match_ok else "CHECK"))
    return t


UNCERTAINTY_HELP = ("Also estimate each level's own uncertainty: analyse each visit again N times (2-8; 4 is "
                    "a good choice) after small rigid moves of the scan (1.5 degrees, 1.5 mm) and report the SD "
                    "of every geometric measure (bulge_sd_mm, ...) and, with a multi-echo series, of each ROI's T2 "
                    "(t2_np_sd_ms, ...); pairs then flag each change against that "
                    "level's 95 % minimal detectable change. About N times the time. 0 (default): none.")


DICOM_SEG_HELP = ("Also write each visit's labels as a DICOM SEG on its T2-weighted series (labels.seg.dcm) and "
                  "its measurements as a DICOM SR (TID 1500) on the SEG's disc segments (measurements.sr.dcm; "
                  "patient identity replaced by the subject id). DICOM inputs only.")



#: help of the ``--overwrite`` option of the commands that write single files
OVERWRITE_HELP = "Replace output files that exist (never the input, nor files inside an input folder)."


def check_output_files(paths, inputs, *, overwrite: bool = False) -> None:
    """Refuse, before any work, to write any of ``paths`` (files) over the user's files.

    An output that is one of the ``inputs`` or lies inside an input folder is always refused
    (``segment in.nii.gz -o in.nii.gz`` replaced the scan by its labels); an output that exists
    is refused unless ``overwrite``. OutputError, one line, naming the file.
    """
    import os
    from pathlib import Path

    from ..errors import OutputError

    ins = [Path(os.path.abspath(p)) for p in inputs if p is not None]
    for p in paths:
        p = Path(p)
        ap = Path(os.path.abspath(p))
        for i in ins:
            same = ap == i or (p.exists() and i.exists() and os.path.samefile(p, i))
            if same:
                raise OutputError("is the input: writing it would destroy the scan", path=p,
                                  hint="give the output another name")
            if i.is_dir() and i in ap.parents:
                raise OutputError("lies inside the input folder", path=p,
                                  hint="write outputs outside the input folder; inputs are never modified")
        if (p.exists() or p.is_symlink()) and not overwrite:
            raise OutputError("exists", path=p, hint="give a new name, or --overwrite to replace it")
