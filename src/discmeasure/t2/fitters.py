"""Vectorised T2 fitters on (n_voxels, n_echoes) arrays.

- :func:`fit_loglinear`: weighted linear least squares of log S on TE, weights S^2
  (the first-order correction of the log transform's noise amplification;
  Walker-Samuel et al. 2006, doi:10.1088/0031-9155/51/22/013 compare such fits).
- :func:`fit_mono`: non-linear least squares of S0 exp(-TE/T2) (+ C) by
  Levenberg-Marquardt (Marquardt 1963, doi:10.1137/0111030), all voxels at once;
  per-echo weights 0/1 implement noise-floor truncation (Raya et al. 2010,
  doi:10.1002/mrm.22178).
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

__all__ = ["fit_loglinear", "fit_mono", "fit_epg"]

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


def _rowmax(x: np.ndarray) -> np.ndarray:
    """x.max(1) for the few columns of a parameter array, column by column (max is exact)."""
    out = x[:, 0].copy()
    for j in range(1, x.shape[1]):
        np.maximum(out, x[:, j], out=out)
    return out


def _seq_sum_of_products(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """sum_j x[:, j] * y[:, j], accumulated in order j = 0, 1, ... (as einsum does, bit for bit)."""
    acc = x[:, 0] * y[:, 0]
    for j in range(1, x.shape[1]):
        acc += x[:, j] * y[:, j]
    return acc


def _normal_equations(Jw: list, J: list, r: np.ndarray):
    """J^T W J (n, k, k) and J^T W r (n, k) from per-parameter (n, m) Jacobian columns.

    Equal bit for bit to ``einsum("nmk,nml->nkl", Jw, J)`` and ``einsum("nmk,nm->nk", Jw, r)``
    (same products, summed over echoes in the same order; tested), several times faster for the
    few parameters and echoes of a T2 fit than einsum's generic loops.
    """
    k = len(J)
    JtJ = np.empty((r.shape[0], k, k))
    Jtr = np.empty((r.shape[0], k))
    for a in range(k):
        for b in range(k):
            JtJ[:, a, b] = _seq_sum_of_products(Jw[a], J[b])
        Jtr[:, a] = _seq_sum_of_products(Jw[a], r)
    return JtJ, Jtr


def fit_mono(sig: np.ndarray, te: np.ndarray, *, w: np.ndarray | None = None, offset: bool = False,
             max_iter: int = 50, tol: float = 1e-7):
    """Levenberg-Marquardt fit of S0 exp(-R2 TE) (+ C). Returns (s0, t2, c, flags)."""
    n, m = sig.shape
    w = np.ones_like(sig) if w is None else w.astype(float)
    # all weights 1 (no noise-floor truncation): skip the products by 1.0 (exact, same results)
    unit = bool((w == 1.0).all())
    s0, t2, ok = fit_loglinear(sig, te, None if unit else w)
    r2 = np.where(ok, 1.0 / np.clip(t2, T2_MIN, T2_MAX), 1.0 / 50.0)
    smax = sig.max(1)
    s0 = np.where(ok & np.isfinite(s0), s0, smax)
    c = np.zeros(n)
    if offset:
        c = np.clip(sig.min(1) * 0.5, 0, None)
        s0 = np.clip(s0 - c, 1e-9, None)
    p = np.stack([s0, r2] + ([c] if offset else []), axis=1)
    k = p.shape[1]
    lam = np.full(n, 1e-3)

    def model(p):
        e = np.outer(p[:, 1], te)
        np.negative(e, out=e)
        np.exp(e, out=e)
        f = p[:, [0]] * e
        if offset:
            f += p[:, [2]]
        return f, e

    f, e = model(p)
    cost = ((sig - f) ** 2 if unit else w * (sig - f) ** 2).sum(1)
    converged = np.zeros(n, bool)
    scale = np.maximum(smax, 1e-12)
    for _ in range(max_iter):
        idx = np.flatnonzero(~converged)
        if not len(idx):
            break
        if len(idx) == n:  # all active (first iterations): no gathers
            pa, ea, fa, sg, wg, la, ca = p, e, f, sig, w, lam, cost
        else:
            pa, ea, fa, sg, wg, la, ca = p[idx], e[idx], f[idx], sig[idx], w[idx], lam[idx], cost[idx]
        J = [ea, -pa[:, [0]] * te * ea]
        if offset:
            J.append(np.ones_like(ea))
        r = sg - fa
        Jw = J if unit else [j * wg for j in J]
        JtJ, Jtr = _normal_equations(Jw, J, r)
        diag = np.einsum("nkk->nk", JtJ)
        A = JtJ + la[:, None, None] * ((diag + 1e-12)[:, :, None] * np.eye(k))
        try:
            step = np.linalg.solve(A, Jtr[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            step = np.zeros_like(pa)
            for i in range(len(pa)):
                try:
                    step[i] = np.linalg.lstsq(A[i], Jtr[i], rcond=None)[0]
                except np.linalg.LinAlgError:
                    pass
        pn = pa + step
        pn[:, 1] = np.clip(pn[:, 1], 1.0 / T2_MAX, 1.0 / T2_MIN)
        pn[:, 0] = np.clip(pn[:, 0], 0, None)
        fn, en = model(pn)
        cn = ((sg - fn) ** 2 if unit else wg * (sg - fn) ** 2).sum(1)
        better = cn < ca
        ib = idx[better]
        cb, cnb = ca[better], cn[better]
        rel = np.abs(cb - cnb) / np.maximum(cb, 1e-30)
        small = _rowmax(np.abs(step[better])) / np.maximum(_rowmax(np.abs(pa[better])), 1e-30)
        lb = np.maximum(la[better] / 3.0, 1e-9)
        p[ib] = pn[better]
        f[ib], e[ib] = fn[better], en[better]
        cost[ib] = cnb
        lam[ib] = lb
        worse = idx[~better]
        lam[worse] *= 4.0
        converged[ib] = (rel < tol) | (small < tol) | (cnb <= 1e-20 * scale[ib] ** 2)
        converged[worse] |= lam[worse] > 1e8  # no further progress possible
    fl = np.where(converged, 0, F.NOT_CONVERGED).astype(np.uint16)
    t2 = 1.0 / p[:, 1]
    at_b = (t2 >= T2_MAX * 0.999) | (t2 <= T2_MIN * 1.001)
    fl |= np.where(at_b, F.AT_BOUND, 0).astype(np.uint16)
    return p[:, 0], t2, (p[:, 2] if offset else np.zeros(n)), fl


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
