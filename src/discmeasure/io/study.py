"""``discmeasure.load_study``: pick the T2-weighted and multi-echo series of a study folder.

Rules (documented in docs/loading.md), applied to magnitude series with valid geometry:

- **mese** (T2 mapping): >= 4 distinct echo times in one series, spin echo (ScanningSequence
  contains "SE" or absent); the one with most echoes, then most slices.
- **t2w** (anatomy): single-echo series with TE >= 60 ms and TR >= 1500 ms (T2-weighted); among
  them sagittal first (slice normal closest to left-right), then most pixels. If none qualifies,
  the single-echo series with the longest TE, sagittal first.

Both are overridable: ``load_study(path, t2w=..., mese=...)`` with a series number, UID or
description text (``mese=False`` for none).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..scan import Scan

__all__ = ["Study", "load_study"]


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
        """The T2-weighted anatomical series (Scan) or None."""
        return self._get(self.t2w_key)

    @property
    def mese(self) -> Scan | None:
        """The multi-echo spin-echo series (Scan) or None."""
        return self._get(self.mese_key)

    def load(self, series) -> Scan:
        """Any series of the study by number, UID or description."""
        from .dicom import select_series

        info = select_series(list(self._infos.values()), series, self.path)
        return self._get(info.key)


def _is_se(summary) -> bool:
    seq = str(summary.get("scanning_sequence") or "").upper()
    return (not seq) or "SE" in seq


def load_study(path: str | os.PathLike, *, t2w=None, mese=None) -> Study:
    """Scan a study folder and choose its T2-weighted and multi-echo series (see module docstring)."""
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
    valid = [s for s in summaries if s.get("orientation") and s.get("component") == "M"]
    if t2w is not None:
        t2w_key = select_series(infos, t2w, p).key
    else:
        single = [s for s in valid if len(s.get("echo_times_ms") or []) <= 1]

        def rank(s):
            sag = s.get("plane") == "sagittal"
            npx = s["shape"][0] * s["shape"][1] * s["shape"][2]
            return (sag, npx)

        t2 = [s for s in single if (s.get("echo_times_ms") or [0])[0] >= 60 and (s.get("repetition_time_ms") or 0) >= 1500]
        pool = t2 or sorted(single, key=lambda s: (s.get("plane") == "sagittal", (s.get("echo_times_ms") or [0])[-1]))[-1:]
        t2w_key = max(pool, key=rank)["key"] if pool else None
    if mese is False:
        mese_key = None
    elif mese is not None:
        mese_key = select_series(infos, mese, p).key
    else:
        multi = [s for s in valid if len(s.get("echo_times_ms") or []) >= 4 and _is_se(s) and s["key"] != t2w_key]
        mese_key = max(multi, key=lambda s: (len(s["echo_times_ms"]), s["shape"][2]))["key"] if multi else None
    if t2w_key is None and mese_key is None:
        listing = "; ".join(i.label() for i in infos)
        raise InputError(f"no T2-weighted or multi-echo series recognised ({listing})", path=p,
                         hint="choose series explicitly: --t2w / --mese on the command line, t2w= / mese= in load_study")
    for s in summaries:
        s["role"] = "t2w" if s["key"] == t2w_key else ("mese" if s["key"] == mese_key else "")
    return Study(p, summaries, t2w_key, mese_key, by_key)
