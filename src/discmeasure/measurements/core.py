"""``measure()``: the per-level table of disc measurements.

Column definitions are in docs/methods.md; units are in the column names.
"""

from __future__ import annotations

import numpy as np

from .. import labels as lab
from ..errors import InputError, MeasurementError
from ..geometry import crop_affine, resample, resample_mask
from .bulge import band_bulge
from .frame import LabelIndex, level_frame
from .heights import plane_heights
from .planes import sample_planes
from .rois import AF_ANTERIOR, AF_POSTERIOR, NP, disc_rois, roi_code

__all__ = ["measure", "rois", "COLUMNS", "disc_labels"]

#: Columns of the measurement table, in order.
COLUMNS = [
    "level", "label",
    "bulge_mm", "bulge_midsagittal_mm", "bulge_lr_offset_mm",
    "bulge_point_x_mm", "bulge_point_y_mm", "bulge_point_z_mm",
    "c_pi_x_mm", "c_pi_y_mm", "c_pi_z_mm", "c_ps_x_mm", "c_ps_y_mm", "c_ps_z_mm",
    "height_anterior_mm", "height_middle_mm", "height_posterior_mm", "dhi", "ap_length_mm", "volume_mm3",
    "t2_np_ms", "t2_np_iqr_ms", "t2_af_anterior_ms", "t2_af_anterior_iqr_ms", "t2_af_posterior_ms",
    "t2_af_posterior_iqr_ms", "t2_disc_ms", "t2_disc_iqr_ms",
    "t2_np_se_ms", "t2_af_anterior_se_ms", "t2_af_posterior_se_ms", "t2_disc_se_ms",
    "t2_np_voxels", "sir_np_csf", "qc_flags",
]


def _labels_and_affine(scan, segmentation):
    if hasattr(segmentation, "labels"):
        lbl, aff = np.asarray(segmentation.labels), np.asarray(segmentation.affine)
    elif hasattr(segmentation, "data") and hasattr(segmentation, "affine"):  # a Scan of labels
        lbl, aff = np.asarray(segmentation.data), np.asarray(segmentation.affine)
    else:
        lbl, aff = np.asarray(segmentation), np.asarray(scan.affine)
    if lbl.ndim == 2:
        lbl = lbl[:, :, None]
    if lbl.shape[:3] != tuple(scan.shape) or not np.allclose(aff, scan.affine, atol=1e-4):
        # labels on another grid: bring them onto the scan's grid through world coordinates
        lbl = resample(lbl.astype(np.int32), aff, scan.shape, scan.affine, order=0)
        aff = scan.affine
    if not np.issubdtype(lbl.dtype, np.integer):
        if not np.all(np.equal(np.mod(lbl, 1), 0)):
            raise InputError("label map holds non-integer values", hint="give an integer label map")
        lbl = lbl.astype(np.int32)
    return lbl, np.asarray(aff, float)


def _body_fraction(segmentation, lbl: np.ndarray, aff: np.ndarray) -> np.ndarray | None:
    """The segmentation's body partial volume, when it has one that still fits its labels.

    Used only when it lies on the labels' grid as measured and the bodies' labels are those it
    was made with (:func:`~discmeasure.segmentation.core.bodies_digest`): labels edited after
    segmentation (a body voxel painted as disc in napari, or disc painted as body) no longer
    match, and the heights then come from the labels alone.
    """
    from ..segmentation.core import bodies_digest

    f = getattr(segmentation, "body_fraction", None)
    if f is None:
        return None
    f = np.asarray(f, np.float32)
    if f.ndim == 2:
        f = f[:, :, None]
    if f.shape != lbl.shape or not np.allclose(np.asarray(segmentation.affine, float), aff, atol=1e-4):
        return None  # the labels were brought onto the scan's grid: the fraction was not
    made_for = getattr(segmentation, "bodies_at_creation", None)
    if made_for is not None and made_for != bodies_digest(lbl):
        return None
    return f


def disc_labels(lbl: np.ndarray) -> list[int]:
    """Disc labels present in a label map, cranio-caudal."""
    present = np.unique(lbl)
    return [int(v) for v in present if lab.is_disc(v)]


def fov_sides(index, label: int, shape, affine) -> str:
    """Where a structure reaches the edge of the field of view: the sides ("R", "L", "A", "P",
    "S", "I", by the world direction of each grid face) at which its voxels lie in the grid's
    outermost layer, "+"-joined ("L+R"); "" when it lies inside. Axes one voxel thick (a single
    slice) are not counted: their edges are the slice itself."""
    box = index.box(label)
    if box is None:
        return ""
    sides = set()
    for a, (sl, n) in enumerate(zip(box, shape)):
        if n <= 1:
            continue
        for at_edge, sign in ((sl.start == 0, -1.0), (sl.stop == n, 1.0)):
            if at_edge:
                v = sign * np.asarray(affine, float)[:3, a]
                k = int(np.argmax(np.abs(v)))
                sides.add("RAS"[k] if v[k] > 0 else "LPI"[k])
    return "+".join(sorted(sides, key="LRPAIS".index))


def _band_offsets(index, frame, band_mm, step_mm):
    """Plane offsets within +-band, clipped to where the disc was imaged."""
    pts = index.points(frame.label)
    lr = (pts - frame.origin) @ frame.u_lr
    lo, hi = max(-band_mm, lr.min()), min(band_mm, lr.max())
    if hi - lo < step_mm:
        return np.array([0.5 * (lo + hi)])
    offs = np.arange(np.ceil(lo / step_mm) * step_mm, hi + 1e-9, step_mm)
    if not np.any(np.isclose(offs, 0.0)) and lo <= 0 <= hi:
        offs = np.sort(np.append(offs, 0.0))
    return offs


def _posterior_range(index, frame, *, behind_mm: float = 5.0, ahead_mm: float = 15.0):
    """AP range (level frame, mm) around the posterior-most point of the disc and its two bodies.

    The image-edge refinement looks at the posterior walls (3-9 mm from the corners, profiles
    reaching 2 mm) and the disc's posterior boundary: the image is needed only there.
    """
    ap_min = min((float(np.min((index.points(v) - frame.origin) @ frame.u_ap))
                  for v in (frame.label, frame.upper, frame.lower) if index.box(v) is not None), default=None)
    if ap_min is None:
        return None
    return ap_min - behind_mm, ap_min + ahead_mm


def _t2_roi_stats(t2fit, roi_map, roi_affine, code, box=None):
    """Median, IQR, number of voxels and the median's standard error (``t2_stats``'s
    ``median_se_ms``) of the fit's T2 in ROI ``code`` (labels resampled onto the fit grid).

    ``box``: index slices of ``roi_map`` that hold every voxel of the ROI (the disc's bounding
    box); only that part is resampled (same result, without whole-volume passes per ROI).
    """
    from ..t2 import t2_stats

    if box is not None:
        lo = [max(b.start - 1, 0) for b in box]
        roi_map = roi_map[tuple(slice(a, b.stop + 1) for a, b in zip(lo, box))]
        roi_affine = crop_affine(roi_affine, lo)

    t2_shape = np.shape(t2fit.t2_ms)
    if len(t2_shape) == 2:
        t2_shape = t2_shape + (1,)
    # ROI -> fit grid by thresholded linear weights: independent of either grid's axis order
    on_fit = np.where(resample_mask(roi_map == code, roi_affine, t2_shape[:3], t2fit.affine), code, 0)
    if len(np.shape(t2fit.t2_ms)) == 2:
        on_fit = on_fit[..., 0]
    if not (on_fit == code).any():
        return np.nan, np.nan, 0, np.nan
    st = t2_stats(t2fit, on_fit, code)
    return float(st["median_ms"]), float(st["iqr_ms"]), int(st["n_voxels"]), float(st["median_se_ms"])


def check_band(band_mm, plane_step_mm=1.0, sample_step_mm=0.25) -> tuple[float, float, float]:
    """The band's half-width and the plane / sample steps checked (InputError, one line): a
    half-width of 0 or more mm (0 = the mid-sagittal plane only), steps above 0 mm; all finite.
    A NaN half-width failed deep inside with an internal error, a negative one silently measured
    no plane for the CSF level (no signal ratio)."""
    out = []
    for name, v, low_ok in (("band_mm", band_mm, True), ("plane_step_mm", plane_step_mm, False),
                            ("sample_step_mm", sample_step_mm, False)):
        try:
            f = float(v)
        except (TypeError, ValueError):
            f = float("nan")
        if not np.isfinite(f) or f < 0 or (f == 0 and not low_ok):
            need = "0 or more" if low_ok else "more than 0"
            flag = "--band-mm" if name == "band_mm" else name
            raise InputError(f"{flag} {v!r}: needs a number of {need} mm",
                             hint="e.g. --band-mm 5 (the default)" if name == "band_mm" else None)
        out.append(f)
    return tuple(out)


def measure(scan, segmentation, *, t2=None, band_mm: float = 5.0, plane_step_mm: float = 1.0,
            sample_step_mm: float = 0.25, refine_edges: bool = True):
    """Measure every disc level of a segmented T2-weighted scan.

    Parameters
    ----------
    scan : Scan
        The T2-weighted anatomical image (any orientation; sagittal expected).
    segmentation : Segmentation, Scan of labels, or ndarray
        Labels in the discmeasure convention (on the scan's grid, or any grid with its affine).
    t2 : T2Fit, optional
        A T2 fit (any grid: ROIs are resampled through world coordinates onto it).
    band_mm : float
        Half-width of the band of sagittal planes around the canal midline searched for the
        maximum bulge (default 5 mm).
    plane_step_mm, sample_step_mm : float
        Spacing of the sagittal planes and of the in-plane samples.
    refine_edges : bool
        Place the disc's posterior boundary and the bodies' posterior walls (hence the corners
        C_PI, C_PS) on the image's edge next to the label outline, to sub-voxel precision
        (:mod:`~discmeasure.measurements.edges`); False uses the label outlines alone.

    Returns
    -------
    pandas.DataFrame
        One row per disc level, cranio-caudal, columns :data:`COLUMNS` (see docs/methods.md).
    """
    return _measure(scan, segmentation, t2=t2, band_mm=band_mm, plane_step_mm=plane_step_mm,
                    sample_step_mm=sample_step_mm, refine_edges=refine_edges)[0]


def _measure(scan, segmentation, *, t2, band_mm, plane_step_mm, sample_step_mm, refine_edges):
    """:func:`measure`'s table and the ROI map (:func:`rois`) its T2 and signal ratio used."""
    import pandas as pd

    band_mm, plane_step_mm, sample_step_mm = check_band(band_mm, plane_step_mm, sample_step_mm)
    lbl, aff = _labels_and_affine(scan, segmentation)
    body_fraction = _body_fraction(segmentation, lbl, aff)
    discs = disc_labels(lbl)
    if not discs:
        raise MeasurementError("no disc labels (101-125) in the segmentation",
                               hint="not a lumbar T2-weighted scan, or no disc was found: segment it, import labels "
                                    "(--labels) or seed the discs in napari")
    image = np.asarray(scan.data if scan.ndim == 3 else scan.data[..., 0], dtype=float)
    voxel_volume = float(abs(np.linalg.det(aff[:3, :3])))
    roi_map = np.zeros(lbl.shape, np.int32)
    index = LabelIndex(lbl, aff)
    seg_qc = getattr(segmentation, "qc", None)
    seg_qc = seg_qc if isinstance(seg_qc, dict) else {}
    rows = []
    for d in discs:
        row = dict.fromkeys(COLUMNS, np.nan)
        row["level"] = lab.disc_level_name(d)
        row["label"] = d
        # the segmentation's own QC flags for this level (auto: missed neighbour, sacrum not
        # confirmed, ...), so that tables and reports carry them
        entry = seg_qc.get(row["level"])
        flags: list[str] = [f"segmentation: {f}" for f in (entry.get("flags", []) if isinstance(entry, dict) else [])]
        row["volume_mm3"] = float(len(index.indices(d)) * voxel_volume)
        cut = fov_sides(index, d, lbl.shape, aff)
        if cut:
            # the disc runs out of the field of view: its volume is a lower bound, and its frame
            # (centroids) can turn towards the imaged side (docs/methods.md, "Level frame")
            flags.append(f"disc_cut_by_fov_{cut}")
        try:
            frame = level_frame(lbl, aff, d, index=index)
        except MeasurementError as exc:
            row["qc_flags"] = ";".join(flags + [f"no_frame: {exc.reason}"])
            rows.append(row)
            continue
        if not frame.has_canal:
            flags.append("no_canal_label")
        offs = _band_offsets(index, frame, band_mm, plane_step_mm)
        stack = sample_planes(lbl, aff, frame, lr_offsets=offs, step=sample_step_mm, index=index,
                              image=image if refine_edges else None,
                              image_ap_range=_posterior_range(index, frame) if refine_edges else None,
                              body_fraction=body_fraction)
        best, mid, per_plane = band_bulge(stack)
        n_bad = sum(not b.plausible for b in per_plane)
        if n_bad:
            # corners at one height or a baseline running front to back: segmentation to review
            flags.append(f"implausible_baseline_{n_bad}_of_{len(per_plane)}_planes")
        shifts = [b.listhesis_mm for b in per_plane if b.plausible and b.listhesis_mm is not None]
        if shifts:
            # steep baselines taken because the two posterior walls are offset, not a bad corner
            flags.append(f"listhesis_{np.median(shifts):+.1f}_mm_{len(shifts)}_of_{len(per_plane)}_planes")
        if n_bad and 2 * n_bad > len(per_plane):
            # most of the band has no usable baseline: the segmentation is wrong at this level,
            # and a maximum over the few remaining planes would be a number without support
            best, mid = None, None
            flags.append("bulge_withheld_review_segmentation")
        if best is None:
            flags.append("no_bulge_plane")
        else:
            row["bulge_mm"] = best.bulge_mm
            row["bulge_lr_offset_mm"] = best.lr
            for key, pt in (("bulge_point", best.point), ("c_pi", best.c_pi), ("c_ps", best.c_ps)):
                w = stack.world(float(best.lr), pt[0], pt[1])
                row[f"{key}_x_mm"], row[f"{key}_y_mm"], row[f"{key}_z_mm"] = (float(v) for v in w)
            if mid is not None:
                row["bulge_midsagittal_mm"] = mid.bulge_mm
            if abs(best.lr) >= band_mm - plane_step_mm / 2 and len(offs) > 1 and (
                mid is None or best.bulge_mm - mid.bulge_mm > 0.2
            ):
                flags.append("bulge_max_at_band_edge")  # the maximum may lie outside the band
        if len(offs) == 1 and len(np.unique(offs)) == 1 and band_mm > 0 and stack.masks["disc"].shape[0] == 1:
            flags.append("single_plane")
        k_mid = int(np.argmin(np.abs(stack.lr)))
        hts = plane_heights(stack, k_mid)
        span = hts.pop("endplate_span_ap_mm", None)
        if span is not None and np.isnan([hts[f"height_{w}_mm"] for w in ("anterior", "middle", "posterior")]).any():
            # measured where the bodies bound the disc, yet no gap: the bodies touch there
            flags.append("height_withheld_review_segmentation")
        row.update(hts)
        disc_rois(lbl, aff, frame, height_mm=row["height_middle_mm"], ap_span=span, out=roi_map, index=index)
        # NP signal-intensity ratio to CSF at the same level
        code_np = roi_code(d, NP)
        at_d = tuple(index.indices(d).T)  # the ROI codes lie inside the disc
        np_vals = image[at_d][roi_map[at_d] == code_np]
        csf = _csf_at_level(index, frame, band_mm)
        if np_vals.size and len(csf):
            row["sir_np_csf"] = float(np.median(np_vals) / max(np.median(image[tuple(csf.T)]), 1e-9))
        elif not len(csf):
            flags.append("no_csf_for_sir")
        if t2 is not None:
            try:
                for col, roi in (("t2_np", NP), ("t2_af_anterior", AF_ANTERIOR), ("t2_af_posterior", AF_POSTERIOR)):
                    med, iqr, n, se = _t2_roi_stats(t2, roi_map, aff, roi_code(d, roi), index.box(d))
                    row[f"{col}_ms"], row[f"{col}_iqr_ms"], row[f"{col}_se_ms"] = med, iqr, se
                    if roi == NP:
                        row["t2_np_voxels"] = n
                        if n < 5:
                            flags.append("few_t2_np_voxels")
                med, iqr, n, se = _t2_roi_stats(t2, lbl, aff, d, index.box(d))
                row["t2_disc_ms"], row["t2_disc_iqr_ms"], row["t2_disc_se_ms"] = med, iqr, se
            except MeasurementError as exc:
                flags.append(f"t2: {exc.reason}")
        row["qc_flags"] = ";".join(flags)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS), roi_map


def _csf_at_level(index, frame, band_mm):
    """Voxel indices (N, 3) of the canal within 6 mm (SI) and the band (+2 mm, LR) of the level."""
    idx = index.indices(lab.CANAL)
    if not len(idx):
        return idx
    loc = frame.to_local(index.points(lab.CANAL))
    keep = (np.abs(loc[:, 2]) <= 6.0) & (np.abs(loc[:, 0]) <= band_mm + 2.0)
    return idx[keep]


def rois(scan, segmentation, *, band_mm: float = 5.0, refine_edges: bool = True) -> np.ndarray:
    """ROI codes (``label*10 + 1`` NP, ``+2`` anterior AF, ``+3`` posterior AF) on the scan grid.

    The ROIs :func:`measure` uses for the T2 per ROI and the signal-intensity ratio, made the same
    way (mid-sagittal heights and endplate span of the level's band, the bodies' partial volume
    where the segmentation has one); give the same ``band_mm`` and ``refine_edges`` as the
    measurement. The whole disc is the disc's label itself. Definitions:
    :mod:`discmeasure.measurements.rois` and docs/methods.md.

    Returns
    -------
    numpy.ndarray of int32
        The ROI map, 0 outside the ROIs; a level whose frame cannot be made has no ROIs.
    """
    return _measure(scan, segmentation, t2=None, band_mm=band_mm, plane_step_mm=1.0, sample_step_mm=0.25,
                    refine_edges=refine_edges)[1]
