"""Disc and vertebral-body segmentation with level labels: automatic, seeded, imported."""

from .core import Segmentation, levels_of, segment

__all__ = ["segment", "Segmentation", "levels_of"]
