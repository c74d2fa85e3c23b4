"""Voxel-block parallelism for the T2 fits: fixed-size blocks, worker threads, one BLAS thread each.

Every fit is independent per voxel, so a volume is cut into blocks of rows that worker threads
process (numpy and BLAS release the GIL); results are written into preallocated outputs, so they
do not depend on the number of threads. Blocks bound the temporary memory (a block's EPG match
scores are ``block x atoms`` values, whatever the volume size).

Threads: ``DISCMEASURE_THREADS`` if set, else the CPUs this process may run on. While worker
threads run, numpy's OpenBLAS is limited to one thread (found through its own
``openblas_set_num_threads``; a no-op when numpy uses another BLAS): nested BLAS threads would
oversubscribe the cores and OpenBLAS's spinning threads waste them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["n_threads", "run_blocks", "single_blas_thread"]

_LOCK = threading.Lock()
_BLAS: list = []  # [(get, set)] once probed
_DEPTH = [0, None]  # nesting depth, saved thread count


def n_threads() -> int:
    """Worker threads for voxel blocks (``DISCMEASURE_THREADS``, else the usable CPUs)."""
    env = os.environ.get("DISCMEASURE_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _openblas():
    if _BLAS:
        return _BLAS[0]
    found = None
    try:
        import numpy as np

        np.dot(np.ones((2, 2)), np.ones((2, 2)))  # make sure numpy's BLAS is loaded
        with open("/proc/self/maps") as fh:
            paths = sorted({ln.split()[-1] for ln in fh if "openblas" in ln.split()[-1].lower()})
        paths = [p for p in paths if "numpy" in p] or paths  # numpy's own copy (scipy has another)
        for path in paths:
            lib = ctypes.CDLL(path)
            for suffix in ("64_", "", "_64"):
                for prefix in ("scipy_openblas", "openblas"):
                    g, s = getattr(lib, f"{prefix}_get_num_threads{suffix}", None), getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
                    if g is not None and s is not None:
                        g.restype = ctypes.c_int
                        s.argtypes = [ctypes.c_int]
                        found = (g, s)
                        break
                if found:
                    break
            if found:
                break
    except Exception:  # noqa: BLE001 -- no /proc, no OpenBLAS: nothing to limit
        found = None
    _BLAS.append(found)
    return found


@contextlib.contextmanager
def single_blas_thread():
    """Limit numpy's OpenBLAS to one thread inside the block (re-entrant, thread-safe)."""
    blas = _openblas()
    if blas is None:
        yield
        return
    get, set_ = blas
    with _LOCK:
        if _DEPTH[0] == 0:
            _DEPTH[1] = int(get())
            set_(1)
        _DEPTH[0] += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH[0] -= 1
            if _DEPTH[0] == 0 and _DEPTH[1]:
                set_(_DEPTH[1])


def run_blocks(fn, n: int, block: int, threads: int | None = None) -> None:
    """Call ``fn(slice)`` for consecutive blocks of ``range(n)``, in worker threads when worthwhile."""
    slices = [slice(a, min(a + block, n)) for a in range(0, n, block)]
    threads = min(threads or n_threads(), len(slices))
    with single_blas_thread():  # blocks are small: BLAS threads would only spin
        if threads <= 1:
            for sl in slices:
                fn(sl)
            return
        with ThreadPoolExecutor(threads) as ex:
            for _ in ex.map(fn, slices):  # re-raises the first failure
                pass
