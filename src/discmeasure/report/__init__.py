"""Reports: QC pictures (matplotlib, Agg), self-contained HTML, per-visit / pair / batch outputs."""

from .outputs import write_pair, write_visit

__all__ = ["write_visit", "write_pair"]
