"""Noise level (sigma) of multi-echo magnitude images.

Two estimators, tried in this order by :func:`estimate_noise`:

1. **Background (air) corner.** In air, magnitude MR signal follows a Rayleigh distribution
   with median sigma * sqrt(2 ln 2) and coefficient of variation 0.523 (Gudbjartsson & Patz
   1995). sigma is estimated from the darkest in-plane corner patch of the first echo (the
   NEMA-style background region), accepted only when that patch looks like air: a
   Rayleigh-like coefficient of variation (0.35-0.70) **and** no decay along the echo train
   (the median of the last echo is >= 0.75 x that of the first; noise is the same in every echo,
   while tissue decays with T2). The second test is what keeps a corner of tissue out: a
   cropped field of view (e.g. a prostate slice that is tissue to its edges) had a darker
   corner with a Rayleigh-like spread, and its signal was taken for noise (sigma 9x too high,
   99 % of the voxels under the noise floor).

2. **Wavelet MAD on high-signal voxels** (when no corner is air). The finest diagonal (HH)
   Haar wavelet coefficients of an image are mostly noise; their median absolute deviation /
   0.6745 estimates the Gaussian sigma robustly against the few large coefficients at edges
   (Donoho & Johnstone 1994; Donoho 1995). For magnitude MR data the estimate is taken only on
   2x2 blocks whose mean is >= 5 sigma (iterated from the brighter half of the blocks), where the
   Rician distribution is close to Gaussian with standard deviation sigma (Gudbjartsson & Patz
   1995), as in the object-restricted wavelet estimator of Coupe et al. 2010. Texture adds to the
   coefficients and noise does not change along the echo train while structure fades, so the
   smallest estimate over the echoes is returned. Blocks touching the image maximum (clipping),
   zero-filled or constant blocks are left out.

References
----------
Gudbjartsson H, Patz S. "The Rician distribution of noisy MRI data." Magn Reson Med
1995;34:910-914. doi:10.1002/mrm.1910340618

Donoho DL, Johnstone IM. "Ideal spatial adaptation by wavelet shrinkage." Biometrika
1994;81:425-455. doi:10.1093/biomet/81.3.425

Coupe P, Manjon JV, Gedamu E, Arnold D, Robles M, Collins DL. "Robust Rician noise estimation
for MR images." Med Image Anal 2010;14:483-493. doi:10.1016/j.media.2010.03.001
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["estimate_sigma", "estimate_noise", "NoiseEstimate"]

#: Gaussian consistency constant of the median absolute deviation (1 / Phi^-1(3/4))
_MAD = 1.482602218505602


@dataclass(frozen=True)
class NoiseEstimate:
    """Result of :func:`estimate_noise`.

    sigma : float or None
        Noise sigma (None: no estimate).
    method : str or None
        ``"background"`` (air corner) or ``"wavelet_mad"`` (HH wavelet MAD on high-signal voxels).
    detail : str
        Why the background was refused, which echo gave the wavelet estimate, ...
    """

    sigma: float | None
    method: str | None
    detail: str = ""


def _background_sigma(a: np.ndarray, corner: float) -> tuple[float | None, str]:
    first = a[..., 0].astype(float)
    last = a[..., -1].astype(float)
    nx, ny = first.shape[:2]
    cx, cy = max(2, int(corner * nx)), max(2, int(corner * ny))
    sls = [np.s_[:cx, :cy], np.s_[-cx:, :cy], np.s_[:cx, -cy:], np.s_[-cx:, -cy:]]
    vals = np.concatenate([first[s].ravel() for s in sls])
    vals = vals[np.isfinite(vals)]
    if vals.size < 100 or np.median(vals) <= 0:
        return None, "no background corners"
    # the darkest corner is most likely pure air (others may cut into the body)
    meds = [np.nanmedian(first[s]) for s in sls]
    k = int(np.nanargmin(meds))
    best, best_last = first[sls[k]].ravel(), last[sls[k]].ravel()
    if np.isfinite(best).sum() < 50:  # small images: the four corners together
        best = np.concatenate([first[s].ravel() for s in sls])
        best_last = np.concatenate([last[s].ravel() for s in sls])
    ok = np.isfinite(best) & np.isfinite(best_last)
    best, best_last = best[ok], best_last[ok]
    med = float(np.median(best))
    if med <= 0:
        return None, "darkest corner is zero-filled"
    cv = best.std() / max(best.mean(), 1e-12)
    if not (0.35 < cv < 0.70):
        return None, f"darkest corner not Rayleigh-like (CV {cv:.2f})"
    if a.shape[-1] > 1:
        decay = float(np.median(best_last)) / med
        if decay < 0.75:
            return None, f"darkest corner decays along the echoes (last/first {decay:.2f}): tissue, not air"
    return med / np.sqrt(2 * np.log(2)), "darkest corner"


def _hh_sigma(img: np.ndarray, min_blocks: int = 200) -> float | None:
    """Wavelet-MAD sigma of one echo (x, y, z): HH coefficients of 2x2 blocks with mean >= 5 sigma."""
    x = np.asarray(img, float)
    nx, ny = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    if nx < 2 or ny < 2:
        return None
    x = x[:nx, :ny]
    a, b, c, d = x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]
    hh = ((a - b - c + d) / 2).ravel()
    mean = ((a + b + c + d) / 4).ravel()
    # blocks touching the clipping value (the maximum) or zero filling, or constant, carry no noise
    top = np.nanmax(x)
    bad = np.zeros(a.shape, bool)
    for v in (a, b, c, d):
        bad |= (v >= top) | (v <= 0)
    bad |= (a == b) & (a == c) & (a == d)
    bad = bad.ravel()
    ok = np.isfinite(hh) & np.isfinite(mean) & ~bad
    hh, mean = hh[ok], mean[ok]
    if hh.size < min_blocks:
        return None
    sel = mean >= np.median(mean)  # the brighter half: the object
    s = _MAD * float(np.median(np.abs(hh[sel])))
    for _ in range(5):
        if s <= 0:
            return None
        sel = mean >= 5 * s  # Rician ~ Gaussian with sd sigma there
        if sel.sum() < min_blocks:
            return None
        s_new = _MAD * float(np.median(np.abs(hh[sel])))
        if abs(s_new - s) <= 1e-3 * s:
            s = s_new
            break
        s = s_new
    return s if s > 0 else None


def _wavelet_sigma(a: np.ndarray) -> tuple[float | None, str]:
    best, where = None, ""
    for e in range(a.shape[-1]):
        s = _hh_sigma(a[..., e])
        if s is not None and (best is None or s < best):
            best, where = s, f"echo {e + 1}"
    return best, where


def estimate_noise(echo_data: np.ndarray, *, corner: float = 0.1) -> NoiseEstimate:
    """Noise sigma of a (x, y, z, echo) magnitude array: air corner, else wavelet MAD.

    See the module docstring for both methods and their references. Returns
    ``NoiseEstimate(None, None, reason)`` when neither applies (not 4-D, too few voxels).
    """
    a = np.asarray(echo_data)
    if a.ndim != 4:
        return NoiseEstimate(None, None, "not a (x, y, z, echo) array")
    s, why = _background_sigma(a, corner)
    if s is not None:
        return NoiseEstimate(float(s), "background", why)
    w, where = _wavelet_sigma(a)
    if w is not None:
        return NoiseEstimate(float(w), "wavelet_mad", f"{why}; wavelet MAD of {where}")
    return NoiseEstimate(None, None, f"{why}; too few high-signal voxels for a wavelet estimate")


def estimate_sigma(echo_data: np.ndarray, *, corner: float = 0.1) -> float | None:
    """Noise sigma of a (x, y, z, echo) magnitude array (:func:`estimate_noise`'s sigma).

    Air background corner when there is one (Rayleigh median; refused when the corner is not
    Rayleigh-like or decays along the echoes like tissue), else the wavelet MAD of high-signal
    voxels (Donoho & Johnstone 1994; Coupe et al. 2010). None when neither applies.
    """
    return estimate_noise(echo_data, corner=corner).sigma
