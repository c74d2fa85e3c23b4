"""DICOM load time vs SimpleITK ImageSeriesReader and the dcm2niix binary, same run.

    python benchmarks/bench_load.py      # writes section `bench_load` of docs/benchmarks.md
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import machine_line, record_section  # noqa: E402

import discmeasure as dm  # noqa: E402
from discmeasure.phantom.write import write_dicom_series  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def best(fn, n=3):
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def sitk_read(folder):
    import SimpleITK as sitk

    r = sitk.ImageSeriesReader()
    r.SetFileNames(r.GetGDCMSeriesFileNames(str(folder)))
    return sitk.GetArrayFromImage(r.Execute())


def dcm2niix(folder, out):
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    subprocess.run([exe, "-z", "n", "-b", "n", "-o", str(out), "-f", "x_%s", str(folder)], check=True,
                   capture_output=True)


def main():
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        big = tmp / "big"
        rng = np.random.default_rng(0)
        aff = np.diag([0.5, 0.5, 1.0, 1.0])
        scan = dm.Scan(rng.integers(0, 4000, (512, 512, 200)).astype(np.float32), aff,
                       meta={"series_description": "bench 200x512x512", "echo_time_ms": 90.0})
        write_dicom_series(scan, big, series_number=1, series_description="bench", study_uid="1.2.826.0.1.3680043.8.498.77")
        cases = [("200 slices 512x512 (generated)", big)]
        pd = ROOT.parent / "shared" / "testdata" / "dicom" / "dcm_qa_pdt2" / "In"
        if pd.exists():
            cases.append(("dcm_qa_pdt2 (35 slices x 2 echoes)", pd))
        for name, folder in cases:
            t_dm = best(lambda: dm.load(folder))
            t_sitk = best(lambda: sitk_read(folder)) if name.startswith("200") else float("nan")
            outd = tmp / f"out_{len(rows)}"
            outd.mkdir()
            t_d2n = best(lambda: dcm2niix(folder, outd))
            rows.append((name, t_dm, t_sitk, t_d2n))
            print(name, t_dm, t_sitk, t_d2n, flush=True)
    lines = ["| series | discmeasure.load | SimpleITK ImageSeriesReader | dcm2niix (binary, to NIfTI) | vs SimpleITK | vs dcm2niix | goal |",
             "|---|---|---|---|---|---|---|"]
    for name, a, b, c in rows:
        lines.append(f"| {name} | {a:.2f} s | {'' if b != b else f'{b:.2f} s'} | {c:.2f} s | "
                     f"{'' if b != b else f'{a / b:.2f}x'} | {a / c:.2f}x | <= 1.0x SimpleITK, <= 2x dcm2niix |")
    lines += ["", "Best of 3 runs (warm file cache). SimpleITK reads one series of a folder; on the dual-echo "
              "dcm_qa_pdt2 it would need a series/echo split, so only the generated series is compared with it.",
              "", machine_line()]
    text = "\n".join(lines)
    print(text)
    record_section("docs/benchmarks.md", "bench_load", "## DICOM loading (issue 2)\n\n" + text, title="Benchmarks")


if __name__ == "__main__":
    main()
