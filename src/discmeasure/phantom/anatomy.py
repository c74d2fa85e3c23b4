"""Analytic lumbar spine (L1-S1) in world millimetres, with known truth.

The spine is built from the sacrum upward: each disc is a lordotic wedge whose
anterior and posterior heights are parameters, each vertebral body a rounded
box with a flat posterior wall and an elliptic anterior outline, so the
posterior corners, the baseline and the posterior bulge of every disc are
known exactly. A point is classified by evaluating implicit functions; no
voxels are involved until rendering.

Frames: RAS+ world (x = right, y = anterior, z = superior). The sagittal plane
of the anatomy is x = 0 before the session's rigid ``pose`` is applied.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .. import labels as lab

__all__ = ["Phantom", "Tissue", "TISSUES", "default_phantom", "LEVELS", "BODIES", "PATHOLOGIES"]

#: bodies from top to bottom and the disc levels between them
BODIES = ("L1", "L2", "L3", "L4", "L5", "S1")
LEVELS = ("L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1")


@dataclass(frozen=True)
class Tissue:
    """MR properties of a tissue (PD relative, T1/T2 in ms)."""

    name: str
    pd: float
    t1_ms: float
    t2_ms: float


#: tissue index -> properties (index 0 = air). NP/AF T2 are per disc (see Phantom.disc_t2).
TISSUES = (
    Tissue("air", 0.0, 1000.0, 1.0),
    Tissue("fat", 0.9, 350.0, 130.0),
    Tissue("muscle", 0.75, 1100.0, 35.0),
    Tissue("marrow", 0.85, 550.0, 65.0),
    Tissue("cortex", 0.12, 1000.0, 8.0),
    Tissue("annulus", 0.70, 900.0, 45.0),
    Tissue("nucleus", 1.00, 1200.0, 120.0),
    Tissue("csf", 1.00, 3500.0, 800.0),
    Tissue("posterior_bone", 0.5, 600.0, 40.0),
)
AIR, FAT, MUSCLE, MARROW, CORTEX, ANNULUS, NUCLEUS, CSF, PBONE = range(len(TISSUES))


def _rot_x(deg: float) -> np.ndarray:
    """Rotation about world x (right) by ``deg``: +deg tilts the superior axis towards anterior."""
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    # maps z-axis (0,0,1) to (0, sin a, cos a)
    return np.array([[1, 0, 0], [0, c, s], [0, -s, c]], float)


def _frame(tilt_deg: float, roll_deg: float = 0.0) -> np.ndarray:
    """Frame (columns lr, ap, si) tilted sagittally by ``tilt_deg`` (:func:`_rot_x`), then turned
    about its own AP axis by ``roll_deg`` (+ = the superior axis leans towards +x, right)."""
    a = np.deg2rad(roll_deg)
    c, s = np.cos(a), np.sin(a)
    return _rot_x(tilt_deg) @ np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], float)


def rotation_matrix(rx=0.0, ry=0.0, rz=0.0) -> np.ndarray:
    """Rotation (degrees) about world x, then y, then z."""
    rx, ry, rz = np.deg2rad([rx, ry, rz])
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


@dataclass
class Phantom:
    """Parameters of the digital lumbar spine.

    Dimensions in mm, angles in degrees, T2 in ms. ``disc_heights`` gives
    (posterior, anterior) heights per level at the mid-sagittal plane; ``bulge_mm`` the designed posterior
    protrusion depth of each disc behind its posterior corners' line, over a
    left-right half-width ``bulge_width_mm``; ``np_t2_ms`` the nucleus T2 per
    level (degenerated discs: lower). ``pose`` = (rotation degrees (rx, ry, rz)
    about ``pose_center``, translation mm) moves the whole anatomy (session
    re-positioning).

    Pathology: ``coronal_wedge_deg`` per level makes the disc a coronal wedge as well (taller on
    the left, -x, for positive angles), so that the spine above it leans to the right: a lumbar
    scoliosis built from the discs, the way degenerative scoliosis forms in asymmetric disc
    degeneration (de Vries et al. 2010, doi:10.1007/s00586-010-1368-z). ``listhesis_mm`` per
    level moves the upper body, and the spine above it, along the disc's AP axis relative to the
    lower body (+ = anterolisthesis, - = retrolisthesis; Meyerding grade I is up to 25 % of the
    body depth); the disc between them is sheared to join the two endplates. A dark, degenerated
    disc is ``np_t2_ms`` / ``np_pd`` near the annulus's values. ``np_height`` per level is the
    nucleus's height as a fraction of the disc's (default 0.65: annulus above and below it); a
    nucleus reaching the endplates is near 1. ``endplate_mm`` per level is the cortex thickness of
    the two endplates facing that disc (the lower one of the body above, the upper one of the body
    below) instead of ``cortex_mm``: the bony endplate is about 0.35 mm thick mid-sagittally
    (Silva et al. 1994, Bone 15:409-414), and on T2-weighted images the dark line between marrow
    and disc can be that thin.
    """

    body_height: dict = field(default_factory=lambda: {"L1": 26.0, "L2": 27.0, "L3": 27.5, "L4": 27.0, "L5": 26.0, "S1": 30.0})
    body_depth: dict = field(default_factory=lambda: {"L1": 31.0, "L2": 32.0, "L3": 33.0, "L4": 34.0, "L5": 34.0, "S1": 33.0})
    body_width: dict = field(default_factory=lambda: {"L1": 42.0, "L2": 44.0, "L3": 46.0, "L4": 48.0, "L5": 50.0, "S1": 48.0})
    corner_radius: float = 1.5
    cortex_mm: float = 1.2
    disc_heights: dict = field(default_factory=lambda: {
        "L1-L2": (7.0, 8.5), "L2-L3": (7.5, 10.0), "L3-L4": (8.0, 11.5), "L4-L5": (8.0, 13.0), "L5-S1": (7.0, 13.5)})
    body_wedge_deg: dict = field(default_factory=lambda: {"L1": 0.0, "L2": 1.0, "L3": 2.0, "L4": 4.0, "L5": 8.0, "S1": 0.0})
    bulge_mm: dict = field(default_factory=lambda: {"L1-L2": 0.8, "L2-L3": 1.2, "L3-L4": 1.8, "L4-L5": 4.5, "L5-S1": 3.5})
    bulge_width_mm: dict = field(default_factory=lambda: {lv: 14.0 for lv in LEVELS})
    np_t2_ms: dict = field(default_factory=lambda: {"L1-L2": 125.0, "L2-L3": 120.0, "L3-L4": 110.0, "L4-L5": 75.0, "L5-S1": 85.0})
    af_t2_ms: dict = field(default_factory=lambda: {lv: 45.0 for lv in LEVELS})
    np_pd: dict = field(default_factory=lambda: {"L1-L2": 1.0, "L2-L3": 1.0, "L3-L4": 0.95, "L4-L5": 0.8, "L5-S1": 0.85})
    sacral_slope_deg: float = 38.0
    s1_endplate_center: tuple = (0.0, 8.0, -70.0)
    canal_half_width: float = 10.0
    canal_half_depth: float = 7.5
    epidural_mm: float = 6.0
    coronal_wedge_deg: dict = field(default_factory=dict)
    listhesis_mm: dict = field(default_factory=dict)
    modic_level: str | None = None  # a body adjacent to this disc gets oedematous (bright) marrow endplate band
    endplate_mm: dict = field(default_factory=dict)  # cortex thickness of the two endplates facing a disc
    np_height: dict = field(default_factory=dict)  # nucleus height / disc height per level (default 0.65)
    pose: tuple = ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    pose_center: tuple = (0.0, 0.0, 40.0)

    def replace(self, **kw) -> "Phantom":
        """A copy with some parameters changed."""
        return dataclasses.replace(self, **kw)

    def disc_deformity(self, level: str) -> tuple[float, float]:
        """Listhesis (mm, along the disc's AP axis) and half coronal wedge (tangent) of ``level``."""
        half_wedge = np.deg2rad(float(self.coronal_wedge_deg.get(level, 0.0))) / 2
        return float(self.listhesis_mm.get(level, 0.0)), float(np.tan(half_wedge))

    # ------------------------------------------------------------ skeleton
    def skeleton(self) -> dict:
        """Frames of every body and disc in anatomical coordinates (before ``pose``).

        Returns ``{"bodies": {name: (center, R)}, "discs": {level: (center, R, h_post, h_ant)}}``
        where R's columns are the (lr, ap, si) axes. Bodies are lordotic wedges
        (``body_wedge_deg``: anterior taller), discs wedges between their endplates.
        """
        bodies, discs = {}, {}
        tilt = self.sacral_slope_deg  # tilt of the current endplate's normal towards anterior
        roll = 0.0  # coronal lean of the current endplate's normal (scoliosis)
        ep = np.asarray(self.s1_endplate_center, float)
        R = _frame(tilt)
        hs = self.body_height["S1"]
        bodies["S1"] = (ep - R[:, 2] * hs / 2, R)
        for upper, level in zip(reversed(BODIES[:-1]), reversed(LEVELS)):
            hp, ha = self.disc_heights[level]
            depth = 0.5 * (self.body_depth[upper] + self.body_depth[BODIES[BODIES.index(upper) + 1]])
            wedge = np.degrees(np.arctan2(ha - hp, depth))
            cw = float(self.coronal_wedge_deg.get(level, 0.0))
            Rd = _frame(tilt - wedge / 2, roll + cw / 2)
            hmid = 0.5 * (hp + ha)
            shift = float(self.listhesis_mm.get(level, 0.0))
            disc_c = ep + Rd[:, 2] * hmid / 2 + Rd[:, 1] * shift / 2
            discs[level] = (disc_c, Rd, hp, ha)
            tilt = tilt - wedge
            roll = roll + cw
            bw = self.body_wedge_deg.get(upper, 0.0)
            ep_up = disc_c + Rd[:, 2] * hmid / 2 + Rd[:, 1] * shift / 2
            Ru = _frame(tilt - bw / 2, roll)
            h = self.body_height[upper]
            bodies[upper] = (ep_up + Ru[:, 2] * h / 2, Ru)
            ep = ep_up + Ru[:, 2] * h
            tilt = tilt - bw
        return {"bodies": bodies, "discs": discs}

    # ------------------------------------------------------------ pose
    def pose_matrix(self) -> np.ndarray:
        """4x4 world <- anatomy transform of the session pose."""
        R = rotation_matrix(*self.pose[0])
        c = np.asarray(self.pose_center, float)
        M = np.eye(4)
        M[:3, :3] = R
        M[:3, 3] = c - R @ c + np.asarray(self.pose[1], float)
        return M

    def to_anatomy(self, world: np.ndarray) -> np.ndarray:
        M = np.linalg.inv(self.pose_matrix())
        return world @ M[:3, :3].T + M[:3, 3]

    def to_world(self, anat: np.ndarray) -> np.ndarray:
        M = self.pose_matrix()
        return np.asarray(anat, float) @ M[:3, :3].T + M[:3, 3]

    # ------------------------------------------------------------ classification
    def classify(self, world: np.ndarray, *, skel: dict | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tissue index, label and disc-level index (-1 = none) of world points (N, 3)."""
        p = self.to_anatomy(np.asarray(world, float))
        n = len(p)
        skel = skel or self.skeleton()
        tissue = np.full(n, AIR, np.int8)
        label = np.zeros(n, np.int16)
        level_idx = np.full(n, -1, np.int8)

        # body outline: soft tissue ellipse around the spine, fat rim, posterior fat
        x, y = p[:, 0], p[:, 1]
        yc = y + 20.0
        outline = (x / 160.0) ** 2 + (yc / 125.0) ** 2
        tissue[outline <= 1.0] = FAT
        tissue[outline <= 0.86] = MUSCLE

        # canal + epidural fat, posterior elements (per body, overlapping along the spine)
        for name, (c, R) in skel["bodies"].items():
            q = (p - c) @ R
            h = self.body_height[name]
            d = self.body_depth[name]
            reach = np.abs(q[:, 2]) <= h / 2 + 7.0
            if name == "S1":
                reach = (q[:, 2] <= h / 2 + 7.0) & (q[:, 2] >= -h / 2)
            wall = -d / 2
            cy = wall - self.epidural_mm * 0.4 - self.canal_half_depth
            epi = reach & (((q[:, 0] / (self.canal_half_width + 3)) ** 2 + ((q[:, 1] - cy) / (self.canal_half_depth + 3)) ** 2) <= 1)
            tissue[epi] = FAT
            canal = reach & (((q[:, 0] / self.canal_half_width) ** 2 + ((q[:, 1] - cy) / self.canal_half_depth) ** 2) <= 1)
            tissue[canal] = CSF
            label[canal] = lab.CANAL
            # lamina + spinous process: a plate behind the canal, shorter than the body
            back = cy - self.canal_half_depth - 3
            lamina = (np.abs(q[:, 2] - 2) <= h * 0.32) & (q[:, 1] <= back) & (q[:, 1] >= back - 6) & (np.abs(q[:, 0]) <= 14)
            spin = (np.abs(q[:, 2] - 2) <= h * 0.3) & (q[:, 1] <= back - 5) & (q[:, 1] >= back - 30) & (np.abs(q[:, 0]) <= 3.5)
            pb = (lamina | spin) & (tissue != CSF)
            tissue[pb] = PBONE

        # discs
        for level, (c, R, hp, ha) in skel["discs"].items():
            i = LEVELS.index(level)  # level index in LEVELS order (the skeleton is built bottom-up)
            upper, lower = level.split("-")
            q = (p - c) @ R
            depth = 0.5 * (self.body_depth[upper] + self.body_depth[lower])
            width = 0.5 * (self.body_width[upper] + self.body_width[lower])
            shift, cw = self.disc_deformity(level)
            hmax = max(hp, ha) / 2 + 1.0 + abs(cw) * width / 2
            near = ((np.abs(q[:, 2]) <= hmax + 2) & (np.abs(q[:, 0]) <= width / 2 + 2)
                    & (q[:, 1] >= -depth / 2 - 12 - abs(shift) / 2) & (q[:, 1] <= depth / 2 + 2 + abs(shift) / 2))
            if not near.any():
                continue
            qq = q[near].copy()
            # listhesis: the disc is sheared so that its top follows the displaced upper body
            if shift:
                qq[:, 1] -= shift * np.clip(qq[:, 2] / (0.5 * (hp + ha)), -0.5, 0.5)
            # local half height linearly between posterior (ap=-d/2) and anterior (ap=+d/2),
            # and across (x) for a coronal wedge (taller on -x for a positive angle)
            t = np.clip((qq[:, 1] + depth / 2) / depth, 0, 1)
            half = np.maximum(0.5 * (hp + (ha - hp) * t) - qq[:, 0] * cw, 0.5)
            sn = qq[:, 2] / half
            ell = _ellipse_part(qq[:, 0], qq[:, 1], width, depth)
            B = self.bulge_mm.get(level, 0.0)
            w = self.bulge_width_mm.get(level, 14.0)
            prof = np.clip(1 - (qq[:, 0] / w) ** 2, 0, None) * np.clip(1 - sn**2, 0, None)
            post_lim = -depth / 2 - B * prof
            behind = qq[:, 1] < -depth / 2
            inside = (np.abs(sn) <= 1.0) & (qq[:, 1] >= post_lim) & ((ell <= 0) | (behind & (np.abs(qq[:, 0]) <= 0.75 * width / 2)))
            nucleus = inside & (((qq[:, 0] / (0.3 * width)) ** 2 + ((qq[:, 1] - 0.05 * depth) / (0.27 * depth)) ** 2 + (sn / self.np_height.get(level, 0.65)) ** 2) <= 1)
            idx = np.flatnonzero(near)
            ii = idx[inside]
            tissue[ii] = ANNULUS
            tissue[idx[nucleus]] = NUCLEUS
            label[ii] = lab.disc_label_from_name(level)
            level_idx[ii] = i

        # vertebral bodies (cortex shell + marrow), drawn last: endplates bound the discs
        for name, (c, R) in skel["bodies"].items():
            q = (p - c) @ R
            h = self.body_height[name]
            d = self.body_depth[name]
            wdt = self.body_width[name]
            sdf = _body_sdf(q, h, d, wdt, self.corner_radius, self.body_wedge_deg.get(name, 0.0))
            if name == "S1":
                # the sacrum continues below S1's body, tapering posteriorly-inferiorly
                q2 = q.copy()
                q2[:, 2] = q2[:, 2] + h * 0.9
                q2[:, 1] = q2[:, 1] + 6.0
                sdf = np.minimum(sdf, _body_sdf(q2, h, d * 0.8, wdt * 0.8, 4.0))
            inb = sdf <= 0
            tissue[inb] = MARROW
            cortex = np.full(len(q), self.cortex_mm)
            k = BODIES.index(name)
            # thin endplates: the lower face of the body above a level, the upper face of the one below
            faces = [(+1 if k == LEVELS.index(lv) + 1 else -1, t) for lv, t in self.endplate_mm.items()
                     if k in (LEVELS.index(lv), LEVELS.index(lv) + 1)]
            if faces:
                # the endplate zone: nearer the face than the walls (the body's own frame)
                foot = _footprint(q[:, 0], q[:, 1], wdt - 2 * self.corner_radius, d - 2 * self.corner_radius)
                for face, t in faces:
                    cortex[(face * q[:, 2] > 0) & (h / 2 - face * q[:, 2] < -foot)] = t
            tissue[inb & (sdf > -cortex)] = CORTEX
            label[inb] = lab.vertebra_number(name)
            level_idx[inb] = -1
        return tissue, label, level_idx

    # ------------------------------------------------------------ per-voxel properties
    def properties(self, tissue: np.ndarray, level_idx: np.ndarray, *, world=None, skel=None):
        """PD, T1, T2 arrays for classified points (disc-specific NP/AF values)."""
        pd = np.array([t.pd for t in TISSUES])[tissue]
        t1 = np.array([t.t1_ms for t in TISSUES])[tissue]
        t2 = np.array([t.t2_ms for t in TISSUES])[tissue]
        for i, level in enumerate(LEVELS):
            sel = level_idx == i
            if not sel.any():
                continue
            npm = sel & (tissue == NUCLEUS)
            afm = sel & (tissue == ANNULUS)
            t2[npm] = self.np_t2_ms[level]
            pd[npm] = self.np_pd[level]
            t2[afm] = self.af_t2_ms[level]
        if self.modic_level and world is not None:
            skel = skel or self.skeleton()
            c, R, hp, ha = skel["discs"][self.modic_level]
            q = (self.to_anatomy(world) - c) @ R
            band = (tissue == MARROW) & (np.abs(q[:, 2]) < max(hp, ha) / 2 + 8) & (np.abs(q[:, 0]) < 18)
            t2[band] = 110.0  # Modic type 1: oedema, bright on T2
            pd[band] = 0.95
        return pd, t1, t2


def _ellipse_part(x, ap, width, depth):
    """Superellipse (exponent 3) of the axial outline: approximate signed distance (mm)."""
    a, b, c = width / 2, 0.56 * depth, -0.06 * depth
    r = ((np.abs(x) / a) ** 3 + (np.abs(ap - c) / b) ** 3) ** (1 / 3)
    return (r - 1.0) * min(a, b)


def _footprint(x, ap, width, depth):
    """Signed (approximate) distance to the axial outline: broad flat posterior wall at ap = -depth/2."""
    return np.maximum(_ellipse_part(x, ap, width, depth), -depth / 2 - ap)


def _body_sdf(q, h, d, w, r, wedge_deg=0.0):
    """Rounded extrusion of the axial footprint: signed distance (mm, approximate), negative inside.

    ``wedge_deg``: the endplates are tilted by +-wedge/2 so the body is taller anteriorly.
    """
    foot = _footprint(q[:, 0], q[:, 1], w - 2 * r, d - 2 * r)  # shrunk outline
    k = np.tan(np.deg2rad(wedge_deg) / 2)
    vert = (np.abs(q[:, 2]) - (h / 2 + k * q[:, 1] - r)) * np.cos(np.deg2rad(wedge_deg) / 2)
    a = np.stack([foot, vert], axis=1)
    return np.minimum(np.max(a, axis=1), 0) + np.linalg.norm(np.maximum(a, 0), axis=1) - r


def default_phantom(seed: int = 0, **overrides) -> Phantom:
    """The reference phantom; ``seed`` perturbs body sizes slightly (±1 mm) for variety, 0 = nominal."""
    ph = Phantom()
    if seed:
        rng = np.random.default_rng(seed)
        ph = ph.replace(
            body_height={k: v + rng.uniform(-1, 1) for k, v in ph.body_height.items()},
            body_depth={k: v + rng.uniform(-1, 1) for k, v in ph.body_depth.items()},
        )
    return ph.replace(**overrides) if overrides else ph


#: Degenerative changes the automatic segmentation and the measurements are checked against
#: (tests/test_segment.py, benchmarks/validate_pathology.py): parameter overrides of
#: :func:`default_phantom`.
#:
#: - ``dark_discs``: L3-L4 and L4-L5 desiccated and narrowed (Pfirrmann grade IV-V: the nucleus
#:   as dark as the annulus, L4-L5 collapsed to 4 / 6 mm; Pfirrmann et al. 2001,
#:   doi:10.1097/00007632-200109010-00011);
#: - ``modic_L4L5``, ``modic_L5S1``: a bright (type 1, oedema) band in both bodies along the
#:   disc (Modic et al. 1988, doi:10.1148/radiology.166.1.3336678);
#: - ``scoliosis``: coronal disc wedges of -4, 6, 6 and 4 degrees from L1-L2 to L4-L5, a 16 degree
#:   curve between L2 and the sacrum (degenerative scoliosis, Cobb > 10 degrees; de Vries et al. 2010);
#: - ``anterolisthesis_L4L5``: L4 5 mm anterior of L5 (degenerative spondylolisthesis, Meyerding
#:   grade I); ``retrolisthesis_L2L3``: L2 4 mm posterior of L3;
#: - ``..._narrow``: the same with more slip over a narrowed disc (L4-L5 8 mm over 5 / 8 mm,
#:   L2-L3 -7 mm over 5 / 6.5 mm), so that the baseline joining the posterior corners runs
#:   more than 40 degrees from the disc axis;
#: - ``grey_nucleus_L2L3``: L2-L3's nucleus with the marrow's signal (T2 65 ms, PD 0.85: a
#:   degenerated, grey nucleus, Pfirrmann grade III) reaching the endplates (``np_height`` 0.95),
#:   which are 0.3 mm thin: only a faint dark line, broken by noise, parts it from the marrow
#:   (what sct_t2_lumbar's L2-L3 shows; docs/segmentation.md).
_DEFAULT = Phantom()


def _changed(name: str, **levels) -> dict:
    """The default phantom's per-level parameter ``name`` with some levels changed."""
    return {**getattr(_DEFAULT, name), **levels}


PATHOLOGIES = {
    "dark_discs": dict(
        np_t2_ms=_changed("np_t2_ms", **{"L3-L4": 50.0, "L4-L5": 45.0}),
        np_pd=_changed("np_pd", **{"L3-L4": 0.72, "L4-L5": 0.7}),
        disc_heights=_changed("disc_heights", **{"L3-L4": (6.0, 8.0), "L4-L5": (4.0, 6.0)})),
    "modic_L4L5": dict(modic_level="L4-L5"),
    "modic_L5S1": dict(modic_level="L5-S1"),
    "scoliosis": dict(coronal_wedge_deg={"L1-L2": -4.0, "L2-L3": 6.0, "L3-L4": 6.0, "L4-L5": 4.0}),
    "anterolisthesis_L4L5": dict(listhesis_mm={"L4-L5": 5.0}),
    "retrolisthesis_L2L3": dict(listhesis_mm={"L2-L3": -4.0}),
    "anterolisthesis_L4L5_narrow": dict(listhesis_mm={"L4-L5": 8.0},
                                        disc_heights=_changed("disc_heights", **{"L4-L5": (5.0, 8.0)})),
    "retrolisthesis_L2L3_narrow": dict(listhesis_mm={"L2-L3": -7.0},
                                       disc_heights=_changed("disc_heights", **{"L2-L3": (5.0, 6.5)})),
    "grey_nucleus_L2L3": dict(np_t2_ms=_changed("np_t2_ms", **{"L2-L3": 65.0}), np_pd=_changed("np_pd", **{"L2-L3": 0.85}),
                              np_height={"L2-L3": 0.95}, endplate_mm={"L2-L3": 0.3}),
}
