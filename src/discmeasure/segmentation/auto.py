"""Automatic classical segmentation of lumbar T2-weighted MRI.

Pipeline (all on a world-aligned working grid, so any scan orientation works):

1. resample the scan onto a grid whose axes are world x (left-right), y (AP), z (SI),
   in-plane 0.5-1 mm, left-right at the scan's own resolution;
2. intensities are split into dark / intermediate / bright classes by three-class Otsu
   thresholds (Liao, Chen & Chung 2001) inside the body outline;
3. the **canal** is the bright connected component that is long in SI, thin in AP and
   narrow in LR (the dural sac); its anterior border, smoothed along SI, defines the
   vertebral column's region of interest in front of it (this follows lordosis and scoliosis).
   Where the CSF is grey, the column is found as the longest chain of stacked body-like blocks
   (:func:`_column_from_chain`); both hypotheses go through step 4 and the one whose bodies
   stack into the longer chain wins (the canal's on a tie);
4. **vertebral bodies** are the intermediate-intensity (marrow) components of that region
   after a morphological opening that cuts them apart at the dark endplates and discs
   (components too big for a body are opened again with larger disks, which cuts off tissue
   joined in front); S1, which a steep sacrum turns out of that region, is also sought one
   pitch below the lowest body along its endplate normal (:func:`_s1_below`); each body is grown
   by the cortical shell, across thick slices with the marrow's sub-slice extent from partial
   volume (:func:`_cortex_shell_pv`), and its endplate faces give the bodies' partial volume
   (:func:`_endplate_faces_pv`; on the scan's own pixels when they are coarser than the working
   grid's, :func:`_faces_on_scan_grid`);
5. **discs** are the voxels between consecutive bodies, column by column, extended
   posteriorly (bulges) and laterally over voxels darker than the CSF/fat level;
6. **levels**: the sacrum is the lowest body with a disc above it; bodies are numbered
   upward from S1 (L5, L4, ... T12, T11 ...), skipping a body the search missed (a gap of
   about two vertebral spacings, :func:`missed_bodies`).

References
----------
Otsu N. "A threshold selection method from gray-level histograms." IEEE Trans Syst Man
Cybern 1979;9:62-66. doi:10.1109/TSMC.1979.4310076

Liao PS, Chen TS, Chung PC. "A fast algorithm for multilevel thresholding." J Inf Sci Eng
2001;17:713-727 (three-class Otsu as skimage.filters.threshold_multiotsu).

Soille P. Morphological Image Analysis. Springer, 2003 (opening, hole filling, labelling).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .. import labels as lab
from ..errors import SegmentationError
from ..geometry import bounding_box, bounding_grid, resample
from .core import Segmentation, levels_of

__all__ = ["segment_auto"]


def _working_grid(scan, max_inplane=0.8):
    sp = np.asarray(scan.spacing)
    ax_x = scan.axis_closest_to("x")
    s_lr = float(sp[ax_x]) if scan.shape[ax_x] > 1 else float(sp[ax_x])
    others = [a for a in range(3) if a != ax_x]
    s_ip = float(np.clip(min(sp[others]), 0.5, max_inplane))
    if scan.shape[ax_x] == 1:
        # one sagittal slice: keep it as one working slice
        shape, aff = bounding_grid(scan.affine, scan.shape, _grid_direction(scan, single=True), (s_lr, s_ip, s_ip))
        return (1,) + shape[1:], aff
    return bounding_grid(scan.affine, scan.shape, _grid_direction(scan), (min(s_lr, 4.0), s_ip, s_ip))


def _grid_direction(scan, max_deg=15.0, *, single=False):
    """Axes (columns: LR, AP, SI) of the working grid: the scan's own where that does no harm.

    Resampling a thick-slice scan onto world-aligned slices interpolates across its slices, and
    the labels come back to them by nearest neighbour: on a scan turned 8 degrees about SI the
    lateral planes of the bulge band took epidural fat as disc (auto bulge error 0.44 mm, 1.69 mm
    from the label outlines; 0.28 / 0.71 mm on the scan's own slices). The working slices
    therefore follow the scan's slices when these are turned about SI (axial obliquity) or LR
    (sagittal tilt). A left-right lean of the slices is not followed: the working slices would
    cut the spine obliquely, which the column search does not expect. The LR axis is the scan's
    axis nearest to world LR with its SI component removed; the SI axis is the scan's axis
    nearest to world SI, made orthogonal to it. Beyond ``max_deg`` from world axes (a scan planned
    far off the body's axes) the grid is world-aligned, as the algorithm assumes.

    One slice (``single``) is always followed, lean included: there is nothing to interpolate
    from, and a world-aligned working slice would meet a leaning or far-turned slice only along
    a line.
    """
    R = np.asarray(scan.affine, float)[:3, :3]
    R = R / np.linalg.norm(R, axis=0)
    lr = R[:, int(np.argmax(np.abs(R[0])))].copy()
    si = R[:, int(np.argmax(np.abs(R[2])))]
    if not single:
        lr[2] = 0.0
    if np.linalg.norm(lr) < 0.5:
        return np.eye(3)
    lr = np.sign(lr[0]) * lr / np.linalg.norm(lr)
    si = np.sign(si[2]) * (si - (si @ lr) * lr)
    si = si / np.linalg.norm(si)
    D = np.column_stack([lr, np.cross(si, lr), si])
    angle = np.degrees(np.arccos(np.clip((np.trace(D) - 1) / 2, -1, 1)))
    return D if single or angle <= max_deg else np.eye(3)


def _ball2(radius_vox):
    r = max(1, int(round(radius_vox)))
    y, z = np.ogrid[-r:r + 1, -r:r + 1]
    return (y * y + z * z <= r * r)


#: 4-connectivity within each slice (working-grid axis 0), none across slices: 3-D morphology
#: that acts slice by slice, like :func:`_per_slice` with scipy's default 2-D structure
_IN_PLANE = np.zeros((3, 3, 3), bool)
_IN_PLANE[1] = ndimage.generate_binary_structure(2, 1)


def _regrow(base, seed, free, radius_vox):
    """``base`` plus the ``free`` voxels within ``radius_vox`` (in-plane disk) of ``seed`` that
    connect to ``base`` through such voxels (geodesic reconstruction, slice by slice)."""
    grown = _per_slice(lambda s: ndimage.binary_dilation(s, _ball2(radius_vox)), seed) & free
    return ndimage.binary_propagation(base, mask=grown | base, structure=_IN_PLANE)


def _per_slice(fn, vol, *args):
    return np.stack([fn(vol[i], *args) for i in range(vol.shape[0])], axis=0)


def _volume_scale(shape) -> float:
    """Factor for volume limits (mm3): 1, or 0.02 for a single slice, whose "volumes" are areas x slice thickness."""
    return 1.0 if shape[0] > 1 else 0.02


def _inplane_box(m, margin):
    """Index box of ``m`` (all slices; in-plane bounding box of its voxels grown by ``margin``)."""
    box = bounding_box(m)
    if box is None:
        return (slice(None),) * 3
    return (slice(None),) + tuple(slice(max(a - margin, 0), b + margin) for a, b in zip(box[0][1:], box[1][1:]))


def _distance_to(s, sampling):
    """Distance (mm) of every pixel to the nearest pixel of mask ``s``; infinite when ``s`` is empty."""
    if not s.any():
        return np.full(s.shape, np.inf)
    return ndimage.distance_transform_edt(~s, sampling=sampling)


def _split_tall(comp, n, sp, max_ratio=1.6, min_big_mm3=1000.0):
    """Split components much taller (SI) than the typical body at their narrowest cross-section.

    Two bodies joined through a disc whose nucleus has marrow-like signal (moderate
    degeneration) form one tall component with a waist at the disc. Components count when larger
    than ``min_big_mm3`` (scaled like the body size limit on a single slice). The cut is made only
    at a waist: a section narrower than some section on either side of it.
    """
    for _ in range(3):
        objs = ndimage.find_objects(comp)
        ext = {i + 1: (sl[2].stop - sl[2].start) * sp[2] for i, sl in enumerate(objs) if sl is not None}
        big = {i: e for i, e in ext.items() if e >= 10 and (comp == i).sum() * np.prod(sp) > min_big_mm3}
        if len(big) < 2:
            return comp, n
        typical = float(np.median(list(big.values())))
        changed = False
        for i, e in big.items():
            if e <= max_ratio * typical:
                continue
            sl = objs[i - 1]
            m = comp[sl] == i
            area = m.sum(axis=(0, 1)).astype(float)
            k0, k1 = int(0.25 * len(area)), int(0.75 * len(area))
            if k1 <= k0 + 1:
                continue
            cut = k0 + int(np.argmin(area[k0:k1]))
            lo = cut - max(1, int(round(1.0 / sp[2])))
            hi = cut + max(1, int(round(1.0 / sp[2]))) + 1
            # a waist: narrower than the component on both sides. The sacrum (S1 with the segments
            # below it, inclined 30-50 degrees) is tall in world SI too, but its axial sections
            # only grow from its top down: cut at the edge of the search range, S1's
            # posterior-superior corner became a sliver that no rule kept as a body, and the
            # L5-S1 disc took it (a leaning single slice: L5-S1 disc Dice 0.64)
            if not area[cut] < min(area[:cut].max(initial=0), area[cut + 1:].max(initial=0)):
                continue
            sub = comp[sl]
            band = np.zeros_like(m)
            band[:, :, max(lo, 0):hi] = True
            sub[m & band] = 0
            upper = m & ~band
            upper[:, :, :cut] = False
            n += 1
            sub[upper] = n
            changed = True
        if not changed:
            return comp, n
    return comp, n


def _marrow_pockets(m, bright, min_share=0.5, band_share=0.25, others=None, clear=1):
    """``m`` plus the bright pockets (per slice) whose rim lies mostly (>= ``min_share``) in ``m``,
    and the bright bands across the body (rim >= ``band_share`` in ``m``, within its AP span).

    Marrow with fatty foci is brighter on T2-weighted images than the intermediate class (its
    upper threshold is a global one, set between muscle/marrow and fat/CSF). Such a focus under
    an endplate opens onto the dark endplate, so hole filling misses it and the body's outline
    gets a "bite" there; whether a few voxels pass the threshold changes with a small move of the
    patient (sct_t2_lumbar L5: anterior L4-L5 height 5 mm or 13 mm). A pocket mostly surrounded
    by the body is marrow; the nucleus, CSF, fat and vessels are bordered by dark or other tissue.

    A Modic change (type 1 oedema, type 2 fat; Modic et al. 1988, doi:10.1148/radiology.166.1.3336678)
    is a bright band along an endplate, often across the whole body: marrow on one side, the
    dark endplate and walls on the others, so only a third or so of its rim is marrow. It is
    taken when at least ``band_share`` of its rim is the body's marrow, it lies within the
    body's AP span in that slice (three quarters of it at least: an inclined body's ends are
    shifted against its middle) and covers at least a third of that span (small bright spots at
    a wall or corner, veins, fat along a wall are not bands), it is at most half as thick as it
    is long (standard deviations across and along it: a band along the endplate, not a blob of
    fat beside a lateral slice of the body), and no marrow of ``others`` (the other bodies, one
    mask per slice like ``m``) lies within ``clear`` voxels of it. The nucleus is kept from the
    marrow by the endplate, but where resampling blurs a thin endplate it touches the marrow of
    both bodies, whereas a band is a whole disc height away from the next body; epidural and
    prevertebral fat lie outside the span. Returns the grown mask and, as a second mask, the
    bands taken.
    """
    out = m.copy()
    bands = np.zeros_like(m)
    four = ndimage.generate_binary_structure(2, 1)
    for x in range(m.shape[0]):
        if not m[x].any():
            continue
        cols = np.flatnonzero(m[x].any(axis=1))
        a0, a1 = cols.min(), cols.max()
        cand = bright[x] & ~m[x]
        cc, _ = ndimage.label(cand, four)
        ids = np.unique(cc[ndimage.binary_dilation(m[x], four) & cand])
        objs = ndimage.find_objects(cc)
        for j in ids[ids > 0]:
            sl = tuple(slice(max(s_.start - 1, 0), s_.stop + 1) for s_ in objs[j - 1])
            pm = cc[sl] == j
            rim = ndimage.binary_dilation(pm, four) & ~pm
            share = m[x][sl][rim].mean()
            if share >= min_share:
                out[x][sl] |= pm
            elif share >= band_share and _is_band(cc, j, pm, objs[j - 1], sl, (a0, a1),
                                                  None if others is None else others[x], clear):
                out[x][sl] |= pm
                bands[x][sl] |= pm
    return out, bands


def _is_band(cc, j, pm, obj, sl, span, others, clear):
    """Whether component ``j`` of the labelled slice ``cc`` (``pm``: its mask within ``sl``, its
    bounding box ``obj`` grown by one voxel) is a band across a body whose AP span (working-grid
    axis 0 of the slice) is ``span``: see :func:`_marrow_pockets`."""
    (a0, a1), p0, p1 = span, obj[0].start, obj[0].stop - 1
    inside = min(p1, a1) - max(p0, a0) + 1  # AP columns shared with the body's span
    if inside < 0.75 * (p1 - p0 + 1) or inside < (a1 - a0 + 1) / 3:
        return False
    pts = np.argwhere(pm)
    if len(pts) < 3:
        return False
    # thin and long, in whatever direction the endplate runs (voxels in-plane isotropic)
    ev = np.linalg.eigvalsh(np.cov(pts.T.astype(float)))
    if ev[0] > 0.25 * ev[-1]:
        return False
    if others is None:
        return True
    near = tuple(slice(max(q.start - clear, 0), min(q.stop + clear, n)) for q, n in zip(sl, cc.shape))
    return not (others[near] & ndimage.binary_dilation(cc[near] == j, iterations=clear)).any()


def _cut_at_dark_lines(m, W, sp, *, bottom=True, others=None, depth_frac=0.2, guard=0.35, beyond_mm=2.4,
                       smooth_mm=(1.2, 0.4), reach_mm=2.4, next_mm=20.0, min_run_mm=4.0):
    """Cut a body's marrow ``m`` at the dark endplate line that a marrow-like nucleus lies beyond.

    A degenerated nucleus loses water and, on T2-weighted images, its bright signal: at
    Pfirrmann grade III it is grey (Pfirrmann et al. 2001, doi:10.1097/00007632-200109010-00011),
    in the marrow's intensity class. Where the dark line of the endplate between it and the
    marrow is faint (a thin endplate in partial volume: the bony endplate is about 0.35 mm
    thick, Silva et al. 1994, Bone 15:409-414) or broken, the nucleus joins the body's marrow
    and the disc between two bodies is lost (sct_t2_lumbar L2-L3; the phantom's
    ``grey_nucleus_L2L3``). The line is still a valley along the column: a voxel of the image
    (smoothed ``smooth_mm`` along AP and SI: a line across the columns) that is the minimum of
    its SI neighbours and lies ``depth_frac`` x the marrow's median below the brightest voxel
    within ``reach_mm`` on both sides (a grey-scale black top-hat along one direction; Serra,
    Image Analysis and Mathematical Morphology, 1982).

    Per slice, the body's centre line is fitted to the middles of its columns' longest marrow
    runs, and in each column the first valley past ``guard`` x the median run length from it
    (towards either endplate; only upwards with ``bottom=False``) is a cut candidate when at least
    ``beyond_mm`` of marrow-class voxels lie beyond it and another body's marrow (``others``)
    follows within ``next_mm`` (a disc, then the next body, lies beyond an endplate; beyond a wall
    crossed obliquely there is none). Candidates are kept in runs of neighbouring columns whose
    valleys join (at most 2 voxels apart) over at least ``min_run_mm``: an endplate line runs
    across the body, a dark vein or noise does not. Pieces of marrow the cuts part from the body
    (beyond a line, in columns outside a kept run) go with them. Returns the cut marrow and the
    voxels cut off beyond the lines (not the lines themselves): those are disc, and the bodies'
    cortical shells (:func:`_cortex_shell_pv`) may not grow into them.
    """
    box = bounding_box(m)
    cap = np.zeros(m.shape, bool)
    if box is None:
        return m, cap
    pad = int(np.ceil(reach_mm / sp[2])) + 2
    sl = tuple(slice(max(a - (0 if k == 0 else pad), 0), min(b + (0 if k == 0 else pad), n))
               for k, (a, b, n) in enumerate(zip(box[0], box[1], m.shape)))
    mb, Wb = m[sl], W[sl]
    # the next body along each column, within next_mm beyond the line: the line parts this body
    # from a disc (not from what lies beyond a wall the column crosses obliquely)
    K = int(np.ceil(next_mm / sp[2]))
    sl_o = (sl[0], sl[1], slice(max(sl[2].start - K, 0), min(sl[2].stop + K, m.shape[2])))
    ob = others[sl_o] if others is not None else np.ones(m[sl_o].shape, bool)
    off = sl[2].start - sl_o[2].start
    S = ndimage.gaussian_filter(Wb, (0, smooth_mm[0] / sp[1], smooth_mm[1] / sp[2]))
    depth = depth_frac * float(np.median(Wb[mb]))
    k = max(1, int(round(reach_mm / sp[2])))
    n = S.shape[2]
    P = np.pad(S, ((0, 0), (0, 0), (k, k)), mode="edge")
    below = np.max(np.stack([P[:, :, k - j:k - j + n] for j in range(1, k + 1)]), 0)
    above = np.max(np.stack([P[:, :, k + j:k + j + n] for j in range(1, k + 1)]), 0)
    V = (S <= P[:, :, k - 1:k - 1 + n]) & (S <= P[:, :, k + 1:k + 1 + n]) & (np.minimum(below, above) - S > depth)
    out = mb.copy()
    beyond = beyond_mm / sp[2]
    for x in range(mb.shape[0]):
        ys = np.flatnonzero(mb[x].any(axis=1))
        if len(ys) < 5:
            continue
        mids, lens = np.empty(len(ys)), np.empty(len(ys))
        for j, y in enumerate(ys):
            zs = np.flatnonzero(mb[x, y])
            r = max(np.split(zs, np.flatnonzero(np.diff(zs) > 1) + 1), key=len)
            mids[j], lens[j] = 0.5 * (r[0] + r[-1]), len(r)
        ok = lens >= 0.5 * np.median(lens)
        if ok.sum() < 5:
            continue
        a, b = np.polyfit(ys[ok], mids[ok], 1)
        reach = 2 * guard * 0.5 * np.median(lens)
        ups, dns = {}, {}
        for y in ys:
            c = a * y + b
            col = mb[x, y]
            v = np.flatnonzero(V[x, y])
            up = v[v > c + reach]
            if up.size and col[up[0]:].sum() >= beyond and ob[x, y, up[0] + off:up[0] + off + K].any():
                ups[y] = up[0]
            if bottom:
                dn = v[v < c - reach]
                if dn.size and col[:dn[-1] + 1].sum() >= beyond and ob[x, y, max(dn[-1] + off - K, 0):dn[-1] + off].any():
                    dns[y] = dn[-1]
        # an endplate line runs across many columns: keep runs of neighbouring columns whose
        # lines join (at most 2 voxels apart), at least min_run_mm long
        for cuts, sign in ((ups, 1), (dns, -1)):
            for run in _line_runs(cuts, int(np.ceil(min_run_mm / sp[1]))):
                for y in run:
                    if sign > 0:
                        out[x, y, cuts[y]:] = False
                    else:
                        out[x, y, :cuts[y] + 1] = False
    if (out != mb).any():
        # pieces the cuts parted from the body (marrow-class voxels beyond a line, in columns
        # outside a kept run) are not its marrow: its shell grown around them walled in the line
        lab_, n_ = ndimage.label(out)
        if n_ > 1:
            sizes = np.bincount(lab_.ravel())[1:]
            out = lab_ == 1 + int(np.argmax(sizes))
    res = m.copy()
    res[sl] = out
    cap[sl] = mb & ~out & ~V
    return res, cap


def _line_runs(cuts, min_len):
    """Runs of consecutive keys of ``cuts`` (column -> row) whose rows differ by at most 2 between
    neighbours, at least ``min_len`` long."""
    runs, cur = [], []
    for y in sorted(cuts):
        if cur and (y != cur[-1] + 1 or abs(cuts[y] - cuts[cur[-1]]) > 2):
            runs.append(cur)
            cur = []
        cur.append(y)
    if cur:
        runs.append(cur)
    return [r for r in runs if len(r) >= min_len]


def _marrow_fraction(W, m, cand, dark_level):
    """Marrow volume fraction of the voxels of ``cand`` from their intensity (partial-volume model).

    A voxel at the marrow's edge holds a fraction ``f`` of marrow and ``1 - f`` of darker tissue
    (cortex, muscle, annulus), so its intensity is ``f * M + (1 - f) * D`` with ``M`` the body's
    marrow level (median over ``m``) and ``D`` the level of what surrounds the marrow
    (``dark_level``: its cortical shell): ``f = (I - D) / (M - D)``, clipped to [0, 1] (two-tissue mixture; see
    :func:`_cortex_shell_pv`). Voxels of ``m`` count as marrow (1), voxels outside ``cand`` as none (0).
    """
    f = np.zeros(W.shape, np.float32)
    mlev = float(np.median(W[m]))
    if mlev > dark_level:
        f[cand] = np.clip((W[cand] - dark_level) / (mlev - dark_level), 0.0, 1.0)
    f[m] = 1.0
    return f


def _scan_on_grid(scan, shape, affine):
    """The scan's intensities on a working grid (0 outside its field of view) and that field of view.

    The field of view ends at the outer voxels' faces, half a voxel beyond their centres: working
    points there take the edge values (interpolation alone stops at the centres, and the outer
    half slab of an oblique scan's edge slices was lost: discs cut in half there).
    """
    W = resample(np.asarray(scan.data, np.float32), scan.affine, shape, affine, order=1, mode="nearest")
    valid = resample(np.ones(scan.shape[:3], bool), scan.affine, shape, affine, order=0, mode="grid-constant")
    return np.where(valid, W, 0.0), valid


def _native_inplane(scan_affine, work_affine, tol=0.05):
    """True when the working grid's in-plane voxels (axes 1, 2) are the scan's own voxels.

    Each in-plane working axis must be a scan axis (same spacing, either direction) and the
    working voxel centres must fall on scan voxel centres along it: an intensity there is the
    scan's partial volume, not an interpolation between voxels.
    """
    M = np.linalg.inv(np.asarray(scan_affine, float)) @ np.asarray(work_affine, float)
    for j in (1, 2):
        col = M[:3, j]
        k = int(np.argmax(np.abs(col)))
        if abs(abs(col[k]) - 1.0) > 1e-3 or np.abs(np.delete(col, k)).max() > 1e-3:
            return False
        if abs(M[k, 3] - round(M[k, 3])) > tol:
            return False
    return True


def _cortex_level(m, W, allowed, sp, shell_mm, q=25.0):
    """Signal of the tissue right outside the marrow ``m``: its cortical shell's dark level.

    The shell is seen in-plane (where the voxels are thin) as the ring within ``shell_mm`` of the
    marrow, inside ``allowed``. Up to half of the ring's voxels mix the cortex with marrow or
    with the (often brighter) tissue beyond it, so the level is the median of the ring's darker
    half (its 25th percentile); 0 when the ring has 20 voxels or fewer.
    """
    box = bounding_box(m)
    if box is None:
        return 0.0
    # the ring lies within ``shell_mm`` of the marrow: its box grown by that much holds it
    grow = [0] + [int(np.ceil(shell_mm / s)) + 1 for s in sp[1:]]
    sl = tuple(slice(max(a - g, 0), min(b + g, n)) for a, b, g, n in zip(box[0], box[1], grow, m.shape))
    mb = m[sl]
    ring = (_per_slice(_distance_to, mb, sp[1:]) <= shell_mm) & ~mb & allowed[sl]
    return float(np.percentile(W[sl][ring], q)) if ring.sum() > 20 else 0.0


def _endplate_faces_pv(body, m, W, allowed, sp, cortex_mm, dark_level, corner_mm=1.5):
    """Place a body's endplate faces ``cortex_mm`` beyond its marrow's sub-voxel edge, column by column.

    The shell grown around the marrow mask (:func:`_cortex_shell_pv`) starts from the mask's voxel
    faces and reaches whole voxels: the marrow's true edge lies anywhere within the edge voxels,
    and a shell of ``cortex_mm`` plus half a voxel covers 2 voxels at 0.5, 0.7 and 0.8 mm pixels
    alike (1.0, 1.4 and 1.6 mm for a 1.2 mm cortex). The disc heights are read off these faces.
    Here, in each column along the working grid's SI axis through the middle of the body (its
    AP extent in that slice less ``corner_mm`` at each end, where the faces are endplates), the
    marrow's edge is placed inside the two voxels that straddle it from their marrow fractions
    (:func:`_marrow_fraction`'s two-tissue mixture of the marrow level next to the face and
    ``dark_level``): the edge lies ``f_out`` of a voxel beyond the last voxel that is mostly
    marrow, less ``1 - f_in`` inside that one. The
    endplate face is ``cortex_mm`` beyond that edge along the endplate's normal (its local
    inclination from a line through the edges of +-2 neighbouring columns).
    Returns the body's partial volume (float32): the part of each voxel's SI extent within the
    face on those columns (0.5 or more when its centre lies within the face), elsewhere 1 for
    the voxels of ``body`` and 0 for the rest.
    Columns whose marrow has no neighbour in an adjacent slice (a lateral slice cutting the
    body's wall), whose face is steeper than 45 degrees, or where the marrow does not span
    ``corner_mm`` to either side of the column ``corner_mm`` inside the face (a corner's
    rounding, or the wall of an inclined body) keep the shell as grown.

    Partial-volume edge location: Santago P, Gage HD. IEEE Trans Med Imaging 1993;12:566-574.
    """
    box = bounding_box(m)
    M = float(np.median(W[m])) if m.any() else 0.0
    frac = body.astype(np.float32)
    if box is None or M <= dark_level:
        return frac
    sy, sz = float(sp[1]), float(sp[2])
    nx, nz = m.shape[0], m.shape[2]
    cut = int(np.ceil(corner_mm / sy))
    for x in range(box[0][0], box[1][0]):
        mx = m[x]
        cols = np.flatnonzero(mx.any(axis=1))
        if len(cols) < 2 * cut + 3:
            continue
        cols = cols[(cols >= cols[0] + cut) & (cols <= cols[-1] - cut)]
        # lateral-interior columns: marrow in the same column of each adjacent slice
        inner = np.ones(len(cols), bool)
        for xn in (x - 1, x + 1):
            if 0 <= xn < nx:
                inner &= m[xn][cols].any(axis=1)
        for step in (-1, 1):  # the face toward lower, then higher SI index
            za = np.array([np.flatnonzero(mx[y])[0 if step < 0 else -1] for y in cols])
            # the marrow's own level next to this face: the median of the 3 marrow voxels inside
            # the mask's end over the face's columns in this slice. A Modic band along the
            # endplate is brighter (or darker) than the body's median: read against that, its
            # edge voxels put the face up to a voxel into the disc (heights -0.9 mm at the Modic
            # level). Not per column: a bright focus 1.3 mm inside the edge (fatty marrow) then
            # set the level of the columns over it (their heights +0.3-0.4 mm); the median over
            # the face follows a band covering most of the endplate, not a focus
            depth = np.clip(za[None, :] - step * np.arange(1, 4)[:, None], 0, nz - 1)
            inside = W[x, cols[None, :], depth][mx[cols[None, :], depth]]
            M_face = float(np.median(inside)) if inside.size else M
            Mf = M_face if M_face > dark_level else M
            # where noise cut the marrow mask short, the marrow continues beyond it: its edge
            # lies past the last voxel that is mostly marrow (up to 3 voxels beyond the mask;
            # at SNR 15 the mask stopped 2-3 voxels short of the marrow's edge in places, and
            # the face with it: heights up to 0.64 mm too large)
            zm = za.copy()
            active = np.ones(len(cols), bool)
            for _ in range(3):
                zn = zm + step
                active &= (zn >= 0) & (zn < nz)
                active[active] &= allowed[x, cols[active], zn[active]] & (
                    W[x, cols[active], zn[active]] >= 0.5 * (Mf + dark_level))
                if not active.any():
                    break
                zm = np.where(active, zn, zm)
            zo = zm + step
            ok = inner & (zo >= 0) & (zo < nz)
            ok[ok] &= allowed[x, cols[ok], zo[ok]]
            if ok.sum() < 3:
                continue
            # unclipped: a linear estimate, unbiased under noise, averaged by the line fit below
            # (clipped to [0, 1], pure marrow read low and pure cortex high: heights at SNR 15 up to 0.55 mm off)
            f_in = (W[x, cols, zm] - dark_level) / (Mf - dark_level)
            f_out = np.zeros(len(cols))
            f_out[ok] = (W[x, cols[ok], zo[ok]] - dark_level) / (Mf - dark_level)
            edge = zm + step * (0.5 + f_out - (1.0 - f_in))  # continuous SI index of the marrow edge
            # an endplate continues ``cut`` columns to either side: ``cut`` rows inside the face, the
            # marrow spans them (else the face is a corner's rounding, or a wall of an inclined body)
            zi = np.clip(za - step * cut, 0, nz - 1)
            span = np.array([m[x, max(y - cut, 0):y + cut + 1, z].all() for y, z in zip(cols, zi)])
            ok &= span & (zi == za - step * cut)
            # least-squares line through the edges of the ok columns within +-2 columns of each
            # (window sums over the column numbers)
            pos = cols - cols[0]
            w = np.zeros(pos[-1] + 1)
            w[pos[ok]] = 1.0
            cx = np.zeros_like(w)
            cx[pos] = cols * sy
            cy = np.zeros_like(w)
            cy[pos] = edge * sz
            win = np.ones(5)
            n_, sx_, sy_ = (np.convolve(a, win, "same")[pos] for a in (w, w * cx, w * cy))
            sxx, sxy = (np.convolve(a, win, "same")[pos] for a in (w * cx * cx, w * cx * cy))
            den = n_ * sxx - sx_ * sx_
            for k in np.flatnonzero(ok):
                if n_[k] < 3 or den[k] <= 1e-12:
                    continue
                slope = (n_[k] * sxy[k] - sx_[k] * sy_[k]) / den[k]
                icpt = (sy_[k] - slope * sx_[k]) / n_[k]
                if abs(slope) > 1.0:  # steeper than 45 degrees: the SI mixture model does not hold
                    continue
                e = (slope * cols[k] * sy + icpt) / sz  # the edge from the line: one voxel's noise averaged
                reach = cortex_mm * np.sqrt(1.0 + slope ** 2) / sz  # the face's distance along SI, voxels
                y = cols[k]
                for j in range(1, int(np.ceil(reach)) + 3 + abs(int(zm[k] - za[k]))):
                    z = za[k] + step * j
                    if not 0 <= z < nz or m[x, y, z]:
                        break
                    # the part of the voxel (SI extent z -+ 0.5) on the body's side of the face
                    f = float(np.clip(reach - step * (z - e) + 0.5, 0.0, 1.0)) if allowed[x, y, z] else 0.0
                    frac[x, y, z] = f
    return frac


def _faces_on_scan_grid(scan, hi, shape, waff, marrows, grown, allowed, max_inplane, *, coarsest=1.25):
    """The bodies' partial volume (:func:`_endplate_faces_pv`) on the scan's own in-plane voxels,
    for a scan whose pixels are coarser than the working grid's (0.8-1.25 mm; None otherwise).

    The working grid (at most ``max_inplane``) interpolates such a scan, and an interpolated
    voxel's intensity is not a partial volume. The faces are placed instead on a second working
    grid of the scan's own in-plane spacing, when its voxels are the scan's (:func:`_native_inplane`):
    the scan resampled there (at its own voxel centres) and each body's marrow and grown mask
    carried over from the working grid (nearest voxel). Returns the fraction on the scan's grid.
    """
    sp_scan = np.asarray(scan.spacing, float)
    ax_x = scan.axis_closest_to("x")
    s_scan = float(min(sp_scan[[a for a in range(3) if a != ax_x]]))
    if not max_inplane < s_scan <= coarsest:
        return None
    shape_n, waff_n = _working_grid(scan, s_scan)
    if not _native_inplane(scan.affine, waff_n):
        return None
    W, valid = _scan_on_grid(scan, shape_n, waff_n)
    W = W / hi
    sp_n = np.linalg.norm(waff_n[:3, :3], axis=0)

    def carry(a):
        return resample(a, waff, shape_n, waff_n, order=0, mode="grid-constant")

    # every body's marrow and grown mask as two label maps, carried over once (a voxel two grown
    # shells share goes to the later body, as in the label map; its fraction is 1 either way)
    mlab, glab = np.zeros(shape, np.int16), np.zeros(shape, np.int16)
    for i, (m, g) in enumerate(zip(marrows, grown), start=1):
        glab[g] = i
        mlab[m] = i
    mlab, glab = carry(mlab), carry(glab)
    allowed_n = carry(allowed).astype(bool) & valid
    shell = 1.2 + 0.5 * sp_n[1]
    pv = np.zeros(shape_n, np.float32)
    for i in range(1, len(marrows) + 1):
        m_n, g_n = mlab == i, (glab == i) | (mlab == i)
        if not m_n.any():
            continue
        np.maximum(pv, _endplate_faces_pv(g_n, m_n, W, allowed_n, sp_n, 1.2,
                                          _cortex_level(m_n, W, allowed_n, sp_n, shell)), out=pv)
    return resample(pv, waff_n, scan.shape, scan.affine, order=0, mode="grid-constant").astype(np.float32)


def _cortex_shell_pv(m, W, allowed, sp, shell_mm):
    """A body's marrow mask ``m`` grown by its cortical shell, with sub-voxel partial volume across slices.

    A voxel's label is the structure that fills the larger part of it (how a reader draws
    it, and how the phantom's truth is made). Across thick slices (working-grid axis 0, left-right
    at the scan's slice spacing) the lateral wall of a body lies inside a slice whose intensity
    mixes marrow, dark cortex and what surrounds the body: the intensity class misses it and an
    in-plane shell cannot reach it. Here each voxel next to ``m`` across slices gets its marrow
    fraction ``f`` (:func:`_marrow_fraction`, with the body's own cortical ring as the dark level);
    through a box-shaped slice profile a wall inside that slice leaves its marrow on the side
    facing ``m``, over ``f`` of the slice thickness. That sub-slice marrow is drawn on a grid of
    about the in-plane spacing across slices, the cortex (``shell_mm``: shell thickness plus the
    half voxel that thresholding loses) is grown around it in 3-D world millimetres, and a voxel
    joins the body when more than half of its slice thickness lies within it, inside ``allowed``.
    In-plane (thin voxels) the result is the plain shell grown around ``m``.

    Partial-volume fractions from a two-tissue mixture: Santago P, Gage HD. "Quantification of
    MR brain images by mixture density and partial volume modeling." IEEE Trans Med Imaging
    1993;12:566-574. Majority-of-volume labelling of a sub-voxel shape as
    in shape-based interpolation: Raya SP, Udupa JK. "Shape-based interpolation of
    multidimensional objects." IEEE Trans Med Imaging 1990;9:32-42, doi:10.1109/42.52980.
    """
    box = bounding_box(m)
    if box is None:
        return m
    sx = float(sp[0])
    u = max(1, int(np.ceil(sx / min(sp[1:]) - 1e-6))) if m.shape[0] > 1 else 1
    grow = [1] + [int(np.ceil(shell_mm / s)) + 2 for s in sp[1:]]
    sl = tuple(slice(max(a - g, 0), min(b + g, n)) for a, b, g, n in zip(box[0], box[1], grow, m.shape))
    mb, Wb, ab = m[sl], W[sl], allowed[sl]
    # candidates: the voxels next to the marrow across slices, where the neighbouring slice's
    # marrow is interior in-plane (eroded by a pixel). In-plane, where voxels are thin, the
    # intensity-class edge already is the marrow's edge; a voxel beside an in-plane wall
    # (posterior wall, endplate) mixes tissue across that wall, not across the slice, and
    # counting it moved the posterior wall of an oblique scan (bulge error 2.0 mm, phantom obl8).
    inner = _per_slice(ndimage.binary_erosion, mb)
    lower = np.zeros_like(mb)  # interior marrow in the slice below (i - 1)
    lower[1:] = inner[:-1]
    upper = np.zeros_like(mb)  # ... and above (i + 1)
    upper[:-1] = inner[1:]
    cand = (lower | upper) & ~mb & ab
    dark_level = _cortex_level(mb, Wb, ab, sp, shell_mm, q=50.0)
    f = _marrow_fraction(Wb, mb, cand, dark_level)
    # sub-slice marrow: a voxel next to the marrow across slices holding a fraction f of marrow
    # has it on the side facing that marrow, over f of its thickness (a wall inside a slice seen
    # through the box-shaped slice profile); fine sample j of slice i sits at i + t_j
    t = (np.arange(u) + 0.5) / u - 0.5
    marrow = np.empty((mb.shape[0] * u,) + mb.shape[1:], bool)
    for j, tj in enumerate(t):
        marrow[j::u] = mb | (cand & ((lower & (f > 0.5 + tj)) | (upper & (f > 0.5 - tj))))
    d = ndimage.distance_transform_edt(~marrow, sampling=(sx / u,) + tuple(sp[1:]))
    inside = (d <= shell_mm).reshape((f.shape[0], u) + f.shape[1:]).mean(axis=1) > 0.5
    out = m.copy()
    out[sl] |= inside & ab
    return out


def _canal_candidate(comp, n, Wf, sp, shape, centre_ap, t_low, t_high):
    """Best canal component of a labelled bright mask: (label, score) or (None, -1).

    Score: SI extent x fraction of rows with marrow-class signal 5-35 mm in front of the
    component (the vertebral column lies right in front of the dural sac), minus a small
    penalty for distance from the image's AP centre.
    """
    if n == 0:
        return None, -1.0
    objs = ndimage.find_objects(comp)
    best, best_score = None, -1.0
    for i, sl in enumerate(objs, start=1):
        m = comp[sl] == i
        vox = m.sum()
        si_ext = (sl[2].stop - sl[2].start) * sp[2]
        lr_ext = (sl[0].stop - sl[0].start) * sp[0]
        ap_thick = vox * sp[0] * sp[1] * sp[2] / max(si_ext * max(lr_ext, sp[0]) * 1.0, 1e-6)
        if si_ext < 50 or not (3 <= ap_thick <= 30) or (shape[0] > 1 and lr_ext > 45):
            continue
        # the canal has the vertebral column (intermediate marrow signal) right in front of it
        sub = comp[sl] == i
        xm = int(np.argmax(sub.sum(axis=(1, 2))))
        rows = np.flatnonzero(sub[xm].any(axis=0))
        ant = np.array([np.flatnonzero(sub[xm][:, r]).max() for r in rows]) + sl[1].start
        xs = sl[0].start + xm
        marrow = 0
        for r, a in zip(rows + sl[2].start, ant):
            seg_ = Wf[xs, a + int(5 / sp[1]):a + int(35 / sp[1]), r]
            if seg_.size:
                marrow += np.mean((seg_ > t_low) & (seg_ < t_high))
        frac = marrow / max(len(rows), 1)
        ap_mid = 0.5 * (sl[1].start + sl[1].stop)
        score = si_ext * frac - 0.02 * abs(ap_mid - centre_ap) * sp[1]
        if score > best_score:
            best, best_score = i, score
    return best, best_score


def _body_check(m, sl, sp, a_c, min_vol):
    """Why a component cannot be a vertebral body ("" if it can): size, extent, distance from the canal."""
    vol = m.sum() * np.prod(sp)
    si_ext = (sl[2].stop - sl[2].start) * sp[2]
    ap_ext = (sl[1].stop - sl[1].start) * sp[1]
    if vol < min_vol or si_ext < 10 or ap_ext < 12:
        return "small"
    # a vertebral body lies right in front of the canal: its posterior wall is within a few
    # mm of the canal's anterior border (bowel, psoas and vessels in front do not touch it)
    idx = np.argwhere(m) + [s_.start for s_ in sl]
    if np.min((idx[:, 1] - a_c[idx[:, 2]]) * sp[1]) > 8.0:
        return "away"
    if si_ext > 60 or ap_ext > 60:
        return "large"
    return ""


def _body_components(comp, n, sp, a_c, min_vol, *, radii_mm=(3.0, 4.0, 5.0)):
    """Vertebral-body components: [(z centre, label, volume mm3, opening radius mm)], and the relabelled map.

    A body whose marrow touches intermediate-signal tissue in front of it (psoas, vessels, a
    bright anterior osteophyte or disc) through a bridge wider than the 2 mm opening comes out
    too big to be a body (over 60 mm in AP or SI), and used to be rejected, which
    lost a level and shifted the numbering. Such components are opened again with larger
    radii (``radii_mm``); the pieces that pass as bodies and look like the bodies found directly
    (at least two of those; volume 0.5-2 x their median, AP extent at most 1.3 x theirs)
    replace the component, and their corners are regrown by that radius afterwards. Without
    such a reference nothing is rescued: pieces of muscle cut apart by a large opening would
    pass as bodies too. A large component that no opening splits and that lies right below the
    lowest body is the sacrum (S1 with the top of the sacrum, inclined): it is taken whole when
    it measures at most 80 mm in AP and SI.
    """
    bodies, aps, large = [], [], []
    s_ip = sp[1]
    for i, sl in enumerate(ndimage.find_objects(comp), start=1):
        if sl is None:
            continue
        m = comp[sl] == i
        why = _body_check(m, sl, sp, a_c, min_vol)
        if why == "":
            bodies.append((ndimage.center_of_mass(comp == i)[2], i, m.sum() * np.prod(sp), 2.0))
            aps.append((sl[1].stop - sl[1].start) * sp[1])
        elif why == "large":
            large.append((i, sl, m))
    left = []  # large components that no opening split into bodies
    if len(bodies) >= 2 and large:
        vol_typ = float(np.median([b[2] for b in bodies]))
        ap_typ = float(np.median(aps))
        for i, sl, m in large:
            for r in radii_mm:
                sc, _ = ndimage.label(_per_slice(lambda s: ndimage.binary_opening(s, _ball2(r / s_ip)), m))
                pieces = []
                for j, psl in enumerate(ndimage.find_objects(sc), start=1):
                    if psl is None:
                        continue
                    pm = sc[psl] == j
                    gsl = tuple(slice(a.start + b.start, a.start + b.stop) for a, b in zip(sl, psl))
                    vol = pm.sum() * np.prod(sp)
                    ap_ext = (psl[1].stop - psl[1].start) * sp[1]
                    if (_body_check(pm, gsl, sp, a_c, min_vol) == "" and 0.5 * vol_typ <= vol <= 2.0 * vol_typ
                            and ap_ext <= 1.3 * ap_typ):
                        pieces.append((gsl, pm, vol))
                if pieces:
                    comp[sl][m] = 0
                    for gsl, pm, vol in pieces:
                        n += 1
                        comp[gsl][pm] = n
                        bodies.append((ndimage.center_of_mass(comp == n)[2], n, vol, r))
                    break
            else:
                left.append((i, sl))
    # the sacrum: S1 with the top of the sacrum below it, inclined 30-40 degrees, can measure more
    # than 60 mm front to back (57-62 mm on the phantom, by obliquity): a large component right
    # below the lowest body (its centre 15 mm to 1.6 pitches lower, its top below that body's
    # centre) is taken whole when it is at most 80 mm in both directions
    if len(bodies) >= 3 and left:
        zs = sorted(b[0] for b in bodies)
        pitch = float(np.median(np.diff(zs))) * sp[2]
        for i, sl in left:
            zc = ndimage.center_of_mass(comp[sl] == i)[2] + sl[2].start
            drop = (zs[0] - zc) * sp[2]
            if (15.0 <= drop <= 1.6 * pitch and sl[2].stop - 1 < zs[0] and (sl[2].stop - sl[2].start) * sp[2] <= 80
                    and (sl[1].stop - sl[1].start) * sp[1] <= 80):
                bodies.append((zc, i, (comp[sl] == i).sum() * np.prod(sp), 2.0))
                break
    return comp, n, bodies


def _column_from_canal(Wf, fg, vals, sp, shape, t_low, t_high):
    """The canal (bright, long in SI, thin in AP, narrow in LR) and the column it defines.

    The CSF is often connected to other bright tissue (epidural and subcutaneous fat, bright
    nuclei) at the global class threshold, so candidates are sought at a few increasing thresholds
    and the best-scoring one is kept (grey CSF, as on some 2-D T2 slices, needs a threshold below
    the bright class too). Returns ``(canal mask, column)`` with ``column = (a_c, x_c, z_lo, z_hi, z_thr)``:
    the canal's anterior border and left-right centre per SI row (voxel indices, smoothed by
    low-order polynomials along SI), the SI row range of the column and the lowest row of the
    region its marrow threshold is estimated over; ``(None, None)`` when no
    component qualifies.
    """
    s_ip = sp[1]
    centre_ap = shape[1] / 2
    best, best_score, comp = None, -1.0, None
    t_mid = 0.5 * (t_low + t_high)
    thresholds = [t_mid, t_high] + [float(np.percentile(vals, q)) for q in (90.0, 95.0, 97.5)]
    for thr in sorted({t for t in thresholds if t >= t_mid}):
        bright = fg & (Wf > thr)
        bright = _per_slice(lambda s: ndimage.binary_opening(s, _ball2(0.6 / s_ip)), bright)
        comp_t, n = ndimage.label(bright)
        i, score = _canal_candidate(comp_t, n, Wf, sp, shape, centre_ap, t_low, t_high)
        if i is not None and score > best_score:
            best, best_score, comp = i, score, comp_t
    if best is None:
        return None, None
    canal = comp == best
    # anterior border and left-right centre of the canal per SI row, smoothed
    zs, ant, lrc = [], [], []
    for k in range(shape[2]):
        sl = canal[:, :, k]
        if sl.any():
            xs, ys = np.nonzero(sl)
            zs.append(k)
            ant.append(ys.max())
            lrc.append(xs.mean())
    zs, ant, lrc = map(np.asarray, (zs, ant, lrc))
    deg = min(4, max(1, len(zs) // 40))
    kk = np.arange(shape[2])
    a_c = np.polyval(np.polyfit(zs, ant, deg), kk)
    x_c = np.polyval(np.polyfit(zs, lrc, min(2, deg)), kk)
    # the column reaches 30 mm (an S1 body's height) below the sac's lowest row: the dural sac
    # ends at S1-S2, but may end as high as S1's top (15 mm cut S1 short: phantom S1 Dice 0.87-0.91);
    # the marrow threshold is still estimated down to 15 mm below it (5th item), not over the sacrum
    return canal, (a_c, x_c, zs.min() - 30 / sp[2], zs.max() + 40 / sp[2], zs.min() - 15 / sp[2])


def _body_blobs(s, sp2, radii_mm=(2.0, 3.0, 4.0, 5.0, 6.0)):
    """Body-like blobs of one sagittal slice's intermediate-class mask ``s`` (AP x SI).

    The mask is opened with disks of a few radii (a larger opening cuts a body off the pedicles
    or the psoas that a smaller one leaves attached) and holes are filled; the components that are
    body-sized (150-2500 mm2, 12-60 mm in AP, 12-50 mm in SI) and compact (at least 60 % of their
    bounding box) are returned, from every radius, as dicts with their mask, area (mm2) and
    extents and centre (mm).
    """
    out = []
    for r in radii_mm:
        cc, _ = ndimage.label(ndimage.binary_fill_holes(ndimage.binary_opening(s, _ball2(r / sp2[0]))))
        for i, sl in enumerate(ndimage.find_objects(cc), start=1):
            if sl is None:
                continue
            m = cc[sl] == i
            area = m.sum() * sp2[0] * sp2[1]
            ap = (sl[0].stop - sl[0].start) * sp2[0]
            si = (sl[1].stop - sl[1].start) * sp2[1]
            if not (150.0 <= area <= 2500.0 and 12.0 <= ap <= 60.0 and 12.0 <= si <= 50.0) or area < 0.6 * ap * si:
                continue
            out.append(_blob(m, sl, sp2))
    return out


def _blob(m, sl, sp2):
    """Blob dict of a sagittal (AP x SI) section ``m`` cut out at index slices ``sl``, ``sp2`` its spacing (mm).

    Keys: ``sl``, ``mask``, ``area`` (mm2), ``ap`` and ``si`` (extents, mm) and ``c`` (centre, mm).
    """
    yc, zc = ndimage.center_of_mass(m)
    return dict(sl=sl, mask=m, area=m.sum() * sp2[0] * sp2[1],
                ap=(sl[0].start * sp2[0], sl[0].stop * sp2[0]), si=(sl[1].start * sp2[1], sl[1].stop * sp2[1]),
                c=((yc + sl[0].start) * sp2[0], (zc + sl[1].start) * sp2[1]))


def _stacked(a, b):
    """Whether blob ``b`` can be the vertebral body right below blob ``a`` (one disc between them).

    Centres 15-55 mm apart in SI, AP offset at most half of that plus 5 mm (lordosis), areas within
    a factor 2, the gap between their boxes in SI at most 15 mm (a disc) and an overlap of at most
    a quarter of the shorter one's height (at least 2 mm: the boxes of two bodies around an
    inclined disc overlap), and AP extents overlapping by at least half of the narrower one.
    """
    dz = a["c"][1] - b["c"][1]
    if not 15.0 <= dz <= 55.0 or abs(a["c"][0] - b["c"][0]) > 0.5 * dz + 5.0:
        return False
    # boxes of bodies around an inclined disc overlap in SI: up to a quarter of the shorter height
    overlap_ok = max(2.0, 0.25 * min(a["si"][1] - a["si"][0], b["si"][1] - b["si"][0]))
    if not 0.5 <= a["area"] / b["area"] <= 2.0 or not -overlap_ok <= a["si"][0] - b["si"][1] <= 15.0:
        return False
    overlap = min(a["ap"][1], b["ap"][1]) - max(a["ap"][0], b["ap"][0])
    return overlap >= 0.5 * min(a["ap"][1] - a["ap"][0], b["ap"][1] - b["ap"][0])


def _fill(b):
    """Share of a blob's bounding box (AP x SI) that it fills."""
    return b["area"] / max((b["ap"][1] - b["ap"][0]) * (b["si"][1] - b["si"][0]), 1e-6)


def _longest_chain(blobs):
    """Longest top-to-bottom sequence of blobs each :func:`_stacked` on the previous one.

    Dynamic programming over the blobs sorted by height (longest path in a directed acyclic
    graph; Cormen et al., Introduction to Algorithms, 3rd ed., MIT Press 2009, ch. 24.2); ties go
    to the more compact blobs (a body cut off its pedicles and the tissue in front rather than the
    same body with them). Returns the blobs of the chain, top first.
    """
    c = sorted(blobs, key=lambda d: -d["c"][1])
    best = [(1, _fill(b), -1) for b in c]
    for j in range(len(c)):
        for i in range(j):
            if best[i][0] + 1 >= best[j][0] and _stacked(c[i], c[j]):
                cand = (best[i][0] + 1, best[i][1] + _fill(c[j]), i)
                if cand[:2] > best[j][:2]:
                    best[j] = cand
    if not c:
        return []
    j = max(range(len(c)), key=lambda k: best[k][:2])
    chain = []
    while j >= 0:
        chain.append(c[j])
        j = best[j][2]
    return chain[::-1]


def _column_from_chain(Wf, fg, sp, t_low, t_high, x_centre, *, min_bodies=3, halfwidth_mm=10.0, step_mm=2.5):
    """The vertebral column as the longest chain of stacked body-like blobs, for scans whose CSF is not bright.

    On some T2-weighted slices the CSF is grey (partial volume, flow, a T1-like contrast), so no
    bright canal exists; the column is then recognised by its own repetitive pattern: a vertical
    chain of compact intermediate-signal blocks of similar size separated by thin dark bands
    (:func:`_body_blobs`, :func:`_longest_chain`), sought in every sagittal slice of the working
    grid within ``halfwidth_mm`` of ``x_centre`` (every ``step_mm``: the mid-sagittal slices show
    the bodies at full size; searched at about 1 mm in-plane, every other voxel of a finer grid,
    which is plenty for 25-50 mm blocks). The line along the posterior walls of the chain's blocks
    (:func:`_column_along_walls`) stands in for the canal's anterior border.

    Returns
    -------
    tuple or None
        ``(a_c, x_c, z_lo, z_hi, z_thr)`` as from :func:`_column_from_canal`, or None when no slice holds
        a chain of ``min_bodies`` blocks.
    """
    k = max(1, int(round(1.0 / sp[1])))  # in-plane stride to about 1 mm
    sp2 = (sp[1] * k, sp[2] * k)
    best, best_x = [], 0
    half, step = int(halfwidth_mm / sp[0]), max(1, int(round(step_mm / sp[0])))
    xs = np.arange(x_centre - half, x_centre + half + 1, step)
    for x in xs[(xs >= 0) & (xs < Wf.shape[0])]:
        w = Wf[x, ::k, ::k]
        mid = fg[x, ::k, ::k] & (w > t_low) & (w < t_high)
        if mid.sum() * sp2[0] * sp2[1] < 3 * 150.0:
            continue
        chain = _longest_chain(_body_blobs(mid, sp2))
        if (len(chain), sum(b["area"] for b in chain)) > (len(best), sum(b["area"] for b in best)):
            best, best_x = chain, x
    if len(best) < min_bodies:
        return None
    return _column_along_walls(best, best_x, Wf.shape[2], sp, stride=k)


def _column_along_walls(chain, x, nz, sp, *, stride=1):
    """Column line (``(a_c, x_c, z_lo, z_hi, z_thr)`` as from :func:`_column_from_canal`; ``z_thr = z_lo``) along the posterior walls of stacked bodies.

    Each body's posterior wall is the median, over its rows, of its most posterior voxel (robust
    to the rounded corners of an opening); the line runs through those walls at the bodies' SI
    centres, linearly in between, and straight in SI beyond the chain (a global polynomial, or the
    end pairs' slope, swings far in front of the sacrum, which turns backwards), 2 mm behind the
    walls. ``chain``: blobs (dicts with ``mask``
    and ``sl``, sagittal (AP x SI) sections, indices of the working grid subsampled by ``stride``)
    top first; ``x``: their left-right index.
    """
    zc, wall = [], []
    for b in chain:
        m, sl = b["mask"], b["sl"]
        rows = [k for k in range(m.shape[1]) if m[:, k].any()]
        wall.append(stride * (sl[0].start + float(np.median([np.flatnonzero(m[:, k]).min() for k in rows]))))
        zc.append(stride * (sl[1].start + float(np.mean(rows))))
    order = np.argsort(zc)
    zc, wall = np.asarray(zc)[order], np.asarray(wall)[order]
    kk = np.arange(nz, dtype=float)
    a_c = np.interp(kk, zc, wall) - 2.0 / sp[1]
    half = 0.5 * stride * max(b["sl"][1].stop - b["sl"][1].start for b in chain)
    z_lo = zc[0] - half - 40.0 / sp[2]
    return a_c, np.full(nz, float(x)), z_lo, zc[-1] + half + 40.0 / sp[2], z_lo


def _section(m, sp):
    """Largest sagittal section of a 3-D mask as a blob dict (as from :func:`_body_blobs`, plus ``x``, its slice)."""
    x = int(np.argmax(m.sum(axis=(1, 2))))
    sl = ndimage.find_objects(m[x].astype(np.int8))[0]
    return dict(_blob(m[x][sl], sl, sp[1:]), x=x)


def _stacked_bodies(comp, bodies, sp):
    """The bodies that stack into one column: :func:`_longest_chain` of their largest sagittal sections.

    ``bodies`` as from :func:`_find_bodies`; returns the chain's sections (top first; dicts as
    from :func:`_section` plus ``body``, the entry of ``bodies``).
    """
    return _longest_chain([dict(_section(comp == b[1], sp), body=b) for b in bodies])


def _extend_chain(Wf, found, stacked, sp, t_high, min_vol):
    """One more body at each end of a chain, found with a threshold set by the end body's own contrast.

    The receive coil's sensitivity falls off towards the ends of the field of view, so the sacrum
    (or the highest body) can be darker than the column's marrow threshold and is lost to the dark
    class. Beyond each end body, within 1.5 times the chain's pitch, the intermediate class is
    re-thresholded halfway between that body's marrow (median) and the disc next to it (median
    signal of the darkest row between it and its neighbour, over its AP span) -- a local two-class threshold
    (Gonzalez & Woods, Digital Image Processing, 4th ed., 2018, ch. 10.3) -- opened, hole-filled,
    and the largest component that passes as a body (:func:`_body_check`) and stacks on the end
    body (:func:`_stacked`) is added. Returns ``found`` and ``stacked`` updated.
    """
    comp, bodies, mid_raw, roi, rel_ap, t_low = found
    if len(stacked) < 3:
        return found, stacked
    s_ip = sp[1]
    pitch = float(np.median(-np.diff([b["c"][1] for b in stacked])))
    a_c = -rel_ap[0, 0, :] / s_ip  # the column's posterior line (rel_ap = (y - a_c) x AP spacing)
    nz = Wf.shape[2]
    for end, nb, below in ((stacked[-1], stacked[-2], True), (stacked[0], stacked[1], False)):
        x, sl = end["x"], end["sl"]
        marrow = float(np.median(Wf[comp == end["body"][1]]))
        y0, y1 = sl[0].start, sl[0].stop
        if below:
            g0, g1 = int(round(end["si"][1] / sp[2])), int(round(nb["si"][0] / sp[2]))
            w0, w1 = max(int(round((end["si"][0] - 1.5 * pitch) / sp[2])), 0), sl[1].start
        else:
            g0, g1 = int(round(nb["si"][1] / sp[2])), int(round(end["si"][0] / sp[2]))
            w0, w1 = sl[1].stop, min(int(round((end["si"][1] + 1.5 * pitch) / sp[2])), nz)
        gap = Wf[x, y0:y1, g0:g1]
        if gap.size == 0 or w1 - w0 < 3:
            continue
        t = 0.5 * (marrow + float(np.min(np.median(gap, axis=0))))  # the disc's darkest row
        win = np.zeros(Wf.shape, bool)
        win[:, :, w0:w1] = True
        # the sacrum tilts backwards (lumbosacral angle): below the chain, up to 8 mm behind its line
        cand_raw = win & roi & (rel_ap > (-8.0 if below else 1.0)) & (Wf > t) & (Wf < t_high) & ~np.isin(comp, [b[1] for b in bodies])
        cand = _per_slice(lambda s: ndimage.binary_fill_holes(ndimage.binary_opening(s, _ball2(2.0 / s_ip))), cand_raw)
        cc, nc = ndimage.label(cand)
        best = None
        for j, csl in enumerate(ndimage.find_objects(cc), start=1):
            if csl is None:
                continue
            m = cc == j
            if _body_check(m[csl], csl, sp, a_c, min_vol) != "":
                continue
            sec = _section(m, sp)
            ok = _stacked(end, sec) if below else _stacked(sec, end)
            if ok and (best is None or sec["area"] > best[1]["area"]):
                best = (m, sec)
        if best is None:
            continue
        n = int(comp.max()) + 1
        comp[best[0]] = n
        mid_raw = mid_raw | (cand_raw & ndimage.binary_dilation(best[0], iterations=3))
        body = (ndimage.center_of_mass(best[0])[2], n, 2.0)
        bodies = bodies + [body]
        sec = dict(best[1], body=body)
        stacked = stacked + [sec] if below else [sec] + stacked
    return (comp, bodies, mid_raw, roi, rel_ap, t_low), stacked


def _inferior_normal(sec, sp2, *, max_passes=10, tol_deg=0.2):
    """Unit normal (AP, SI; pointing inferiorly) of the lower endplate of a body's sagittal section.

    ``sec``: (AP x SI) mask, ``sp2``: its spacing (mm). The lowest point of the section along the
    current normal, per bin of the in-plane spacing across it, over the middle 60 % of its span
    (the outer bins hold the rounded corners and, when the body is tilted, its lower side walls),
    is fitted by a straight line, and the normal turned to be perpendicular to that line;
    starting from world SI, repeated until it turns by less than ``tol_deg`` (at most
    ``max_passes``). The first passes see the tilted body's side walls in the middle of the
    span: a rectangle tilted 30 degrees comes out 21 degrees after one pass; a phantom L5 tilted
    37 degrees (opened marrow, one 1 mm slice) 2, 8, 19 degrees after one to three passes and 37
    after five (three passes were used at first, and S1 was then missed there).
    """
    py, pz = np.nonzero(sec)
    p = np.stack([py * sp2[0], pz * sp2[1]], axis=1)
    n = np.array([0.0, -1.0])
    for _ in range(max_passes):
        u = np.array([-n[1], n[0]])
        s, h = p @ u, p @ n
        k = np.floor((s - s.min()) / sp2[0]).astype(int)
        low = np.full(k.max() + 1, -np.inf)
        np.maximum.at(low, k, h)
        bins = np.arange(len(low))
        sel = bins[np.isfinite(low) & (bins >= 0.2 * bins[-1]) & (bins <= 0.8 * bins[-1])]
        if len(sel) < 3:
            break
        b = np.polyfit(sel * sp2[0], low[sel], 1)[0]  # dh/ds: the lower face's tilt in this frame
        n = n - b * u
        n = n / np.linalg.norm(n)
        if abs(np.degrees(np.arctan(b))) < tol_deg:
            break
    return n


def _s1_below(Wf, valid, found, sp, t_high, min_vol, *, radii_mm=(2.0, 3.0, 4.0, 5.0)):
    """The first sacral body below the lowest body found, along that body's endplate normal.

    The lumbosacral junction turns backwards: with a steep sacrum, S1 lies one vertebral pitch
    below L5 along the normal of L5's inferior endplate, which points backwards as well as down,
    so S1's centre lies behind L5's (9-18 mm on the real vesal slices) and can leave the
    column's region and the stacking test of :func:`_stacked` (which works along world SI). On
    4 of 6 real mid-sagittal slices (vesal_lumbar_2d) S1 was missed that way and every level was
    named one too low. Here, in the lowest body's largest sagittal section, S1 is predicted at
    that body's centre plus the median pitch of the bodies along its inferior endplate normal
    (:func:`_inferior_normal`). The intermediate class is re-thresholded halfway between that
    body's marrow and the darkest part of the disc above it (median across the middle half of
    the body's width, along the line between the two centres; a local two-class threshold as in
    :func:`_extend_chain`), opened with disks of 2-5 mm (the smallest that works: larger ones cut
    the body off the sacral laminae and the pelvic soft tissue in front) and hole-filled. A
    component is S1 when its centre lies within a quarter pitch of the prediction along the
    normal and, along the endplate, at most a quarter pitch in front of it or 0.6 pitch behind it;
    its section measures 0.6-1.5 times the median body section (the S2 segment below a
    rudimentary S1-S2 disc is smaller, pelvic soft tissue larger) and fills at least 60 % of its
    box in the endplate's frame; and at least 2.5 mm of disc separate it from the body along the
    normal through the body's centre.

    Returns
    -------
    found, label
        ``found`` (as from :func:`_find_bodies`) with the body added (with its opening radius,
        for regrowth) and the region of interest grown over the search window, and the new
        body's component label; or ``found`` unchanged and None.
    """
    comp, bodies, mid_raw, roi, rel_ap, t_low = found
    if len(bodies) < 3:
        return found, None
    bl = sorted(bodies, key=lambda b: -b[0])
    above = bl[-2][1]
    sp2 = sp[1:]
    cents, areas = [], []
    for _, i, _ in bl:  # each body's largest sagittal section; the loop ends on the lowest body
        m = comp == i
        x0 = int(np.argmax(m.sum(axis=(1, 2))))
        cents.append(np.array(ndimage.center_of_mass(m[x0])) * sp2)
        areas.append(m[x0].sum())
    pitch = float(np.median(np.linalg.norm(np.diff(cents, axis=0), axis=1)))
    sec = m[x0]  # (m, x0: the lowest body's mask and its largest section)
    c_low = cents[-1]
    n = _inferior_normal(sec, sp2)
    pred = c_low + pitch * n
    u = np.array([-n[1], n[0]])  # along the endplate
    # local threshold: halfway between the body's marrow and the darkest row of the disc above it
    # (sampled across the middle half of the body's width, along the line between the two centres)
    d = cents[-2] - c_low
    steps = np.arange(0.0, np.linalg.norm(d), 0.5 * sp2[0])
    width = np.ptp(np.nonzero(sec)[0]) * sp2[0]
    offs = np.linspace(-0.25 * width, 0.25 * width, 9)
    axis = c_low[None, :] + steps[:, None] * (d / np.linalg.norm(d))[None, :]  # (steps, 2) mm
    pts = axis[:, None, :] + offs[None, :, None] * u
    prof = np.median(ndimage.map_coordinates(Wf[x0], (pts / sp2).reshape(-1, 2).T, order=1).reshape(pts.shape[:2]), axis=1)
    inside = ndimage.map_coordinates((sec | (comp[x0] == above)).astype(float), (axis / sp2).T, order=0) > 0
    if inside.all():
        return found, None
    t = 0.5 * (float(np.median(Wf[m])) + float(prof[~inside].min()))
    # search window: within 1.5 pitches of the body's centre, in the body's left-right range
    # (worked on in its bounding box)
    Y, Z = np.ogrid[:Wf.shape[1], :Wf.shape[2]]
    near = np.hypot(Y * sp2[0] - c_low[0], Z * sp2[1] - c_low[1]) <= 1.5 * pitch
    xs = np.flatnonzero(m.any(axis=(1, 2)))
    (y0, z0), (y1, z1) = bounding_box(near)
    box = (slice(xs.min(), xs.max() + 1), slice(y0, y1), slice(z0, z1))
    win = np.zeros(Wf.shape, bool)
    win[box] = near[box[1:]]
    isb = np.isin(comp[box], [b[1] for b in bodies])
    raw = win[box] & valid[box] & (Wf[box] > t) & (Wf[box] < t_high) & ~isb
    area_ref = float(np.median(areas))  # (a single body's section can be cut short by a fatty spot)
    sec_box = sec[box[1:]]
    c_box = np.array([y0, z0]) * sp2  # the box's origin (mm)

    def opened(s_, r):
        return ndimage.binary_fill_holes(ndimage.binary_opening(s_, _ball2(r / sp2[0])))

    for r in radii_mm:
        # candidates in the body's largest section; the other slices only for the one accepted
        cc, _ = ndimage.label(opened(raw[x0 - xs.min()], r))
        for j, sl in enumerate(ndimage.find_objects(cc), start=1):
            if sl is None:
                continue
            b = cc == j
            c = np.array(ndimage.center_of_mass(b)) * sp2 + c_box
            # along the normal within a quarter pitch of the prediction; along the endplate up to
            # a quarter pitch in front of it, or 0.6 pitch behind it (the L5-S1 disc is the most
            # wedged, and L5 slips forward on S1 in a spondylolisthesis: S1 lies further back)
            dn, du = (c - pred) @ n, (c - pred) @ u
            if abs(dn) > 0.25 * pitch or not -0.6 * pitch <= du <= 0.25 * pitch:
                continue
            if not 0.6 <= b.sum() / area_ref <= 1.5:
                continue
            by, bz = np.nonzero(b)
            q = np.stack([by * sp2[0], bz * sp2[1]], axis=1)
            if b.sum() * sp2[0] * sp2[1] < 0.6 * (np.ptp(q @ n) + sp2[1]) * (np.ptp(q @ u) + sp2[0]):
                continue
            # the disc: along the normal through the body's centre, from its lower edge to the candidate
            st = np.arange(0.0, 1.5 * pitch, 0.25 * sp2[0])
            idx = np.round((c_low[None, :] - c_box + st[:, None] * n[None, :]) / sp2).astype(int)
            ok = (idx >= 0).all(axis=1) & (idx[:, 0] < b.shape[0]) & (idx[:, 1] < b.shape[1])
            idx, st = idx[ok], st[ok]
            in_low, in_c = sec_box[idx[:, 0], idx[:, 1]], b[idx[:, 0], idx[:, 1]]
            if not in_low.any() or not in_c.any():
                continue
            if st[np.argmax(in_c)] - st[len(in_low) - 1 - np.argmax(in_low[::-1])] < 2.5:
                continue
            # the 3-D component of the opened mask that holds this section
            cand = _per_slice(opened, raw, r)
            cc3, _ = ndimage.label(cand)
            body = np.zeros(Wf.shape, bool)
            body[box] = cc3 == np.bincount(cc3[x0 - xs.min()][b]).argmax()
            if body.sum() * np.prod(sp) < min_vol:
                continue
            new = int(comp.max()) + 1
            comp = comp.copy()
            comp[body] = new
            grown = np.zeros(Wf.shape, bool)
            grown[box] = raw
            zc = ndimage.center_of_mass(body)[2]
            return (comp, list(bodies) + [(zc, new, r)], mid_raw | (grown & ndimage.binary_dilation(body, iterations=3)),
                    roi | win, rel_ap, t_low), new
    return found, None


def _find_bodies(Wf, fg, valid, sp, shape, column, t_low, t_high, min_body_mm3, depth_mm, halfwidth_mm):
    """Vertebral bodies in the column region in front of ``column``'s posterior line (pipeline step 4).

    Returns ``(comp, bodies, mid_raw, roi, rel_ap, t_low)``: the labelled intermediate-class
    components, the bodies ``[(z centre, label, opening radius mm)]``, the unopened
    intermediate-class mask, the column region, the AP distance (mm) in front of the posterior line,
    and the intermediate-class lower threshold re-estimated inside the column.
    """
    from skimage.filters import threshold_otsu

    s_ip = sp[1]
    a_c, x_c, z_lo, z_hi, z_thr = column
    X, Y, Z = np.ogrid[:shape[0], :shape[1], :shape[2]]
    rel_ap = (Y - a_c[None, None, :]) * sp[1]
    rel_lr = (X - x_c[None, None, :]) * sp[0]
    roi = (rel_ap > -14) & (rel_ap < depth_mm) & (np.abs(rel_lr) < halfwidth_mm) & (Z >= z_lo) & (Z <= z_hi) & valid
    # re-threshold inside the column: the marrow / disc contrast is local (abdomen and muscle
    # dominate the global histogram)
    col = roi & (rel_ap > 1.0) & (Wf < t_high) & fg & (Z >= z_thr)  # not over the sacrum (z_thr)
    if col.sum() > 500:
        t_low = float(threshold_otsu(Wf[col]))
    mid = roi & (Wf > t_low) & (Wf < t_high) & (rel_ap > 1.0)
    mid_raw = mid.copy()
    mid = _per_slice(lambda s: ndimage.binary_fill_holes(ndimage.binary_opening(s, _ball2(2.0 / s_ip))), mid)
    scale = _volume_scale(shape)
    comp, n = _split_tall(*ndimage.label(mid), sp, min_big_mm3=1000.0 * scale)
    min_vol = min_body_mm3 * scale
    comp, n, bodies = _body_components(comp, n, sp, a_c, min_vol)
    if len(bodies) >= 3:
        # a nucleus with marrow-like signal is a small blob, not a body: keep body-sized components
        typical = float(np.median([b[2] for b in bodies]))  # (zc, label, volume, opening radius)
        bodies = [b for b in bodies if b[2] >= 0.3 * typical]
    bodies = [(zc, i, r) for zc, i, _, r in bodies]
    return comp, bodies, mid_raw, roi, rel_ap, t_low


def _ap_extent(b):
    """Most posterior and most anterior column per slice of a (slice, column) mask, as (n, 1)
    arrays (``b.shape[1]`` and -1 in slices where ``b`` is empty)."""
    wall = np.where(b.any(axis=1), np.argmax(b, axis=1), b.shape[1])[:, None]
    front = np.where(b.any(axis=1), b.shape[1] - 1 - np.argmax(b[:, ::-1], axis=1), -1)[:, None]
    return wall, front


def _disc_columns(u, l, slope, sp):
    """Columns across the disc between bodies ``u`` (upper) and ``l`` (lower).

    A column is a line along the disc's axis: world SI turned in the sagittal plane by the disc's
    inclination (``slope`` = dz/dy of its mid-surface; 0 = world SI), so the columns of an inclined
    disc (L5-S1: 30-40 degrees) run from one endplate straight to the other. Voxels keep their own
    grid; each falls into the column of its position across the disc (bins of the in-plane
    spacing, one set per slice). Returns ``(S, (X, A), su, sl)``: every voxel's height along the
    axis (mm) and its column (slice, bin), and per column the upper body's lowest and the lower
    body's highest height (inf / -inf where the body is absent).
    """
    n = np.hypot(1.0, slope)
    Y, Z = np.ogrid[:u.shape[1], :u.shape[2]]
    y, z = Y * sp[1], Z * sp[2]
    s = (z - slope * y) / n
    a = np.rint(((y + slope * z) / n) / sp[1]).astype(np.intp)
    a = a - a.min()
    S = np.broadcast_to(s[None], u.shape)
    A = np.broadcast_to(a[None], u.shape)
    X = np.broadcast_to(np.arange(u.shape[0])[:, None, None], u.shape)
    su = np.full((u.shape[0], int(a.max()) + 1), np.inf)
    sl = np.full(su.shape, -np.inf)
    np.minimum.at(su, (X[u], A[u]), S[u])
    np.maximum.at(sl, (X[l], A[l]), S[l])
    return S, (X, A), su, sl


def _disc_span(u, l, body_any, roi, sp, slope, rim_mm, bulge_mm, excess_mm, min_height_mm=3.0):
    """The disc's columns between ``u`` and ``l`` in the box around both (first part of :func:`_disc_space`).

    Returns None when there is no disc (no common columns, a gap under 3 mm, fewer than 5 core
    voxels), else a dict: ``box``, the columns (``S``, ``col``, ``su``, ``sl``), ``both`` (columns
    with both endplates, after the height cap), ``wall``/``front`` (AP span per slice), ``core``
    (voxels strictly between the endplates of those columns, not body, in the ROI) and ``fit``
    (the inclination, or None). Cheap: no distance transform, labelling or opening.
    """
    lo, hi = bounding_box(u | l)
    grow = (int(np.ceil((bulge_mm + 1.0) / sp[1])) + 1, int(np.ceil((rim_mm + 1.0) / sp[2])) + 1)
    box = (slice(None),) + tuple(slice(max(int(a) - g, 0), int(b) + g) for a, b, g in zip(lo[1:], hi[1:], grow))
    u, l, body_any, roi = u[box], l[box], body_any[box], roi[box]
    S, col, su, sl = _disc_columns(u, l, slope, sp)
    both = np.isfinite(su) & np.isfinite(sl) & (su > sl)
    if both.sum() < 5:
        return None
    # a disc is a few mm high over a good part of the endplate; a thin dark line (fused
    # sacral segments, a cleft) is not
    if np.median(su[both] - sl[both]) - sp[2] < min_height_mm:
        return None
    ys = np.arange(both.shape[1])[None, :]

    def span(b):
        """Most posterior and most anterior column per slice, and the middle half between them."""
        wall, front = _ap_extent(b)
        return wall, front, b & (ys >= wall + 0.25 * (front - wall)) & (ys <= wall + 0.75 * (front - wall))

    def fittable(mid):
        """Whether the middle half holds enough columns, over enough of the AP span, for a line fit."""
        return mid.sum() >= 5 and np.ptp(np.nonzero(mid)[1]) >= 3

    wall, front, mid = span(both)
    if fittable(mid):
        height = np.polyval(np.polyfit(np.nonzero(mid)[1], (su - sl)[mid], 1), ys)
        both &= (su - sl) <= height + excess_mm
        wall, front, mid = span(both)
    fit = None
    if fittable(mid):
        fit = float(np.polyfit(np.nonzero(mid)[1] * sp[1], 0.5 * (su[mid] + sl[mid]), 1)[0])
    # within a column with both endplates the rim distance is 0 and the extended endplate heights
    # are the column's own: the core needs no distance transform
    core = both[col] & (S > sl[col]) & (S < su[col]) & ~body_any & roi
    if core.sum() < 5:
        return None
    return dict(box=box, S=S, col=col, su=su, sl=sl, both=both, ys=ys, wall=wall, front=front, core=core, fit=fit)


def _canal_passes(canal, S, col, su, sl, wall, reach_mm=8.0):
    """Per slice, whether the canal lies behind the disc's posterior wall both above the disc
    (within ``reach_mm`` above the upper endplate at the wall column, along the disc's axis) and
    below it (within ``reach_mm`` below the lower endplate): the canal runs past the disc.

    ``S``/``col`` are every voxel's height and column (:func:`_disc_columns`), ``su``/``sl`` the
    endplate heights per column, ``wall`` the most posterior column with both (per slice).
    """
    X, A = col
    n = su.shape[0]
    w = np.clip(wall[:, 0], 0, su.shape[1] - 1)
    top, bottom = su[np.arange(n), w], sl[np.arange(n), w]
    ok = np.isfinite(top) & np.isfinite(bottom) & (wall[:, 0] < su.shape[1])
    behind = canal & (A <= w[X])
    h = S - np.where(ok, top, np.nan)[X]
    above = np.zeros(n, bool)
    np.logical_or.at(above, X[behind], (h[behind] >= 0) & (h[behind] <= reach_mm))
    h = np.where(ok, bottom, np.nan)[X] - S
    below = np.zeros(n, bool)
    np.logical_or.at(below, X[behind], (h[behind] >= 0) & (h[behind] <= reach_mm))
    return ok & above & below


def _disc_space(u, l, body_any, roi, canal, Wf, canal_level, sp, slope=0.0, *, rim_mm=2.5, bulge_mm=16.0,
                excess_mm=1.5, min_height_mm=3.0):
    """Disc voxels between upper body ``u`` and lower body ``l`` (pipeline step 5).

    Column by column (:func:`_disc_columns`, along the disc axis given by ``slope``), the voxels
    between the lower body's top and the upper body's bottom; extended by ``rim_mm``
    laterally/anteriorly and, where the canal lies behind the disc in that slice, up to
    ``bulge_mm`` posteriorly over voxels darker than the midpoint of annulus and CSF (bulges).
    A column taller than the disc's height there (a linear fit over the middle half of the AP span,
    so a wedge-shaped disc keeps its taller end) by more than ``excess_mm`` is not disc space: it
    grazes a body's rounded corner or runs along its anterior/posterior wall, past the endplates
    (vertical strips of muscle, vessels or epidural tissue along the walls).

    Returns ``(mask, box, fit)``: the disc inside ``box`` (index slices around both bodies), and the
    disc's inclination (dz/dy of its mid-surface, in the frame of ``slope``: ~0 when ``slope`` was
    right), or ``(None, None, None)`` when there is no disc (no common columns, a gap under 3 mm).
    """
    d = _disc_span(u, l, body_any, roi, sp, slope, rim_mm, bulge_mm, excess_mm, min_height_mm)
    if d is None:
        return None, None, None
    box, S, col, su, sl, both, ys = d["box"], d["S"], d["col"], d["su"], d["sl"], d["both"], d["ys"]
    wall, front, core = d["wall"], d["front"], d["core"]
    body_any, roi, canal, Wf = body_any[box], roi[box], canal[box], Wf[box]
    # extend the endplate heights to nearby columns (bulge behind the wall, lateral rim)
    dist, (ix, iy) = ndimage.distance_transform_edt(~both, sampling=(sp[0], sp[1]), return_indices=True)
    su_f, sl_f = su[ix, iy], sl[ix, iy]
    posterior = (ys < wall) & ((wall - ys) * sp[1] <= bulge_mm)
    # bulges only where the canal is behind the disc in the same slice, and not past its back
    zmid = int(np.median(np.floor(0.5 * (su[both] + sl[both]) / sp[2] + 1e-6)))
    X, A = col
    slab = canal & (np.abs(S / sp[2] - zmid) <= 3 + 1e-6)
    back = np.full(both.shape[0], both.shape[1])
    np.minimum.at(back, X[slab], A[slab])  # most posterior canal column per slice
    posterior &= (back < both.shape[1])[:, None] & (ys >= back[:, None])
    # ... and only where the canal runs past the disc in that slice, behind the upper body above it
    # and behind the lower body below it: a sac that ends at the disc's level, or leaves a slice
    # leaning across the spine there, is not behind the disc, and the dark tissue between its tip
    # and the walls (muscle, ligament) is not a bulge (a leaning slice's L5-S1 took 12 mm of it)
    posterior &= _canal_passes(canal, S, col, su, sl, wall)[:, None]
    near = (dist <= rim_mm) | (posterior & (dist <= bulge_mm))
    near &= ys <= front + rim_mm / sp[1]
    # the annulus ends at the bodies' anterior walls: in front of them the prevertebral tissue
    # (ligament, muscle, vessels) is as dark as the annulus, and the rim would take 1-2.5 mm of it
    body_front = _ap_extent(np.isfinite(su) | np.isfinite(sl))[1]
    near &= ys <= np.where(body_front < 0, body_front.max(), body_front)
    between = near[col] & (S > sl_f[col]) & (S < su_f[col])
    af_level = float(np.percentile(Wf[core], 25))
    dark = Wf < 0.5 * (af_level + canal_level)
    ext = between & ~body_any & roi & dark & ~both[col]
    cand = core | ext
    cc, nc = ndimage.label(cand)
    if nc > 1:
        # keep what touches the core
        keep = np.unique(cc[core])
        cand = np.isin(cc, keep[keep > 0])
    cand = _per_slice(lambda s_: ndimage.binary_opening(s_, _ball2(1)), cand) | core
    return cand, box, d["fit"]


def _disc_mask(u, l, body_any, roi, canal, Wf, canal_level, sp, *, rim_mm=2.5, bulge_mm=16.0, excess_mm=1.5,
               min_height_mm=3.0):
    """The disc between bodies ``u`` and ``l`` (full-size mask, or None): :func:`_disc_space` along
    the disc's own axis, whose inclination the columns along world SI give first (cheaply,
    :func:`_disc_span`); along world SI where the disc is level or the turned columns fail."""
    first = _disc_span(u, l, body_any, roi, sp, 0.0, rim_mm, bulge_mm, excess_mm, min_height_mm)
    if first is None:
        # a steep disc with the lower body behind the upper one (L5-S1 under a steep sacrum)
        # shares too few world-SI columns, and those only where it is thin: along the axis of
        # the upper body's lower endplate instead
        x = int(np.argmax(u.sum(axis=(1, 2))))
        n = _inferior_normal(u[x], sp[1:])
        slope = -n[0] / n[1]
        if abs(slope) < np.tan(np.radians(10.0)):
            return None
    else:
        slope = first["fit"]
    args = (u, l, body_any, roi, canal, Wf, canal_level, sp)
    kw = dict(rim_mm=rim_mm, bulge_mm=bulge_mm, excess_mm=excess_mm, min_height_mm=min_height_mm)
    cand = None
    if slope:
        cand, box, _ = _disc_space(*args, slope, **kw)
    if cand is None and first is not None:
        cand, box, _ = _disc_space(*args, 0.0, **kw)
    if cand is None:
        return None
    out = np.zeros(u.shape, bool)
    out[box] = cand
    return _fill_enclosed(out, u | l, canal)


def _fill_enclosed(disc, bodies, canal):
    """``disc`` plus the in-plane holes that it encloses with its two ``bodies`` and that touch it.

    A column the disc-height cap drops (:func:`_disc_span`: taller than the disc's fitted height,
    as under a concave endplate) keeps only the annulus-dark voxels of the rim extension, so a
    bright nucleus there was left as a hole inside the disc (sct_t2_lumbar L1-L2: 0 on the
    labels between disc voxels, a volume short and a middle height withheld in one copy). What
    the disc and its bodies enclose in a slice is disc; holes inside a body, not touching the
    disc, and the canal are left alone.
    """
    box = bounding_box(disc)
    if box is None:
        return disc
    # within the disc's bounding box grown by 8 voxels in-plane (a hole reaching further past
    # the disc into the bodies is left, as one open to the box's edge)
    sl = (slice(box[0][0], box[1][0]),) + tuple(slice(max(a - 8, 0), b + 8) for a, b in zip(box[0][1:], box[1][1:]))
    d, solid = disc[sl], disc[sl] | bodies[sl]
    holes = _per_slice(ndimage.binary_fill_holes, solid) & ~solid & ~canal[sl]
    hc, n = ndimage.label(holes, _IN_PLANE)
    if n == 0:
        return disc
    touch = np.unique(hc[ndimage.binary_dilation(d, _IN_PLANE) & holes])
    out = disc.copy()
    out[sl] |= np.isin(hc, touch[touch > 0])
    return out


def missed_bodies(centres_mm, *, ratio: float = 1.6) -> list[int]:
    """Vertebral bodies missed between consecutive found ones, from their centre spacing.

    Parameters
    ----------
    centres_mm : sequence of float
        SI centres of the found bodies (mm), top first.
    ratio : float
        A spacing over ``ratio`` times the median spacing of the other pairs means bodies
        are missing in between.

    Returns
    -------
    list of int
        For each consecutive pair, how many bodies lie between them unseen
        (``round(spacing / typical) - 1``), 0 where none. Needs 3 or more pairs.
    """
    c = np.asarray(centres_mm, float)
    pitch = np.abs(np.diff(c))
    out = [0] * len(pitch)
    if len(pitch) < 3:
        return out
    for i, p in enumerate(pitch):
        typical = float(np.median(np.delete(pitch, i)))
        if typical > 0 and p > ratio * typical:
            out[i] = max(1, int(round(p / typical)) - 1)
    return out


def segment_auto(scan, *, inplane_mm: float = 0.8, column_depth_mm: float = 60.0, column_halfwidth_mm: float = 32.0,
                 min_body_mm3: float = 1500.0) -> Segmentation:
    """Automatic segmentation; see the module docstring. Raises SegmentationError when no spine is found."""
    from skimage.filters import threshold_multiotsu

    shape, waff = _working_grid(scan, inplane_mm)
    native = _native_inplane(scan.affine, waff)
    Wf, valid = _scan_on_grid(scan, shape, waff)
    if valid.sum() < 1000:
        raise SegmentationError("the image is too small to segment", hint="give a sagittal lumbar T2-weighted series")
    hi = np.percentile(Wf[valid], 99.5)
    if not hi > 0:
        raise SegmentationError("the image is blank", hint="check the series")
    Wf = Wf / hi
    sp = np.linalg.norm(waff[:3, :3], axis=0)  # (lr, ap, si) mm
    s_ip = sp[1]
    min_vol = min_body_mm3 * _volume_scale(shape)  # the body size limit, scaled on a single slice
    fg = valid & (Wf > 0.03)
    vals = Wf[fg]
    if vals.size < 1000:
        raise SegmentationError("no tissue found", hint="the image looks empty")
    t_low, t_high = threshold_multiotsu(vals, classes=3)

    # ---- column: from the canal (bright CSF), else from a chain of body-like blobs (grey CSF)
    canal, column = _column_from_canal(Wf, fg, vals, sp, shape, t_low, t_high)
    found = None
    if column is not None:
        found = _find_bodies(Wf, fg, valid, sp, shape, column, t_low, t_high, min_body_mm3,
                             column_depth_mm, column_halfwidth_mm)
    # the column hypothesis whose bodies stack into the longer chain wins (the canal's on a tie);
    # a chain of blocks shorter than the canal's chain of bodies is not followed up
    x_mid = int(round(np.median(column[1]))) if column is not None else int(np.argmax(fg.sum(axis=(1, 2))))
    canal_chain = _stacked_bodies(found[0], found[1], sp) if found is not None else []
    n_canal = len(canal_chain)
    chain_column = _column_from_chain(Wf, fg, sp, t_low, t_high, x_mid, min_bodies=max(3, n_canal))
    if chain_column is not None:
        alt = _find_bodies(Wf, fg, valid, sp, shape, chain_column, t_low, t_high, min_body_mm3,
                           column_depth_mm, column_halfwidth_mm)
        stacked = _stacked_bodies(alt[0], alt[1], sp)
        if len(stacked) > n_canal:
            # without the canal, what lies off the chain (bowel, psoas, pelvis in front of the
            # sacrum near the column line) is not taken for a body
            alt, stacked = _extend_chain(Wf, alt, stacked, sp, t_high, min_vol)
            chain = np.isin(alt[0], [d["body"][1] for d in stacked])
            # the canal stays when the chain holds the bodies found in front of it (the chain
            # found one more, e.g. a body the canal's column region cut): it is the same spine,
            # and the canal bounds the discs' bulges and gives the level frame its midline
            held = [(chain & b).sum() >= 0.5 * b.sum() for b in (found[0] == d["body"][1] for d in canal_chain)]
            same = n_canal >= 2 and all(held)
            found, canal = (alt[0], [d["body"] for d in stacked]) + alt[2:], (canal if same else np.zeros(shape, bool))
    if found is None:
        raise SegmentationError("no spinal canal found (no long, thin bright structure) and no chain of "
                                "vertebral bodies", hint="give a sagittal T2-weighted lumbar series, import labels (--labels) or seed the discs in napari")
    # S1 behind the column's line (a steep sacrum turns it backwards out of the search)
    found, s1_found = _s1_below(Wf, valid, found, sp, t_high, min_vol)
    if s1_found is None and len(found[1]) >= 4:
        # the lowest "body" may be a piece that a wider opening cut from a large component (pelvic
        # soft tissue in front of the sacrum: vesal image 9, 52 mm straight below L5 while S1 lies
        # behind); when S1 is found along the endplate normal of the body above it, that piece goes
        low = min(found[1], key=lambda b: b[0])
        if low[2] > 2.0:
            trial = (found[0], [b for b in found[1] if b is not low]) + tuple(found[2:])
            alt, s1_alt = _s1_below(Wf, valid, trial, sp, t_high, min_vol)
            if s1_alt is not None and not ((alt[0] == s1_alt) & (found[0] == low[1])).any():
                found, s1_found = alt, s1_alt
    comp, bodies, mid_raw, roi, rel_ap, t_low = found
    if len(bodies) < 2:
        raise SegmentationError(f"{len(bodies)} vertebral bod{'y' if len(bodies) == 1 else 'ies'} found",
                                hint="the scan must show at least two vertebrae; import labels (--labels) or seed the discs in napari")
    bodies.sort(reverse=True)  # top (superior, high z) first
    # a body the search missed leaves a gap of about two vertebral pitches between its neighbours:
    # what lies between them is not a disc, and the numbering must skip the missed vertebra
    missing = missed_bodies([zc * sp[2] for zc, _, _ in bodies])
    body_masks, marrows = [], []
    body_pv = np.zeros(shape, np.float32)  # the bodies' partial volume (sub-voxel endplate faces)
    bright_col = roi & (Wf >= t_high) & (rel_ap > 1.0)
    shell = 1.2 + 0.5 * s_ip
    any_body = np.isin(comp, [i for _, i, _ in bodies])  # the other bodies' marrow, for the pocket rule
    caps = np.zeros(shape, bool)
    for _, i, r_open in bodies:
        m = comp == i
        # undo the opening's corner rounding: regrow by the opening radius inside the intermediate
        # class (per slice, within the body's box grown by the radius: the same result as whole slices),
        # but not into another component the opening cut off (a nucleus with marrow-like signal)
        box = _inplane_box(m, int(np.ceil(r_open / s_ip)) + 2)
        free = mid_raw[box] & ((comp[box] == 0) | (comp[box] == i))
        # only what connects to the body through such voxels: a noisy intermediate-class voxel in
        # the disc beyond the dark endplate is not the body's rounded corner (it made bodies reach
        # 2 mm into the disc, anterior heights 2.3 mm short at SNR 15)
        m[box] = _regrow(m[box], m[box], free, r_open / s_ip)
        # bright (fatty) marrow: pockets of bright-class signal whose rim is mostly this body
        with_pockets, bands = _marrow_pockets(m, bright_col, others=any_body & (comp != i),
                                              clear=int(np.ceil(2.5 / s_ip)))
        # (a Modic band lies on the endplate: no marrow strip to regrow, and regrowing from it took
        # the band's partial-volume rim as marrow, the shell then reaching 0.2-0.3 mm into the disc)
        added = with_pockets[box] & ~m[box] & ~bands[box]
        if added.any():
            # the marrow between a pocket and the endplate: a strip thinner than the opening, cut
            # off by it and too far from the opened body to be regrown; regrown from the pocket
            # (else the shell grew from the pocket and the disc label took the endplate there)
            with_pockets[box] = _regrow(with_pockets[box], added, free, r_open / s_ip)
        m = with_pockets
        # a nucleus with the marrow's signal, joined to the marrow through a faint endplate line:
        # cut off at that line (the lowest body, S1 with the sacrum, only at its top)
        m, cap = _cut_at_dark_lines(m, Wf, sp, bottom=i != bodies[-1][1], others=any_body & (comp != i))
        caps |= cap
        marrows.append(m)
    allowed = roi & (Wf < t_high) & ~caps
    for m in marrows:
        # add the cortical shell back: ~1.2 mm of dark cortex, plus the half voxel that the
        # intermediate-class threshold loses to partial volume at the marrow boundary; the shell
        # grows over non-bright voxels only, the body itself (holes, pockets) stays whole
        grown = _cortex_shell_pv(m, Wf, allowed, sp, shell)
        if native:
            # the sub-voxel endplate faces: the bodies' partial volume, for the disc heights
            np.maximum(body_pv, _endplate_faces_pv(grown, m, Wf, allowed, sp, 1.2,
                                                   _cortex_level(m, Wf, allowed, sp, shell)), out=body_pv)
        body_masks.append(grown)
    body_any = np.zeros(shape, bool)
    for m in body_masks:
        body_any |= m

    # ---- discs between consecutive bodies
    # the CSF level (bright-class threshold when the column came from a chain, not from the canal)
    canal_level = float(np.median(Wf[canal])) if canal.any() else float(t_high)
    discs = []
    for k, (u, l, gap) in enumerate(zip(body_masks[:-1], body_masks[1:], missing)):
        if gap:
            discs.append(None)
            continue
        # the disc above the S1 found by its position (:func:`_s1_below`) may be collapsed (a
        # degenerated L5-S1): the 3 mm minimum is there to tell a disc from the thin line between
        # fused sacral segments, which that search has already excluded
        low_s1 = s1_found is not None and bodies[k + 1][1] == s1_found
        cand = _disc_mask(u, l, body_any, roi, canal, Wf, canal_level, sp, min_height_mm=1.5 if low_s1 else 3.0)
        discs.append(cand)
    # ---- levels: sacrum = lowest body with a disc above it
    n_b = len(body_masks)
    # (a disc of at least 200 mm3, scaled like the body size limit on a single slice)
    min_disc = 200.0 * _volume_scale(shape)
    has_disc_above = [False] + [d is not None and d.sum() * np.prod(sp) > min_disc for d in discs]
    s1 = max(i for i in range(n_b) if has_disc_above[i]) if any(has_disc_above) else n_b - 1
    out = np.zeros(shape, np.int16)
    qc: dict = {}
    number = {}
    v = lab.SACRUM
    for i in range(s1, -1, -1):
        number[i] = v
        v = 24 if v == lab.SACRUM else v - 1
        if i > 0:
            v -= missing[i - 1]
        if v < 1:
            break
    # the canal label is the CSF: brighter than the epidural fat that rims it
    csf_thr = 0.5 * (t_high + canal_level)
    canal_lab = canal & ~body_any & (Wf > min(csf_thr, np.percentile(Wf[canal], 40) if canal.any() else csf_thr))
    # the sac, not its brightest voxels: fill in-slice holes (nerve roots, flow voids, noise)
    canal_lab = _per_slice(ndimage.binary_fill_holes, canal_lab) & ~body_any
    out[canal_lab] = lab.CANAL
    for i, m in enumerate(body_masks):
        if i in number:
            out[m] = number[i]
        elif i > s1:
            out[m] = lab.SACRUM  # sacral segments below S1
    # the dural sac ends between the L5-S1 disc and S3, most often at S2 (Binokay et al. 2006, 743
    # adults, doi:10.1080/02841850600557158); a sac ending above the top of the body taken for S1
    # means that body is probably L5 (S1 missed, every level one off) or the canal is cut short
    sac_above_s1 = False
    if canal_lab.any():
        zc = np.flatnonzero(canal_lab.any(axis=(0, 1)))
        zs = np.flatnonzero(body_masks[s1].any(axis=(0, 1)))
        sac_above_s1 = len(zs) > 0 and (zs.max() - zc.min()) * sp[2] < 5.0
    for i, d in enumerate(discs):
        if d is None or i not in number or (i + 1) not in number:
            continue
        label = lab.disc_label(number[i])
        out[d & (out != lab.CANAL)] = label
        out[d] = label
        name = lab.disc_level_name(label)
        flags = []
        if (i > 0 and missing[i - 1]) or (i + 1 < len(missing) and missing[i + 1]):
            flags.append("neighbouring_vertebra_not_found")
        # lowest disc tilt: a sacral disc is strongly inclined (sacral slope)
        if i + 1 == s1:
            pts = np.argwhere(d) * sp
            if len(pts) > 10:
                c = np.cov((pts - pts.mean(0))[:, 1:].T)
                w, vv = np.linalg.eigh(c)
                # major axis (AP, SI components) vs AP: 0 for a flat disc (it was measured vs SI,
                # so a flat disc passed as inclined: a cervical scan's 0.3 degree disc, named L5-S1,
                # was not flagged). Measured: phantom 32, vesal 22-43, sct_t2_lumbar 5 (flagged)
                tilt = np.degrees(np.arctan2(abs(vv[1, 1]), abs(vv[0, 1])))
                if tilt < 15:
                    flags.append("sacrum_not_confirmed")
        if sac_above_s1:
            flags.append("canal_ends_above_s1")
        # a marrow-like nucleus cut from a body at a faint endplate line (:func:`_cut_at_dark_lines`):
        # the disc is found, but its faces there come from the cortex model (1.2 mm) grown from
        # the cut, not from the image, and its heights can be off by millimetres
        if (caps & d).sum() >= 0.05 * d.sum():
            flags.append("nucleus_cut_from_body")
        conf = 0.9 if not flags else 0.5
        qc[name] = {"confidence": conf, "flags": flags}
    labels = resample(out, waff, scan.shape, scan.affine, order=0, mode="grid-constant")
    levels = levels_of(labels)
    for name in list(qc):
        if name not in levels:
            qc.pop(name)
    body_fraction = None
    if native:
        # the bodies' partial volume (the same nearest-voxel mapping as the labels; on a native
        # in-plane grid it is the scan's own voxels): 1 in a body except at the endplate faces,
        # where it can leave less than half of a voxel of the grown shell, or give more than half
        # of one to a voxel the disc was given (it was zeroed there at first: L5-S1's anterior
        # height +0.37 mm, the disc takes a row of mostly-cortex voxels under an inclined S1 face)
        body_fraction = resample(body_pv, waff, scan.shape, scan.affine, order=0, mode="grid-constant").astype(np.float32)
    else:
        # pixels coarser than the working grid's (1 mm scans): the faces on the scan's own pixels
        body_fraction = _faces_on_scan_grid(scan, hi, shape, waff, marrows, body_masks, allowed, inplane_mm)
    return Segmentation(labels=labels.astype(np.int16), affine=np.array(scan.affine), levels=levels, qc=qc, method="auto",
                        body_fraction=body_fraction)
