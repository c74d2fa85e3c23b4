"""Pre/post comparison of two visits and the cohort figures registries report.

Levels correspond by name (both visits are labelled by counting up from the
sacrum). A rigid registration of the post T2-weighted image onto the pre one
(SimpleITK, Mattes mutual information; Mattes et al. 2003) checks that
correspondence: each pre disc centre, mapped into the post image, must land on
the post disc of the same name.

A change is flagged ``within_repeatability`` when its magnitude is below the
repeatability coefficient RC = 2.77 x within-subject SD (Bland & Altman 1999;
QIBA terminology, Raunig et al. 2015) of that measurement. The default RCs of
the geometric measures and the signal ratio are measured by
``benchmarks/validate_retest.py`` on real anatomy (docs/validation.md, table
"Repeatability coefficients"): one 1 mm volume repositioned and resampled, a
lower bound of a scan-rescan RC. The T2 ones come from a published long-term
in-vivo study (Belavy et al. 2021: nine multi-echo spin-echo sessions over
368 days, 12 men; no repeated T2 series is available here), RC = 2.77 x the
largest per-level within-subject CV it reports. Give your own with
``repeatability=``. With ``analyze(..., uncertainty=N)`` each level of each visit also
carries its own SD (:mod:`discmeasure.uncertainty`), and a change is also flagged
``within_uncertainty`` against that level's 95 % minimal detectable change,
k x sqrt(sd_pre^2 + sd_post^2) (the limit of a difference of two independent
measurements; Weir JP. J Strength Cond Res 2005;19:231-240, doi:10.1519/15184.1), k from
Student's t with the Welch-Satterthwaite degrees of freedom of the two SDs
(:func:`discmeasure.uncertainty.mdc95`).

References
----------
Mattes D, et al. "PET-CT image registration in the chest using free-form
deformations." IEEE Trans Med Imaging 2003;22:120-128. doi:10.1109/TMI.2003.809072

Bland JM, Altman DG. "Measuring agreement in method comparison studies."
Stat Methods Med Res 1999;8:135-160. doi:10.1177/096228029900800204

Raunig DL, et al. "Quantitative imaging biomarkers: a review of statistical
methods for technical performance assessment." Stat Methods Med Res
2015;24:27-67. doi:10.1177/0962280214537344

Belavy DL, Owen PJ, Armbrecht G, Bansmann M, Zange J, Ling Y, Pohle-Froehlich R,
Felsenberg D. "Quantitative assessment of the lumbar intervertebral disc via T2
shows excellent long-term reliability." PLoS One 2021;16(4).
https://deakin.figshare.com/articles/journal_contribution/20670636
"""

from __future__ import annotations

import numpy as np

from .errors import InputError
from .uncertainty import mdc95, n_column, sd_column

__all__ = ["compare", "cohort_summary", "register_rigid", "check_repeatability", "parse_repeatability",
           "repeatability_coefficient",
           "METRICS", "REPEATABILITY"]

#: metrics compared between visits
METRICS = (
    "bulge_mm", "bulge_midsagittal_mm", "height_anterior_mm", "height_middle_mm", "height_posterior_mm",
    "dhi", "volume_mm3", "t2_np_ms", "t2_disc_ms", "sir_np_csf",
)

#: repeatability coefficients: ("abs", value in the metric's unit) or ("rel", fraction of the pre value).
#: Measured (all but T2): real-anatomy retest, sct_t2_lumbar against two rigidly moved copies,
#: automatic segmentation, three working grids pooled, 31-36 level pairs each
#: (``benchmarks/validate_retest.py``, docs/validation.md, 2026-11-25; tests/test_compare.py
#: checks that these agree with that table). T2: 2.77 x the largest per-level within-subject CV of
#: Belavy et al. 2021 (12 men, 9 sessions over 368 days, multi-echo spin echo): whole disc 3.2 %
#: (per level 2.2-3.2 %), nucleus 10.1 % (L5/S1; the central-slice nucleus, averaged over the
#: levels 4.3 %). The pipeline's own share is small: 1.5 % (NP) and 0.7 % (disc) on the phantom
#: retest (``benchmarks/validate_measure.py``, docs/validation.md).
REPEATABILITY = {
    "bulge_mm": ("abs", 1.69),
    "bulge_midsagittal_mm": ("abs", 2.52),
    "height_anterior_mm": ("abs", 1.01),
    "height_middle_mm": ("abs", 1.85),
    "height_posterior_mm": ("abs", 0.79),
    "dhi": ("abs", 0.06),
    "volume_mm3": ("rel", 0.23),
    "t2_np_ms": ("rel", 0.28),
    "t2_disc_ms": ("rel", 0.089),
    "sir_np_csf": ("rel", 0.17),
}


def repeatability_coefficient(first, second, *, kind: str = "abs") -> tuple[float, int, int]:
    """Repeatability coefficient of paired measurements of unchanged anatomy (test-retest).

    Parameters
    ----------
    first, second : array_like
        The same levels measured twice (scan and rescan, or a scan and a moved copy); NaN where a
        level was not measured.
    kind : {"abs", "rel"}
        "abs": differences in the metric's unit; "rel": relative to the pair's mean (a fraction).

    Returns
    -------
    rc : float
        RC = 2.77 x within-subject SD = 1.96 x the root mean square of the differences: 95 % of
        the differences between two measurements of an unchanged level lie within it (Bland &
        Altman 1999, doi:10.1177/096228029900800204; Raunig et al. 2015). NaN without pairs.
    n_pairs : int
        Pairs measured in both.
    n_one_sided : int
        Pairs measured in one of the two only (left out; a method that often fails to measure a
        level is not repeatable either: report them).

    Notes
    -----
    Pass the result as ``compare(..., repeatability={metric: (kind, rc)})`` or ``--rc``.

    Examples
    --------
    >>> repeatability_coefficient([1.0, 2.0, 3.0], [1.5, 1.5, 3.5])
    (0.98, 3, 0)
    """
    a, b = np.asarray(first, float).ravel(), np.asarray(second, float).ravel()
    if a.shape != b.shape:
        raise InputError(f"repeatability_coefficient: {a.size} first and {b.size} second measurements; pair them")
    both = np.isfinite(a) & np.isfinite(b)
    one = int((np.isfinite(a) ^ np.isfinite(b)).sum())
    d = b[both] - a[both]
    if kind == "rel":
        d = d / (0.5 * (a[both] + b[both]))
    elif kind != "abs":
        raise InputError(f"repeatability_coefficient: kind must be 'abs' or 'rel', not {kind!r}")
    rc = float(1.96 * np.sqrt(np.mean(d**2))) if d.size else float("nan")
    return rc, int(d.size), one


def check_repeatability(repeatability) -> dict:
    """``repeatability`` (``{metric: (kind, rc)}``, as :data:`REPEATABILITY`) checked; returns a copy.

    Raises InputError (one line) on an unknown metric, a kind other than ``"abs"`` / ``"rel"``, an
    entry that is not a ``(kind, rc)`` pair, or an rc that is not a positive finite number (a
    negative or NaN rc would flag a change of 0 as beyond the repeatability). ``None`` gives ``{}``.
    """
    if repeatability is None:
        return {}
    if not isinstance(repeatability, dict):
        raise InputError(f"repeatability must be a dict {{metric: (kind, rc)}}, not {type(repeatability).__name__}")
    out = {}
    for metric, entry in repeatability.items():
        if metric not in REPEATABILITY:
            raise InputError(f"repeatability: unknown metric {metric!r}",
                             hint=f"one of {', '.join(REPEATABILITY)}")
        if not isinstance(entry, (tuple, list)) or len(entry) != 2:
            raise InputError(f"repeatability[{metric!r}] = {entry!r}: expected a (kind, rc) pair",
                             hint=f"e.g. {{{metric!r}: {REPEATABILITY[metric]!r}}}")
        kind, v = entry
        if kind not in ("abs", "rel"):
            raise InputError(f"repeatability[{metric!r}]: kind {kind!r} is not 'abs' or 'rel'")
        try:
            v = float(v)
        except (TypeError, ValueError):
            v = float("nan")
        if not np.isfinite(v) or v <= 0:
            raise InputError(f"repeatability[{metric!r}]: rc {entry[1]!r} is not a positive number")
        out[metric] = (kind, v)
    return out


def parse_repeatability(items) -> dict:
    """Repeatability coefficients from ``"METRIC=VALUE"`` strings (the CLI's ``--rc``).

    VALUE is in the metric's unit for absolute metrics (``bulge_mm=0.8``) and a fraction or a
    percentage for relative ones (``volume_mm3=0.1`` or ``volume_mm3=10%``); the kind is the
    default's (:data:`REPEATABILITY`). Raises InputError (one line) on an unknown metric or a
    value that is not a positive number.
    """
    out = {}
    for item in items or ():
        metric, sep, value = str(item).partition("=")
        metric, value = metric.strip(), value.strip()
        if not sep or metric not in REPEATABILITY:
            raise InputError(f"--rc {item!r}: expected METRIC=VALUE with METRIC one of {', '.join(REPEATABILITY)}")
        kind = REPEATABILITY[metric][0]
        pct = value.endswith("%")
        try:
            v = float(value[:-1] if pct else value)
        except ValueError:
            v = float("nan")
        if pct and kind == "abs":
            raise InputError(f"--rc {item!r}: {metric} is in its own unit, not a percentage (e.g. {metric}=0.8)")
        v = v / 100.0 if pct else v
        if not np.isfinite(v) or v <= 0:
            raise InputError(f"--rc {item!r}: VALUE must be a positive number"
                             + (" (a fraction or a percentage: 0.1 or 10%)" if kind == "rel" else ""))
        out[metric] = (kind, v)
    return out


def _to_sitk(scan):
    import SimpleITK as sitk

    data = np.asarray(scan.data if scan.ndim == 3 else scan.data[..., 0], dtype=np.float32)
    img = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0)))
    lps = np.diag([-1.0, -1.0, 1.0])
    a = scan.affine
    img.SetSpacing([float(s) for s in scan.spacing])
    img.SetOrigin([float(v) for v in lps @ a[:3, 3]])
    img.SetDirection([float(v) for v in (lps @ scan.direction).ravel()])
    return img


def register_rigid(fixed, moving, *, seed: int = 1):
    """Rigid (Euler 3-D) registration of Scan ``moving`` onto Scan ``fixed``.

    ``seed`` seeds the random metric sampling and must be non-zero: SimpleITK reads 0 as "seed
    from the wall clock" (the former default), with which the result varied from run to run by
    ~0.1 degree on the sample pair.

    Returns
    -------
    dict with ``matrix`` (4x4, world RAS+ mm, maps fixed-space points to moving-space points),
    ``rotation_deg``, ``translation_mm`` and ``metric`` (final Mattes MI).
    """
    import SimpleITK as sitk

    f = _to_sitk(fixed)
    m = _to_sitk(moving)
    init = sitk.CenteredTransformInitializer(f, m, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.2, seed)
    # one thread: the metric's sum over threads is ordered by scheduling, which left up to ~3e-6 mm
    # of run-to-run jitter under load; the QC transform must be reproducible
    reg.SetNumberOfThreads(1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=2.0, minStep=1e-3, numberOfIterations=150,
                                                 relaxationFactor=0.6)
    reg.SetOptimizerScalesFromPhysicalShift()
    # pyramid 8-4-2 (smoothing 4-2-1 mm), no full-resolution level: on the sample pair the disc
    # centres land 0.23-0.57 mm from their known positions (full resolution: 0.36-0.49 mm) in
    # 1.4 s instead of 4.9 s (single-threaded); the transform serves QC, not the measurements
    shrink = [8, 4, 2] if min(fixed.shape) > 1 else [2, 1]
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel([4.0, 2.0, 1.0] if len(shrink) == 3 else [1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(init, inPlace=False)
    # every ITK filter the method runs internally (resampling, metric) single-threaded too, so the
    # result does not depend on thread scheduling; restored afterwards for the rest of the program
    n_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    try:
        tx = reg.Execute(f, m)
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n_threads)
    tx = sitk.CompositeTransform(tx).GetNthTransform(0) if tx.GetName() == "CompositeTransform" else tx
    euler = sitk.Euler3DTransform(tx) if tx.GetName() == "Euler3DTransform" else tx
    R_lps = np.array(euler.GetMatrix()).reshape(3, 3)
    c = np.array(euler.GetCenter())
    t = np.array(euler.GetTranslation())
    # LPS: y = R (x - c) + c + t ; convert to RAS
    F = np.diag([-1.0, -1.0, 1.0])
    R = F @ R_lps @ F
    off = F @ (c + t - R_lps @ c)
    M = np.eye(4)
    M[:3, :3] = R
    M[:3, 3] = off
    angle = float(np.degrees(np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))))
    return {"matrix": M, "rotation_deg": angle, "translation_mm": float(np.linalg.norm(off)),
            "metric": float(reg.GetMetricValue())}


def _centroids(seg) -> dict[int, np.ndarray]:
    lbl = np.asarray(seg.labels)
    aff = np.asarray(seg.affine)
    out = {}
    for v in np.unique(lbl):
        if 100 < v < 130:
            idx = np.argwhere(lbl == v)
            out[int(v)] = idx.mean(axis=0) @ aff[:3, :3].T + aff[:3, 3]
    return out


def _within(metric, pre, delta, rc):
    """True / False: the change is within / beyond the RC; None: no change measured (NaN)."""
    kind, value = rc.get(metric, ("abs", 0.0))
    limit = value * abs(pre) if kind == "rel" else value
    return bool(abs(delta) < limit) if np.isfinite(delta) else None


def compare(pre, post, *, register: bool = True, repeatability: dict | None = None, registration: dict | None = None):
    """Per-level change between two visits of one subject.

    Parameters
    ----------
    pre, post : Result
        Two visits (:func:`discmeasure.analyze`), first = baseline.
    register : bool
        Run the rigid registration QC of level correspondence.
    repeatability : dict, optional
        Overrides of :data:`REPEATABILITY`.
    registration : dict, optional
        A result of :func:`register_rigid` (``pre.scan`` fixed, ``post.scan`` moving) computed
        beforehand, e.g. concurrently with the analyses; used instead of registering again.

    Returns
    -------
    pandas.DataFrame
        One row per level measured at both visits: ``level``, ``label``, for each metric ``m`` in
        :data:`METRICS`: ``m_pre``, ``m_post``, ``m_delta`` (post - pre), ``m_pct`` (100 delta / pre),
        ``m_within_repeatability`` (None where the change could not be measured); where both
        visits carry the level's own uncertainty (``analyze(..., uncertainty=N)``), for the
        metrics of :data:`discmeasure.uncertainty.UNCERTAIN_METRICS` (and of
        :data:`~discmeasure.uncertainty.T2_UNCERTAIN_METRICS` when both visits had a T2 fit) also ``m_mdc95`` =
        k x sqrt(sd_pre^2 + sd_post^2), this level's 95 % minimal detectable change (k from
        Student's t for the SDs' degrees of freedom, :func:`discmeasure.uncertainty.mdc95`), and
        ``m_within_uncertainty`` (|delta| below it; None where either is NaN); plus
        ``level_match_distance_mm`` and ``level_match_ok`` from the registration and
        ``registration_rotation_deg`` / ``registration_translation_mm``.
        ``attrs["registration"]`` holds the transform, ``attrs["repeatability"]`` the coefficients
        the flags used.
    """
    import pandas as pd

    repeatability = check_repeatability(repeatability)
    a, b = pre.measurements, post.measurements
    if a is None or b is None or not len(a) or not len(b):
        raise InputError("both visits need measurements to compare")
    rc = dict(REPEATABILITY)
    rc.update(repeatability)
    common = [lv for lv in a["level"] if lv in set(b["level"])]
    reg = None
    match: dict[int, float] = {}
    ok: dict[int, bool] = {}
    if register:
        reg = registration if registration is not None else register_rigid(pre.scan, post.scan)
        M = reg["matrix"]
        c_pre, c_post = _centroids(pre.segmentation), _centroids(post.segmentation)
        for lbl, p in c_pre.items():
            q = M[:3, :3] @ p + M[:3, 3]
            if lbl in c_post:
                d = {k: float(np.linalg.norm(q - v)) for k, v in c_post.items()}
                match[lbl] = d[lbl]
                ok[lbl] = min(d, key=d.get) == lbl and d[lbl] < 10.0
    rows = []
    for lv in common:
        ra = a[a["level"] == lv].iloc[0]
        rb = b[b["level"] == lv].iloc[0]
        row = {"level": lv, "label": int(ra["label"])}
        for m in METRICS:
            va, vb = float(ra.get(m, np.nan)), float(rb.get(m, np.nan))
            d = vb - va
            row[f"{m}_pre"] = va
            row[f"{m}_post"] = vb
            row[f"{m}_delta"] = d
            row[f"{m}_pct"] = 100.0 * d / va if np.isfinite(va) and abs(va) > 1e-9 else np.nan
            row[f"{m}_within_repeatability"] = _within(m, va, d, rc)
            sd = sd_column(m)
            if sd in ra.index and sd in rb.index:
                # this level's own uncertainty at both visits (analyze(..., uncertainty=N)): the
                # 95 % limit of a difference of two independent measurements, k x sqrt(sd1^2 + sd2^2),
                # k from Student's t for the SDs' few degrees of freedom (uncertainty.mdc95)
                n = n_column(m)
                has_n = n in ra.index and n in rb.index
                mdc = mdc95(float(ra[sd]), float(rb[sd]), float(ra[n]) if has_n else None,
                            float(rb[n]) if has_n else None)
                row[f"{m}_mdc95"] = mdc
                row[f"{m}_within_uncertainty"] = bool(abs(d) < mdc) if np.isfinite(d) and np.isfinite(mdc) else None
        row["level_match_distance_mm"] = match.get(row["label"], np.nan)
        row["level_match_ok"] = ok.get(row["label"], None) if register else None
        row["registration_rotation_deg"] = reg["rotation_deg"] if reg else np.nan
        row["registration_translation_mm"] = reg["translation_mm"] if reg else np.nan
        rows.append(row)
    df = pd.DataFrame(rows)
    df.attrs["repeatability"] = {m: list(v) for m, v in rc.items()}  # the coefficients the flags used
    if reg is not None:
        df.attrs["registration"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in reg.items()}
    return df


def cohort_summary(changes, *, metrics=("bulge_mm", "t2_np_ms", "t2_disc_ms", "height_middle_mm"), index_levels=None):
    """Cohort figures as registries report them, per follow-up.

    Each subject is scored on one index (treated) level, chosen once for all metrics: the level
    given in ``index_levels``, else the level with the largest finite baseline bulge
    (``bulge_mm_pre``) over all the subject's rows (the first such row on a tie). A subject whose
    index level has no finite change of a metric at a follow-up is left out of that metric's
    subject figures at that follow-up and counted in ``n_subjects_without_index_value``; another
    level is never used instead. A subject without any finite baseline bulge (and no
    ``index_levels`` entry) has no index level: it is counted there for every metric. The
    level-wise figures (``n_levels``, ``levels_reduced_pct``, ``mean_pct_change_all_levels``) use
    every level with a finite change.

    Parameters
    ----------
    changes : pandas.DataFrame
        Concatenated :func:`compare` outputs with a ``subject`` column (``level`` as
        :func:`compare` gives it). With several follow-ups per subject, a ``timepoint`` column
        naming each row's follow-up (as :func:`discmeasure.batch.run_batch`'s ``changes.csv``
        has); follow-ups are matched across subjects by that name.
    metrics : sequence of str
        Metrics to summarise (``m`` of the ``m_delta`` columns). A metric without a
        ``m_delta`` column, or without any finite value at a follow-up, gives no row there.
    index_levels : mapping subject -> level, optional
        The treated level per subject, by level name (e.g. ``"L4-L5"``); subjects not in it get
        the default above. Each key must be a subject of ``changes`` and each value one of that
        subject's levels.

    Returns
    -------
    pandas.DataFrame
        One row per follow-up and metric (in table order): ``timepoint`` (only when ``changes``
        has that column), ``metric``, ``n_subjects`` (subjects whose index level has a finite
        change: the denominator of the subject figures), ``n_subjects_without_index_value``,
        ``n_levels``, ``levels_reduced_pct`` (share of levels whose value went down),
        ``subjects_reduced_pct`` (share of subjects whose index level went down: the registry's
        "85 % had a smaller bulge"), ``subjects_reduced_beyond_rc_pct`` (reduced by more than the
        repeatability coefficient: ``m_within_repeatability`` False; NaN without that column),
        ``mean_pct_change`` and ``median_pct_change`` over index levels,
        ``mean_pct_change_all_levels``. When the changes carry each level's own uncertainty
        (``m_within_uncertainty``, from ``analyze(..., uncertainty=N)`` at both visits) also
        ``subjects_reduced_beyond_mdc95_pct`` (reduced by more than the index level's own 95 %
        minimal detectable change), over the ``n_subjects_with_uncertainty`` subjects whose index
        level has that flag. ``attrs["index_levels"]`` holds each subject's index level (None:
        none), ``attrs["without_index_value"]`` the subjects left out, per row (``metric``,
        ``timepoint`` when given, ``subjects``).

    Raises
    ------
    InputError
        No ``subject`` or ``level`` column, a row without a subject or (when the column is there)
        without a timepoint, a level given twice for one subject and follow-up (several
        follow-ups without a ``timepoint`` column saying which is which), or an ``index_levels``
        entry that names no subject of ``changes`` or no level of that subject.
    """
    import pandas as pd

    ch, by_tp = _cohort_table(changes)
    if isinstance(metrics, str):
        metrics = (metrics,)
    index = _index_levels(ch, index_levels)
    groups = list(ch.groupby("timepoint", sort=False)) if by_tp else [(None, ch)]
    rows, left_out = [], []
    for tp, part in groups:
        for m in metrics:
            col = f"{m}_delta"
            if col not in part.columns:
                continue
            delta = _floats(part[col])
            valid = part[np.isfinite(delta)]
            if not len(valid):
                continue
            picked, without = [], []
            for subj, g in part.groupby("subject", sort=False):
                r = g[g["level"] == index[subj]] if index[subj] is not None else g.iloc[:0]
                if len(r) and np.isfinite(_floats(r[col]).iloc[0]):
                    picked.append(r.index[0])
                else:  # left out of this metric: never scored on another level
                    without.append(subj)
            idx = part.loc[picked]
            red = _floats(idx[col]) < 0
            flag_col = f"{m}_within_repeatability"
            beyond = (float(100 * (red & ~idx[flag_col].astype(bool)).mean())
                      if flag_col in idx.columns and len(idx) else np.nan)
            own = {}
            if f"{m}_within_uncertainty" in idx.columns:
                flag = idx[f"{m}_within_uncertainty"]
                known = flag.notna()
                beyond_own = red[known] & ~flag[known].astype(bool)
                own = {"n_subjects_with_uncertainty": int(known.sum()),
                       "subjects_reduced_beyond_mdc95_pct": float(100 * beyond_own.mean()) if known.any() else np.nan}
            pct_idx, pct_all = _floats(idx[f"{m}_pct"]), _floats(valid[f"{m}_pct"])
            where = {"timepoint": tp} if by_tp else {}
            rows.append({
                **where,
                "metric": m,
                "n_subjects": int(len(idx)),
                "n_subjects_without_index_value": len(without),
                "n_levels": int(len(valid)),
                "levels_reduced_pct": float(100 * (_floats(valid[col]) < 0).mean()),
                "subjects_reduced_pct": float(100 * red.mean()) if len(idx) else np.nan,
                "subjects_reduced_beyond_rc_pct": beyond,
                "mean_pct_change": float(pct_idx.mean()),
                "median_pct_change": float(pct_idx.median()),
                "mean_pct_change_all_levels": float(pct_all.mean()),
                **own,
            })
            if without:
                left_out.append({**where, "metric": m, "subjects": without})
    out = pd.DataFrame(rows)
    out.attrs["index_levels"] = dict(index)
    out.attrs["without_index_value"] = left_out
    return out


def _floats(col):
    """A column as float64 (None, text and missing values -> NaN)."""
    import pandas as pd

    return pd.to_numeric(col, errors="coerce").astype(float)


def _cohort_table(changes):
    """:func:`cohort_summary`'s input checked: (the table with a fresh index, whether it has follow-ups
    by ``timepoint``). InputError (one line) when a row's subject or follow-up is unknown, or a
    subject has a level twice for one follow-up."""
    cols = getattr(changes, "columns", None)
    if cols is None or "subject" not in cols:
        raise InputError("cohort_summary needs a 'subject' column in the change table")
    if "level" not in cols:
        raise InputError("cohort_summary needs a 'level' column in the change table", hint="concatenate compare() outputs")
    ch = changes.reset_index(drop=True)
    by_tp = "timepoint" in ch.columns
    for c in ("subject", "timepoint") if by_tp else ("subject",):
        missing = ch[c].isna() | (ch[c].astype(str).str.strip() == "")
        if missing.any():
            what = f"subject {ch.loc[missing.idxmax(), 'subject']!r}" if c == "timepoint" else "a row"
            raise InputError(f"{what} of the change table has no {c}",
                             hint="every row needs its subject" + (" and follow-up timepoint" if by_tp else ""))
    key = ["subject", "timepoint", "level"] if by_tp else ["subject", "level"]
    dup = ch.duplicated(key)
    if dup.any():
        r = ch[dup].iloc[0]
        if by_tp:
            raise InputError(f"subject {r.subject!r} has level {r.level} more than once for follow-up {r.timepoint!r} "
                             "in the change table", hint="give one compare() output per subject and follow-up")
        raise InputError(f"subject {r.subject!r} has level {r.level} more than once in the change table, and no "
                         "'timepoint' column says which follow-up each row is for",
                         hint="add a 'timepoint' column naming each row's follow-up, as run_batch's changes.csv has")
    return ch, by_tp


def _index_levels(ch, index_levels) -> dict:
    """subject -> index level (None: none) of :func:`cohort_summary`: ``index_levels``' entry, else
    the level with the largest finite ``bulge_mm_pre`` over the subject's rows (first on a tie)."""
    from collections.abc import Mapping

    levels = {s: list(dict.fromkeys(g["level"])) for s, g in ch.groupby("subject", sort=False)}
    given = {}
    if index_levels is not None:
        if not isinstance(index_levels, Mapping):
            raise InputError(f"index_levels must map subject -> level name, not {type(index_levels).__name__}",
                             hint='e.g. index_levels={"P001": "L4-L5"}')
        by_name = {str(s): s for s in levels}
        for k, lv in index_levels.items():
            subj = k if k in levels else by_name.get(str(k))
            if subj is None:
                raise InputError(f"index_levels names subject {k!r}, which is not in the change table",
                                 hint="give index levels only for the table's subjects")
            if lv not in levels[subj]:
                raise InputError(f"index_levels: {lv!r} is not a level of subject {k!r} "
                                 f"(its levels: {', '.join(map(str, levels[subj]))})",
                                 hint="give the treated level's name as in the change table, e.g. 'L4-L5'")
            given[subj] = lv
    out = {}
    for s, g in ch.groupby("subject", sort=False):
        if s in given:
            out[s] = given[s]
            continue
        pre = _floats(g["bulge_mm_pre"]) if "bulge_mm_pre" in g.columns else None
        fin = pre[np.isfinite(pre)] if pre is not None else []
        out[s] = g.loc[fin.idxmax(), "level"] if len(fin) else None
    return out
