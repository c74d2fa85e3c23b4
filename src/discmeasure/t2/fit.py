"""``fit_t2``: quantitative T2 maps from multi-echo spin-echo data."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import FitError, InputError
from . import flags as F
from ._parallel import run_blocks
from .fitters import fit_epg, fit_loglinear, fit_mono, mono_residuals
from .noise import estimate_noise

__all__ = ["T2Fit", "fit_t2"]

METHODS = ("epg", "mono", "loglinear")

#: fraction of unfitted voxels (no T2) above which the fit records a warning (``params["warning"]``)
UNFITTED_WARN = 0.5


def fmt_ms(values) -> str:
    """Times in ms for messages: at most 3 decimals, no float noise (92.39999999999999 -> 92.4)."""
    vals = np.atleast_1d(np.asarray(values, float)).ravel()
    text = ", ".join(f"{v:.3f}".rstrip("0").rstrip(".") for v in vals)
    return text if np.ndim(values) == 0 else f"[{text}]"


#: voxels per block (results do not depend on it: every voxel is fitted on its own); mono and
#: resid: for 8 echoes, scaled by 8 / echoes above that (a block's work arrays stay ~2 MiB)
_BLOCK = {"loglinear": 16384, "mono": 32768, "resid": 32768, "resid_epg": 2048}


def _block(name: str, n_echoes: int) -> int:
    b = _BLOCK[name]
    return b if name in ("loglinear", "resid_epg") else max(1, b * 8 // max(8, n_echoes))


@dataclass
class T2Fit:
    """Result of :func:`fit_t2`; maps have the shape of the data's leading axes.

    Attributes
    ----------
    t2_ms, s0, b1, r2, rmse : ndarray (float32)
        T2 (ms), amplitude at TE = 0, transmit scale (EPG only, else NaN), coefficient of
        determination and root-mean-square residual of the fit.
    flags : ndarray (uint16)
        Quality bits, :mod:`discmeasure.t2.flags`.
    method : str
    params : dict
        Parameters actually used (echo times, dropped echoes, noise sigma, ...).
    affine : ndarray or None
        Voxel -> world of the maps (when fitted from a Scan).
    echo_times_ms : tuple
    data : ndarray or None
        The echo data fitted (kept for ROI-averaged decay curves in :func:`t2_stats`).
    """

    def __repr__(self) -> str:  # a summary, not the maps
        return f"<T2Fit {self.method} shape={tuple(np.shape(self.t2_ms))} echoes={len(self.echo_times_ms)}>"

    t2_ms: np.ndarray
    s0: np.ndarray
    b1: np.ndarray
    r2: np.ndarray
    rmse: np.ndarray
    flags: np.ndarray
    method: str
    params: dict = field(default_factory=dict)
    affine: Any = None
    echo_times_ms: tuple = ()
    data: Any = field(default=None, repr=False)

    def to_scan(self, name: str = "t2_ms"):
        """One map as a Scan on the fit grid (needs ``affine``)."""
        from ..scan import Scan

        if self.affine is None:
            raise FitError("this fit has no geometry (fitted from a bare array)", hint="fit a Scan to get maps with an affine")
        arr = getattr(self, name)
        meta = {"series_description": f"discmeasure {name} ({self.method})"}
        return Scan(np.asarray(arr), self.affine, meta=meta)

    @property
    def map_names(self) -> tuple:
        """The maps :meth:`save` writes: ``b1`` only for ``epg`` (the other methods do not fit B1)."""
        return ("t2_ms", "s0", "b1", "r2", "flags") if self.method == "epg" else ("t2_ms", "s0", "r2", "flags")

    def fit_record(self) -> dict:
        """JSON-ready summary of the fit for the maps' sidecars (method, noise, fitted fraction, warning)."""
        p = self.params
        keys = ("method", "noise_sigma", "noise_sigma_method", "noise_floor", "echoes_used", "fitted_fraction",
                "unfitted_by_flag", "warning", "echo_spacing_ms", "refocusing_angle_deg", "t1_ms")
        rec = {k: p[k] for k in keys if k in p}
        rec["echo_times_ms"] = [float(fmt_ms(t)) for t in self.echo_times_ms]
        return json.loads(json.dumps(rec, default=float))

    def save(self, prefix: str | os.PathLike) -> dict:
        """Write the maps as NIfTI (``<prefix>_t2_ms.nii.gz``, ``_s0``, ``_b1`` (EPG only), ``_r2``,
        ``_flags``), atomically; each sidecar carries the fit's summary under ``"T2Fit"``
        (:meth:`fit_record`: noise sigma and how it was estimated, fitted fraction, warning)."""
        from ..io.write import save_nifti

        out = {}
        extra = {"T2Fit": self.fit_record()}
        for name in self.map_names:
            path = f"{prefix}_{name}.nii.gz"
            save_nifti(self.to_scan(name), path, sidecar_extra=extra)
            out[name] = path
        return out


def _prepare(data, echo_times_ms, mask):
    from ..scan import Scan, check_echo_times_ms

    affine = None
    meta: dict = {}
    if isinstance(data, (str, os.PathLike)):
        raise InputError("fit_t2 takes a Scan or an array, not a path", path=data,
                         hint="pass a Scan: dm.load(path) first")
    if isinstance(data, Scan):
        if data.ndim != 4:
            raise FitError("scan has one volume; T2 fitting needs a multi-echo series (4-D)",
                           hint="load the multi-echo series (all echoes)")
        affine = data.affine
        meta = dict(data.meta)
        if echo_times_ms is None:
            echo_times_ms = data.echo_times_ms
        arr = np.asarray(data.data)
    else:
        arr = np.asarray(data)
    if echo_times_ms is None:
        raise FitError("echo times unknown", hint="pass echo_times_ms=, or load a series whose headers (DICOM "
                       "EchoTime, or a BIDS JSON sidecar with an EchoTime list in seconds) carry them")
    te = np.asarray(echo_times_ms, float).ravel()
    if arr.shape[-1] != te.size:
        raise FitError(f"{te.size} echo times for {arr.shape[-1]} echoes (last axis)")
    if te.size < 3:
        raise FitError(f"{te.size} echoes; a T2 fit needs at least 3")
    if np.any(~np.isfinite(te)) or np.any(te < 0):
        raise FitError(f"echo times must be finite and >= 0, got {fmt_ms(te)} ms")
    check_echo_times_ms(te, FitError)  # seconds given as ms gave T2 = 1 ms everywhere, unwarned
    if np.any(np.diff(te) <= 0):
        order = np.argsort(te)
        te, arr = te[order], arr[..., order]
    if arr.dtype.kind not in "iuf":
        raise FitError(f"echo data must be numeric, got {arr.dtype}")
    lead = arr.shape[:-1]
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != lead:
            raise FitError(f"mask shape {mask.shape} differs from the data's {lead}")
    return arr, te, affine, meta, lead, mask


def fit_t2(data, echo_times_ms=None, *, method: str = "epg", mask=None, drop_first_echo: bool | None = None,
           offset: bool = False, noise_sigma: float | None = None, noise_floor: float | None = 3.0,
           echo_spacing_ms: float | None = None, refocusing_angle_deg: float | None = None,
           t1_ms: float = 1000.0) -> T2Fit:
    """Fit T2 to multi-echo spin-echo data.

    Parameters
    ----------
    data : Scan or ndarray
        A multi-echo Scan (echoes on the last axis, ``echo_times_ms`` set) or an array whose last
        axis is the echo axis (any leading shape).
    echo_times_ms : sequence of float, optional
        Echo times in milliseconds; default from the Scan. Echo times that cannot be ms (the
        longest below 1 ms: seconds, as in a BIDS sidecar's ``EchoTime``) are refused (FitError).
    method : {"epg", "mono", "loglinear"}
        ``epg``: stimulated-echo-corrected fit of T2, B1, S0 (all echoes used); ``mono``:
        non-linear least squares of S0 exp(-TE/T2) (+C with ``offset``); ``loglinear``: weighted
        log-linear fit.
    mask : bool array, optional
        Voxels to fit (others get NaN and flag OUTSIDE_MASK).
    drop_first_echo : bool, optional
        Drop the first echo (``mono``/``loglinear``). Default: True when there are >= 4 echoes and
        ``offset`` is False (the first echo of a CPMG train lacks the stimulated-echo pathway the
        later echoes share).
    offset : bool
        Fit a constant C as well (``mono``).
    noise_sigma : float, optional
        Noise sigma of the magnitude data; default: estimated from an air corner, else from the
        image's finest wavelet detail (:func:`~discmeasure.t2.noise.estimate_noise`); 0 disables
        noise-floor handling.
    noise_floor : float or None
        Echoes below ``noise_floor * sigma`` are excluded from the fit (truncation, Raya et al.
        2010); None keeps all echoes.
    echo_spacing_ms, refocusing_angle_deg : float, optional
        EPG sequence parameters; default from the Scan's meta (``echo_spacing_ms``,
        ``refocusing_angle_deg``), else the TE spacing and 180 degrees.
    t1_ms : float
        T1 assumed by the EPG model (weak influence, see docs/t2.md).

    Returns
    -------
    T2Fit
    """
    if method not in METHODS:
        raise FitError(f"unknown method {method!r}", hint=f"use one of {', '.join(METHODS)}")
    arr, te, affine, meta, lead, mask = _prepare(data, echo_times_ms, mask)
    sig_all = arr.reshape(-1, te.size)
    if sig_all.dtype not in (np.float32, np.float64):
        sig_all = sig_all.astype(np.float64)
    # float32 data stay float32 here (exactly representable in float64): the fitters convert
    # block by block, which saves a serial pass over the whole series
    n = sig_all.shape[0]
    flags = np.zeros(n, np.uint16)
    finite = np.empty(n, bool)
    positive = np.empty(n, bool)

    def check_block(sl):
        finite[sl] = np.all(np.isfinite(sig_all[sl]), axis=1)
        positive[sl] = sig_all[sl, 0] > 0

    run_blocks(check_block, n, 65536)
    flags[~(finite & positive)] |= F.NONFINITE
    sel = finite & positive
    if mask is not None:
        m = mask.reshape(-1)
        flags[~m] |= F.OUTSIDE_MASK
        sel &= m
    if not sel.any():
        if not finite.any():
            raise FitError("echo data hold no finite values")
    # noise
    if noise_sigma is None:
        est = estimate_noise(arr)  # air corner, else wavelet MAD of high-signal voxels (noise.py)
        noise_sigma, noise_method = est.sigma, est.method
    else:
        noise_method = "given"
    sigma = float(noise_sigma) if noise_sigma else 0.0

    if drop_first_echo is None:
        drop_first_echo = method != "epg" and te.size >= 4 and not offset
    use = np.ones(te.size, bool)
    if drop_first_echo and method != "epg":
        use[0] = False
    te_used = te[use]
    sig = sig_all if sel.all() else sig_all[sel]  # no copy when every voxel is fitted
    if not use.all():
        sig = sig[:, use]
    w = None  # all echoes used
    if sigma > 0 and noise_floor:
        w = (sig >= np.float64(noise_floor * sigma)).astype(float)  # compared in float64
        # keep the monotone head: once below the floor, later echoes are excluded too
        w = np.cumprod(w, axis=1)
    few = np.zeros(len(sig), bool) if w is None else w.sum(1) < 3
    t2 = np.full(n, np.nan)
    s0 = np.full(n, np.nan)
    b1 = np.full(n, np.nan)
    c = np.zeros(n)
    idx = slice(None) if len(sig) == n else np.flatnonzero(sel)  # fitted voxels (all: a plain copy)
    fl = np.zeros(len(sig), np.uint16)
    fl[few] |= F.FEW_ECHOES
    ok = ~few
    params = {"method": method, "echo_times_ms": te.tolist(), "echoes_used": np.flatnonzero(use).tolist(),
              "drop_first_echo": bool(drop_first_echo and method != "epg"), "offset": bool(offset),
              "noise_sigma": sigma or None, "noise_sigma_method": noise_method if sigma > 0 else None,
              "noise_floor": noise_floor if sigma > 0 else None}
    nfit = int(ok.sum())
    sig_ok, w_ok = (sig, w) if ok.all() else (sig[ok], None if w is None else w[ok])
    blk = (lambda a, sl: None if a is None else a[sl])  # noqa: E731
    a0 = np.full(nfit, np.nan)
    tt = np.full(nfit, np.nan)
    cc = np.zeros(nfit)
    bb = np.full(nfit, np.nan)
    f2 = np.zeros(nfit, np.uint16)
    if method in ("loglinear", "mono"):
        def fit_block(sl):
            if method == "loglinear":
                a, t, good_ = fit_loglinear(sig_ok[sl].astype(np.float64), te_used, blk(w_ok, sl))
                f2[sl] = np.where(good_, 0, F.NOT_CONVERGED).astype(np.uint16)
            else:
                a, t, c_, f2[sl] = fit_mono(sig_ok[sl], te_used, w=blk(w_ok, sl), offset=offset)
                cc[sl] = c_
            a0[sl], tt[sl] = a, t

        run_blocks(fit_block, nfit, _block(method, te_used.size))
    else:
        esp = echo_spacing_ms or meta.get("echo_spacing_ms")
        if not esp:
            d = np.diff(te)
            if not np.allclose(d, d[0], rtol=1e-3) or abs(te[0] - d[0]) > 1e-3 * max(d[0], 1):
                raise FitError(f"echo times {fmt_ms(te)} ms are not a CPMG train (TE_n = n x spacing)",
                               hint="pass echo_spacing_ms= or use method='mono'")
            esp = float(d[0])
        refoc = refocusing_angle_deg or meta.get("refocusing_angle_deg") or 180.0
        te_idx = np.rint(te / esp).astype(int) - 1
        if np.any(np.abs(te - (te_idx + 1) * esp) > 0.01 * esp) or te_idx.min() < 0:
            raise FitError(f"echo times {fmt_ms(te)} ms are not multiples of the echo spacing {fmt_ms(esp)} ms",
                           hint="pass the right echo_spacing_ms=")
        n_train = int(te_idx.max() + 1)
        a0[:], tt[:], bb[:], f2[:] = fit_epg(sig_ok.astype(np.float64, copy=False), te_idx, n_echoes=n_train,
                                             echo_spacing_ms=float(esp), refocusing_angle_deg=float(refoc),
                                             t1_ms=t1_ms, w=w_ok)
        params.update(echo_spacing_ms=float(esp), refocusing_angle_deg=float(refoc), t1_ms=float(t1_ms))
    good = idx if nfit == len(sig) else np.flatnonzero(sel)[ok]
    s0[good], t2[good], c[good], b1[good] = a0, tt, cc, bb
    if nfit == len(sig):
        fl |= f2
    else:
        fl[ok] |= f2
    flags[idx] |= fl
    # residual, r2 and quality bits on the echoes used
    rmse = np.full(n, np.nan)
    r2v = np.full(n, np.nan)
    if nfit:
        rm = np.empty(nfit)
        rr = np.empty(nfit)
        qf = np.zeros(nfit, np.uint16)
        te_end = te if method == "epg" else te_used

        def resid_block(sl):
            sg, ww = sig_ok[sl], blk(w_ok, sl)
            if method == "epg":
                from ..epg import cpmg_signal

                sg = sg.astype(np.float64)
                ww = np.ones_like(sg) if ww is None else ww
                pred = a0[sl][:, None] * cpmg_signal(tt[sl], bb[sl], n_echoes=n_train, echo_spacing_ms=float(esp),
                                                     refocusing_angle_deg=float(refoc), t1_ms=t1_ms)[:, te_idx]
                res = (sg - pred) * ww
                nn = np.maximum(ww.sum(1), 1)
                sse = (res**2).sum(1)
                mean = (sg * ww).sum(1) / nn
                sst = (((sg - mean[:, None]) * ww) ** 2).sum(1)
            else:
                sse, sst, nn = mono_residuals(sg, te_used, a0[sl], tt[sl], cc[sl] if offset else None, ww)
                nn = np.maximum(nn, 1)
            rm[sl] = np.sqrt(sse / nn)
            with np.errstate(divide="ignore", invalid="ignore"):
                rr[sl] = 1 - sse / sst
            te_last = te_end[nn.astype(int) - 1]
            q = np.where(te_last < 1.5 * tt[sl], F.SHORT_TRAIN, 0).astype(np.uint16)
            q |= np.where(~(rr[sl] >= 0.9), F.POOR_FIT, 0).astype(np.uint16)
            if sigma > 0:
                q |= np.where(sg[:, 0] < np.float64(5 * sigma), F.LOW_SNR, 0).astype(np.uint16)
            qf[sl] = q

        run_blocks(resid_block, nfit, _block("resid_epg" if method == "epg" else "resid", te_end.size))
        rmse[good], r2v[good] = rm, rr
        flags[good] |= qf
    _record_fitted(params, flags, t2, mask)
    shape = lead
    return T2Fit(
        t2_ms=t2.reshape(shape).astype(np.float32), s0=s0.reshape(shape).astype(np.float32),
        b1=b1.reshape(shape).astype(np.float32), r2=r2v.reshape(shape).astype(np.float32),
        rmse=rmse.reshape(shape).astype(np.float32), flags=flags.reshape(shape), method=method, params=params,
        affine=affine, echo_times_ms=tuple(te.tolist()), data=arr,
    )


def _record_fitted(params: dict, flags: np.ndarray, t2: np.ndarray, mask) -> None:
    """``params``: fitted fraction of the voxels considered (inside ``mask``), the unfitted ones by
    flag, and a warning when more than :data:`UNFITTED_WARN` of them have no T2."""
    inside = np.ones(flags.shape, bool) if mask is None else np.asarray(mask, bool).reshape(-1)
    n_in = int(inside.sum())
    unfit = inside & ~np.isfinite(t2)
    n_un = int(unfit.sum())
    by = {}
    for name in ("FEW_ECHOES", "NONFINITE", "NOT_CONVERGED"):
        k = int((unfit & ((flags & getattr(F, name)) != 0)).sum())
        if k:
            by[name] = k
    params["fitted_fraction"] = (n_in - n_un) / n_in if n_in else 0.0
    params["unfitted_by_flag"] = by
    params["warning"] = None
    if n_in and n_un / n_in > UNFITTED_WARN:
        main = max(by, key=by.get) if by else "unknown"
        why = {"FEW_ECHOES": (f"fewer than 3 echoes above the noise floor ({params.get('noise_floor')} x sigma "
                              f"{(params.get('noise_sigma') or 0):.3g}, {params.get('noise_sigma_method')})"),
               "NONFINITE": "NaN/inf or non-positive first echo",
               "NOT_CONVERGED": "no decaying fit"}.get(main, "")
        params["warning"] = (f"{100 * n_un / n_in:.1f} % of voxels not fitted ({n_un} of {n_in}); "
                             f"main reason {main}: {why}")
