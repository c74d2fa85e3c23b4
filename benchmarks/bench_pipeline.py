"""Speed of segmentation, measurement, the whole `pair` command, and batch 1 vs 2 workers.

    python benchmarks/bench_pipeline.py    # writes section `bench_pipeline` of docs/benchmarks.md
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import machine_line, record_section  # noqa: E402

import discmeasure as dm  # noqa: E402
from discmeasure import phantom  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXE = [sys.executable, "-m", "discmeasure"]


def timed_child(args):
    t0 = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-v"] + args, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    rss = next((int(l.split()[-1]) for l in r.stderr.splitlines() if "Maximum resident set size" in l), 0) / 1024
    return dt, rss, r.returncode


def main():
    lines = ["| task | time | peer / note | goal |", "|---|---|---|---|"]
    ph = phantom.default_phantom()
    shape, aff = phantom.make_grid(spacing=(0.45, 0.45, 4.0), fov_mm=(230.0, 230.0), n_slices=15)
    print("grid", shape, flush=True)
    img, lab = phantom.render_t2w(ph, shape, aff, snr=35, supersample=1)
    t0 = time.perf_counter()
    seg = dm.segment(img)
    t_seg = time.perf_counter() - t0
    lines.append(f"| auto segmentation, {shape[2]} x {shape[0]} x {shape[1]} sagittal | {t_seg:.1f} s | levels {seg.levels} | < 5 s |")
    t0 = time.perf_counter()
    df = dm.measure(img, seg)
    t_meas = time.perf_counter() - t0
    lines.append(f"| measure, {len(df)} levels | {t_meas:.2f} s | | < 1 s for 6 levels |")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dt, rss, rc = timed_child(EXE + ["pair", str(ROOT / "sample_scans/pre"), str(ROOT / "sample_scans/post"), "--out", str(tmp / "p")])
        lines.append(f"| `discmeasure pair` on sample_scans (whole command, incl. start-up, QC pictures) | {dt:.1f} s, peak RSS {rss:.0f} MB | exit {rc} | < 10 s, < 1.5 GB |")
        man = tmp / "m.csv"
        rows = ["subject,timepoint,path"] + [f"S{i},pre,{ROOT / 'sample_scans/pre'}\nS{i},post,{ROOT / 'sample_scans/post'}" for i in range(4)]
        man.write_text("\n".join(rows) + "\n")
        res = {}
        for w in (1, 2):
            t0 = time.perf_counter()
            r = subprocess.run(EXE + ["batch", str(man), "--out", str(tmp / f"b{w}"), "--workers", str(w), "--no-pictures"],
                               capture_output=True, text=True)
            res[w] = time.perf_counter() - t0
            print("batch", w, res[w], r.returncode, flush=True)
        same = (tmp / "b1" / "cohort.csv").read_text() == (tmp / "b2" / "cohort.csv").read_text()
        lines.append(f"| batch, 4 subjects x 2 visits, 1 worker | {res[1]:.1f} s | | |")
        lines.append(f"| batch, same, 2 workers (Dask LocalCluster) | {res[2]:.1f} s | speed-up {res[1] / res[2]:.2f}x; cohort.csv identical: {same} | >= 1.8x |")
    lines += ["", machine_line()]
    text = "\n".join(lines)
    print(text)
    record_section("docs/benchmarks.md", "bench_pipeline", "## Segmentation, measurement, pair and batch (issues 5-7)\n\n" + text,
                   title="Benchmarks")


if __name__ == "__main__":
    main()
