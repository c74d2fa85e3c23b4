"""``discmeasure demo``: the whole pre/post pipeline on sample_scans/."""

from __future__ import annotations

from pathlib import Path

import typer

from . import app
from ._common import console


def sample_root() -> Path:
    """The sample_scans folder (:func:`discmeasure.samples.sample_root`: ``$DISCMEASURE_SAMPLE_SCANS``,
    the editable install's checkout, or ``./sample_scans``); InputError saying what to do when absent."""
    from ..samples import sample_root as find

    return find()


@app.command()
def demo(out: Path = typer.Option(Path("discmeasure-demo"), "--out", "-o", help="Output folder.")):
    """Run the pre/post pipeline on the bundled phantom studies and compare with their truth."""
    import json

    from ..errors import InputError
    from .pair import run_pair

    root = sample_root()  # InputError when not found, saying where it looked and what to do
    if not (root / "truth.json").is_file():
        raise InputError("truth.json of the sample studies not found", path=root,
                         hint="regenerate the sample studies with python sample_scans/make_sample_scans.py")
    # with each level's own uncertainty (4 moved re-analyses per visit): the designed change at L4-L5
    # is set against that level's MDC95 as well as against the one default RC
    a, b, ch = run_pair(root / "pre", root / "post", out, subject="phantom", uncertainty=4)
    truth = json.loads((root / "truth.json").read_text())
    from rich.table import Table

    t = Table(title="accuracy against the phantom truth (measured - true)", title_justify="left")
    for c in ("visit", "level", "bulge mm", "Δ bulge", "height mm", "Δ height", "NP T2 ms", "Δ NP T2 %"):
        t.add_column(c, justify="right")
    for name, res in (("pre", a), ("post", b)):
        for _, r in res.measurements.iterrows():
            tr = truth["visits"][name]["levels"].get(r.level)
            if not tr:
                continue
            t.add_row(name, r.level, f"{r.bulge_mm:.2f}", f"{r.bulge_mm - tr['bulge_mm']:+.2f}", f"{r.height_middle_mm:.2f}",
                      f"{r.height_middle_mm - tr['height_middle_mm']:+.2f}", f"{r.t2_np_ms:.1f}",
                      f"{100 * (r.t2_np_ms - tr['np_t2_ms']) / tr['np_t2_ms']:+.1f}")
    console.print(t)
