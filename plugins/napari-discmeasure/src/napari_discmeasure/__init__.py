"""napari plugin for discmeasure (thin layer over the discmeasure public API)."""

__version__ = "0.1.0"
