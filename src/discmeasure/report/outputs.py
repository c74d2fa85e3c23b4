"""Writing the outputs of a visit, a pair and a batch -- atomically.

Every output folder is first written to a temporary sibling folder and renamed into place only
when complete, so a crash or a bad input never leaves a half-written result.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ..atomic import default_mode, write_text

__all__ = ["write_visit", "write_pair", "pair_files", "visit_files", "staged_dir", "check_output_dir", "MAIN_COLUMNS",
           "OUTPUT_MARKER", "output_kind", "mark_output"]

#: Empty file that marks a folder as written by discmeasure: only such a folder (or an empty one)
#: is ever replaced by a new output.
OUTPUT_MARKER = ".discmeasure-output"

MAIN_COLUMNS = ["level", "bulge_mm", "bulge_midsagittal_mm", "height_anterior_mm", "height_middle_mm",
                "height_posterior_mm", "dhi", "t2_np_ms", "t2_disc_ms", "sir_np_csf", "qc_flags"]


def _with_sd_columns(columns, df) -> list[str]:
    """``columns`` with each one's SD column (``analyze(..., uncertainty=N)``) after it, where ``df`` has it."""
    from ..uncertainty import sd_column

    out = []
    for c in columns:
        out.append(c)
        sd = sd_column(c) if c.endswith(("_mm", "_ms")) else None
        if sd and sd in df.columns:
            out.append(sd)
    return out


def output_kind(folder: str | os.PathLike) -> str | None:
    """What kind of discmeasure output ``folder`` is: ``"batch"`` (a batch's root folder),
    ``"single"`` (a visit's or a pair's output) or None (no :data:`OUTPUT_MARKER`).

    The marker of a batch root says ``batch`` (:func:`mark_output`); a batch root written before
    the marker said so is recognised by its ``failures.csv`` or its subjects' completion markers
    (``*/.done.json``), which no visit or pair output has.
    """
    folder = Path(folder)
    marker = folder / OUTPUT_MARKER
    if not marker.is_file():
        return None
    try:
        text = marker.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        text = ""
    if text == "batch" or (not text and ((folder / "failures.csv").is_file() or any(folder.glob("*/.done.json")))):
        return "batch"
    return "single"


def mark_output(folder: str | os.PathLike, *, kind: str = "single") -> None:
    """Write :data:`OUTPUT_MARKER` into ``folder`` (its text ``batch`` for a batch's root folder)."""
    (Path(folder) / OUTPUT_MARKER).write_text("batch\n" if kind == "batch" else "", encoding="utf-8")


def check_output_dir(final: str | os.PathLike, *, replace: bool = True, kind: str = "single") -> Path:
    """The absolute output folder ``final``, after checking that writing it replaces nothing of the user's.

    An output folder may be new, empty, or an earlier discmeasure output of the same kind (it
    holds :data:`OUTPUT_MARKER`; :func:`output_kind`): a visit's or a pair's output (``kind``
    ``"single"``) is replaced whole, a batch's root folder (``"batch"``) is written into. An
    existing file, a folder with other content (e.g. the input study, the current folder), an
    output of the other kind (a measure/pair output given as a batch's ``--out``, whose results
    the batch would overwrite, or a batch's folder given to measure/pair, which would replace the
    whole batch) or a folder that holds the current folder is refused with
    :class:`~discmeasure.errors.OutputError`, before any work is done. ``replace=False`` (a batch's
    root folder, written into, never replaced) allows the current folder.
    """
    from ..errors import OutputError

    final = Path(final).expanduser().absolute()
    final = Path(os.path.normpath(final))
    if final.parent == final:
        raise OutputError("cannot write an output folder at the file system's root", path=final,
                          hint="choose a new folder for --out")
    if final.exists() or final.is_symlink():
        if not final.is_dir() or final.is_symlink():
            raise OutputError("exists and is not a folder", path=final, hint="choose a new folder name for --out")
        if any(final.iterdir()) and not (final / OUTPUT_MARKER).is_file():
            raise OutputError("folder exists, is not empty and was not written by discmeasure", path=final,
                              hint="choose a new or empty folder for --out; nothing in it is replaced")
        found = output_kind(final)
        if found is not None and found != kind:
            what = "a batch's output" if found == "batch" else "a measure or pair output, not a batch's"
            raise OutputError(f"folder holds {what}", path=final,
                              hint="choose a new or empty folder for --out; nothing in it is replaced")
        cwd = Path.cwd().absolute()
        if replace and (cwd == final or final in cwd.parents):
            raise OutputError("the output folder holds the current folder", path=final,
                              hint="choose another folder for --out")
    return final


@contextlib.contextmanager
def staged_dir(final: str | os.PathLike):
    """Yield a temporary folder beside ``final``; on success replace ``final`` with it.

    ``final`` is checked first (:func:`check_output_dir`): only a new or empty folder, or an
    earlier discmeasure output, is replaced. The new folder carries :data:`OUTPUT_MARKER`.
    """
    final = check_output_dir(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    os.chmod(tmp, default_mode(folder=True))
    try:
        (tmp / OUTPUT_MARKER).touch()
        yield tmp
        check_output_dir(final)  # still replaceable after the work (nothing appeared in the meantime)
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _csv(df, path):
    write_text(path, df.to_csv(index=False, float_format="%.4f"))


def write_visit(result, out_dir: str | os.PathLike, *, pictures: bool = True, dicom_source=None) -> Path:
    """measurements.csv/.json, labels and T2 maps (NIfTI), QC pictures and report.html of one visit
    (and ``labels.seg.dcm``, a DICOM SEG of the labels, and ``measurements.sr.dcm``, a DICOM SR of
    the measurements, when ``dicom_source`` is given: see :func:`visit_files`)."""
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as d:
        visit_files(result, d, pictures=pictures, dicom_source=dicom_source)
    return out_dir


def visit_files(result, d: Path, *, pictures: bool = True, dicom_source=None) -> None:
    """Write a visit's files into the existing folder ``d``.

    ``dicom_source``: the DICOM file or folder the visit's T2-weighted series was read from; the
    labels are then also written as a DICOM SEG on that series' frames (``labels.seg.dcm``,
    pseudonymised: :func:`discmeasure.io.dicom_seg.write_dicom_seg`) and the measurements as a
    TID 1500 report on its segments (``measurements.sr.dcm``: :mod:`discmeasure.io.dicom_sr`). A
    scan that was not read from DICOM raises :class:`~discmeasure.errors.InputError` before
    anything is written.
    """
    if dicom_source is not None:
        from ..io.dicom_seg import require_dicom

        require_dicom(result.scan, dicom_source)  # before anything is written
    from ..geometry import resample
    from ..io.write import save_nifti
    from . import html as H
    from . import qc

    d.mkdir(parents=True, exist_ok=True)
    if True:
        df = result.measurements
        _csv(df, d / "measurements.csv")
        write_text(d / "measurements.json", json.dumps(result.to_json(), indent=1, default=str) + "\n")
        save_nifti(result.segmentation.to_scan(), d / "labels.nii.gz", sidecar=False)
        if dicom_source is not None:
            from ..io.dicom_sr import write_scan_seg_and_sr

            # the labels as a SEG, and the per-level numbers as a TID 1500 report on its segments
            write_scan_seg_and_sr(result.segmentation, result.scan, dicom_source, df, d / "labels.seg.dcm",
                                  d / "measurements.sr.dcm", subject=result.subject)
        body = [f"<p>subject <b>{result.subject}</b>, visit <b>{result.timepoint or ''}</b>; levels: "
                f"{', '.join(result.segmentation.levels)}</p>", H.table_html(df, _with_sd_columns(MAIN_COLUMNS, df))]
        if result.t2 is not None:
            result.t2.save(d / "t2")
        if pictures:
            fig = qc.midsagittal_overlay(result.scan, result.segmentation.labels, df)
            png = qc.png_bytes(fig)
            (d / "qc_midsagittal.png").write_bytes(png)
            body.append("<h2>Mid-sagittal QC</h2>" + H.img_tag(png, "mid-sagittal overlay"))
            zooms = []
            for lv in df["level"]:
                row = df[df.level == lv].iloc[0]
                if np.isfinite(row.bulge_mm):
                    title = f"{lv}: bulge {row.bulge_mm:.1f} mm"
                elif lv in getattr(fig, "level_centres", {}):
                    # no number: the level a reader most needs to look at
                    title = f"{lv}: no bulge measured, review the segmentation (qc_flags)"
                else:
                    continue
                qc.zoom_overlay(fig, df, lv, title=title)
                zp = qc.png_bytes(fig)
                (d / f"qc_{lv}.png").write_bytes(zp)
                zooms.append(H.img_tag(zp, lv))
            body.append("<h2>Per-level zooms</h2>" + "".join(zooms))
            if result.t2 is not None and result.mese is not None:
                lab_on = resample(np.asarray(result.segmentation.labels, np.int32), result.segmentation.affine,
                                  result.mese.shape, result.mese.affine, order=0)
                tp = qc.png_bytes(qc.t2_map_figure(result.t2, lab_on))
                (d / "qc_t2map.png").write_bytes(tp)
                body.append("<h2>T2 map</h2>" + H.img_tag(tp, "T2 map"))
        write_text(d / "report.html", H.page(f"discmeasure: {result.subject} {result.timepoint or ''}", "".join(body),
                                               result.provenance))


def write_pair(pre, post, changes, out_dir: str | os.PathLike, *, pictures: bool = True, dicom_sources=None) -> Path:
    """Both visits (``pre/``, ``post/``), changes.csv, the change plot and a pair report, atomically
    (``dicom_sources``: the two visits' DICOM inputs, for their labels as DICOM SEG and their
    measurements as DICOM SR). The visits' folders are named after their timepoints
    (:func:`pair_files`); timepoints that cannot name them raise InputError before anything is
    written."""
    _pair_visit_folders(pre, post)  # before the staging folder is made
    out_dir = Path(out_dir)
    with staged_dir(out_dir) as d:
        pair_files(pre, post, changes, d, pictures=pictures, dicom_sources=dicom_sources)
    return out_dir


# files a pair writes beside its visit folders (a visit folder of one of these names would clash)
_PAIR_FILES = ("changes.csv", "change_bulge.png", "report.html")


def _pair_visit_folders(pre, post) -> tuple[str, str]:
    """The names of a pair's two visit folders: each visit's timepoint, else ``pre`` / ``post``.

    Raises :class:`~discmeasure.errors.InputError` (one line) unless each names a direct child of
    the pair's folder and the two differ. Refused: '.' and '..' (the visit would be written into
    the pair's folder or its parent), a path separator (somewhere else), a leading '.' (hidden,
    like the staging folders), the name of one of the pair's own files, and two names equal
    also in case only (the post visit would replace the pre one).
    """
    from ..errors import InputError

    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    names = []
    for res, default in ((pre, "pre"), (post, "post")):
        tp = getattr(res, "timepoint", None)
        name = default if tp is None or tp == "" else str(tp)
        if (name.startswith(".") or any(c in name for c in seps) or "\0" in name
                or name in _PAIR_FILES):
            raise InputError(f"{default} visit's timepoint {name!r} cannot be a folder name in the pair's output",
                             hint="give a timepoint without path separators, not starting with '.', e.g. 'm6'")
        names.append(name)
    if names[0].casefold() == names[1].casefold():
        same = f"have timepoint {names[0]!r}" if names[0] == names[1] else f"have timepoints {names[0]!r} and {names[1]!r}"
        raise InputError(f"both visits {same}: the post visit's folder would replace the pre one's",
                         hint="give the two visits different timepoints, e.g. 'baseline' and 'm6'")
    return names[0], names[1]


def pair_files(pre, post, changes, d: Path, *, pictures: bool = True, visits: bool = True, dicom_sources=None) -> None:
    """Write a pair's files into the existing folder ``d`` (``visits=False``: the visit folders
    ``pre/`` and ``post/`` were written already, e.g. by the processes that analysed them).

    With ``visits``, each visit's folder is named after its timepoint (``pre`` / ``post`` without
    one); a timepoint that is not a plain folder name ('.', '..', a path separator, a leading '.')
    or equal to the other visit's raises :class:`~discmeasure.errors.InputError` before anything
    is written.
    """
    from . import html as H
    from . import qc

    d = Path(d)
    if visits:
        name_pre, name_post = _pair_visit_folders(pre, post)  # before anything is written
        src_pre, src_post = dicom_sources or (None, None)
        visit_files(pre, d / name_pre, pictures=pictures, dicom_source=src_pre)
        visit_files(post, d / name_post, pictures=pictures, dicom_source=src_post)
    _csv(changes, d / "changes.csv")
    png = qc.png_bytes(qc.change_plot(changes))
    (d / "change_bulge.png").write_bytes(png)
    cols = ["level", "bulge_mm_pre", "bulge_mm_post", "bulge_mm_pct", "bulge_mm_within_repeatability",
            "bulge_mm_mdc95", "bulge_mm_within_uncertainty", "t2_np_ms_pre", "t2_np_ms_post", "t2_np_ms_pct",
            "t2_np_ms_within_repeatability", "t2_np_ms_mdc95", "t2_np_ms_within_uncertainty",
            "height_middle_mm_delta", "level_match_ok"]
    cols = [c for c in cols if c in changes.columns]
    body = H.table_html(changes, cols) + H.img_tag(png, "bulge change")
    write_text(d / "report.html", H.page(f"discmeasure pair: {pre.subject}", body,
                                           {"registration": changes.attrs.get("registration"),
                                            "repeatability coefficients": changes.attrs.get("repeatability")}))
