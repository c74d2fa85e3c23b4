"""Where the automatic vertebral bodies' endplate faces lie, against the analytic phantom.

For each in-plane pixel size, the default phantom is rendered (sagittal, 4 mm slices, 9 slices,
supersampled partial volume, noiseless and SNR 35) and segmented automatically. In the
mid-sagittal slice, along every image column through the middle 60 % of the L1-L2, L2-L3 and
L3-L4 discs, the label boundary (voxel face) of the body above and of the body below the disc is
compared with the true boundary from the phantom's analytic anatomy (``Phantom.classify`` on
0.02-voxel steps), and so is the face given by the segmentation's body partial volume
(``Segmentation.body_fraction``) where it has one. Positive = the body reaches into the disc; a height is short by the sum of
the two. Writes the section "body_faces" of docs/validation.md.

Run: ``python benchmarks/validate_body_faces.py`` (about a minute).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import publish_section  # noqa: E402

import discmeasure as dm  # noqa: E402
from discmeasure import phantom  # noqa: E402

CASES = [(0.6, None), (0.7, None), (0.75, None), (0.8, None), (1.0, None), (0.7, 35), (0.8, 35), (0.7, 15)]
DISCS = (121, 122, 123)


def face_errors(ph, skel, spacing, snr):
    shape, aff = phantom.make_grid(spacing=(spacing, spacing, 4.0), n_slices=9, fov_mm=(200, 220))
    img, lab = phantom.render_t2w(ph, shape, aff, snr=snr, supersample=3, seed=5)
    seg = dm.segment(img)
    auto = seg.labels
    mid = shape[2] // 2
    T, A = lab[:, :, mid], auto[:, :, mid]
    F = seg.body_fraction[:, :, mid] if seg.body_fraction is not None else None
    # this grid: axis 1 runs inferior (world z decreases with the index)
    assert aff[2, 1] < 0 and abs(aff[2, 0]) < 1e-9
    errs = {"upper": [], "lower": [], "upper_pv": [], "lower_pv": []}
    for disc in DISCS:
        ub, lb = disc - 100, disc - 99
        cols = np.flatnonzero((T == disc).sum(1) >= 3)
        c0, c1 = np.percentile(cols, [20, 80])
        for i in cols[(cols >= c0) & (cols <= c1)]:
            dj = np.flatnonzero(T[i] == disc)
            j = np.arange(dj.min() - 6, dj.max() + 6, 0.02)
            ijk = np.stack([np.full_like(j, i), j, np.full_like(j, mid)], 1)
            _, L, _ = ph.classify(ijk @ aff[:3, :3].T + aff[:3, 3], skel=skel)
            au, al = np.flatnonzero(A[i] == ub), np.flatnonzero(A[i] == lb)
            au, al = au[au < dj.mean()], al[al > dj.mean()]
            if not ((L == ub).any() and (L == lb).any() and len(au) and len(al)):
                continue
            errs["upper"].append((au.max() + 0.5 - j[L == ub].max()) * spacing)
            errs["lower"].append((j[L == lb].min() - (al.min() - 0.5)) * spacing)
            if F is not None:
                # the face from the partial volume: 3 voxels inside the labelled face (whole body)
                # plus the body's share of the voxels from there to 2 voxels beyond it
                a0, b0 = au.max() - 3, al.min() + 3
                errs["upper_pv"].append((a0 - 0.5 + F[i, a0:au.max() + 3].sum() - j[L == ub].max()) * spacing)
                errs["lower_pv"].append((j[L == lb].min() - (b0 + 0.5 - F[i, al.min() - 2:b0 + 1].sum())) * spacing)
    return {k: np.array(v) for k, v in errs.items()}


def main():
    ph = phantom.default_phantom()
    skel = ph.skeleton()
    lines = ["### Automatic bodies: endplate face position against the phantom", "",
             "Mid-sagittal slice, columns through the middle 60 % of L1-L2 … L3-L4; mean ± SD of the",
             "signed error (mm, + = body reaches into the disc) and the resulting mean height error",
             "(− the sum of the two). `benchmarks/validate_body_faces.py`; docs/segmentation.md explains.",
             "Labels: the label map's voxel faces; partial volume: the faces of `Segmentation.body_fraction`",
             "(the part of each voxel inside the body, summed along the column), which the heights read;",
             "made on the scan's own in-plane voxels (at 1.0 mm on a second working grid of 1 mm, since 2026-11-24).", "",
             "| in-plane pixel mm | SNR | upper body face, labels | lower body face, labels | height bias, labels | "
             "upper face, partial volume | lower face, partial volume | height bias, partial volume | columns |",
             "|---|---|---|---|---|---|---|---|---|"]

    def ms(a):
        return f"{a.mean():+.2f} ± {a.std():.2f}" if len(a) else "–"

    for sp, snr in CASES:
        e = face_errors(ph, skel, sp, snr)
        bias_pv = f"{-(e['upper_pv'].mean() + e['lower_pv'].mean()):+.2f}" if len(e["upper_pv"]) else "–"
        row = (f"| {sp} | {snr or 'noiseless'} | {ms(e['upper'])} | {ms(e['lower'])} | "
               f"{-(e['upper'].mean() + e['lower'].mean()):+.2f} | {ms(e['upper_pv'])} | {ms(e['lower_pv'])} | {bias_pv} | "
               f"{len(e['upper'])} |")
        print(row, flush=True)
        lines.append(row)
    publish_section("docs/validation.md", "body_faces", lines[0], lines[2:], title="Validation")


if __name__ == "__main__":
    main()
