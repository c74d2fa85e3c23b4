"""T2 fitting speed: mono vs a scipy curve_fit loop (same data); EPG on 256x256x15 x 8 echoes.

    python benchmarks/bench_t2.py        # writes section `bench_t2` of docs/benchmarks.md
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import machine_line, record_section  # noqa: E402

from discmeasure.t2 import fit_t2  # noqa: E402


def data(n, n_echoes=8, seed=0):
    rng = np.random.default_rng(seed)
    te = 10.0 * np.arange(1, n_echoes + 1)
    t2 = rng.uniform(30, 200, n)
    s = 1000 * np.exp(-te / t2[:, None])
    s = np.abs(s + rng.normal(0, 5, s.shape) + 1j * rng.normal(0, 5, s.shape))
    return s.astype(np.float32), te


def main():
    from scipy.optimize import curve_fit

    n = 1_000_000
    s, te = data(n)
    t0 = time.perf_counter()
    fit_t2(s, te, method="mono", noise_sigma=0, drop_first_echo=False)
    t_mono = time.perf_counter() - t0
    k = 3000
    t0 = time.perf_counter()
    for i in range(k):
        try:
            curve_fit(lambda t, a, b: a * np.exp(-t / b), te, s[i], p0=(s[i, 0], 80.0), maxfev=2000)
        except RuntimeError:
            pass
    t_cf = (time.perf_counter() - t0) / k
    speed = n / t_mono
    ratio = t_cf / (t_mono / n)
    vol = np.zeros((256, 256, 15, 8), np.float32)
    sv, te8 = data(256 * 256 * 15, 8, seed=1)
    vol[:] = sv.reshape(256, 256, 15, 8)
    tracemalloc.start()
    t0 = time.perf_counter()
    f = fit_t2(vol, te8, method="epg", noise_sigma=0, echo_spacing_ms=10.0)
    t_epg = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    lines = [
        "| task | discmeasure | peer (same run) | ratio | goal |", "|---|---|---|---|---|",
        f"| mono fit, 1 M voxels x 8 echoes | {t_mono:.2f} s ({speed / 1e6:.2f} M fits/s) | scipy curve_fit loop: {t_cf * 1e3:.3f} ms/voxel ({k} voxels timed) | {ratio:.0f}x faster | >= 300x, >= 1 M fits/s |",
        f"| EPG fit, 256x256x15 x 8 echoes | {t_epg:.1f} s, peak traced memory {peak:.0f} MiB | - | - | < 10 s |",
        "", machine_line()]
    text = "\n".join(lines)
    print(text)
    record_section("docs/benchmarks.md", "bench_t2", "## T2 fitting (issue 4)\n\n" + text, title="Benchmarks")


if __name__ == "__main__":
    main()
