"""``discmeasure.load_study``: pick the T2-weighted and multi-echo series of a study folder.

Rules (documented in docs/loading.md), applied to magnitude series with valid geometry:

- **mese** (T2 mapping): >= 4 distinct echo times in one series, spin echo (ScanningSequence
  contains "SE" or absent); the one with most echoes, then most slices.
- **t2w** (anatomy): single-echo series with TE >= 60 ms and TR >= 1500 ms (T2-weighted); among
  them sagittal first (slice normal closest to left-right), then most pixels. If none qualifies, a
  dual-echo series (PD + T2, two echo volumes, e.g. "pd+t2_tse") whose longer TE is >= 60 ms
  (:data:`T2W_MIN_TE_MS`) with TR >= 1500 ms, same order: it is returned whole, and
  :func:`discmeasure.pipeline.t2_weighted_volume` measures its long echo (with a warning). If
  none of these, the single-echo series with the longest TE, sagittal first.

Both are overridable: ``load_study(path, t2w=..., mese=...)`` with a series number, UID or
description text (``mese=False`` for none).

A folder holding several studies (StudyInstanceUID; e.g. a patient's export of two visits): the
series of one visit are never mixed by the automatic choice. A series chosen by hand brings the
choice of the other into its own study (when that study has a candidate). Without a choice by
hand, the T2-weighted candidates (of the rule that decides) must lie in one study, and the
multi-echo series is taken from the T2-weighted series' study (when it has none: the candidates
must lie in one study), else SeriesSelectionError (one line: the studies' count, dates and series
numbers). Two series chosen by hand are taken as given (in different frames of reference
:func:`discmeasure.analyze` warns and flags the T2 values). A folder of one study is unaffected.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, SeriesSelectionError
from ..scan import Scan

__all__ = ["Study", "load_study"]

#: shortest echo time (ms) of a T2-weighted series, and of the long echo of a dual-echo PD/T2 series
#: (``pipeline.t2_weighted_volume`` picks that echo by this same constant)
T2W_MIN_TE_MS = 60.0
#: shortest repetition time (ms) of a T2-weighted series
T2W_MIN_TR_MS = 1500.0


@dataclass
class Study:
    """Series of one study folder; pixel data are read on first access of ``t2w`` / ``mese``."""

    path: Path
    series: list[dict]
    t2w_key: str | None
    mese_key: str | None
    _infos: dict = field(default_factory=dict, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def _get(self, key):
        if key is None:
            return None
        if key not in self._cache:
            from .dicom import read_series

            self._cache[key] = read_series(self._infos[key], self.path)
        return self._cache[key]

    @property
    def t2w(self) -> Scan | None:
        """The T2-weighted anatomical series (Scan) or None.

        A dual-echo PD/T2 series (see :func:`load_study`) is returned with both echoes (4-D);
        :func:`discmeasure.pipeline.t2_weighted_volume` takes its T2-weighted echo.
        """
        return self._get(self.t2w_key)

    @property
    def mese(self) -> Scan | None:
        """The multi-echo spin-echo series (Scan) or None."""
        return self._get(self.mese_key)

    def load(self, series) -> Scan:
        """Any series of the study by number, UID, description or component (``"phase"``; see
        :func:`discmeasure.io.dicom.select_series`)."""
        from .dicom import select_series

        info = select_series(list(self._infos.values()), series, self.path)
        return self._get(info.key)


def _is_se(summary) -> bool:
    seq = str(summary.get("scanning_sequence") or "").upper()
    return (not seq) or "SE" in seq


def _is_t2_weighted(te, summary) -> bool:
    """TE (ms) and the series' TR are those of a T2-weighted image (:data:`T2W_MIN_TE_MS`, :data:`T2W_MIN_TR_MS`)."""
    return te is not None and te >= T2W_MIN_TE_MS and (summary.get("repetition_time_ms") or 0) >= T2W_MIN_TR_MS


def _is_dual_echo_t2(summary) -> bool:
    """A dual-echo series (two echo volumes, e.g. PD + T2 TSE) whose longer echo is T2-weighted."""
    tes = summary.get("echo_times_ms") or []
    return (len(tes) == 2 and summary.get("volumes") == 2 and summary.get("volume_kind") == "echo"
            and _is_t2_weighted(max(tes), summary))


def _study_of(info) -> str | None:
    """StudyInstanceUID of a series (None when its header has none)."""
    uid = str(getattr(info.header, "StudyInstanceUID", "") or "").strip() if info.header is not None else ""
    return uid or None


def _several_studies(path, infos, study_of: dict, why: str) -> SeriesSelectionError:
    """The one-line refusal of a folder of several studies: their count, dates (StudyDate) and
    series numbers (no patient data, no descriptions), and what to do."""
    by_study: dict = {}
    for info in infos:
        uid = study_of.get(info.key)
        if uid is not None:
            by_study.setdefault(uid, []).append(info)

    def date(series):
        d = str(getattr(series[0].header, "StudyDate", "") or "").strip()
        return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else "date unknown"

    def numbers(series):
        nums = sorted({"?" if s.number is None else str(s.number) for s in series}, key=lambda n: (len(n), n))
        return ", ".join(f"#{n}" for n in nums)

    studies = sorted(by_study.values(), key=date)
    listing = "; ".join(f"{date(v)}: series {numbers(v)}" for v in studies)
    return SeriesSelectionError(
        f"{len(studies)} studies in the folder ({listing}); {why}", path=path,
        hint="give the folder of one study (one visit), or choose the series by hand: t2w=/mese= in load_study "
             "(discmeasure measure --t2w/--mese), by Series Instance UID when the numbers repeat")


def load_study(path: str | os.PathLike, *, t2w=None, mese=None) -> Study:
    """Scan a study folder and choose its T2-weighted and multi-echo series.

    Parameters
    ----------
    path : str or PathLike
        A folder holding the series of one study (DICOM, searched recursively).
    t2w, mese : int or str, optional
        Choose the series by hand (number, UID or description, see
        :func:`discmeasure.io.dicom.select_series`); ``mese=False`` for no multi-echo series.
        By default chosen by the rules of the module docstring (docs/loading.md).

    Returns
    -------
    Study
        Its ``t2w`` is a dual-echo PD/T2 series (both echoes) when that is the study's T2-weighted
        image; :func:`discmeasure.pipeline.t2_weighted_volume` takes its long echo.

    Raises
    ------
    InputError
        Neither a T2-weighted nor a multi-echo series is recognised (one line listing the series).
    SeriesSelectionError
        ``t2w`` / ``mese`` match no series, or several.
    """
    from .dicom import scan_folder, select_series, series_summary

    p = Path(path)
    infos = scan_folder(p)
    summaries = []
    by_key = {}
    for info in infos:
        s = series_summary(info)
        s["key"] = info.key
        summaries.append(s)
        by_key[info.key] = info
    # several studies (a patient's export of several visits): never mix them unasked
    study_of = {info.key: _study_of(info) for info in infos}
    several = len({u for u in study_of.values() if u is not None}) > 1

    def same_study(keys, key):
        """``keys`` (series keys) in the study of the series ``key`` (a series without a
        StudyInstanceUID belongs to any)."""
        uid = study_of.get(key)
        return [k for k in keys if uid is None or study_of.get(k) in (None, uid)]

    def one_study(keys, why):
        if several and len({study_of.get(k) for k in keys} - {None}) > 1:
            raise _several_studies(p, infos, study_of, why)

    valid = [s for s in summaries if s.get("orientation") and s.get("component") == "M"]
    # (a multi-echo series chosen by hand is looked up first only where it steers the T2-weighted choice)
    mese_chosen = select_series(infos, mese, p).key if several and t2w is None and mese not in (None, False) else None
    if t2w is not None:
        t2w_key = select_series(infos, t2w, p).key
    else:
        def rank(s):
            sag = s.get("plane") == "sagittal"
            npx = s["shape"][0] * s["shape"][1] * s["shape"][2]
            return (sag, npx)

        def pool_of(series):
            single = [s for s in series if len(s.get("echo_times_ms") or []) <= 1]
            t2 = [s for s in single if _is_t2_weighted((s.get("echo_times_ms") or [0])[0], s)]
            # a PD/T2 dual-echo series only when no single-echo series is T2-weighted; before the fallback
            # (the longest-TE single-echo series, e.g. a T1w one), as its long echo is T2-weighted
            dual = [s for s in series if _is_dual_echo_t2(s)]
            return t2 or dual or sorted(single, key=lambda s: (s.get("plane") == "sagittal",
                                                              (s.get("echo_times_ms") or [0])[-1]))[-1:]

        pool = pool_of(valid)
        if several and mese_chosen is not None:  # the T2-weighted series of the chosen multi-echo one's study
            own = set(same_study([s["key"] for s in valid], mese_chosen))
            pool = pool_of([s for s in valid if s["key"] in own]) or pool
        elif several:
            one_study([s["key"] for s in pool], "which visit's T2-weighted series to measure is not clear")
        t2w_key = max(pool, key=rank)["key"] if pool else None
    if mese is False:
        mese_key = None
    elif mese is not None:
        mese_key = mese_chosen or select_series(infos, mese, p).key
    else:
        multi = [s for s in valid if len(s.get("echo_times_ms") or []) >= 4 and _is_se(s) and s["key"] != t2w_key]
        if several and t2w_key is not None:  # the multi-echo series of the T2-weighted one's study
            own = set(same_study([s["key"] for s in multi], t2w_key))
            multi = [s for s in multi if s["key"] in own] or multi
        if several and t2w is None:
            one_study([s["key"] for s in multi], "which visit's multi-echo series to fit is not clear")
        mese_key = max(multi, key=lambda s: (len(s["echo_times_ms"]), s["shape"][2]))["key"] if multi else None
    if t2w_key is None and mese_key is None:
        listing = "; ".join(i.label() for i in infos)
        raise InputError(f"no T2-weighted or multi-echo series recognised ({listing})", path=p,
                         hint="choose the series by hand: discmeasure measure --t2w/--mese, or t2w=/mese= in load_study")
    for s in summaries:
        s["role"] = "t2w" if s["key"] == t2w_key else ("mese" if s["key"] == mese_key else "")
    return Study(p, summaries, t2w_key, mese_key, by_key)
