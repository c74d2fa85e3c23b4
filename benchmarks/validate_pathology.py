"""Degenerative changes on the phantom: automatic segmentation and measurements against truth.

    python benchmarks/validate_pathology.py

Each case of ``phantom.PATHOLOGIES`` (dark narrowed discs, Modic bands, a degenerative scoliosis,
antero- and retrolisthesis) is rendered as a sagittal 0.7 x 0.7 x 4 mm T2-weighted series at
SNR 35, segmented automatically and measured; the errors are against the analytic truth of the
same phantom, with the measurement on the phantom's own (truth) labels for comparison. Writes the
section `pathology` of docs/validation.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import publish_section  # noqa: E402
from validate_measure import errors, fmt  # noqa: E402
from validate_segment import dice  # noqa: E402

import discmeasure as dm  # noqa: E402
from discmeasure import phantom  # noqa: E402

GRID = dict(spacing=(0.7, 0.7, 4.0), n_slices=13, fov_mm=(170.0, 220.0), center_mm=(0.0, 0.0, 10.0))
DISCS = [dm.labels.disc_label_from_name(lv) for lv in phantom.LEVELS]
BODIES = [dm.labels.vertebra_number(b) for b in phantom.BODIES]


def main():
    lines = ["### Degenerative changes (phantom, sagittal 0.7 x 0.7 x 4 mm, SNR 35, automatic segmentation)", "",
             "Cases: `discmeasure.phantom.PATHOLOGIES` (docs/phantom.md). Dice min / mean over the five discs and",
             "six bodies; measurement errors measured - true, mean / max |error| (mm) over L1-L2 ... L5-S1, on the",
             "automatic labels and, for comparison, on the phantom's own labels (edge refinement on, the default).", "",
             "| case | levels right | disc Dice | body Dice | labels | bulge | bulge mid-sag. | height ant. | height mid. | height post. | QC flags |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, over in phantom.PATHOLOGIES.items():
        ph = phantom.default_phantom(**over)
        truth = phantom.truth(ph)
        shape, aff = phantom.make_grid(**GRID)
        img, lab = phantom.render_t2w(ph, shape, aff, snr=35, supersample=3, seed=5)
        try:
            seg = dm.segment(img)
        except dm.DiscmeasureError as exc:
            lines.append(f"| {name} | failed: {exc} | | | | | | | | | |")
            continue
        dd = [dice(lab == v, seg.labels == v) for v in DISCS]
        bd = [dice(lab == v, seg.labels == v) for v in BODIES]
        ok = "yes" if seg.levels == list(phantom.LEVELS) else f"no: {', '.join(seg.levels)}"
        for src in ("auto", "truth"):
            s = seg if src == "auto" else dm.segment(img, method="labels", labels=lab, convention="discmeasure")
            df = dm.measure(img, s)
            e = errors(df, truth)
            flags = sorted({f for q in df.qc_flags for f in str(q).split(";") if f and not f.startswith("segmentation: imported")})
            head = (f"| {name} | {ok} | {min(dd):.3f} / {np.mean(dd):.3f} | {min(bd):.3f} / {np.mean(bd):.3f} "
                    if src == "auto" else "| | | | ")
            lines.append(f"{head}| {src} | {fmt(e['bulge'])} | {fmt(e['mid'])} | {fmt(e['h_a'])} | {fmt(e['h_m'])} | "
                         f"{fmt(e['h_p'])} | {', '.join(flags) or '-'} |")
        print(*lines[-2:], sep="\n", flush=True)
    publish_section("docs/validation.md", "pathology", "## Degenerative changes (issues 5 and 6)", lines, title="Validation")


if __name__ == "__main__":
    main()
