"""Batch processing of a manifest of visits on Dask: one task per subject, resumable.

Manifest (CSV): ``subject,timepoint,path`` (+ optional ``mese``, ``labels``). Rows of one subject
are compared in manifest order; the first is the baseline. Each subject is one task: its visits
are analysed, written to ``OUT/<subject>/<timepoint>/`` and compared (``OUT/<subject>/changes.csv``).
A subject whose outputs are complete gets a marker ``OUT/<subject>/.done.json`` holding the
SHA-256 of every output file, written last; ``resume`` skips subjects whose marker matches the
files on disk, so a batch killed at any point and resumed ends with the same tables.
One failing visit never stops the batch: it is recorded in ``failures.csv``.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import traceback
from pathlib import Path

import numpy as np

from .atomic import write_text
from .errors import DiscmeasureError, InputError

__all__ = ["read_manifest", "run_batch", "process_subject"]

REQUIRED = ("subject", "timepoint", "path")
MARKER = ".done.json"

# Local Dask workers (``workers > 1``). One subject per worker process at a time, each
# single-threaded: the workers fill the cores, nested threads would oversubscribe them (per-visit
# results do not depend on these thread counts). Dask already starts workers with
# OPENBLAS/OMP/MKL_NUM_THREADS=1; the T2 fit's block threads (DISCMEASURE_THREADS) and ITK's global
# default (used outside the registration, which is single-threaded anyway) are pinned here.
LOCAL_WORKER_ENV = {"DISCMEASURE_THREADS": "1", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "1"}
LOCAL_WORKER_CONFIG = {
    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which fixes glibc's mmap threshold:
    # every large numpy temporary is then mapped and zeroed afresh, which made segmentation ~1.8x
    # slower in a worker than in a plain process. Our workers live for one batch, so glibc's default
    # is restored (a value the user set in the environment is still inherited).
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # Dask's statistical profiler samples the task thread's stack every 10 ms (for the dashboard,
    # which local clusters here do not start): ~0.2 CPU-s per subject, 2% of the batch's CPU.
    "distributed.worker.profile.enabled": False,
    # Housekeeping of an idle 2-worker cluster (scheduler + 2 nannies in this process, 2 workers)
    # cost 0.60 CPU-s per 10 s, mostly the event-loop "tick" every 20 ms in each process (it only
    # feeds "event loop unresponsive" warnings); with these 0.14 CPU-s. The nannies' memory
    # monitor still checks the worker's memory every second.
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


def preload_modules(pictures: bool = True) -> None:
    """Import what a visit's processing needs, before forking workers (they share it copy-on-write).

    Everything a subject imports lazily, except SimpleITK (imported in the worker, so that its
    thread setting from :data:`LOCAL_WORKER_ENV` applies): left to the workers, these imports
    cost each worker ~0.7 s on its first subject (~630 modules: nibabel, pydicom's pixel
    handlers, scikit-image's lazily loaded functions, pandas' CSV writer). matplotlib (~0.5 s)
    only when QC ``pictures`` will be drawn.
    """
    if pictures:
        import matplotlib.backends.backend_agg  # noqa: F401  (QC pictures)
        import matplotlib.figure  # noqa: F401
    import nibabel  # noqa: F401
    import pandas.io.formats.csvs  # noqa: F401
    import pydicom.pixels  # noqa: F401
    from skimage.filters import threshold_multiotsu, threshold_otsu  # noqa: F401
    from skimage.measure import find_contours  # noqa: F401

    from . import comparison, epg, measurements, pipeline, segmentation, t2  # noqa: F401
    from .io import dicom, study  # noqa: F401
    from .report import html, outputs, qc  # noqa: F401
    from .segmentation import auto  # noqa: F401


def local_cluster(workers: int, pictures: bool = True):
    """The Dask LocalCluster ``run_batch`` starts: ``workers`` single-threaded worker processes.

    Forked from this process where the platform allows (with the analysis modules imported
    first: no interpreter start and imports per worker; spawned workers took ~2 s of wall and
    ~3 CPU-s for that per batch, forked ones ~0.3 s and ~0.2 CPU-s). SimpleITK is not loaded
    yet at that point, so the workers' ITK thread setting (:data:`LOCAL_WORKER_ENV`) still applies.
    """
    import dask
    from dask.distributed import LocalCluster

    config = dict(LOCAL_WORKER_CONFIG)
    if "fork" in mp.get_all_start_methods():
        preload_modules(pictures)
        config["distributed.worker.multiprocessing-method"] = "fork"
    with dask.config.set(config):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                            dashboard_address=None, env=dict(LOCAL_WORKER_ENV))


def read_manifest(path: str | os.PathLike):
    """The manifest as a DataFrame; relative paths are taken relative to the manifest's folder."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError("manifest not found", path=p, hint="give a CSV with columns subject,timepoint,path")
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"manifest is not a readable CSV ({type(exc).__name__})", path=p) from None
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputError(f"manifest lacks column(s) {', '.join(missing)}", path=p,
                         hint="columns: subject,timepoint,path (+ optional mese,labels)")
    if not len(df):
        raise InputError("manifest has no rows", path=p)
    for c in ("mese", "labels"):
        if c not in df.columns:
            df[c] = ""
    for c in ("path", "mese", "labels"):
        df[c] = [str((p.parent / v).resolve()) if v and not os.path.isabs(v) else v for v in df[c]]
    dup = df.duplicated(["subject", "timepoint"])
    if dup.any():
        r = df[dup].iloc[0]
        raise InputError(f"duplicate visit {r.subject}/{r.timepoint} in the manifest", path=p)
    for c in ("subject", "timepoint"):
        bad = [v for v in df[c] if not v or "/" in v or v.startswith(".")]
        if bad:
            raise InputError(f"invalid {c} name {bad[0]!r} (empty, starting with '.', or containing '/')", path=p)
    return df


def _hashes(folder: Path) -> dict[str, str]:
    out = {}
    for f in sorted(folder.rglob("*")):
        if f.is_file() and f.name != MARKER and not f.name.startswith("."):
            out[str(f.relative_to(folder))] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _stat_digest(path) -> str:
    """SHA-256 over (relative name, size, modification time) of a file or of every file under a folder.

    Cheap (no file is read) and changes when an input is replaced, re-exported or edited.
    "" when ``path`` is not an existing file or folder (e.g. a series number given for ``mese``).
    """
    p = Path(path)
    if not p.exists():
        return ""
    files = [p] if p.is_file() else sorted(f for f in p.rglob("*") if f.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(p) if f != p else f.name}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def inputs_fingerprint(visits: list[dict]) -> list[dict]:
    """What a subject's outputs were made from: per visit its timepoint, and for ``path``, ``mese``
    and ``labels`` a SHA-256 of the value given (absolute when a path; not the path itself, which
    can hold a patient's name) and :func:`_stat_digest` of it."""
    out = []
    for v in visits:
        entry = {"timepoint": str(v["timepoint"])}
        for key in ("path", "mese", "labels"):
            val = v.get(key) or ""
            val = "" if (isinstance(val, float) and np.isnan(val)) else str(val)
            is_path = bool(val) and Path(val).exists()
            entry[key] = hashlib.sha256((str(Path(val).absolute()) if is_path else val).encode()).hexdigest()
            entry[f"{key}_stat"] = _stat_digest(val) if is_path else ""
        out.append(entry)
    return out


def is_done(folder: Path, visits: list[dict] | None = None, repeatability: dict | None = None,
            dicom_seg: bool = False, uncertainty: int = 0) -> bool:
    """True when the subject folder has a marker whose hashes match its files and, with ``visits``
    (the manifest's rows of the subject), whose inputs match those rows and their files now
    (:func:`inputs_fingerprint`): a row that points elsewhere, or an input file replaced since,
    makes the subject run again; so do other repeatability coefficients than the ones its
    changes were flagged with, another number of moved re-analyses for each level's uncertainty
    (``uncertainty``), and a DICOM SEG asked for (``dicom_seg``) but not written (nor the DICOM
    SR of the measurements that comes with it)."""
    m = folder / MARKER
    if not m.is_file():
        return False
    try:
        saved = json.loads(m.read_text())
        files = saved["files"]
        inputs = saved.get("inputs")
        rc = saved.get("repeatability", {})
        seg = bool(saved.get("dicom_seg", False))
        moves = int(saved.get("uncertainty", 0))
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    if visits is not None and inputs != inputs_fingerprint(visits):
        return False
    if rc != _rc_json(repeatability):
        return False
    if moves != int(uncertainty):
        return False
    if dicom_seg and not seg:
        return False
    if dicom_seg and any(not (p.parent / "measurements.sr.dcm").is_file() for p in folder.rglob("labels.seg.dcm")):
        return False  # written before the SEG came with its DICOM SR
    return files == _hashes(folder)


def _rc_json(repeatability: dict | None) -> dict:
    """The overrides of the repeatability coefficients as the marker stores them."""
    return {k: list(v) for k, v in sorted((repeatability or {}).items())}


def process_subject(subject: str, visits: list[dict], out_dir: str, pictures: bool = True,
                    repeatability: dict | None = None, dicom_seg: bool = False, uncertainty: int = 0) -> dict:
    """Analyse, write and compare one subject's visits. Returns {"subject", "failures": [...]}.

    ``dicom_seg``: also write each visit's labels as a DICOM SEG on its T2-weighted series
    (``labels.seg.dcm``) and its measurements as a DICOM SR on it (``measurements.sr.dcm``); a
    visit whose input is not DICOM fails. ``uncertainty``: moved re-analyses per visit for each
    level's own uncertainty (``analyze(..., uncertainty=)``; 0 = none), against which the
    changes are then also flagged.

    Runs in a Dask worker process; never raises for bad input (failures are returned). With
    ``DISCMEASURE_THREADS=1`` (local workers) numpy's OpenBLAS is held at one thread too: a worker
    forked from a process whose OpenBLAS already started its threads inherits that thread count,
    whatever ``OPENBLAS_NUM_THREADS`` says.
    """
    import contextlib

    from .t2._parallel import single_blas_thread

    one = os.environ.get("DISCMEASURE_THREADS") == "1"
    with single_blas_thread() if one else contextlib.nullcontext():
        return _process_subject(subject, visits, out_dir, pictures, repeatability, dicom_seg, uncertainty)


def _without_paths(message: str, visit: dict) -> str:
    """``message`` with the visit's input paths replaced by ``<path>``, ``<mese>``, ``<labels>``.

    failures.csv and the batch report go with the cohort's tables, and input paths can hold a
    patient's name (the measurements' provenance keeps none either); the manifest row (subject,
    timepoint) says which input it was, and a file inside it stays named relative to it.
    """
    forms = [(form, key) for key in ("path", "mese", "labels") if visit.get(key)
             for form in dict.fromkeys((str(visit[key]), str(Path(visit[key])), os.path.abspath(str(visit[key]))))]
    # the longest first: a mese or labels file inside the study folder is "<mese>", not "<path>/..."
    for form, key in sorted(forms, key=lambda fk: -len(fk[0])):
        message = message.replace(form, f"<{key}>")
    return message


def _process_subject(subject: str, visits: list[dict], out_dir: str, pictures: bool, repeatability=None,
                     dicom_seg: bool = False, uncertainty: int = 0) -> dict:
    from .comparison import compare
    from .io.load import require_dicom_input
    from .pipeline import analyze
    from .report.outputs import staged_dir, visit_files

    out = Path(out_dir) / subject
    inputs = inputs_fingerprint(visits)  # before the work: what these outputs are made from
    failures = []
    results = []
    for v in visits:
        try:
            if dicom_seg:  # before the work (it segmented, then failed)
                require_dicom_input(v["path"], hint="give DICOM series in the manifest, or leave out --dicom-seg")
            res = analyze(v["path"], mese=v.get("mese") or None, labels=v.get("labels") or None,
                          subject=subject, timepoint=v["timepoint"], uncertainty=uncertainty)
            with staged_dir(out / v["timepoint"]) as d:
                visit_files(res, d, pictures=pictures, dicom_source=v["path"] if dicom_seg else None)
            results.append(res)
        except DiscmeasureError as exc:
            failures.append({"subject": subject, "timepoint": v["timepoint"], "error": _without_paths(str(exc), v)})
        except Exception as exc:  # noqa: BLE001 -- recorded, the batch goes on
            failures.append({"subject": subject, "timepoint": v["timepoint"],
                             "error": _without_paths(f"internal error {type(exc).__name__}: {exc}", v)})
            if os.environ.get("DISCMEASURE_DEBUG"):
                traceback.print_exc()
    changes = []
    if results and results[0].timepoint == visits[0]["timepoint"]:
        base = results[0]
        for r in results[1:]:
            try:
                ch = compare(base, r, repeatability=repeatability)
                ch.insert(0, "timepoint", r.timepoint)
                ch.insert(0, "baseline", base.timepoint)
                ch.insert(0, "subject", subject)
                changes.append(ch)
            except Exception as exc:  # noqa: BLE001
                failures.append({"subject": subject, "timepoint": r.timepoint, "error": f"comparison failed: {exc}"})
    if changes:
        import pandas as pd

        write_text(out / "changes.csv", pd.concat(changes).to_csv(index=False, float_format="%.4f"))
    if not failures:
        write_text(out / MARKER, json.dumps({"files": _hashes(out), "inputs": inputs,
                                             "repeatability": _rc_json(repeatability), "dicom_seg": bool(dicom_seg),
                                             "uncertainty": int(uncertainty)},
                                            indent=1) + "\n")
    return {"subject": subject, "failures": failures}


def _tidy(out: Path, manifest):
    import pandas as pd

    rows = []
    for _, v in manifest.iterrows():
        f = out / v.subject / v.timepoint / "measurements.csv"
        if not f.is_file():
            continue
        df = pd.read_csv(f)
        for _, r in df.iterrows():
            for m in df.columns:
                if m in ("level", "label", "qc_flags"):
                    continue
                val = r[m]
                if isinstance(val, (int, float, np.floating)) and np.isfinite(val):
                    rows.append((v.subject, v.timepoint, r.level, m, float(val)))
    return pd.DataFrame(rows, columns=["subject", "timepoint", "level", "metric", "value"])


def run_batch(manifest_path, out_dir, *, workers: int = 1, scheduler: str | None = None, resume: bool = False,
              pictures: bool = True, progress=None, repeatability: dict | None = None, dicom_seg: bool = False,
              uncertainty: int = 0) -> dict:
    """Run a manifest; returns {"failures": DataFrame, "cohort": DataFrame, "changes": DataFrame,
    "summary": DataFrame, "summary_error": str or None, "skipped": [...]}.

    ``summary`` is :func:`discmeasure.comparison.cohort_summary` of ``changes`` (one row per
    follow-up timepoint and metric), also shown in ``report.html``. When it cannot be computed,
    the batch still ends normally: ``summary`` is empty, and ``summary_error`` says why (also in
    a warning and in ``report.html``).

    ``repeatability``: overrides of :data:`discmeasure.comparison.REPEATABILITY` for the changes'
    flags (a resumed subject flagged with other ones runs again). ``dicom_seg``: each visit's labels
    also as a DICOM SEG, its measurements as a DICOM SR (:func:`process_subject`; a resumed subject
    without them runs again). ``uncertainty``: moved re-analyses per visit for each level's own
    uncertainty (2-8, 0 = none; :func:`process_subject`; a resumed subject made with another
    number runs again).
    """
    from .comparison import check_repeatability
    from .report.outputs import check_output_dir
    from .uncertainty import check_uncertainty

    # every option checked before any output is made
    uncertainty = check_uncertainty(uncertainty)
    repeatability = check_repeatability(repeatability) or None
    workers = _check_workers(workers, scheduler)
    manifest = read_manifest(manifest_path)
    out = check_output_dir(out_dir, replace=False, kind="batch")
    client = _connect(scheduler) if scheduler is not None else None  # an unreachable scheduler: no output folder
    try:
        return _run(manifest, out, client, workers, resume, pictures, progress, repeatability, dicom_seg, uncertainty)
    finally:
        if client is not None:
            client.close()


def _check_workers(workers, scheduler) -> int:
    """``workers`` checked against ``scheduler`` (InputError, one line): at least 1, and not both."""
    try:
        w = int(workers)
    except (TypeError, ValueError):
        raise InputError(f"--workers {workers!r} is not a whole number", hint="e.g. --workers 2") from None
    if w < 1 or w != workers:
        raise InputError(f"--workers {workers!r}: needs a whole number of at least 1", hint="e.g. --workers 2")
    if scheduler is not None and w > 1:
        raise InputError("--workers and --scheduler together: the scheduler's own workers run the batch",
                         hint="give one of them")
    return w


def _connect(scheduler: str, timeout_s: float = 10.0):
    """A Dask client of the scheduler at ``scheduler``; InputError (one line) when it cannot be reached."""
    from dask.distributed import Client

    try:
        return Client(scheduler, timeout=f"{timeout_s}s")
    except (OSError, ValueError, TypeError) as exc:  # distributed raises OSError on timeouts, ValueError on bad addresses
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"--scheduler {scheduler!r}: cannot connect ({reason})",
                         hint="give the address of a running Dask scheduler, e.g. tcp://host:8786") from None


def _run(manifest, out, client, workers, resume, pictures, progress, repeatability, dicom_seg, uncertainty) -> dict:
    """:func:`run_batch` after its checks (``out`` checked, ``client`` connected or None)."""
    from html import escape

    import pandas as pd

    from .report import html as H
    from .report.outputs import mark_output

    out.mkdir(parents=True, exist_ok=True)
    mark_output(out, kind="batch")
    subjects = list(dict.fromkeys(manifest.subject))
    tasks, skipped = [], []
    for s in subjects:
        visits = manifest[manifest.subject == s][["timepoint", "path", "mese", "labels"]].to_dict("records")
        if resume and is_done(out / s, visits, repeatability, dicom_seg, uncertainty):
            skipped.append(s)
            continue
        tasks.append((s, visits))
    failures = []
    done = len(skipped)
    if progress:
        progress(done, len(subjects))
    if tasks:
        if client is None and workers <= 1:
            for s, visits in tasks:
                failures += process_subject(s, visits, str(out), pictures, repeatability, dicom_seg, uncertainty)["failures"]
                done += 1
                if progress:
                    progress(done, len(subjects))
        else:
            from dask.distributed import Client, as_completed

            cluster = None
            own = client is None
            if own:
                cluster = local_cluster(workers, pictures)
                client = Client(cluster)
            try:
                futs = [client.submit(process_subject, s, v, str(out), pictures, repeatability, dicom_seg, uncertainty,
                                      pure=False)
                        for s, v in tasks]
                for fut in as_completed(futs):
                    failures += fut.result()["failures"]
                    done += 1
                    if progress:
                        progress(done, len(subjects))
            finally:
                if own:
                    client.close()
                    cluster.close()
    # tables, in manifest order (independent of completion order)
    cohort = _tidy(out, manifest)
    write_text(out / "cohort.csv", cohort.to_csv(index=False, float_format="%.4f"))
    # names kept as written ("001", "12", "NA" are names, not numbers or missing values): they are
    # the summary's follow-ups and the table's keys; only an empty cell is a missing value
    ch = [pd.read_csv(out / s / "changes.csv", keep_default_na=False, na_values=[""],
                      dtype={"subject": str, "baseline": str, "timepoint": str})
          for s in subjects if (out / s / "changes.csv").is_file()]
    changes = pd.concat(ch) if ch else pd.DataFrame()
    write_text(out / "changes.csv", changes.to_csv(index=False, float_format="%.4f"))
    # failures: this run's, plus earlier ones of subjects still not done
    fail_df = pd.DataFrame(failures, columns=["subject", "timepoint", "error"])
    order = {s: i for i, s in enumerate(subjects)}
    fail_df = fail_df.sort_values(["subject", "timepoint"], key=lambda c: c.map(order) if c.name == "subject" else c)
    write_text(out / "failures.csv", fail_df.to_csv(index=False))
    summary, summary_error = _summary(changes)
    body = (f"<p>{len(subjects)} subjects, {len(manifest)} visits, {len(fail_df)} failures, {len(skipped)} resumed.</p>"
            + ("<h2>Cohort summary</h2>" + H.table_html(summary) if len(summary) else "")
            + (f"<h2>Cohort summary</h2><p>{escape(summary_error)}</p>" if summary_error else "")
            + ("<h2>Failures</h2>" + H.table_html(fail_df) if len(fail_df) else ""))
    write_text(out / "report.html", H.page("discmeasure batch", body))
    return {"failures": fail_df, "cohort": cohort, "changes": changes, "summary": summary,
            "summary_error": summary_error, "skipped": skipped}


def _summary(changes):
    """(:func:`~discmeasure.comparison.cohort_summary` of the batch's changes, None), or (an empty
    table, the reason) when it cannot be computed: the cohort's outputs are written by then, so a
    failing summary is reported (a warning, report.html, ``summary_error``), not raised."""
    import warnings

    import pandas as pd

    from .comparison import cohort_summary

    if not len(changes):
        return pd.DataFrame(), None
    try:
        return cohort_summary(changes), None
    except Exception as exc:  # noqa: BLE001 -- reported; every subject's outputs are already written
        why = str(exc) if isinstance(exc, DiscmeasureError) else f"internal error {type(exc).__name__}: {exc}"
        message = f"cohort summary not computed: {why}"
        warnings.warn(message, UserWarning, stacklevel=3)
        if os.environ.get("DISCMEASURE_DEBUG"):
            traceback.print_exc()
        return pd.DataFrame(), message
