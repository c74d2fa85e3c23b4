"""Pre/post phantom pairs: same anatomy, treated levels changed, the patient repositioned."""

from __future__ import annotations

from .anatomy import Phantom, default_phantom

__all__ = ["make_pair"]


def make_pair(seed: int = 0, *, bulge_change=None, np_t2_change=None, move=((1.5, -1.0, 2.0), (2.0, -3.0, 4.0)),
              base: Phantom | None = None) -> tuple[Phantom, Phantom]:
    """Baseline and follow-up phantoms.

    Parameters
    ----------
    seed : int
        Anatomy variant (:func:`default_phantom`).
    bulge_change : dict, optional
        Relative bulge change per level, e.g. ``{"L4-L5": -0.23}`` (the registry's mean change).
    np_t2_change : dict, optional
        Relative NP T2 change per level, e.g. ``{"L4-L5": +0.10}``.
    move : ((rx, ry, rz) degrees, (tx, ty, tz) mm)
        Rigid repositioning of the patient at follow-up.
    """
    pre = base or default_phantom(seed)
    bulge_change = {"L4-L5": -0.23} if bulge_change is None else bulge_change
    np_t2_change = {"L4-L5": 0.10} if np_t2_change is None else np_t2_change
    bulge = dict(pre.bulge_mm)
    for lv, f in bulge_change.items():
        bulge[lv] = bulge[lv] * (1 + f)
    t2 = dict(pre.np_t2_ms)
    for lv, f in np_t2_change.items():
        t2[lv] = t2[lv] * (1 + f)
    post = pre.replace(bulge_mm=bulge, np_t2_ms=t2, pose=(tuple(move[0]), tuple(move[1])))
    return pre, post
