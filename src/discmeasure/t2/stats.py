"""ROI statistics of a T2 fit."""

from __future__ import annotations

import numpy as np

from ..errors import FitError
from . import flags as F

__all__ = ["t2_stats"]


def t2_stats(fit, labels, label: int, *, fit_mean_curve: bool = True) -> dict:
    """Statistics of T2 in one ROI.

    Parameters
    ----------
    fit : T2Fit
    labels : int ndarray on the fit's grid (same shape as ``fit.t2_ms``)
        ROI map (resample through world coordinates first when it comes from another series).
    label : int
        ROI value.
    fit_mean_curve : bool
        Also fit the ROI-averaged decay curve (same method) -- robust at low SNR.

    Returns
    -------
    dict
        ``median_ms``, ``q25_ms``, ``q75_ms``, ``iqr_ms``, ``mean_ms``, ``n_voxels`` (used),
        ``n_total`` (in the ROI), ``flagged_fraction`` (excluded by :data:`flags.EXCLUDE`),
        ``curve_t2_ms`` (fit of the mean decay curve; NaN when unavailable).
    """
    lab = np.asarray(labels)
    if lab.shape != np.shape(fit.t2_ms):
        raise FitError(f"ROI map shape {lab.shape} differs from the T2 map's {np.shape(fit.t2_ms)}",
                       hint="resample the labels onto the T2 grid (discmeasure.geometry.resample)")
    roi = lab == label
    n_total = int(roi.sum())
    usable = roi & ((fit.flags & F.EXCLUDE) == 0) & np.isfinite(fit.t2_ms)
    vals = np.asarray(fit.t2_ms)[usable].astype(float)
    out = {"label": int(label), "n_total": n_total, "n_voxels": int(vals.size),
           "flagged_fraction": float(1 - vals.size / n_total) if n_total else float("nan")}
    if vals.size:
        q25, med, q75 = np.percentile(vals, [25, 50, 75])
        out.update(median_ms=float(med), q25_ms=float(q25), q75_ms=float(q75), iqr_ms=float(q75 - q25),
                   mean_ms=float(vals.mean()))
    else:
        out.update(median_ms=float("nan"), q25_ms=float("nan"), q75_ms=float("nan"), iqr_ms=float("nan"),
                   mean_ms=float("nan"))
    out["curve_t2_ms"] = float("nan")
    if fit_mean_curve and fit.data is not None and n_total:
        from .fit import fit_t2

        curve = np.asarray(fit.data)[roi].astype(float).mean(axis=0)
        p = fit.params
        kw = {}
        if fit.method == "epg":
            kw = dict(echo_spacing_ms=p.get("echo_spacing_ms"), refocusing_angle_deg=p.get("refocusing_angle_deg"),
                      t1_ms=p.get("t1_ms", 1000.0))
        else:
            kw = dict(drop_first_echo=p.get("drop_first_echo"), offset=p.get("offset", False))
        try:
            cf = fit_t2(curve[None, :], fit.echo_times_ms, method=fit.method, noise_sigma=0, **kw)
            out["curve_t2_ms"] = float(cf.t2_ms[0])
        except FitError:
            pass
    return out
