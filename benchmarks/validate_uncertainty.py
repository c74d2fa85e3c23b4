"""Per-level uncertainty (``analyze(..., uncertainty=4)``) against retests it did not see.

    python benchmarks/validate_uncertainty.py   # writes section `uncertainty` of docs/validation.md

Each scan of a retest gets its own per-level SD from four moved re-analyses
(:mod:`discmeasure.uncertainty`); for each level pair the SD of the difference is then
sqrt(sd1^2 + sd2^2), and a calibrated uncertainty has 95 % of the retest differences within
the level's MDC95 (``uncertainty.mdc95``: Student's t quantile for the SDs' degrees of freedom
times it, as ``compare`` uses) and an RMS of the standardised differences near 1 (below 1: the SD
is too large, conservative). Retests: the real sct_t2_lumbar volume against its two rigidly moved and resampled
copies (``validate_retest``; default working grid); the phantom in its reference pose against the
same two moves, rendered anew with new noise (``validate_measure``'s phantom retest, three
geometries) -- a truer model of a second scan than resampling. Also the sample pair's designed
changes against each level's MDC95.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import publish_section  # noqa: E402
from validate_measure import RETEST_CASES, retest_images, t2_protocol_visit  # noqa: E402
from validate_retest import MOVES, SCT, moved_copy  # noqa: E402

import discmeasure as dm  # noqa: E402
from discmeasure import phantom  # noqa: E402
from discmeasure.comparison import REPEATABILITY  # noqa: E402
from discmeasure.uncertainty import T2_UNCERTAIN_METRICS, UNCERTAIN_METRICS, mdc95, n_column, sd_column  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
N_MOVES = 4


def _analysed(scan):
    try:
        return dm.analyze(scan, uncertainty=N_MOVES).measurements.set_index("level")
    except dm.DiscmeasureError as exc:
        print(f"failed: {exc}", flush=True)
        return None


def _pairs(tables, levels, metrics=UNCERTAIN_METRICS):
    """(|delta|, sd of the difference, MDC95) per metric over (reference, each other pose) x level."""
    out = {m: [] for m in metrics}
    ref = tables[0]
    for t in tables[1:]:
        for lv in levels:
            if ref is None or t is None or lv not in ref.index or lv not in t.index:
                continue
            for m in metrics:
                d = float(t.loc[lv, m]) - float(ref.loc[lv, m])
                s1, s2 = float(ref.loc[lv, sd_column(m)]), float(t.loc[lv, sd_column(m)])
                s = float(np.hypot(s1, s2))
                k = mdc95(s1, s2, ref.loc[lv, n_column(m)], t.loc[lv, n_column(m)])
                if np.isfinite(d) and np.isfinite(s) and s > 0 and np.isfinite(k):
                    out[m].append((abs(d), s, k, float(ref.loc[lv, m])))
    return out


def _beyond(within) -> str:
    """'yes' when a change is beyond its limit, 'no' within, '' when not measured (None/NaN)."""
    if within is None or (isinstance(within, float) and np.isnan(within)):
        return ""
    return "no" if within else "yes"


def _rows(name, pairs):
    rows = []
    for m in pairs:
        p = np.array(pairs[m], float).reshape(-1, 4)
        if not len(p):
            rows.append(f"| {name} | {m} | 0 | | | | | | | |")
            continue
        a, s, k = p[:, 0], p[:, 1], p[:, 2]
        rho = spearmanr(a, s)[0] if len(p) > 2 else np.nan
        rows.append(f"| {name} | {m} | {len(p)} | {np.median(a):.2f} | {np.median(k):.2f} | "
                    f"{100 * np.mean(a <= k):.0f} % | {100 * np.mean(a <= 1.96 * s):.0f} % | "
                    f"{np.sqrt(np.mean((a / s) ** 2)):.2f} | {rho:+.2f} | {_within_rc(m, a, pairs)} |")
        print(rows[-1], flush=True)
    return rows


def _within_rc(metric, a, pairs) -> str:
    """Share of |delta| within the default RC (relative RCs: of the pair's reference value)."""
    if metric not in REPEATABILITY:
        return "(no default RC)"
    kind, rc = REPEATABILITY[metric]
    if kind == "abs":
        return f"{100 * np.mean(a < rc):.0f} % ({rc:.2f})"
    ref = np.array([r[3] for r in pairs[metric]], float)
    return f"{100 * np.mean(a < rc * np.abs(ref)):.0f} % ({100 * rc:.0f} %)"


def t2_retest_tables():
    """The sample visit's protocol (T2-weighted 0.7 x 0.7 x 4 mm, SNR 35; multi-echo spin echo
    1.2 x 1.2 x 4 mm, 10 echoes, SNR 120, B1 0.75-1.0): the reference pose, the real retest's two
    moves and two rescans in the reference pose, each rendered anew (noise, B1 field); automatic
    segmentation, EPG fit, each with its own uncertainty (T2 SDs included)."""
    from discmeasure.uncertainty import with_uncertainty

    poses = [((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))] + list(MOVES) + [((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))] * 2
    tables = []
    for k, pose in enumerate(poses):
        img, mese = t2_protocol_visit(pose, k)
        fit, seg = dm.fit_t2(mese), dm.segment(img)
        table = dm.measure(img, seg, t2=fit)
        tables.append(with_uncertainty(img, seg, table, t2=fit, n_moves=N_MOVES).set_index("level"))
        print(f"T2 retest pose {k}", flush=True)
    return tables


def main():
    lines = [
        "### Per-level uncertainty against retests (`analyze(..., uncertainty=4)`)", "",
        "Each scan's own per-level SD from four moved re-analyses (1.5°, 1.5 mm; docs/methods.md); per level "
        "pair, MDC95 = k x sqrt(sd1² + sd2²), k Student's t quantile for the SDs' Welch-Satterthwaite degrees "
        "of freedom (`uncertainty.mdc95`, as `compare` uses; 2.31 with equal SDs from 5 analyses each; the "
        "column with 1.96 is the normal quantile, which ignores that the SDs are estimates). Calibrated: 95 % "
        "of |Δ| within the MDC95 and the RMS of "
        "Δ / sqrt(sd1² + sd2²) near 1 (below 1: conservative). Spearman ρ: do levels with larger uncertainty "
        "differ more? Last column: share within the one default RC of `comparison.REPEATABILITY` for all levels.", "",
        "| retest | metric | level pairs | median abs Δ | median MDC95 | abs Δ <= MDC95 | abs Δ <= 1.96 SD | RMS of Δ / SD | Spearman ρ | abs Δ < default RC |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    # real anatomy: the volume and its two moved copies
    base = dm.load(SCT)
    tables = [_analysed(sc) for sc in [base] + [moved_copy(base, r, s) for r, s in MOVES]]
    lines += _rows("sct_t2_lumbar, 2 moved copies", _pairs(tables, tables[0].index))
    # phantom: reference pose and the same two moves, rendered anew
    pooled = {m: [] for m in UNCERTAIN_METRICS}
    for _, grid, snr in RETEST_CASES:
        tabs = [_analysed(img) for _, img in retest_images(grid, snr)]
        for m, v in _pairs(tabs, phantom.LEVELS).items():
            pooled[m] += v
    lines += _rows("phantom 0.7 / 0.8 / 1.0 mm pixels x 4 mm, re-rendered poses", pooled)
    # T2: the ROIs' T2 SDs (placement over the moves and each median's own standard error)
    t2_tables = t2_retest_tables()
    lines += _rows("phantom T2 (sample protocol), 2 moved poses + 2 rescans", _pairs(t2_tables, phantom.LEVELS,
                                                                                     T2_UNCERTAIN_METRICS))
    # the sample pair: designed changes against each level's MDC95
    root = ROOT / "sample_scans"
    if (root / "pre").is_dir():
        import json

        truth = json.loads((root / "truth.json").read_text())["visits"]
        a = dm.analyze(root / "pre", uncertainty=N_MOVES)
        b = dm.analyze(root / "post", uncertainty=N_MOVES)
        ch = dm.compare(a, b).set_index("level")
        lines += ["", "Sample pair (phantom studies of `sample_scans`, automatic segmentation): the designed bulge "
                      "change against each level's MDC95 and the default RC", "",
                  "| level | designed Δ mm | measured Δ mm | MDC95 mm | beyond MDC95 | beyond default RC |",
                  "|---|---|---|---|---|---|"]
        for lv, r in ch.iterrows():
            d_true = truth["post"]["levels"][lv]["bulge_mm"] - truth["pre"]["levels"][lv]["bulge_mm"]
            lines.append(f"| {lv} | {d_true:+.2f} | {r.bulge_mm_delta:+.2f} | {r.bulge_mm_mdc95:.2f} | "
                         f"{_beyond(r.bulge_mm_within_uncertainty)} | {_beyond(r.bulge_mm_within_repeatability)} |")
            print(lines[-1], flush=True)
        lines += ["", "The same pair's designed NP T2 change against each level's MDC95 (T2 SDs: placement over the "
                      "moves and the NP median's own standard error) and the default RC (in vivo)", "",
                  "| level | designed Δ % | measured Δ ms | measured Δ % | MDC95 ms | beyond MDC95 | beyond default RC |",
                  "|---|---|---|---|---|---|---|"]
        for lv, r in ch.iterrows():
            t_pre = truth["pre"]["levels"][lv]["np_t2_ms"]
            d_true = 100.0 * (truth["post"]["levels"][lv]["np_t2_ms"] - t_pre) / t_pre
            lines.append(f"| {lv} | {d_true:+.1f} | {r.t2_np_ms_delta:+.2f} | {r.t2_np_ms_pct:+.1f} | "
                         f"{r.t2_np_ms_mdc95:.2f} | {_beyond(r.t2_np_ms_within_uncertainty)} | "
                         f"{_beyond(r.t2_np_ms_within_repeatability)} |")
            print(lines[-1], flush=True)
    publish_section("docs/validation.md", "uncertainty", "## Per-level uncertainty (issue 6)", lines, title="Validation")


if __name__ == "__main__":
    main()
