"""Label convention shared by every module (interoperable with SPINEPS).

- vertebral body: the vertebra number, C1 = 1 ... C7 = 7, T1 = 8 ... T12 = 19,
  L1 = 20 ... L5 = 24, L6 = 25 (transitional), S1 = 26 (sacrum);
- intervertebral disc: 100 + the number of the vertebra above it
  (T12-L1 = 119, L1-L2 = 120, ..., L4-L5 = 123, L5-S1 = 124);
- spinal canal (CSF + cord): 61.

References
----------
Möller H. et al., "SPINEPS -- automatic whole spine segmentation of T2-weighted
MR images using a two-phase approach to multi-class semantic and instance
segmentation", Eur Radiol 2025, doi:10.1007/s00330-024-11155-y.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "CANAL",
    "SACRUM",
    "DISC_OFFSET",
    "vertebra_name",
    "vertebra_number",
    "disc_label",
    "disc_level_name",
    "disc_label_from_name",
    "is_disc",
    "is_vertebra",
    "vertebra_mask",
    "vertebra_below",
    "LUMBAR_DISC_LEVELS",
]

CANAL = 61
SACRUM = 26
DISC_OFFSET = 100

_NAMES: dict[int, str] = {}
for _i in range(1, 8):
    _NAMES[_i] = f"C{_i}"
for _i in range(1, 13):
    _NAMES[7 + _i] = f"T{_i}"
for _i in range(1, 7):
    _NAMES[19 + _i] = f"L{_i}"
_NAMES[26] = "S1"
_NUMBERS = {v: k for k, v in _NAMES.items()}


def vertebra_name(number: int) -> str:
    """Name of a vertebra label ('L4' for 23)."""
    try:
        return _NAMES[int(number)]
    except KeyError:
        raise ValueError(f"{number} is not a vertebra label (1-26)") from None


def vertebra_number(name: str) -> int:
    """Label of a vertebra name (23 for 'L4')."""
    try:
        return _NUMBERS[name.strip().upper()]
    except KeyError:
        raise ValueError(f"{name!r} is not a vertebra name such as 'L4' or 'S1'") from None


def vertebra_below(number: int, *, l6: bool = False) -> int:
    """Label of the vertebra caudal to ``number`` (L5 -> S1 unless ``l6``)."""
    number = int(number)
    if number == 24 and not l6:
        return SACRUM
    if number == 25:
        return SACRUM
    if number >= SACRUM:
        raise ValueError("nothing below the sacrum")
    return number + 1


def disc_label(upper_vertebra: int) -> int:
    """Disc label below vertebra ``upper_vertebra`` (123 for L4)."""
    return DISC_OFFSET + int(upper_vertebra)


def disc_level_name(label: int, *, l6: bool = False) -> str:
    """Level name of a disc label ('L4-L5' for 123, 'L5-S1' for 124)."""
    upper = int(label) - DISC_OFFSET
    return f"{vertebra_name(upper)}-{vertebra_name(vertebra_below(upper, l6=l6))}"


def disc_label_from_name(level: str) -> int:
    """Disc label of a level name (124 for 'L5-S1')."""
    upper = level.split("-")[0]
    return disc_label(vertebra_number(upper))


def is_disc(label: int) -> bool:
    """True for disc labels (101-125)."""
    return DISC_OFFSET + 1 <= int(label) <= DISC_OFFSET + 25


def is_vertebra(label: int) -> bool:
    """True for vertebral-body labels (1-26)."""
    return 1 <= int(label) <= SACRUM


def vertebra_mask(labels):
    """:func:`is_vertebra` element-wise: True where an array of labels holds a vertebral body."""
    labels = np.asarray(labels)
    return (labels >= 1) & (labels <= SACRUM)


#: The lumbar disc levels in cranio-caudal order, as (name, label).
LUMBAR_DISC_LEVELS = [(disc_level_name(disc_label(v)), disc_label(v)) for v in range(20, 25)]
