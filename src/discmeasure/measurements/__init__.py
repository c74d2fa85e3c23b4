"""Disc measurements: posterior bulge, heights, ROIs, T2 per ROI, signal ratio.

See docs/methods.md for every definition and its references.
"""

from .core import COLUMNS, measure, rois

__all__ = ["measure", "rois", "COLUMNS"]
