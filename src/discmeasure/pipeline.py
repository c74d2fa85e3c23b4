"""``analyze()``: one visit from images to the per-level table, with provenance.

Steps: load (study folder, series, NIfTI or Scan) -> segment the T2-weighted
series (automatic, seeded, or imported labels) -> fit T2 on the multi-echo
series inside the discs' neighbourhood -> measure every level.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import DiscmeasureError, FitError, InputError, MeasurementError, SegmentationError
from .scan import Scan, finite_scan

__all__ = ["Result", "analyze", "pseudonym", "hash_inputs", "load_anatomy", "default_subject"]


def pseudonym(uid: str | None, *, prefix: str = "sub") -> str:
    """Stable pseudonymous subject id derived from a UID (no PHI; 'sub-xxxxxxxx'); ``sub-anonymous``
    without one (:func:`default_subject` gives an input without a UID an id from its content)."""
    if not uid:
        return f"{prefix}-anonymous"
    return f"{prefix}-{hashlib.sha256(str(uid).encode()).hexdigest()[:8]}"


@contextlib.contextmanager
def _naming(path, errors):
    """Re-raise ``errors`` that name no file with ``path`` (the analysed input) in front, same class."""
    try:
        yield
    except errors as exc:
        if exc.path is not None or path is None:
            raise
        raise type(exc)(exc.reason, path=path, hint=exc.hint) from None


def hash_inputs(path: str | os.PathLike, *, max_files: int = 20000) -> dict:
    """SHA-256 over the bytes of every file of an input (file or folder, sorted by relative path).

    The path itself is not recorded: a folder or file name can hold a patient's name, and the
    provenance goes into every output (match an input to it by its hash).
    """
    p = Path(path)
    h = hashlib.sha256()
    files = [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())
    for q in files[:max_files]:
        if p.is_dir():
            h.update(str(q.relative_to(p)).encode())
        with open(q, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    out = {"kind": "folder" if p.is_dir() else "file", "n_files": len(files), "sha256": h.hexdigest()}
    if len(files) > max_files:  # the hash covers the first max_files files only: say so
        out.update(truncated=True, n_files_hashed=max_files)
    return out


def scan_digest(scan: Scan) -> str:
    """SHA-256 (hex) of an image's content: its voxel values, dtype, shape and affine (rounded to
    1e-4 mm), whatever file it came from. Recorded in the provenance of the images measured
    (``series.t2w.data_sha256``), so that a result matches its image even when the input was an
    array or a Scan; the default subject of an input without a DICOM UID is made from it."""
    data = np.ascontiguousarray(np.asarray(scan.data))
    affine = np.round(np.asarray(scan.affine, dtype=np.float64), 4) + 0.0  # + 0.0: -0.0 -> 0.0
    h = hashlib.sha256(f"discmeasure content v1 {data.dtype.str} {data.shape}".encode())
    h.update(data.reshape(-1).view(np.uint8))
    h.update(np.ascontiguousarray(affine).tobytes())
    return h.hexdigest()


#: the libraries whose versions go into the provenance (the numbers depend on them)
PROVENANCE_PACKAGES = ("numpy", "scipy", "scikit-image", "SimpleITK", "pydicom", "nibabel", "pandas", "highdicom")


def dependency_versions() -> dict:
    """Installed versions of :data:`PROVENANCE_PACKAGES` (those found)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in PROVENANCE_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


@dataclass
class Result:
    """Everything measured at one visit.

    Attributes
    ----------
    subject, timepoint : str
        Pseudonymous subject id and visit name.
    scan : Scan
        The T2-weighted anatomical series that was segmented and measured.
    segmentation : Segmentation
        Labels on ``scan``'s grid (discmeasure convention).
    measurements : pandas.DataFrame
        One row per disc level (:func:`discmeasure.measure`).
    mese : Scan or None
        The multi-echo series used for T2 mapping.
    t2 : T2Fit or None
        The T2 fit (maps on ``mese``'s grid).
    provenance : dict
        Software version, parameters, input series UIDs and file hashes, timings.
    """

    subject: str
    timepoint: str | None
    scan: Scan
    segmentation: Any
    measurements: Any
    mese: Scan | None = None
    t2: Any = None
    provenance: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # a summary: the dataclass default printed the label and T2 arrays
        n = len(self.measurements) if self.measurements is not None else 0
        t2 = f", t2={self.t2.method}" if self.t2 is not None else ""
        return (f"<Result subject={self.subject!r} timepoint={self.timepoint!r} scan={self.scan!r} "
                f"segmentation={self.segmentation!r} levels measured={n}{t2}>")

    def to_json(self) -> dict:
        """Measurements and provenance as JSON-able data (no patient-identifying fields)."""
        import json

        df = self.measurements
        records = json.loads(df.to_json(orient="records", double_precision=6))
        return {
            "subject": self.subject,
            "timepoint": self.timepoint,
            "levels": list(df["level"]),
            "measurements": records,
            "provenance": self.provenance,
        }


# shortest echo time (ms) of a T2-weighted echo, one constant with the study's series choice: the
# late echo of a dual-echo PD/T2 series is taken as the anatomical image only when its TE is at
# least this (PD echoes are 10-40 ms, T2-weighted ones of spine protocols 80-120 ms)
from .io.study import T2W_MIN_TE_MS  # noqa: E402


#: an anatomical image with at most this many distinct values, all whole numbers, is a label map
LABEL_MAP_MAX_VALUES = 64


def _refuse_label_map(scan: Scan, path=None) -> None:
    """InputError (one line) when ``scan`` holds a label map, not an MR image: at most
    :data:`LABEL_MAP_MAX_VALUES` distinct values, all whole numbers (an MR image, even 8-bit, has
    hundreds). ``segment labels.nii.gz`` used to "segment" a label map and report levels."""
    data = np.asarray(scan.data)
    sample = data.reshape(-1)[:: max(1, data.size // 2_000_000)]
    vals = np.unique(sample)
    if len(vals) <= LABEL_MAP_MAX_VALUES and np.all(np.isfinite(vals)) and np.all(vals == np.round(vals)):
        raise InputError(f"holds {len(vals)} distinct whole values: a label map, not an MR image", path=path,
                         hint="give the T2-weighted image; import a label map with --labels / labels=")


def t2_weighted_volume(scan: Scan, path=None) -> Scan:
    """The single T2-weighted volume of an anatomical ``scan``.

    A 3-D scan is returned as is. Of a dual-echo series (PD and T2-weighted echoes, e.g. a
    "pd+t2_tse" protocol) the echo with the longest echo time is taken when it is at least
    :data:`T2W_MIN_TE_MS`, with a one-line warning saying so (its echo time goes into the
    provenance with the series); any other multi-volume image is refused (InputError, one line).
    """
    import warnings

    if scan.ndim == 3:
        _refuse_label_map(scan, path)
        return scan
    tes = scan.echo_times_ms
    if scan.n_volumes == 2 and tes and len(tes) == 2 and len(set(tes)) == 2 and max(tes) >= T2W_MIN_TE_MS:
        i = int(np.argmax(tes))
        where = f"{path}: " if path is not None else ""
        warnings.warn(f"{where}dual-echo series (TE {min(tes):g} / {max(tes):g} ms): measuring its T2-weighted "
                      f"echo, TE {max(tes):g} ms", UserWarning, stacklevel=2)
        _refuse_label_map(scan, path)
        return scan.echo(i)
    what = f"echo times {', '.join(f'{t:g}' for t in tes)} ms" if tes else "no echo times"
    raise InputError(
        f"the anatomical image has {scan.n_volumes} volumes ({what})", path=path,
        hint="give a single T2-weighted volume (discmeasure measure --t2w, or t2w_series= in analyze); of a "
             "dual-echo PD/T2 series its echo with "
             f"TE >= {T2W_MIN_TE_MS:g} ms is taken"
    )


def load_anatomy(path: str | os.PathLike, *, t2w_series=None) -> Scan:
    """The T2-weighted scan :func:`analyze` segments and measures for ``path`` (same choice)."""
    from .io import load, load_study

    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path=path, hint="check the path")
    if path.is_dir() and t2w_series is None:
        scan = load_study(path).t2w
        if scan is None:
            raise InputError("no T2-weighted series found in the study", path=path,
                             hint="choose one: discmeasure measure --t2w, or t2w_series= in analyze")
        return t2_weighted_volume(scan, path)
    return t2_weighted_volume(load(path, series=t2w_series), path)


def default_subject(scan: Scan) -> str:
    """The pseudonymous subject id :func:`analyze` derives when none is given.

    A DICOM input: ``sub-`` + 8 hex digits of a hash of its StudyInstanceUID (else its
    SeriesInstanceUID). An input without either (NIfTI, MHA, NRRD, an array): the same from its
    content, a SHA-256 of the voxel data (values, dtype, shape) and of the affine (rounded to
    1e-4 mm), so that different scans get different ids and the same scan, however saved or
    named, the same one (every such input was ``sub-anonymous``, different patients shared one
    id). No file name or header field goes into it.
    """
    uid = scan.meta.get("study_uid") or scan.meta.get("series_uid")
    if uid:
        return pseudonym(uid)
    return pseudonym(scan_digest(scan))


def check_t2_method(method) -> str:
    """``method`` if it is a T2 fit method (:data:`discmeasure.t2.fit.METHODS`), else InputError naming
    the option. :func:`analyze` and the CLI call it before any work (a bad ``--t2-method`` failed only
    after loading and segmenting, or passed unnoticed for an input without a multi-echo series)."""
    from .t2.fit import METHODS

    if not isinstance(method, str) or method not in METHODS:
        raise InputError(f"unknown T2 method {method!r} (--t2-method / t2_method=)",
                         hint=f"use one of {', '.join(METHODS)}")
    return method


def _seeds_record(seeds):
    """Seed points as JSON (level or index -> world mm, rounded to 1e-3), or None."""
    if seeds is None:
        return None
    if isinstance(seeds, dict):
        return {str(k): [round(float(c), 3) for c in np.ravel(v)] for k, v in seeds.items()}
    return [[round(float(c), 3) for c in np.ravel(p)] for p in np.asarray(seeds, float).reshape(-1, 3)]


def _series_info(scan: Scan | None) -> dict | None:
    if scan is None:
        return None
    m = scan.meta
    # no free-text series description: it can hold a name (scan.own_description)
    keep = ("series_uid", "study_uid", "series_number", "vendor", "field_strength_t",
            "repetition_time_ms", "echo_time_ms", "acquisition_date")
    info = {k: m.get(k) for k in keep if m.get(k) is not None}
    info.update(shape=list(scan.data.shape), spacing_mm=[round(s, 4) for s in scan.spacing],
                orientation="".join(scan.orientation))
    if scan.echo_times_ms:
        info["echo_times_ms"] = list(scan.echo_times_ms)
    info["data_sha256"] = scan_digest(scan)
    return info


def _t2_series_flags(scan: Scan, mese: Scan, disc_mask: np.ndarray, path=None) -> list[str]:
    """QC flags (and one-line warnings) for a multi-echo series that may not match the anatomy.

    The T2 ROIs are carried from the T2-weighted series to the multi-echo one through world
    coordinates, which correspond only within one frame of reference (DICOM
    FrameOfReferenceUID: the same patient position on the table). A multi-echo series of another
    frame (another session, a re-positioning) gives T2 values of whatever lies there:
    ``t2_other_frame_of_reference``. One that covers none of the discs gives none:
    ``t2_series_covers_no_disc``.
    """
    import warnings

    flags = []
    where = f"{path}: " if path is not None else ""
    a, b = scan.meta.get("frame_of_reference_uid"), mese.meta.get("frame_of_reference_uid")
    if a and b and a != b:
        flags.append("t2_other_frame_of_reference")
        warnings.warn(f"{where}the multi-echo series lies in another frame of reference than the T2-weighted one "
                      "(another session or patient position): its T2 values may come from other tissue than the "
                      "discs; give the multi-echo series of the same session", UserWarning, stacklevel=3)
    if not np.any(disc_mask):
        flags.append("t2_series_covers_no_disc")
        warnings.warn(f"{where}the multi-echo series covers none of the discs: no T2 values", UserWarning,
                      stacklevel=3)
    return flags


def _disc_mask_on(mese: Scan, seg_labels: np.ndarray, seg_affine: np.ndarray, margin_mm: float = 3.0) -> np.ndarray:
    """Fit mask on the multi-echo grid: the discs (and a margin) moved through world coordinates."""
    from scipy import ndimage

    from .geometry import resample

    discs = (seg_labels > 100) & (seg_labels < 130)
    on = resample(discs.astype(np.uint8), seg_affine, mese.shape, mese.affine, order=0) > 0
    it = np.maximum(1, np.round(margin_mm / np.asarray(mese.spacing)).astype(int))
    struct = np.zeros((2 * it[0] + 1, 2 * it[1] + 1, 2 * it[2] + 1), bool)
    struct[it[0], it[1], :] = True
    struct[it[0], :, it[2]] = True
    struct[:, it[1], it[2]] = True
    return ndimage.binary_dilation(on, structure=struct)


def analyze(
    study_or_scan,
    *,
    mese=None,
    labels=None,
    seeds=None,
    labels_convention: str = "auto",
    subject: str | None = None,
    timepoint: str | None = None,
    t2_method: str = "epg",
    segment_method: str = "auto",
    band_mm: float = 5.0,
    refine_edges: bool = True,
    t2w_series=None,
    mese_series=None,
    uncertainty: int = 0,
    progress: Callable[[str, float], None] | None = None,
) -> Result:
    """Analyse one visit.

    Parameters
    ----------
    study_or_scan : path, Study or Scan
        A study folder (series chosen by :func:`discmeasure.load_study`), a series folder / DICOM
        file / NIfTI (the T2-weighted image), a :class:`~discmeasure.io.Study` or a :class:`Scan`.
    mese : path or Scan, optional
        Multi-echo spin-echo series for T2 (default: the study's, if any).
    labels : path, Scan or ndarray, optional
        A label map to import instead of segmenting (SPINEPS, TotalSegmentator, ... or ours).
    labels_convention : str
        Convention of ``labels`` (``"auto"``: detected from its values; see
        :func:`discmeasure.segment`, ``convention=``).
    seeds : mapping or (N, 3) array, optional
        Disc seed points (world mm) for seeded segmentation.
    subject, timepoint : str, optional
        Pseudonymous subject id (default: derived from the StudyInstanceUID, or from the image's
        content for an input without one; :func:`default_subject`) and visit name.
    t2_method : {"epg", "mono", "loglinear"}
        T2 fitting method (:func:`discmeasure.fit_t2`).
    segment_method : {"auto", "seeded", "labels"}
        Segmentation method when neither ``labels`` nor ``seeds`` is given.
    band_mm : float
        Half-width of the band searched for the maximum bulge.
    refine_edges : bool
        Place the bulge's boundaries on the image's edges (see :func:`~discmeasure.measure`).
    t2w_series, mese_series : optional
        Override the series chosen in a study folder (number, UID or description).
    uncertainty : int
        Number of moved re-analyses (2-8; 0 = none, the default) for each level's uncertainty: the
        scan is moved by small rigid moves, segmented (the same way) and measured again, and the
        SD of each geometric measure is added to the table (``bulge_sd_mm``, ...,
        ``uncertainty_n``; :func:`discmeasure.uncertainty.measurement_uncertainty`). About
        ``uncertainty`` times the segmentation and measurement time; :func:`discmeasure.compare`
        then flags each change against its own levels' uncertainty.
    progress : callable(step, fraction), optional
        Called as work advances (for progress bars and GUI workers).

    Returns
    -------
    Result
    """
    from . import __version__
    from .io import load, load_study
    from .measurements import measure
    from .segmentation import segment

    def tick(step, frac):
        if progress is not None:
            progress(step, frac)

    from .uncertainty import check_uncertainty

    from .measurements.core import check_band

    uncertainty = check_uncertainty(uncertainty)  # before any work
    check_t2_method(t2_method)  # even when there is no multi-echo series to fit
    band_mm = check_band(band_mm)[0]
    from .segmentation.conventions import CONVENTIONS

    if labels_convention not in ("auto", *CONVENTIONS):
        raise InputError(f"unknown label convention {labels_convention!r}",
                         hint=f"--convention / labels_convention= one of auto, {', '.join(CONVENTIONS)}")
    for name, value in (("subject", subject), ("timepoint", timepoint)):
        # an empty id gave an empty subject in the JSON, the SEG and the report's title
        # a name starting with "." ("..", ".") is a folder name that leaves or hides in the output
        # folder (write_pair refuses it as well; the batch manifest always did)
        if value is not None and (not str(value).strip() or any(c in str(value) for c in "/\\")
                                  or any(ord(c) < 32 for c in str(value)) or str(value).startswith(".")):
            raise InputError(f"invalid {name} {value!r}: empty, starting with '.', or holding a path separator or "
                             "control character",
                             hint=f"give a pseudonymous {name} (letters, digits, '-', '_')"
                             + (", or leave --subject out for one made from the study UID" if name == "subject" else ""))
    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    inputs: list[dict] = []
    tick("load", 0.0)
    scan = None
    path = None  # the input's path, when given one (named in errors)
    if isinstance(study_or_scan, Scan):
        scan = study_or_scan
    elif hasattr(study_or_scan, "t2w") and not isinstance(study_or_scan, (str, os.PathLike)):
        study = study_or_scan
        scan = study.t2w
        if mese is None:
            mese = study.mese
    else:
        path = Path(study_or_scan)
        if not path.exists():
            raise InputError("no such file or folder", path=path, hint="check the path")
        inputs.append(hash_inputs(path))
        if path.is_dir() and t2w_series is None:
            study = load_study(path, **({"mese": mese_series} if mese_series is not None else {}))
            scan = study.t2w
            if scan is None:
                raise InputError("no T2-weighted series found in the study", path=path,
                                 hint="choose one: discmeasure measure --t2w, or t2w_series= in analyze")
            if mese is None:
                mese = study.mese
        else:
            scan = load(path, series=t2w_series)
            if mese is None and path.is_dir():
                if mese_series is not None:
                    mese = load(path, series=mese_series)
                else:
                    # the T2-weighted series chosen by hand, the multi-echo one still found as
                    # without the choice (it was dropped: no T2 values, no flag saying why)
                    try:
                        mese = load_study(path, t2w=t2w_series).mese
                    except DiscmeasureError:
                        mese = None  # not a study folder (a series folder): no multi-echo series
    # the multi-echo input, named in its errors: its path, the study folder it came from, none for a Scan
    mese_name = mese if isinstance(mese, (str, os.PathLike)) else (path if mese is not None else None)
    if isinstance(mese, (str, os.PathLike)):
        inputs.append(hash_inputs(mese))
        with _naming(mese_name, InputError):
            mese = load(mese)
    scan = t2_weighted_volume(scan, path)
    with _naming(path, InputError):
        # NaN/inf voxels read as background once, here: the segmentation and the measurement (its
        # signal ratio reads the image) see the same image, and the warning comes once
        scan = finite_scan(scan)
    timings["load_s"] = time.perf_counter() - t0

    tick("segment", 0.15)
    t1 = time.perf_counter()
    if labels is not None:  # its errors name the labels file (none for an array or Scan), not the image
        labels_name = labels if isinstance(labels, (str, os.PathLike)) else None
        if labels_name is not None:
            inputs.append(hash_inputs(labels))
        with _naming(labels_name, SegmentationError):
            seg = segment(scan, method="labels", labels=labels, convention=labels_convention)
    else:
        with _naming(path, SegmentationError):
            if seeds is not None:
                seg = segment(scan, method="seeded", seeds=seeds)
            else:
                seg = segment(scan, method=segment_method)
    timings["segment_s"] = time.perf_counter() - t1

    fit = None
    t2_flags: list[str] = []
    t2_params: dict = {}
    if mese is not None:
        from .t2 import fit_t2

        tick("t2", 0.45)
        t1 = time.perf_counter()
        mask = _disc_mask_on(mese, np.asarray(seg.labels), np.asarray(seg.affine))
        t2_flags = _t2_series_flags(scan, mese, mask, path)
        with _naming(mese_name, (FitError, InputError)):  # the multi-echo input's errors name it
            fit = fit_t2(mese, method=t2_method, mask=mask)
        t2_params = dict(getattr(fit, "params", {}) or {})
        if t2_params.get("warning"):  # most voxels around the discs without a T2 (t2map prints it too)
            import warnings

            warnings.warn(f"{path}: {t2_params['warning']}" if path is not None else str(t2_params["warning"]),
                          UserWarning, stacklevel=2)
        timings["t2_s"] = time.perf_counter() - t1

    tick("measure", 0.8)
    t1 = time.perf_counter()
    with _naming(path, MeasurementError):
        table = measure(scan, seg, t2=fit, band_mm=band_mm, refine_edges=refine_edges)
    if fit is not None and t2_flags:
        table["qc_flags"] = [";".join([f for f in str(q).split(";") if f] + t2_flags) for q in table["qc_flags"]]
    timings["measure_s"] = time.perf_counter() - t1
    if uncertainty:
        from .uncertainty import with_uncertainty

        t1 = time.perf_counter()
        with _naming(path, MeasurementError):
            table = with_uncertainty(
                scan, seg, table, t2=fit, n_moves=uncertainty, band_mm=band_mm, refine_edges=refine_edges,
                progress=lambda i, n: tick("uncertainty", 0.85 + 0.14 * i / n))
        timings["uncertainty_s"] = time.perf_counter() - t1
    timings["total_s"] = time.perf_counter() - t0

    if subject is None:
        subject = default_subject(scan)
    provenance = {
        "software": {"name": "discmeasure", "version": __version__, "python": platform.python_version(),
                     **dependency_versions()},
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "parameters": {
            "segment_method": "labels" if labels is not None else ("seeded" if seeds is not None else segment_method),
            "t2_method": t2_method if mese is not None else None,
            "t2_fit": t2_params,
            "band_mm": band_mm,
            "refine_edges": refine_edges,
            "uncertainty_moves": uncertainty,
            # the choices that decide what was measured (world points of seeds carry no identity)
            "labels_convention": labels_convention if labels is not None else None,
            "seeds": _seeds_record(seeds),
            "t2w_series": None if t2w_series is None else str(t2w_series),
            "mese_series": None if mese_series is None or isinstance(mese_series, bool) else str(mese_series),
        },
        "inputs": inputs,
        "series": {"t2w": _series_info(scan), "mese": _series_info(mese)},
        "segmentation": {"method": getattr(seg, "method", None), "levels": list(getattr(seg, "levels", []))},
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    tick("done", 1.0)
    return Result(subject=subject, timepoint=timepoint, scan=scan, segmentation=seg, measurements=table,
                  mese=mese, t2=fit, provenance=provenance)
