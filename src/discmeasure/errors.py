"""Exceptions raised by discmeasure.

Every failure a user can cause (a missing file, a folder without DICOM, a series
with inconsistent geometry, a fit without echo times, ...) raises a subclass of
:class:`DiscmeasureError` whose message is one line naming the file or input,
the cause and what to do about it. The CLI prints that line prefixed with
``error:`` and exits non-zero, without a traceback.

Messages never contain patient names, IDs or birth dates.
"""

from __future__ import annotations

__all__ = [
    "DiscmeasureError",
    "InputError",
    "DicomError",
    "GeometryError",
    "SeriesSelectionError",
    "FitError",
    "SegmentationError",
    "MeasurementError",
    "OutputError",
]


class DiscmeasureError(Exception):
    """Base class of every error a user of discmeasure can cause.

    Parameters
    ----------
    message : str
        What is wrong, in one line.
    path : str or os.PathLike, optional
        The file or folder concerned; prefixed to the message.
    hint : str, optional
        What to do about it; appended to the message.
    """

    def __init__(self, message: str, *, path=None, hint: str | None = None):
        self.path = None if path is None else str(path)
        self.reason = str(message)
        self.hint = hint
        parts = []
        if self.path:
            parts.append(f"{self.path}: ")
        parts.append(self.reason.rstrip("."))
        if hint:
            parts.append(f" ({hint.rstrip('.')})")
        text = "".join(parts).replace("\n", " ")
        super().__init__(text)


class InputError(DiscmeasureError, ValueError):
    """A path or array given by the user cannot be used (missing, empty, wrong type, NaN...)."""


class DicomError(InputError):
    """A DICOM file or series cannot be read or decoded."""


class GeometryError(InputError):
    """The image geometry is missing, singular or inconsistent."""


class SeriesSelectionError(InputError):
    """A folder holds several series (or none matching the request) and one must be chosen."""


class FitError(DiscmeasureError, ValueError):
    """A T2 fit cannot be done with the data and parameters given."""


class SegmentationError(DiscmeasureError, ValueError):
    """Segmentation failed or a label map cannot be converted."""


class MeasurementError(DiscmeasureError, ValueError):
    """A measurement cannot be made (e.g. a level lacks one of its vertebral bodies)."""


class OutputError(DiscmeasureError, ValueError):
    """An output path cannot be written (e.g. it would replace a folder discmeasure did not write)."""
