"""``discmeasure pair PRE POST --out DIR``: two visits of one patient."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import app
from ._common import change_table, console, level_table, progress_bar


def run_pair(pre: Path, post: Path, out: Path, *, subject: Optional[str] = None, t2_method: str = "epg",
             pictures: bool = True, show=True):
    from ..comparison import compare
    from ..pipeline import analyze
    from ..report import write_pair

    prog, cb = progress_bar("pre/post")
    with prog:
        a = analyze(pre, subject=subject, timepoint="pre", t2_method=t2_method, progress=lambda s, f: cb(f"pre {s}", f / 2))
        b = analyze(post, subject=subject or a.subject, timepoint="post", t2_method=t2_method,
                    progress=lambda s, f: cb(f"post {s}", 0.5 + f / 2))
        ch = compare(a, b)
        write_pair(a, b, ch, out, pictures=pictures)
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
    subject: Optional[str] = typer.Option(None, help="Pseudonymous subject id."),
    t2_method: str = typer.Option("epg", help="T2 fit: epg, mono or loglinear."),
):
    """Measure two visits of one patient and compare them level by level."""
    run_pair(pre, post, out, subject=subject, t2_method=t2_method)
