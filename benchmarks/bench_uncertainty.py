"""Cost of each level's own uncertainty (``analyze(..., uncertainty=N)``), moved analyses in threads vs one after the other.

    python benchmarks/bench_uncertainty.py   # writes section `bench_uncertainty` of docs/benchmarks.md

One visit of the real sct_t2_lumbar volume (38 x 257 x 201, 1 mm; automatic segmentation redone
on every moved copy) and of the sample pair's pre study (labels as given: the moved copies are
measured only), analysed without uncertainty and with N = 4 and 8 moved re-analyses, the moved
analyses in worker threads (the default: ``DISCMEASURE_THREADS`` unset, the usable CPUs) and in one
thread (the peer: what ``analyze`` did before, and what batch and pair workers do). The tables of
the two runs must be identical. Wall times are the best of 2 runs (``provenance["timings"]``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import publish_section, start_load  # noqa: E402

import pandas as pd  # noqa: E402

import discmeasure as dm  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCT = ROOT.parent / "shared" / "testdata" / "spine" / "sct_t2_lumbar" / "t2_lumbar.nii.gz"


def timed(source, n, threads, labels=None):
    if threads is None:
        os.environ.pop("DISCMEASURE_THREADS", None)
    else:
        os.environ["DISCMEASURE_THREADS"] = str(threads)
    best, res = None, None
    for _ in range(2):
        t0 = time.perf_counter()
        res = dm.analyze(source, labels=labels, uncertainty=n)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best, res


def main():
    start_load()
    cases = []
    if SCT.is_file():
        cases.append(("sct_t2_lumbar, automatic segmentation", dm.load(SCT), None))
    pre = dm.load_study(ROOT / "sample_scans" / "pre").t2w
    given = dm.segment(pre).labels
    cases.append(("sample pre visit, labels given", pre, given))
    lines = ["Wall time of one `analyze` (s), best of 2; N moved re-analyses in worker threads (default) or in one "
             "thread (the peer, the previous behaviour; also what `batch` and `pair` workers use). "
             "`benchmarks/bench_uncertainty.py`.", "",
             "| visit | no uncertainty | N = 4, threads | N = 4, one thread | N = 8, threads | N = 8, one thread | same tables |",
             "|---|---|---|---|---|---|---|"]
    for name, source, labels in cases:
        t0, _ = timed(source, 0, None, labels)
        row, same = [], True
        for n in (4, 8):
            tp, a = timed(source, n, None, labels)
            ts, b = timed(source, n, 1, labels)
            same &= a.measurements.drop(columns="qc_flags").equals(b.measurements.drop(columns="qc_flags"))
            row += [f"{tp:.1f}", f"{ts:.1f}"]
        lines.append(f"| {name} | {t0:.1f} | " + " | ".join(row) + f" | {'yes' if same else 'NO'} |")
        print(lines[-1], flush=True)
    os.environ.pop("DISCMEASURE_THREADS", None)
    publish_section("docs/benchmarks.md", "bench_uncertainty", "## Per-level uncertainty: cost (issue 6)", lines,
                    title="Benchmarks", load=True)


if __name__ == "__main__":
    main()
