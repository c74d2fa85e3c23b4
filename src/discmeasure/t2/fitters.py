"""Vectorised T2 fitters on (n_voxels, n_echoes) arrays.

- :func:`fit_loglinear`: weighted linear least squares of log S on TE, weights S^2
  (the first-order correction of the log transform's noise amplification;
  Walker-Samuel et al. 2006, doi:10.1088/0031-9155/51/22/013 compare such fits).
- :func:`fit_mono`: non-linear least squares of S0 exp(-TE/T2) (+ C) by variable
  projection (Golub & Pereyra 1973, doi:10.1137/0710036): S0 and C in closed form,
  a safeguarded 1-D Newton search on 1/T2, all voxels at once; per-echo weights 0/1
  implement noise-floor truncation (Raya et al. 2010, doi:10.1002/mrm.22178).
- :func:`fit_epg`: stimulated-echo-corrected fit of T2, B1 and S0: dictionary of
  normalised CPMG EPG echo trains over (T2, B1), best match by inner product
  with S0 in closed form, then a quadratic interpolation of the match surface
  around the best atom (Lebel & Wilman 2010, doi:10.1002/mrm.22487;
  Ben-Eliezer et al. 2015, doi:10.1002/mrm.25156).
"""

from __future__ import annotations

import threading

import numpy as np

from . import flags as F

__all__ = ["fit_loglinear", "fit_mono", "fit_epg", "mono_residuals"]

T2_MIN, T2_MAX = 1.0, 2000.0


def fit_loglinear(sig: np.ndarray, te: np.ndarray, w: np.ndarray | None = None):
    """Weighted log-linear fit. Returns (s0, t2, ok)."""
    s = np.clip(sig, 1e-12, None)
    y = np.log(s)
    wt = s**2 if w is None else s**2 * w
    W = wt.sum(1)
    Wt = (wt * te).sum(1)
    Wtt = (wt * te * te).sum(1)
    Wy = (wt * y).sum(1)
    Wty = (wt * te * y).sum(1)
    det = W * Wtt - Wt**2
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = (W * Wty - Wt * Wy) / det
        icpt = (Wtt * Wy - Wt * Wty) / det
        t2 = -1.0 / slope
    ok = np.isfinite(t2) & (t2 > 0) & (det > 0)
    s0 = np.exp(np.where(np.isfinite(icpt), icpt, 0.0))
    return s0, np.where(ok, t2, np.nan), ok


_WORK = threading.local()


def _work(name: str, rows: int, n: int, dtype=float) -> np.ndarray:
    """A (rows, n) scratch array kept by the calling thread for its next blocks.

    Fresh memory costs a page fault per 4 KiB when first written (glibc returns large freed
    blocks to the system): on blocks of a few thousand voxels that cost more than the fit itself.
    Arrays above 4 MiB are not kept.
    """
    if rows * n * np.dtype(dtype).itemsize > 4 << 20:
        return np.empty((rows, n), dtype)
    key = (name, rows, np.dtype(dtype).str)
    a = _WORK.__dict__.get(key)
    if a is None or a.shape[1] < n:
        a = _WORK.__dict__[key] = np.empty((rows, n), dtype)
    return a[:, :n]


def _rowsum(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Sum of the rows of a (m, k) array, added in row order.

    Every column is summed the same way whatever k is, so a voxel's fit does not depend on the
    block it is fitted in: ``np.add.reduce(axis=0)`` adds row after row when k >= 2 (tested), but
    a single column is summed pairwise, hence the explicit loop then.
    """
    if x.shape[1] >= 2:
        return np.add.reduce(x, axis=0, out=out)
    np.copyto(out, x[0])
    for j in range(1, x.shape[0]):
        np.add(out, x[j], out=out)
    return out


def _moments(p: np.ndarray, tau: np.ndarray, tmp: np.ndarray, m0, m1, m2) -> None:
    """sum_j p_j, sum_j tau_j p_j and sum_j tau_j^2 p_j over the rows j of p (m, k)."""
    _rowsum(p, m0)
    np.multiply(p, tau, out=tmp)
    _rowsum(tmp, m1)
    np.multiply(tmp, tau, out=tmp)
    _rowsum(tmp, m2)


class _Decay:
    """exp(-R tau_j) for the rows j of a (m, k) array, R per voxel (column).

    With few distinct echo spacings (CPMG trains: one), by the recurrence
    e_j = e_(j-1) exp(-R (tau_j - tau_(j-1))) (a running product along the echoes): one exp per
    voxel and distinct spacing instead of one per echo (exp is the costliest step of the fit).
    The recurrence's rounding error grows like j ulp (~1e-15 for 32 echoes).
    """

    def __init__(self, tau: np.ndarray):
        self.tau = tau
        self.steps, self.which = np.unique(np.diff(tau), return_inverse=True)
        self.recur = len(tau) > 2 and len(self.steps) + 1 <= len(tau) // 2

    def __call__(self, R: np.ndarray, out: np.ndarray) -> np.ndarray:
        if not self.recur:
            np.multiply(-self.tau[:, None], R, out=out)
            return np.exp(out, out=out)
        q = [np.exp(R * -st) for st in self.steps]
        if self.tau[0] == 0:
            out[0] = 1.0
        else:
            np.exp(R * -self.tau[0], out=out[0])
        for j in range(1, out.shape[0]):
            np.multiply(out[j - 1], q[self.which[j - 1]], out=out[j])
        return out


def fit_mono(sig: np.ndarray, te: np.ndarray, *, w: np.ndarray | None = None, offset: bool = False,
             max_iter: int = 50, tol: float = 1e-7):
    """Least-squares fit of S0 exp(-TE/T2) (+ C) by variable projection and a safeguarded Newton search.

    Parameters
    ----------
    sig : (n, m) ndarray
        Echo amplitudes, one voxel per row.
    te : (m,) ndarray
        Echo times (ms).
    w : (n, m) ndarray, optional
        Per-echo weights (0/1 for the noise-floor truncation of :func:`discmeasure.fit_t2`; Raya
        et al. 2010, doi:10.1002/mrm.22178). Default: all 1.
    offset : bool
        Fit a constant C as well (S0 exp(-TE/T2) + C).
    max_iter : int
        Evaluations of the reduced cost per voxel before giving up (``NOT_CONVERGED``).
    tol : float
        Convergence: the next step of R2 = 1/T2 is below ``tol`` x R2.

    Returns
    -------
    s0, t2, c, flags : ndarrays (n,)
        Amplitude at TE = 0, T2 (ms, bounded to [1, 2000]), offset (zeros without ``offset``),
        quality bits ``NOT_CONVERGED`` (no convergence in ``max_iter`` evaluations, or no
        decaying fit: amplitude <= 0) and ``AT_BOUND`` (T2 at 1 or 2000 ms).

    Notes
    -----
    Variable projection (Golub & Pereyra 1973, doi:10.1137/0710036): for a fixed R2 the model is
    linear in S0 (and C), whose weighted least-squares values are closed-form, so the problem
    reduces to minimising the 1-D cost phi(R2) = ||y - P(R2) y||_w^2 (P the weighted projection
    onto the model's linear span). phi, its first and second derivatives come from six weighted
    moments sum w y tau^k e and sum w tau^k e^2 (k = 0, 1, 2; e = exp(-R2 tau)) per voxel, plus
    sum w tau^k e when C is eliminated (centred data). Echo times are counted from the first echo
    (tau = TE - TE_1): the amplitude fitted is S0 exp(-R2 TE_1), mapped back to S0 at the end.

    The search on R2 in [1/2000, 1] ms^-1 is a safeguarded Newton iteration (Newton steps kept
    inside a bracket of the minimum given by the sign of phi', bisection (geometric) otherwise,
    as in ``rtsafe`` of Press et al., Numerical Recipes, 3rd ed. 2007, sect. 9.4), started from the
    weighted log-linear fit (:func:`fit_loglinear`'s estimator). Newton converges quadratically:
    from the log-linear start most voxels need two or three evaluations. The last Newton step is
    applied to R2, and to the linear parameters to first order, when the search stops.

    All voxels are fitted at once, transposed to (m, n) so that every operation runs over
    contiguous voxel vectors; sums over echoes are added in echo order, so every voxel's result
    is independent of the other voxels in the call (and of block sizes and threads).
    """
    sig = np.asarray(sig)
    n, m = sig.shape
    te = np.asarray(te, dtype=float)
    rmin, rmax = 1.0 / T2_MAX, 1.0 / T2_MIN
    tc = te[0]
    tau = te - tc
    tcol = tau[:, None]
    decay = _Decay(tau)
    Y = _work("Y", m, n)  # (m, n): echoes along rows
    np.copyto(Y, sig.T)
    W = None
    if w is not None:
        w = np.asarray(w, dtype=float)
        if not (w == 1.0).all():  # all-ones weights: skip the products (same result)
            W = _work("W", m, n)
            np.copyto(W, w.T)
    E, P, T = _work("E", m, n), _work("P", m, n), _work("T", m, n)
    V = _work("V", 9, n)

    # start: log-linear fit with weights w y^2 (log of float32 values: a start needs no more)
    y32 = _work("y32", m, n, np.float32)
    np.maximum(Y, 1e-12, out=y32, casting="same_kind")
    np.log(y32, out=y32)
    np.copyto(T, y32)  # ln y
    np.multiply(Y, Y, out=P)
    if W is not None:
        P *= W
    q0, q1, q2, l0, l1 = V[:5]
    np.multiply(T, P, out=T)
    _moments(P, tcol, E, q0, q1, q2)
    _rowsum(T, l0)
    np.multiply(T, tcol, out=T)
    _rowsum(T, l1)
    with np.errstate(divide="ignore", invalid="ignore"):
        det = q0 * q2 - q1 * q1
        slope = (q0 * l1 - q1 * l0) / det
    R = np.where(np.isfinite(slope) & (slope < 0) & (det > 0), np.clip(-slope, rmin, rmax), 1.0 / 50.0)

    # data moments that do not change: sum w (y - ybar) tau^k e with the offset (C eliminated)
    if offset:
        Sw = np.full(n, float(m)) if W is None else _rowsum(W, np.empty(n))
        ybar = _rowsum(Y if W is None else Y * W, np.empty(n)) / Sw
        Yd = Y - ybar
        if W is not None:
            Yd *= W
    else:
        Yd = Y if W is None else Y * W

    out_r = np.empty(n)
    out_a = np.empty(n)
    out_c = np.zeros(n)
    conv = np.zeros(n, bool)
    ids = np.arange(n)
    lo = np.full(n, rmin)
    hi = np.full(n, rmax)
    dxold = np.full(n, rmax - rmin)
    done = np.zeros(n, bool)
    A = np.empty(n)  # amplitude at the reported R
    C = np.zeros(n)
    Wk, Ydk = W, Yd
    Swk, ybark = (Sw, ybar) if offset else (None, None)
    k = n
    max_iter = max(int(max_iter), 1)

    def report(sel):
        out_r[ids[sel]], out_a[ids[sel]], out_c[ids[sel]], conv[ids[sel]] = R[sel], A[sel], C[sel], done[sel]

    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for it in range(max_iter):
            Ek, Pk, Tk = E[:, :k], P[:, :k], T[:, :k]
            a0, a1, a2, b0, b1, b2, d0, d1, d2 = (v[:k] for v in V)
            decay(R, Ek)
            np.multiply(Ydk, Ek, out=Pk)
            _moments(Pk, tcol, Tk, a0, a1, a2)  # a, -a', a''
            if offset:
                if Wk is None:
                    _moments(Ek, tcol, Tk, d0, d1, d2)
                    np.multiply(Ek, Ek, out=Pk)
                else:
                    np.multiply(Ek, Wk, out=Pk)
                    _moments(Pk, tcol, Tk, d0, d1, d2)
                    Pk *= Ek
            else:
                np.multiply(Ek, Ek, out=Pk)
                if Wk is not None:
                    Pk *= Wk
            _moments(Pk, tcol, Tk, b0, b1, b2)  # b, -b'/2, b''/4
            # phi = const - a^2 / b; with C: b = sum w (e - ebar)^2 = b0 - d0^2 / Sw
            if offset:
                bb = b0 - d0 * d0 / Swk
                db = 2.0 * (d0 * d1 / Swk - b1)
                ddb = 4.0 * b2 - 2.0 * (d1 * d1 + d0 * d2) / Swk
            else:
                bb, db, ddb = b0, -2.0 * b1, 4.0 * b2
            amp = a0 / bb
            u = -a1 - amp * db  # a' - amp b' = b amp'
            grad = amp * (amp * db + 2.0 * a1)  # phi' = -2 amp a' + amp^2 b'
            hess = amp * (amp * ddb - 2.0 * a2) - 2.0 * u * u / bb  # phi''
            # bracket of the minimum from the sign of phi'; Newton if inside, else bisection
            np.copyto(hi, R, where=grad > 0)
            np.copyto(lo, R, where=grad < 0)
            rn = R - grad / hess
            curv = hess > 0
            newton = curv & (rn >= lo) & (rn <= hi) & (np.abs(rn - R) <= 0.5 * np.abs(dxold))
            nxt = np.where(newton, rn, np.sqrt(lo * hi))
            np.copyto(nxt, rmax, where=curv & (rn > hi) & (hi == rmax))  # minimum at/near a bound
            np.copyto(nxt, rmin, where=curv & (rn < lo) & (lo == rmin))
            step = nxt - R
            act = ~done
            stop = act & (np.abs(step) <= tol * R)
            # voxels that stop take the last (tiny) step: R exactly, the amplitude (and C) to
            # first order; the others report their latest point if this is the last evaluation
            ds = np.where(stop, step, 0.0)
            an = amp + u / bb * ds
            np.copyto(A, an, where=act)
            if offset:  # C = ybar - amp d0 / Sw, d0' = -d1
                np.copyto(C, ybark - (an * d0 - amp * d1 * ds) / Swk, where=act)
            np.copyto(R, R + ds, where=stop)
            done |= stop
            if it == max_iter - 1:
                break
            adv = ~done
            np.copyto(dxold, step, where=adv)
            np.copyto(R, nxt, where=adv)
            na = int(np.count_nonzero(adv))
            if na == 0:
                break
            if na <= 0.75 * k:  # report the converged voxels and drop them
                report(done)
                keep = np.flatnonzero(adv)
                ids, R, lo, hi, dxold, A, C = (x[keep] for x in (ids, R, lo, hi, dxold, A, C))
                Ydk = Ydk[:, keep]
                if Wk is not None:
                    Wk = Wk[:, keep]
                if offset:
                    Swk, ybark = Swk[keep], ybark[keep]
                k = na
                done = np.zeros(k, bool)
        report(slice(None))
        s0 = out_a * np.exp(out_r * tc)
    t2 = 1.0 / out_r
    bad = ~(s0 > 0)  # no decaying fit (or non-finite)
    fl = np.where(conv & ~bad, 0, F.NOT_CONVERGED).astype(np.uint16)
    at_b = (t2 >= T2_MAX * 0.999) | (t2 <= T2_MIN * 1.001)
    fl |= np.where(at_b, F.AT_BOUND, 0).astype(np.uint16)
    return s0, t2, out_c, fl


def mono_residuals(sig: np.ndarray, te: np.ndarray, s0: np.ndarray, t2: np.ndarray, c: np.ndarray | None = None,
                   w: np.ndarray | None = None):
    """Residual sums of S0 exp(-TE/T2) + C fits: (sum (w r)^2, sum (w (y - ybar))^2, sum w) per voxel.

    ``ybar`` is the w-weighted mean signal. Computed on (m, n) transposed blocks with the decay
    recurrence of :func:`fit_mono` and echo-ordered sums (independent of the other voxels).
    """
    sig = np.asarray(sig)
    k, m = sig.shape
    Y = _work("rY", m, k)
    np.copyto(Y, sig.T)
    te = np.asarray(te, dtype=float)
    R = 1.0 / np.asarray(t2, dtype=float)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        E = _Decay(te - te[0])(R, _work("rE", m, k))
        np.multiply(E, np.asarray(s0, dtype=float) * np.exp(-R * te[0]), out=E)
    if c is not None:
        E += c
    np.subtract(Y, E, out=E)  # residuals
    W = None
    if w is not None:
        W = _work("rW", m, k)
        np.copyto(W, np.asarray(w).T)
    nn = np.full(k, float(m)) if W is None else _rowsum(W, np.empty(k))
    if W is not None:
        E *= W
    E *= E
    sse = _rowsum(E, np.empty(k))
    nz = np.maximum(nn, 1.0)
    if W is not None:
        np.multiply(Y, W, out=E)
        mean = _rowsum(E, np.empty(k)) / nz
        np.subtract(Y, mean, out=E)
        E *= W
    else:
        mean = _rowsum(Y, np.empty(k)) / nz
        np.subtract(Y, mean, out=E)
    E *= E
    return sse, _rowsum(E, np.empty(k)), nn


_DICT_CACHE: dict = {}


def _dictionary(te_idx, n_echoes, esp, refoc, t1, t2_grid, b1_grid, *, derived: bool = False):
    key = (tuple(te_idx), n_echoes, round(esp, 6), round(refoc, 4), round(float(t1), 3), len(t2_grid),
           float(t2_grid[0]), float(t2_grid[-1]), len(b1_grid), float(b1_grid[0]), float(b1_grid[-1]))
    if key not in _DICT_CACHE:
        from ..epg import cpmg_signal

        D = cpmg_signal(t2_grid[:, None], b1_grid[None, :], n_echoes=n_echoes, echo_spacing_ms=esp,
                        refocusing_angle_deg=refoc, t1_ms=t1)[..., te_idx]  # (nT2, nB1, m)
        _DICT_CACHE.clear()
        _DICT_CACHE[key] = {"D": D}
    entry = _DICT_CACHE[key]
    if not derived:
        return entry["D"]
    if "Df" not in entry:  # flat atoms, squares, twin map, one atom per distinct train
        D = entry["D"]
        Df = np.ascontiguousarray(D.reshape(-1, D.shape[2]))
        canon = _twins(D)
        keep = np.flatnonzero(canon == np.arange(canon.size))
        entry.update(Df=Df, D2=Df**2, canon=canon, keep=keep, Dk=Df[keep], D2k=Df[keep] ** 2)
    return entry


def _twins(D: np.ndarray, rtol: float = 1e-12) -> np.ndarray:
    """For each atom (flat index), the first atom of the same T2 with the same echo train.

    With a 180-degree nominal refocusing angle, B1 = 1 - d and 1 + d give identical trains (the
    pulses' effect depends on cos and sin^2 of the angle): their match scores differ only by
    rounding, so which one wins would depend on the BLAS kernel. Mapping the winner to the first
    twin (lower B1) makes the fit reproducible.
    """
    nT, nB, m = D.shape
    canon = np.arange(nT * nB).reshape(nT, nB)
    scale = np.abs(D).max(axis=2)  # (nT, nB)
    for ib in range(1, nB):
        diff = np.abs(D[:, :ib, :] - D[:, ib:ib + 1, :]).max(axis=2)  # (nT, ib)
        same = diff <= rtol * np.maximum(scale[:, ib:ib + 1], 1e-300)
        has = same.any(axis=1)
        first = np.argmax(same, axis=1)
        canon[has, ib] = canon[has, first[has]]
    return canon.reshape(-1)


def _quad_peak(vm, v0, vp):
    """Offset (in grid steps, -0.5..0.5) of the vertex of a parabola through three samples."""
    den = vm - 2 * v0 + vp
    with np.errstate(divide="ignore", invalid="ignore"):
        off = 0.5 * (vm - vp) / den
    return np.where((den < 0) & np.isfinite(off), np.clip(off, -0.5, 0.5), 0.0)


def _pattern_atoms(Df, D2, wrow, cache):
    """Atoms scaled by 1/sqrt(weighted energy) for one echo-weight pattern (cached), transposed."""
    key = ("atoms", wrow.tobytes())
    if key not in cache:
        den = np.maximum(wrow @ D2.T, 1e-30)
        cache[key] = np.ascontiguousarray((Df / np.sqrt(den)[:, None]).T)
    return cache[key]


def fit_epg(sig: np.ndarray, te_idx: np.ndarray, *, n_echoes: int, echo_spacing_ms: float,
            refocusing_angle_deg: float = 180.0, t1_ms: float = 1000.0, w: np.ndarray | None = None,
            n_t2: int = 120, b1_range=(0.5, 1.2), n_b1: int = 36, chunk: int = 256, threads: int | None = None):
    """Dictionary fit of T2, B1 and S0 with the CPMG EPG model.

    Parameters
    ----------
    sig : (n, m) ndarray
        Echo amplitudes of the echoes used (indices ``te_idx`` into the full train of
        ``n_echoes`` echoes at multiples of ``echo_spacing_ms``).
    w : (n, m) ndarray of 0/1, optional
        Echo weights (0 = below the noise floor: ignored).
    chunk : int
        Voxels per block: temporary memory is ``chunk x atoms`` doubles per worker thread.
    threads : int, optional
        Worker threads (default :func:`discmeasure.t2._parallel.n_threads`).

    Returns
    -------
    s0, t2, b1, flags : ndarrays (n,)

    Notes
    -----
    The best atom maximises the least-squares match score <s,d>_w^2 / <d,d>_w. Voxels sharing
    an echo-weight pattern share the denominator, so the search is one matrix product with
    atoms pre-divided by sqrt(<d,d>_w) and an argmax of |<s,d>_w| / sqrt(<d,d>_w) (the same
    ranking); the scores of the best atom and its four neighbours, used by the quadratic
    interpolation, are then evaluated with the score formula itself. Atoms with identical echo
    trains (B1 = 1 -/+ d at 180 degrees) resolve to the lower B1 (:func:`_twins`).
    """
    from ._parallel import run_blocks

    t2_grid = np.geomspace(T2_MIN * 5, T2_MAX / 2, n_t2)
    b1_grid = np.linspace(b1_range[0], b1_range[1], n_b1)
    entry = _dictionary(np.asarray(te_idx), n_echoes, echo_spacing_ms, refocusing_angle_deg, t1_ms, t2_grid, b1_grid,
                        derived=True)
    nT, nB, m = entry["D"].shape
    Df, keep, Dk, D2k = entry["Df"], entry["keep"], entry["Dk"], entry["D2k"]
    n = sig.shape[0]
    s0 = np.zeros(n)
    t2 = np.zeros(n)
    b1 = np.zeros(n)
    fl = np.zeros(n, np.uint16)
    lt = np.log(t2_grid)
    caches: dict = {}  # per thread: match buffer, pattern-normalised atoms

    def block(sl):
        s = sig[sl]
        ww = np.ones_like(s) if w is None else w[sl]
        sw = s * ww
        mine = caches.setdefault(threading.get_ident(), {})
        buf = mine.get("buf")
        if buf is None or buf.shape[0] < len(s):
            buf = mine["buf"] = np.empty((max(len(s), min(chunk, n)), len(keep)))
        best = np.empty(len(s), np.intp)
        if (ww == ww[:1]).all():
            groups = [(slice(None), ww[0])]
        else:
            pats, inv = np.unique(ww, axis=0, return_inverse=True)
            inv = inv.reshape(-1)
            groups = [(np.flatnonzero(inv == u), pats[u]) for u in range(len(pats))]
        for rows, pat in groups:
            x = sw[rows]
            proj = np.matmul(x, _pattern_atoms(Dk, D2k, pat, mine), out=buf[:len(x)])
            if (x < 0).any():
                np.abs(proj, out=proj)
            best[rows] = keep[np.argmax(proj, axis=1)]
        it, ib = np.unravel_index(best, (nT, nB))

        def score(i_t, i_b):
            d = Df[i_t * nB + i_b]
            num = (sw * d).sum(1)
            den = (ww * d**2).sum(1)
            return num**2 / np.maximum(den, 1e-30)

        itm, itp = np.clip(it - 1, 0, nT - 1), np.clip(it + 1, 0, nT - 1)
        ibm, ibp = np.clip(ib - 1, 0, nB - 1), np.clip(ib + 1, 0, nB - 1)
        v0 = score(it, ib)
        ot = _quad_peak(score(itm, ib), v0, score(itp, ib))
        ob = _quad_peak(score(it, ibm), v0, score(it, ibp))
        ot = np.where((it == 0) | (it == nT - 1), 0.0, ot)
        ob = np.where((ib == 0) | (ib == nB - 1), 0.0, ob)
        t2[sl] = np.exp(lt[it] + ot * (lt[1] - lt[0]))
        b1[sl] = b1_grid[ib] + ob * (b1_grid[1] - b1_grid[0])
        d = Df[best]
        s0[sl] = (s * ww * d).sum(1) / np.maximum((ww * d * d).sum(1), 1e-30)
        edge = (it == 0) | (it == nT - 1) | (ib == 0) | (ib == nB - 1)
        fl[sl] |= np.where(edge, F.AT_BOUND, 0).astype(np.uint16)

    run_blocks(block, n, chunk, threads)
    return s0, t2, b1, fl
