"""Sample data: the phantom pre and post studies of sample_scans/.

Found as ``discmeasure demo`` finds them (:func:`discmeasure.samples.sample_root`:
``$DISCMEASURE_SAMPLE_SCANS``, the editable install's checkout, or ``./sample_scans``).
"""

from __future__ import annotations

from pathlib import Path


def _root() -> Path:
    """The sample_scans folder; InputError saying where it looked and what to do when absent."""
    from discmeasure.samples import sample_root

    return sample_root()


def _visit(name):
    from ._reader import read_path

    return read_path(_root() / name)


def sample_pre():
    return _visit("pre")


def sample_post():
    return _visit("post")
