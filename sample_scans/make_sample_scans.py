"""Regenerate sample_scans/ exactly (seeded): a pre/post pair of phantom lumbar studies.

    python sample_scans/make_sample_scans.py [--out sample_scans]

Each visit folder is a DICOM study with two series: a sagittal T2-weighted TSE-like image
(0.7 x 0.7 mm, 4 mm slices) and a sagittal multi-echo spin-echo (CPMG) series for T2 mapping
(10 echoes, 10 ms spacing, 1.2 x 1.2 mm, 4 mm slices, B1 0.75-1.0). truth.json holds the true
per-level bulge, heights and T2 of both visits (discmeasure.phantom.truth).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from discmeasure import phantom
from discmeasure.phantom.write import uid_from, write_dicom_series

HERE = Path(__file__).resolve().parent
SEED = 20261122


def make_visit(ph, out: Path, *, name: str, seed: int, study_date: str):
    study_uid = uid_from("discmeasure-sample", name, SEED)
    frame_uid = uid_from("discmeasure-sample-frame", name, SEED)
    shape, aff = phantom.make_grid(orientation="sagittal", spacing=(0.7, 0.7, 4.0), fov_mm=(170.0, 220.0),
                                   n_slices=11, center_mm=(0.0, 0.0, 10.0))
    t2w, _ = phantom.render_t2w(ph, shape, aff, snr=35, bias=0.15, supersample=3, seed=seed)
    shape_m, aff_m = phantom.make_grid(orientation="sagittal", spacing=(1.2, 1.2, 4.0), fov_mm=(120.0, 220.0),
                                       n_slices=7, center_mm=(0.0, 5.0, 10.0))
    mese, _, b1 = phantom.render_mese(ph, shape_m, aff_m, n_echoes=10, echo_spacing_ms=10.0, b1_range=(0.75, 1.0),
                                      snr=120, supersample=3, seed=seed + 1)
    if out.exists():
        shutil.rmtree(out)
    pid = f"DM-PHANTOM-{name.upper()}"
    write_dicom_series(t2w, out / "T2W_SAG", series_number=3, series_description="T2 TSE SAG", study_uid=study_uid,
                       frame_uid=frame_uid, patient_name=f"PHANTOM^{name.upper()}", patient_id=pid,
                       study_date=study_date, seed=seed, sequence_name="tse2d1_17")
    write_dicom_series(mese, out / "T2MAP_MESE_SAG", series_number=7, series_description="T2 MAP MESE SAG",
                       study_uid=study_uid, frame_uid=frame_uid, patient_name=f"PHANTOM^{name.upper()}", patient_id=pid,
                       study_date=study_date, seed=seed, sequence_name="se_mc2d10")
    return {"b1_min": float(b1.min()), "b1_max": float(b1.max()), "b1_mean": float(b1.mean())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args(argv)
    pre, post = phantom.make_pair(bulge_change={"L4-L5": -0.23}, np_t2_change={"L4-L5": 0.10},
                                  move=((1.5, -1.0, 2.0), (2.0, -3.0, 4.0)))
    truth = {"description": "discmeasure digital lumbar phantom, pre/post pair (synthetic; no patient data)",
             "generator": "sample_scans/make_sample_scans.py", "seed": SEED,
             "designed_changes": {"bulge_relative": {"L4-L5": -0.23}, "np_t2_relative": {"L4-L5": 0.10},
                                  "post_move": {"rotation_deg": [1.5, -1.0, 2.0], "translation_mm": [2.0, -3.0, 4.0]}},
             "visits": {}}
    for name, ph, seed, date in (("pre", pre, SEED, "20260105"), ("post", post, SEED + 100, "20270111")):
        b1 = make_visit(ph, args.out / name, name=name, seed=seed, study_date=date)
        t = phantom.truth(ph)
        t["b1"] = b1
        truth["visits"][name] = t
        print(f"{name}: written", flush=True)
    (args.out / "truth.json").write_text(json.dumps(truth, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
