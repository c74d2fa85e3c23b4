"""Sample data: the phantom pre and post studies of sample_scans/."""

from __future__ import annotations

from pathlib import Path

import discmeasure


def _root() -> Path:
    return Path(discmeasure.__file__).resolve().parents[2] / "sample_scans"


def _visit(name):
    from discmeasure.errors import InputError

    from ._reader import read_path

    p = _root() / name
    if not p.is_dir():
        raise InputError("sample study not found", path=p, hint="use a source checkout of discmeasure")
    return read_path(p)


def sample_pre():
    return _visit("pre")


def sample_post():
    return _visit("post")
