"""Per-level measurement uncertainty: the scan analysed again after small rigid moves.

A disc measurement on MRI varies between two scans of unchanged anatomy mostly because the
anatomy meets the voxel grid differently: the segmentation's outline, the corners of the bulge's
baseline and the plane of its maximum all move by sub-voxel amounts, and some levels react far
more than others (docs/methods.md, "Where the real retest's differences come from"). A single
repeatability coefficient for every level and every scan hides that. Here the scan itself is
moved rigidly by a few small rotations and shifts (a patient repositioned between two scans),
resampled onto its own grid (cubic B-spline), segmented with the same method (automatic, or the
given labels moved with the anatomy) and measured again; the standard deviation of each level's
measurement over the original and the moved analyses is its uncertainty.

This is test-time augmentation (Wang G, Li W, Aertsen M, Deprest J, Ourselin S, Vercauteren T.
"Aleatoric uncertainty estimation with test-time augmentation for medical image segmentation
with convolutional neural networks." Neurocomputing 2019;338:34-45,
doi:10.1016/j.neucom.2019.01.103) applied to the whole measurement, with a fixed design of the
moves instead of random draws (the signs of the rotations and of the shifts about and along the
three axes follow a two-level 2^(3-1) fractional factorial design; Box, Hunter & Hunter,
*Statistics for Experimenters*, 2nd ed., Wiley 2005, ch. 6), so that the same scan always gives
the same uncertainty. It is a lower bound of the scan-rescan SD: no new noise,
physiology or scanner drift, and a resampled image is smoother than a new acquisition. Its
calibration against real and phantom retests is in docs/validation.md
(``benchmarks/validate_uncertainty.py``).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable

import numpy as np

from .errors import DiscmeasureError, InputError
from .geometry import resample, resample_mask, slice_normal
from .scan import Scan

__all__ = ["UNCERTAIN_METRICS", "T2_UNCERTAIN_METRICS", "n_column", "check_n_moves", "check_uncertainty", "sd_column", "rigid_moves", "moved_scan", "moved_labels", "moved_fraction",
           "measurement_uncertainty", "with_uncertainty", "mdc95"]

#: metrics whose per-level SD is estimated (the T2-weighted image's geometric measures)
UNCERTAIN_METRICS = ("bulge_mm", "bulge_midsagittal_mm", "height_anterior_mm", "height_middle_mm",
                     "height_posterior_mm")
#: the T2 ROIs' medians whose per-level SD is estimated when a T2 fit is given: the ROIs move with
#: the segmentation over a fixed T2 map, so the SD is the share of the ROIs' placement only
T2_UNCERTAIN_METRICS = ("t2_np_ms", "t2_af_anterior_ms", "t2_af_posterior_ms", "t2_disc_ms")

# two-level orthogonal design: each column is +-1 equally often and the columns are orthogonal
_DESIGN = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float)


def sd_column(metric: str) -> str:
    """Name of a metric's SD column, in the metric's unit: ``bulge_mm`` -> ``bulge_sd_mm``,
    ``t2_np_ms`` -> ``t2_np_sd_ms``."""
    for unit in ("_mm", "_ms"):
        if metric.endswith(unit):
            return f"{metric[:-3]}_sd{unit}"
    return f"{metric}_sd"


def n_column(metric: str) -> str:
    """Name of the column counting the analyses a metric's SD came from: ``t2_uncertainty_n`` for
    the T2 metrics (analyses with an NP T2), ``uncertainty_n`` for the others (with a bulge)."""
    return "t2_uncertainty_n" if metric in T2_UNCERTAIN_METRICS else "uncertainty_n"


def mdc95(sd_pre: float, sd_post: float, n_pre: float | None = None, n_post: float | None = None) -> float:
    """95 % minimal detectable change of one level between two visits, from each visit's own SD.

    The limit within which 95 % of the differences of two independent measurements of unchanged
    anatomy fall, ``k * sqrt(sd_pre**2 + sd_post**2)`` (Weir 2005, doi:10.1519/15184.1). Each SD
    is estimated from a few analyses (``uncertainty_n``: N + 1), so ``k`` is Student's 97.5 %
    quantile with the Welch-Satterthwaite effective degrees of freedom of the summed variances,
    each with ``n - 1`` (Satterthwaite 1946, doi:10.2307/3002019; Welch 1947,
    doi:10.2307/2332510; as for an expanded uncertainty, JCGM 100:2008 G.4): with 5 analyses per
    visit and equal SDs k = 2.31 instead of 1.96, which would cover only about 91 % of the
    differences. ``k`` = 1.96 when the numbers of analyses are not given.

    Parameters
    ----------
    sd_pre, sd_post : float
        The level's SD at each visit (``bulge_sd_mm``, ...).
    n_pre, n_post : float, optional
        The number of analyses each SD came from (``uncertainty_n``).

    Returns
    -------
    float
        The MDC95 in the metric's unit; NaN when an SD (or a given n) is NaN or n < 2.
    """
    from scipy.stats import t as student_t

    v1, v2 = float(sd_pre) ** 2, float(sd_post) ** 2
    if not (np.isfinite(v1) and np.isfinite(v2)):
        return float("nan")
    total = v1 + v2
    if n_pre is None or n_post is None:
        return float(1.96 * np.sqrt(total))
    d1, d2 = float(n_pre) - 1.0, float(n_post) - 1.0
    if not (np.isfinite(d1) and np.isfinite(d2)) or d1 < 1 or d2 < 1:
        return float("nan")
    if total <= 0:
        return 0.0
    dof = total ** 2 / (v1 ** 2 / d1 + v2 ** 2 / d2)
    return float(student_t.ppf(0.975, dof) * np.sqrt(total))


def check_n_moves(n: int) -> None:
    """Refuse a number of moved re-analyses outside 2-8 (the design's fold-over has 8 moves; an SD
    needs at least 3 values); callers check before any work."""
    if not 2 <= int(n) <= 8:
        raise InputError(f"{n} moved analyses asked for (uncertainty / --uncertainty)",
                         hint="give 2 to 8, or 0 for none")


def check_uncertainty(n) -> int:
    """The ``uncertainty`` option as an int: 0 (none), or a number of moved re-analyses that
    :func:`check_n_moves` accepts. For the callers that check before any work (``analyze``,
    ``run_batch``, the CLI, napari's widgets). InputError, naming the option, for a value that is not
    a whole number (``"four"``, ``2.5``, None)."""
    try:
        k = int(n)
        if isinstance(n, float) and n != k:
            raise ValueError(n)
    except (TypeError, ValueError, OverflowError):
        raise InputError(f"{n!r} is not a whole number of moved analyses (uncertainty / --uncertainty)",
                         hint="give 2 to 8, or 0 for none") from None
    n = k
    if n:
        check_n_moves(n)
    return n


def _axis_angle(axis, deg: float) -> np.ndarray:
    """Rotation matrix about a unit axis (Rodrigues' formula)."""
    k = np.asarray(axis, float) / np.linalg.norm(axis)
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    a = np.radians(deg)
    return np.eye(3) + np.sin(a) * K + (1 - np.cos(a)) * K @ K


def rigid_moves(scan: Scan, *, n: int = 4, rotation_deg: float = 1.5, shift_mm: float = 1.5) -> list[np.ndarray]:
    """The design's rigid moves of a scan's content (world -> world, 4 x 4), about the volume centre.

    Move ``i`` rotates by ``+-rotation_deg`` about each world axis and shifts by ``+-shift_mm``
    along each, with the signs of the design's rows (rotations row ``i``, shifts row ``i + 2``,
    columns permuted, so rotation and shift signs are not confounded); moves 5-8 are moves 1-4
    reversed (a fold-over). A single slice cannot be moved out of its plane (there is nothing to
    resample from): it is turned about its own normal and shifted within its plane only.

    Parameters
    ----------
    scan : Scan
        The image whose content is moved.
    n : int
        Number of moves, 2 to 8.
    rotation_deg, shift_mm : float
        Size of each rotation and shift.
    """
    check_n_moves(n)
    A = np.asarray(scan.affine, float)
    centre = A[:3, :3] @ ((np.array(scan.shape[:3]) - 1) / 2) + A[:3, 3]
    normal = slice_normal(A, scan.shape[:3])
    single = normal is not None
    if single:
        ax = int(np.argmin(scan.shape[:3]))
        inplane = [A[:3, j] / np.linalg.norm(A[:3, j]) for j in range(3) if j != ax]
    out = []
    for i in range(n):
        sign = 1.0 if i < 4 else -1.0
        r = sign * _DESIGN[i % 4] * rotation_deg
        s = sign * _DESIGN[(i + 2) % 4][[1, 2, 0]] * shift_mm
        if single:
            R = _axis_angle(normal, r[0])
            t = s[0] * inplane[0] + s[1] * inplane[1]
        else:
            R = _axis_angle((0, 0, 1), r[2]) @ _axis_angle((0, 1, 0), r[1]) @ _axis_angle((1, 0, 0), r[0])
            t = s
        T = np.eye(4)
        T[:3, :3] = R
        T[:3, 3] = centre - R @ centre + t
        out.append(T)
    return out


def moved_scan(scan: Scan, move: np.ndarray) -> Scan:
    """The scan's content moved by ``move`` (world -> world) and resampled onto its own grid (cubic)."""
    A = np.asarray(scan.affine, float)
    data = resample(np.asarray(scan.data, np.float32), move @ A, scan.shape[:3], A, order=3)
    return Scan(np.clip(data, 0, None).astype(np.float32), A, meta=dict(getattr(scan, "meta", {}) or {}))


def moved_labels(labels: np.ndarray, affine: np.ndarray, move: np.ndarray) -> np.ndarray:
    """A label map moved with the anatomy (as :func:`moved_scan`), label by label (linear, >= 0.5)."""
    labels = np.asarray(labels)
    affine = np.asarray(affine, float)
    out = np.zeros_like(labels)
    for v in np.unique(labels):
        if v:
            out[resample_mask(labels == v, move @ affine, labels.shape, affine)] = v
    return out


def moved_fraction(fraction: np.ndarray, affine: np.ndarray, move: np.ndarray) -> np.ndarray:
    """A partial-volume map (0-1) moved with the anatomy (as :func:`moved_scan`; linear)."""
    affine = np.asarray(affine, float)
    f = resample(np.asarray(fraction, np.float32), move @ affine, np.shape(fraction), affine, order=1)
    return np.clip(f, 0.0, 1.0).astype(np.float32)


def measurement_uncertainty(scan: Scan, segmentation, measurements=None, *, t2=None, n_moves: int = 4,
                            rotation_deg: float = 1.5, shift_mm: float = 1.5, band_mm: float = 5.0,
                            refine_edges: bool = True,
                            progress: Callable[[int, int], None] | None = None):
    """Per-level SD of the geometric measurements over re-analyses of the scan under small rigid moves.

    Parameters
    ----------
    scan : Scan
        The T2-weighted image that was measured.
    segmentation : Segmentation
        Its segmentation. An automatic one (``method == "auto"``) is redone on each moved image;
        any other (imported, seeded, edited) is moved with the anatomy, so that only the
        measurement's own variation is seen; with it its bodies' partial volume
        (:attr:`~discmeasure.segmentation.Segmentation.body_fraction`) while that still fits the
        labels (an automatic segmentation brought back from napari unedited), so that the moved
        analyses read the heights the way the unmoved one did.
    measurements : pandas.DataFrame, optional
        :func:`~discmeasure.measure`'s table of the unmoved scan (computed when not given), with
        the same ``band_mm``, ``refine_edges`` and ``t2``.
    t2 : T2Fit, optional
        The visit's T2 fit. Each moved analysis then also measures the T2 ROIs: the T2 map is
        moved with the anatomy by its affine alone (no resampling of the map), so that its values
        stay those of the unmoved fit and only the ROIs' placement varies (their segmentation,
        level frame and heights). The SD of each of :data:`T2_UNCERTAIN_METRICS` combines that
        spread with the ROI median's standard error from its voxels (``t2_np_se_ms``, ...;
        :func:`discmeasure.t2.stats.median_se`, root mean square over the analyses), the share of
        new noise in a new acquisition: sqrt(sd_moves^2 + se^2). Physiology, B1 and scanner
        drift are not in it.
    n_moves : int
        Number of moved analyses (2-8; :func:`rigid_moves`).
    rotation_deg, shift_mm : float
        Size of the moves (default 1.5 degrees and 1.5 mm about and along each axis).
    band_mm, refine_edges
        As for :func:`~discmeasure.measure`.
    progress : callable(done, total), optional
        Called after each moved analysis.

    Returns
    -------
    pandas.DataFrame
        One row per level of ``measurements``: ``level``, for each metric of
        :data:`UNCERTAIN_METRICS` its sample SD (ddof 1) over the unmoved and the moved analyses
        (``bulge_sd_mm``, ...; NaN with fewer than 3 values), and ``uncertainty_n``, the number of
        analyses in which the level's bulge was measured. With ``t2`` also the SDs of
        :data:`T2_UNCERTAIN_METRICS` (``t2_np_sd_ms``, ...) and ``t2_uncertainty_n``, the number of
        analyses with an NP T2. A moved image whose segmentation or measurement fails only lowers
        these counts.
    """
    import pandas as pd

    from .measurements import measure
    from .measurements.core import _body_fraction
    from .segmentation import Segmentation, segment
    from .t2._parallel import n_threads, single_blas_thread

    if measurements is None:
        measurements = measure(scan, segmentation, t2=t2, band_mm=band_mm, refine_edges=refine_edges)
    auto = getattr(segmentation, "method", "") == "auto"
    lbl = np.asarray(getattr(segmentation, "labels", segmentation))
    aff = np.asarray(getattr(segmentation, "affine", scan.affine), float)
    # the heights of given labels with a valid body partial volume are read off it (measure()):
    # moved labels without it would be read off the labels, a different estimator (on the
    # phantom 0.1-0.26 mm apart), whose offset would pass for uncertainty
    frac = None if auto else _body_fraction(segmentation, lbl if lbl.ndim == 3 else lbl[:, :, None], aff)
    moves = rigid_moves(scan, n=n_moves, rotation_deg=rotation_deg, shift_mm=shift_mm)

    def analysed(T):
        moved = moved_scan(scan, T)
        try:
            if auto:
                seg = segment(moved)
            else:
                seg = Segmentation(moved_labels(lbl, aff, T), aff, method=getattr(segmentation, "method", "labels"),
                                   body_fraction=None if frac is None else moved_fraction(frac, aff, T).reshape(lbl.shape))
            # the T2 map moved with the anatomy through its affine: the same values, the ROIs
            # carried onto it through world coordinates as for the unmoved scan
            fit = None if t2 is None else dataclasses.replace(t2, affine=T @ np.asarray(t2.affine, float))
            return measure(moved, seg, t2=fit, band_mm=band_mm, refine_edges=refine_edges).set_index("level")
        except DiscmeasureError:
            return None  # counted: the level's n is lower

    # the moved analyses are independent: worker threads (numpy, scipy and ITK release the GIL;
    # sct_t2_lumbar, 4 moves on 2 cores: 17.4 -> 10.2 s), results kept in the moves' order so
    # that they do not depend on the thread count (DISCMEASURE_THREADS; 1 in batch and pair workers)
    done = [None] * len(moves)
    threads = min(n_threads(), len(moves))
    if threads > 1:
        with single_blas_thread(), ThreadPoolExecutor(threads) as pool:
            futures = {pool.submit(analysed, T): i for i, T in enumerate(moves)}
            for k, fut in enumerate(as_completed(futures)):
                done[futures[fut]] = fut.result()
                if progress is not None:
                    progress(k + 1, len(moves))  # from this thread, not the workers
    else:
        for i, T in enumerate(moves):
            done[i] = analysed(T)
            if progress is not None:
                progress(i + 1, len(moves))
    tables = [measurements.set_index("level")] + [t for t in done if t is not None]
    metrics = UNCERTAIN_METRICS + (T2_UNCERTAIN_METRICS if t2 is not None else ())
    rows = []
    for lv in measurements["level"]:
        row = {"level": lv}
        for m in metrics:
            v = np.array([float(t.loc[lv, m]) for t in tables if lv in t.index and m in t.columns], float)
            v = v[np.isfinite(v)]
            sd = float(np.std(v, ddof=1)) if v.size >= 3 else np.nan
            if m in T2_UNCERTAIN_METRICS and np.isfinite(sd):
                # the moves see only where the ROI lies on one fixed T2 map; a new acquisition also
                # brings new noise into every voxel: add the ROI median's own standard error (RMS
                # over the analyses; t2_stats' median_se_ms), as independent variances. On the
                # phantom T2 retest moves alone covered 85 % (NP) and 25 % (whole disc) of the
                # differences within their MDC95, both together 100 % and 95 % (docs/methods.md)
                se_col = f"{m[:-3]}_se_ms"
                se = np.array([float(t.loc[lv, se_col]) for t in tables if lv in t.index and se_col in t.columns], float)
                se = se[np.isfinite(se)]
                sd = float(np.sqrt(sd ** 2 + np.mean(se ** 2))) if se.size else np.nan
            row[sd_column(m)] = sd
        for m in ("bulge_mm",) + (("t2_np_ms",) if t2 is not None else ()):
            row[n_column(m)] = int(sum(lv in t.index and m in t.columns and np.isfinite(float(t.loc[lv, m]))
                                       for t in tables))
        rows.append(row)
    return pd.DataFrame(rows)


def with_uncertainty(scan: Scan, segmentation, measurements, *, t2=None, n_moves: int = 4, band_mm: float = 5.0,
                     refine_edges: bool = True, progress: Callable[[int, int], None] | None = None):
    """``measurements`` with each level's uncertainty columns added (:func:`measurement_uncertainty`).

    What :func:`discmeasure.analyze` does with ``uncertainty=N``, for a table measured otherwise
    (napari's widgets, a registry's own segmentation). The table's rows and columns are kept;
    ``bulge_sd_mm``, ... and ``uncertainty_n`` are appended (replaced if present); with ``t2``
    (the fit ``measurements`` were measured with) also the T2 ROIs' SDs (``t2_np_sd_ms``, ...)
    and ``t2_uncertainty_n``. A level whose
    bulge was measured on the scan but not in some moved analyses (segmentation lost the level,
    or its bulge was withheld there) gets the QC flag ``bulge_lost_in_K_of_N_moves``: its number
    hangs on sub-voxel details, and its SD comes from fewer values.

    Examples
    --------
    >>> table = with_uncertainty(scan, seg, measure(scan, seg), n_moves=4)  # doctest: +SKIP
    """
    unc = measurement_uncertainty(scan, segmentation, measurements, t2=t2, n_moves=n_moves, band_mm=band_mm,
                                  refine_edges=refine_edges, progress=progress)
    kept = measurements.drop(columns=[c for c in unc.columns if c != "level" and c in measurements.columns])
    out = kept.merge(unc, on="level", how="left")
    if "qc_flags" in out.columns and "bulge_mm" in out.columns:
        flags = []
        for _, r in out.iterrows():
            given = r["qc_flags"] if isinstance(r["qc_flags"], str) else ""  # NaN when a row had none
            have = [f for f in given.split(";") if f and not f.startswith("bulge_lost_in_")]
            lost = n_moves + 1 - int(r["uncertainty_n"]) if np.isfinite(float(r["uncertainty_n"])) else 0
            if np.isfinite(float(r["bulge_mm"])) and lost > 0:
                have.append(f"bulge_lost_in_{lost}_of_{n_moves}_moves")
            flags.append(";".join(have))
        out["qc_flags"] = flags
    return out
