"""Segmentation accuracy: phantom across geometries/noise, real 2-D lumbar slices (vesal), real 3-D volume (sct).

    python benchmarks/validate_segment.py   # writes section `segmentation` of docs/validation.md
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import publish_section  # noqa: E402

import discmeasure as dm  # noqa: E402
from discmeasure import labels, phantom  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TD = ROOT.parent / "shared" / "testdata" / "spine"


def dice(a, b):
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


def discs_named(lab, truth):
    """(expected, given) disc label for each annotated disc of a vesal mask, lowest first.

    The lowest annotated disc is L5-S1 (label 124), the next one up 123 and so on; ``given`` is
    the disc label covering most of that disc's pixels in ``lab``, 0 when it has none.
    """
    cc, n = ndimage.label(truth == 1)
    rows = ndimage.center_of_mass(truth == 1, cc, range(1, n + 1))
    out = []
    for k, j in enumerate(sorted(range(1, n + 1), key=lambda j: -rows[j - 1][0])):
        v = lab[cc == j]
        v = v[(v > 100) & (v < 130)]
        out.append((124 - k, int(np.bincount(v).argmax()) if v.size else 0))
    return out


def main():
    ph = phantom.default_phantom()
    cases = [
        ("sagittal 0.7x0.7x4, SNR 35", dict(spacing=(0.7, 0.7, 4.0), n_slices=11), 35),
        ("sagittal 0.5x0.5x3, SNR 60", dict(spacing=(0.5, 0.5, 3.0), n_slices=15), 60),
        ("sagittal 0.7x0.7x4, SNR 15", dict(spacing=(0.7, 0.7, 4.0), n_slices=11), 15),
        ("oblique 12 deg, 0.5x0.5x3", dict(spacing=(0.5, 0.5, 3.0), n_slices=17, rotation_deg=(0, 0, 12)), 30),
        ("1 mm isotropic, 40 slices", dict(spacing=(1.0, 1.0, 1.0), n_slices=40), 30),
        ("single slice 1 mm", dict(spacing=(1.0, 1.0, 1.0), n_slices=1), 30),
        ("axial stack 0.8x0.8x2 (200 slices)", dict(orientation="axial", spacing=(0.8, 0.8, 2.0), fov_mm=(200.0, 160.0),
                                                     n_slices=110, center_mm=(0, 10, 10)), 30),
    ]
    L = ["### Phantom (auto): Dice per structure and levels", "",
         "| geometry | levels right | disc Dice min / mean | body Dice min / mean | canal Dice |", "|---|---|---|---|---|"]
    for name, grid, snr in cases:
        grid = dict(grid)
        grid.setdefault("fov_mm", (170.0, 220.0))
        grid.setdefault("center_mm", (0.0, 0.0, 10.0))
        shape, aff = phantom.make_grid(**grid)
        img, lab = phantom.render_t2w(ph, shape, aff, snr=snr, supersample=2, seed=7)
        try:
            seg = dm.segment(img)
        except dm.DiscmeasureError as exc:
            L.append(f"| {name} | failed: {exc.reason} | | | |")
            continue
        dd = [dice(lab == v, seg.labels == v) for v in range(120, 125)]
        bd = [dice(lab == v, seg.labels == v) for v in (20, 21, 22, 23, 24, 26)]
        ok = seg.levels == list(phantom.LEVELS)
        L.append(f"| {name} | {'yes' if ok else seg.levels} | {min(dd):.3f} / {np.mean(dd):.3f} | {min(bd):.3f} / {np.mean(bd):.3f} | "
                 f"{dice(lab == 61, seg.labels == 61):.3f} |")
        print(L[-1], flush=True)
    # vesal 2-D
    d = TD / "vesal_lumbar_2d"
    if d.exists():
        from PIL import Image

        L += ["", "### Real mid-sagittal slices (vesal_lumbar_2d, 1 mm pixels assumed), fully annotated images", "",
              "The annotation has no level names; the lowest annotated disc is L5-S1 (S1, the top of the sacrum, is",
              "annotated below it on every image) and the others count upwards. A disc is named right when the label",
              "discmeasure gives most of its annotated pixels is that level's.", "",
              "| image | disc Dice | vertebra Dice | segmented discs named right | levels found |", "|---|---|---|---|---|"]
        aff = np.array([[0, 0, 1.0, 0], [-1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1]])  # i: posterior, j: inferior
        dds = []
        for i in (2, 3, 6, 7, 8, 9):
            im = np.asarray(Image.open(d / "images" / f"{i}.png").convert("L"), float)
            m = np.load(d / "masks" / f"{i}.npy")
            scan = dm.Scan(im.T[:, :, None], aff)
            try:
                seg = dm.segment(scan)
                lab = seg.labels[:, :, 0].T
                dd = dice((lab > 100) & (lab < 130), m == 1)
                vd = dice((lab >= 1) & (lab <= 26), m == 2)
                named = discs_named(lab, m)
                seen = [(e, g) for e, g in named if g]
                right = sum(e == g for e, g in seen)
                wrong = [f"{labels.disc_level_name(e)} as {labels.disc_level_name(g)}" for e, g in seen if e != g]
                missed = [labels.disc_level_name(e) for e, g in named if not g]
                note = "; ".join(x for x in (", ".join(wrong), ", ".join(missed) + " not segmented" if missed else "") if x)
                L.append(f"| {i} | {dd:.3f} | {vd:.3f} | {right} of {len(seen)}{' (' + note + ')' if note else ''} | "
                         f"{', '.join(seg.levels)} |")
            except dm.DiscmeasureError as exc:
                dd = 0.0
                L.append(f"| {i} | failed | failed | | {exc.reason} |")
            dds.append(dd)
            print(L[-1], flush=True)
        L.append(f"| mean | {np.mean(dds):.3f} | | goal: mean disc Dice >= 0.90 |")
    sct = TD / "sct_t2_lumbar" / "t2_lumbar.nii.gz"
    if sct.exists():
        s = dm.load(sct)
        try:
            seg = dm.segment(s)
            res = f"levels found: {', '.join(seg.levels)}"
            flagged = [f"{lv} ({', '.join(q['flags'])})" for lv, q in seg.qc.items() if q.get("flags")]
            res += "; QC flags: " + ("; ".join(flagged) if flagged else "none")
        except dm.DiscmeasureError as exc:
            res = f"**failed**: {exc.reason}"
        L += ["", "### Real 3-D volume sct_t2_lumbar (38 x 257 x 201, 1 mm)", "", f"auto segmentation: {res}."]
    publish_section("docs/validation.md", "segmentation", "## Segmentation (issue 5)", L, title="Validation")


if __name__ == "__main__":
    main()
