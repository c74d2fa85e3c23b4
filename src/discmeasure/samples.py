"""Where the sample studies (``sample_scans/``: the phantom pre/post pair and its truth) are.

They are not part of the installed package (``pip install ./`` ships only ``src/discmeasure``):
``discmeasure demo`` and napari's *File > Open Sample* find them with :func:`sample_root`, in
this order:

1. the folder named by the environment variable ``DISCMEASURE_SAMPLE_SCANS``, when it is set
   (and only there);
2. ``sample_scans/`` of the source checkout the package was installed from in editable mode
   (``pip install -e .``);
3. ``sample_scans/`` in the current folder (a source checkout with a regular install).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_VAR", "sample_root", "sample_study"]

#: environment variable naming a sample_scans folder (with pre/ and post/)
ENV_VAR = "DISCMEASURE_SAMPLE_SCANS"

_HINT = (f"run from the source checkout of discmeasure (the folder holding sample_scans/), or set {ENV_VAR} "
         "to a sample_scans folder; regenerate one with python sample_scans/make_sample_scans.py "
         "(from the checkout; --out DIR writes it elsewhere)")


def _has_studies(root: Path) -> bool:
    return (root / "pre").is_dir() and (root / "post").is_dir()


def _candidates() -> list[Path]:
    import discmeasure

    return [Path(discmeasure.__file__).resolve().parents[2] / "sample_scans", Path.cwd() / "sample_scans"]


def sample_root() -> Path:
    """The sample_scans folder (holding ``pre/`` and ``post/``): ``$DISCMEASURE_SAMPLE_SCANS`` when
    set, else the editable install's checkout, else ``./sample_scans``.
    :class:`~discmeasure.errors.InputError` when none holds the studies, saying where it looked."""
    from .errors import InputError

    env = os.environ.get(ENV_VAR)
    if env:
        root = Path(env).expanduser()
        if not _has_studies(root):
            raise InputError(f"sample studies (pre/ and post/) not found in {ENV_VAR}", path=root,
                             hint=f"set {ENV_VAR} to a sample_scans folder, or unset it; regenerate one with "
                                  "python sample_scans/make_sample_scans.py --out DIR")
        return root
    tried = []
    for root in _candidates():
        if _has_studies(root):
            return root
        if root not in tried:
            tried.append(root)
    raise InputError(f"sample studies (pre/ and post/) not found in {' or '.join(str(t) for t in tried)}",
                     hint=_HINT)


def sample_study(name: str) -> Path:
    """The folder of one sample visit, ``"pre"`` or ``"post"``."""
    return sample_root() / name
