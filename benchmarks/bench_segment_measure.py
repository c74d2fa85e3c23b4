"""Speed of automatic segmentation and of `discmeasure.measure`.

    python benchmarks/bench_segment_measure.py   # writes section `bench_segment_measure` of docs/benchmarks.md

Segmentation: a 15 x 512 x 512 sagittal phantom volume (`phantom.make_grid` + `render_t2w`), goal < 5 s,
at 0.45 mm pixels (resampled onto the 0.5 mm working grid) and at 0.5 mm (the scan's own grid: the
bodies' partial volume is computed too).
Measurement: `discmeasure.measure` on that volume and its segmentation, goal < 1 s for 6 levels (the
phantom has 5 disc levels, L1-L2 ... L5-S1), and `measure` with a T2 fit on the first sample visit
(sample_scans/pre: T2-weighted series + multi-echo series, EPG fit; the T2 statistics per ROI add
resampling of the ROIs onto the fit's grid). Each is timed 3 times (median and best reported), then
profiled once (cProfile) to show where the time goes.
"""

from __future__ import annotations

import cProfile
import linecache
import os
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import publish_section, start_load, timed  # noqa: E402

import discmeasure as dm  # noqa: E402
from discmeasure import phantom  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REPEAT = 3


def hot_spots(fn, within: str, top: int = 8):
    """(function, cumulative s, own s) of the slowest functions defined in files under ``within``."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    st = pstats.Stats(prof)
    total = max(v[3] for v in st.stats.values())
    rows = []
    for (file, line, name), (cc, nc, tt, ct, callers) in st.stats.items():
        if within in file.replace(os.sep, "/"):
            label = f"`{Path(file).name}:{line} {name}`"
            if name.startswith("<"):  # lambda / comprehension: show its source line
                src = linecache.getline(file, line).strip().replace("|", "\\|")
                label += f" (`{src[:70]}{'...' if len(src) > 70 else ''}`)"
            rows.append((label, ct, tt))
    rows.sort(key=lambda r: -r[1])
    # library calls made from those functions, by own time
    lib = []
    for (file, line, name), (cc, nc, tt, ct, callers) in st.stats.items():
        if "discmeasure" not in file and tt > 0.02 * total:
            label = name if file == "~" else f"{Path(file).parent.name}/{Path(file).name}:{name}"
            lib.append((f"`{label}`", tt, nc))
    lib.sort(key=lambda r: -r[1])
    return total, rows[:top], lib[:6]


def main():
    start_load()
    ph = phantom.default_phantom()
    shape, aff = phantom.make_grid(spacing=(0.45, 0.45, 4.0), fov_mm=(230.0, 230.0), n_slices=15)
    img, lab = phantom.render_t2w(ph, shape, aff, snr=35, supersample=1)
    print("grid", shape, flush=True)
    seg, t_seg, b_seg = timed(lambda: dm.segment(img), REPEAT)
    print(f"segment: median {t_seg:.2f} s, best {b_seg:.2f} s, levels {seg.levels}", flush=True)
    # 0.45 mm pixels are resampled onto a 0.5 mm working grid; at 0.5 mm the working grid is the
    # scan's own and the bodies' partial volume (sub-voxel endplate faces) is computed as well
    shape5, aff5 = phantom.make_grid(spacing=(0.5, 0.5, 4.0), fov_mm=(256.0, 256.0), n_slices=15)
    img5, _ = phantom.render_t2w(ph, shape5, aff5, snr=35, supersample=1)
    seg5, t_seg5, b_seg5 = timed(lambda: dm.segment(img5), REPEAT)
    pv5 = "with" if seg5.body_fraction is not None else "without"
    print(f"segment 0.5 mm: median {t_seg5:.2f} s, best {b_seg5:.2f} s, {pv5} body partial volume", flush=True)
    df, t_meas, b_meas = timed(lambda: dm.measure(img, seg), REPEAT)
    nlev = len(df)
    print(f"measure: median {t_meas:.2f} s, best {b_meas:.2f} s, {nlev} levels", flush=True)
    from discmeasure.pipeline import analyze

    vis = analyze(Path(__file__).resolve().parents[1] / "sample_scans" / "pre", timepoint="pre")
    df_t2, t_t2, b_t2 = timed(lambda: dm.measure(vis.scan, vis.segmentation, t2=vis.t2), REPEAT)
    n_t2 = len(df_t2)
    print(f"measure with T2: median {t_t2:.2f} s, best {b_t2:.2f} s, {n_t2} levels", flush=True)
    seg_total, seg_rows, seg_lib = hot_spots(lambda: dm.segment(img), "discmeasure/segmentation/")
    meas_total, meas_rows, meas_lib = hot_spots(lambda: dm.measure(img, seg), "discmeasure/measurements/")
    ok = lambda v, goal: "met" if v < goal else "**missed**"  # noqa: E731
    L = [
        "| task | median (best) of 3 | goal | |", "|---|---|---|---|",
        f"| auto segmentation (`discmeasure.segment`), {shape[2]} x {shape[0]} x {shape[1]} sagittal phantom "
        f"(0.45 x 0.45 x 4 mm), levels found: {', '.join(seg.levels)} | {t_seg:.2f} s ({b_seg:.2f} s) | < 5 s | {ok(t_seg, 5)} |",
        f"| the same at {shape5[2]} x {shape5[0]} x {shape5[1]}, 0.5 x 0.5 x 4 mm (working grid = the scan's own, "
        f"{pv5} the bodies' partial volume), levels found: {', '.join(seg5.levels)} | {t_seg5:.2f} s ({b_seg5:.2f} s) | "
        f"< 5 s | {ok(t_seg5, 5)} |",
        f"| `discmeasure.measure` on it, {nlev} disc levels | {t_meas:.2f} s ({b_meas:.2f} s); "
        f"{t_meas / max(nlev, 1):.2f} s per level, x 6 = {6 * t_meas / max(nlev, 1):.2f} s | < 1 s for 6 levels | "
        f"{ok(6 * t_meas / max(nlev, 1), 1)} |",
        f"| `discmeasure.measure` with a T2 fit (`t2=`), sample visit pre ({' x '.join(map(str, vis.scan.shape))} "
        f"T2-weighted, EPG fit), {n_t2} disc levels | {t_t2:.2f} s ({b_t2:.2f} s); {t_t2 / max(n_t2, 1):.2f} s per level, "
        f"x 6 = {6 * t_t2 / max(n_t2, 1):.2f} s | < 1 s for 6 levels | {ok(6 * t_t2 / max(n_t2, 1), 1)} |",
        "",
        "Where the time goes (one cProfile run each; cumulative = including callees, own = in the function itself):",
        "",
        f"Segmentation ({seg_total:.2f} s under the profiler):",
        "",
        "| function | cumulative | own |", "|---|---|---|",
    ]
    L += [f"| {n} | {c:.2f} s | {t:.2f} s |" for n, c, t in seg_rows]
    L += ["", "| library call (own time) | time | calls |", "|---|---|---|"]
    L += [f"| {n} | {t:.2f} s | {c} |" for n, t, c in seg_lib]
    L += ["", f"Measurement ({meas_total:.2f} s under the profiler):", "",
          "| function | cumulative | own |", "|---|---|---|"]
    L += [f"| {n} | {c:.2f} s | {t:.2f} s |" for n, c, t in meas_rows]
    L += ["", "| library call (own time) | time | calls |", "|---|---|---|"]
    L += [f"| {n} | {t:.2f} s | {c} |" for n, t, c in meas_lib]
    publish_section("docs/benchmarks.md", "bench_segment_measure", "## Segmentation and measurement speed (issues 5-6)",
                    L, title="Benchmarks", load=True)


if __name__ == "__main__":
    main()
