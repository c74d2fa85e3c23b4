"""Noise level of magnitude images from background (air) voxels.

In air, magnitude MR signal follows a Rayleigh distribution with median
sigma * sqrt(2 ln 2) and coefficient of variation 0.523 (Gudbjartsson & Patz
1995). sigma is estimated from the in-plane corner patches of the first echo
(the NEMA-style background region), accepted only when those voxels look like a
Rayleigh sample.

References
----------
Gudbjartsson H, Patz S. "The Rician distribution of noisy MRI data." Magn Reson
Med 1995;34:910-914. doi:10.1002/mrm.1910340618
"""

from __future__ import annotations

import numpy as np

__all__ = ["estimate_sigma"]


def estimate_sigma(echo_data: np.ndarray, *, corner: float = 0.1) -> float | None:
    """Noise sigma from the in-plane corners of the first echo of a (x, y, z, echo) array.

    Returns None when there is no recognisable air background (too few voxels, or corner
    statistics unlike a Rayleigh sample: coefficient of variation outside 0.35-0.70).
    """
    a = np.asarray(echo_data)
    if a.ndim != 4:
        return None
    first = a[..., 0].astype(float)
    nx, ny = first.shape[:2]
    cx, cy = max(2, int(corner * nx)), max(2, int(corner * ny))
    patches = [first[:cx, :cy], first[-cx:, :cy], first[:cx, -cy:], first[-cx:, -cy:]]
    vals = np.concatenate([p.ravel() for p in patches])
    vals = vals[np.isfinite(vals)]
    if vals.size < 100 or np.median(vals) <= 0:
        return None
    # the darkest corner is most likely pure air (others may cut into the body)
    meds = [np.median(p) for p in patches]
    best = patches[int(np.argmin(meds))].ravel()
    best = best[np.isfinite(best)]
    if best.size < 50:
        best = vals
    cv = best.std() / max(best.mean(), 1e-12)
    if not (0.35 < cv < 0.70):
        return None
    return float(np.median(best) / np.sqrt(2 * np.log(2)))
