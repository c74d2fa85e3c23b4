"""Segmentation: phantom truth across orientations, seeded relabelling, label imports, errors."""

import numpy as np
import pytest
from scipy import ndimage

import discmeasure as dm
from discmeasure import Scan, phantom
from discmeasure.errors import SegmentationError
from discmeasure.segmentation import segment
from discmeasure.segmentation.conventions import convert, detect_convention


def dice(a, b):
    return 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)


@pytest.fixture(scope="module")
def ph():
    return phantom.default_phantom()


LEVELS = list(phantom.LEVELS)


def auto_on_phantom(ph, *, snr=30, seed, pose=None, **grid):
    """Render the phantom (``pose``: patient turned, degrees) on ``phantom.make_grid(**grid)``,
    segment it automatically; returns the segmentation and the disc and body Dice lists."""
    if pose is not None:
        ph = ph.replace(pose=(pose, (0.0, 0.0, 0.0)))
    shape, aff = phantom.make_grid(**grid)
    img, truth = phantom.render_t2w(ph, shape, aff, snr=snr, supersample=2, seed=seed)
    seg = segment(img)
    disc = [dice(truth == v, seg.labels == v) for v in range(120, 125)]
    body = [dice(truth == v, seg.labels == v) for v in (20, 21, 22, 23, 24, 26)]
    return seg, disc, body


CASES = {
    "sagittal_0.7x4": dict(spacing=(0.7, 0.7, 4.0), n_slices=13),
    "sagittal_0.5x3_oblique12": dict(spacing=(0.5, 0.5, 3.0), n_slices=17, rotation_deg=(0, 0, 12)),
    "sagittal_1mm_single": dict(spacing=(1.0, 1.0, 1.0), n_slices=1),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_phantom_levels_and_dice(ph, case):
    seg, disc, body = auto_on_phantom(ph, seed=3, fov_mm=(200, 220), **CASES[case])
    assert seg.levels == LEVELS
    # measured level (docs/validation.md): since the disc stops at the bodies' anterior walls, the
    # working grid keeps the scan's outer half voxels and the column reaches 30 mm below the sac,
    # discs min 0.920 / 0.902 / 0.940 (oblique / 0.7x4 / single; were 0.888 / 0.895 / 0.906) and
    # bodies min 0.977 / 0.968 / 0.964 (were 0.949 / 0.965 / 0.949: S1 cut short); the 0.95 goal
    # for every disc is not met
    assert min(disc) > 0.90, disc
    assert min(body) > 0.96, body
    assert not any("canal_ends_above_s1" in q["flags"] for q in seg.qc.values()), seg.qc


def test_working_grid_follows_the_scan_slices():
    """The working grid's slices are the scan's own when the scan is turned about SI or LR (no
    interpolation across thick slices), but stay upright when the slices lean left-right (the
    working slices must not cut the spine obliquely); beyond 15 degrees it is world-aligned."""
    from discmeasure.segmentation.auto import _grid_direction

    def scan(rot):
        shape, aff = phantom.make_grid(fov_mm=(100, 100), spacing=(0.7, 0.7, 4.0), n_slices=5, rotation_deg=rot)
        return Scan(np.zeros(shape, np.float32), aff)

    for rot in ((0, 0, 8), (6, 0, 0), (0, 0, -12)):
        a = scan(rot).affine
        normal = a[:3, 2] / np.linalg.norm(a[:3, 2])
        D = _grid_direction(scan(rot))
        assert abs(abs(D[:, 0] @ normal) - 1) < 1e-9, rot
        assert np.allclose(D.T @ D, np.eye(3)) and np.linalg.det(D) > 0
    D = _grid_direction(scan((0, 10, 0)))
    assert np.allclose(D[:, 2], [0, 0, 1])  # leaning slices: SI stays world SI
    assert np.allclose(_grid_direction(scan((0, 0, 30))), np.eye(3))
    assert np.allclose(_grid_direction(scan((0, 0, 0))), np.eye(3))


@pytest.mark.slow
@pytest.mark.parametrize("rot", [(5, 5, 5), (0, 10, 0)])
def test_phantom_compound_obliquity_levels(ph, rot):
    """Slices turned about all three axes, or leaning 10 degrees left-right: every level found.

    With the working grid following the scan, the sacrum of the (5, 5, 5) scan (S1 with the top of
    the sacrum, inclined) measured 61 mm front to back and was rejected as too large for a body:
    L5 was taken for S1 and every label was one level off. A large component right below the
    lowest body is now taken as the sacrum. Measured: disc Dice min 0.913 / 0.871, body min
    0.954 / 0.967.
    """
    seg, disc, body = auto_on_phantom(ph, snr=35, seed=5, fov_mm=(170.0, 220.0), center_mm=(0.0, 0.0, 10.0),
                                      spacing=(0.7, 0.7, 4.0), n_slices=13, rotation_deg=rot)
    assert seg.levels == LEVELS
    assert min(disc) > 0.85 and min(body) > 0.94, (disc, body)


@pytest.mark.slow
@pytest.mark.parametrize("case,grid", [("modic_L4L5", "0.7x4"), ("modic_L5S1", "0.7x4"), ("modic_L4L5", "tilt6"),
                                       ("modic_L5S1", "obl12")])
def test_modic_band_stays_in_the_body(case, grid):
    """A bright (Modic type 1) band along the endplates is marrow, not disc. It was not: too little
    of its rim touches the marrow for a fatty-focus pocket, so the bodies stopped at the band, the
    disc took it, and L4-L5 was measured with a bulge of -16.5 mm (old code, these four cases:
    L4-L5 disc Dice 0.59-0.63, the two bodies 0.81-0.82; L5-S1 bodies 0.81-0.82). Measured with
    the band rule: disc min 0.918-0.929, body min 0.968-0.984."""
    grids = {"0.7x4": dict(spacing=(0.7, 0.7, 4.0), n_slices=13),
             "tilt6": dict(spacing=(0.7, 0.7, 4.0), n_slices=11, rotation_deg=(6, 0, 0)),
             "obl12": dict(spacing=(0.5, 0.5, 3.0), n_slices=17, rotation_deg=(0, 0, 12))}
    ph = phantom.default_phantom(**phantom.PATHOLOGIES[case])
    seg, disc, body = auto_on_phantom(ph, snr=35, seed=7, fov_mm=(170.0, 220.0), center_mm=(0.0, 0.0, 10.0),
                                      **grids[grid])
    assert seg.levels == LEVELS
    assert min(disc) > 0.90 and min(body) > 0.95, (disc, body)


@pytest.mark.slow
@pytest.mark.parametrize("case,disc_min", [("dark_discs", 0.85), ("scoliosis", 0.80), ("anterolisthesis_L4L5", 0.85),
                                           ("retrolisthesis_L2L3", 0.85)])
def test_degenerative_spines(case, disc_min):
    """Dark narrowed discs, a 16 degree scoliosis, antero- and retrolisthesis: every level found and
    segmented. Measured disc Dice min 0.900-0.917, bodies 0.979-0.981 (docs/validation.md); the
    scoliosis's L2-L3 only 0.83-0.84: the disc-height cap of step 5 fits one height line across
    all slices, and the coronal wedge makes the disc taller in its lateral slices than that line
    allows (docs/segmentation.md). A guard, not the 0.95 goal."""
    ph = phantom.default_phantom(**phantom.PATHOLOGIES[case])
    seg, disc, body = auto_on_phantom(ph, snr=35, seed=5, fov_mm=(170.0, 220.0), center_mm=(0.0, 0.0, 10.0),
                                      spacing=(0.7, 0.7, 4.0), n_slices=13)
    assert seg.levels == LEVELS
    assert min(disc) > disc_min and min(body) > 0.95, (disc, body)


def grey_nucleus_case():
    """The phantom's ``grey_nucleus_L2L3`` on a 0.7 x 0.7 x 4 mm grid, SNR 35: scan, truth labels,
    automatic segmentation, L2-L3 disc Dice."""
    ph = phantom.default_phantom(**phantom.PATHOLOGIES["grey_nucleus_L2L3"])
    shape, aff = phantom.make_grid(spacing=(0.7, 0.7, 4.0), n_slices=11, fov_mm=(170.0, 220.0), center_mm=(0.0, 0.0, 10.0))
    img, truth = phantom.render_t2w(ph, shape, aff, snr=35, supersample=2, seed=7)
    seg = segment(img)
    return ph, img, seg, dice(truth == 121, seg.labels == 121)


@pytest.mark.slow
def test_grey_nucleus_is_cut_from_the_body():
    """A degenerated nucleus with the marrow's signal, reaching endplates only 0.3 mm thick
    (``grey_nucleus_L2L3``): in 0.7 mm pixels the dark line between them stays above the marrow
    threshold, and the nucleus joined the bodies' marrow, as on sct_t2_lumbar's L2-L3 (old code:
    L2-L3 disc Dice 0.29-0.38 on 8 of 9 renderings at SNR 20, 35 and noiseless, 0.87 on one;
    heights withheld). The marrow is now cut at the faint line (``_cut_at_dark_lines``): Dice
    0.86-0.89 on the same 9 renderings; the level carries ``nucleus_cut_from_body``."""
    _, _, seg, d = grey_nucleus_case()
    assert seg.levels == LEVELS
    assert d > 0.80, d
    assert "nucleus_cut_from_body" in seg.qc["L2-L3"]["flags"]
    assert all("nucleus_cut_from_body" not in seg.qc[lv]["flags"] for lv in LEVELS if lv != "L2-L3")


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="faces from a 1.2 mm cortex model grown from the cut (docs/segmentation.md)")
def test_grey_nucleus_heights():
    """The heights of that disc: its faces come from the 1.2 mm cortical shell grown from the cut
    marrow, where the endplate is 0.3 mm, so they are short (measured anterior / middle /
    posterior -2.1 / -0.8 / -2.2 mm). Strict: it fails loudly once faces follow the image."""
    ph, img, seg, _ = grey_nucleus_case()
    tr = phantom.truth(ph, levels=("L2-L3",))["levels"]["L2-L3"]
    row = dm.measure(img, seg).set_index("level").loc["L2-L3"]
    for w in ("anterior", "middle", "posterior"):
        assert abs(row[f"height_{w}_mm"] - tr[f"height_{w}_mm"]) <= 0.5, (w, row[f"height_{w}_mm"], tr[f"height_{w}_mm"])


@pytest.mark.slow
def test_single_oblique_slice(ph):
    """One sagittal slice turned 8 degrees about SI. The working slice was world-sagittal and met
    the 1 mm scan slice only near its centre: no canal was found and segmentation failed. It is now
    the scan's own slice. Measured: disc Dice min 0.943, body min 0.967 (aligned slice: 0.940, 0.964)."""
    seg, disc, _ = auto_on_phantom(ph, seed=3, fov_mm=(200, 220), spacing=(1.0, 1.0, 1.0), n_slices=1,
                                   rotation_deg=(0, 0, 8))
    assert seg.levels == LEVELS
    assert min(disc) > 0.90, disc


@pytest.mark.slow
@pytest.mark.parametrize("rot", [(0, 5, 0), (1.9, -4.8, 6.8)])
def test_single_leaning_slice(ph, rot):
    """One sagittal slice leaning left-right (turned about AP). Its working slice was world-sagittal
    (a lean is not followed in a volume) and met the scan slice along a line only: "the image is
    too small to segment". A single slice is now always its own working slice."""
    seg, _, body = auto_on_phantom(ph, seed=7, fov_mm=(180, 230), center_mm=(0, 0, 10), spacing=(1.0, 1.0, 1.0),
                                   n_slices=1, rotation_deg=rot)
    assert seg.levels == LEVELS
    assert min(body) > 0.9, body


def test_stacked_bodies_around_an_inclined_disc():
    """Sections of two bodies around an inclined disc overlap in SI (their boxes, not the bodies):
    with 2 mm allowed, L4 and L5 of a phantom turned 8 degrees about LR in a patient turned 6 degrees
    the other way did not stack, the column from a chain of blobs without the sacrum won, and every
    label was one level off. Up to a quarter of the lower body's height is now allowed."""
    from discmeasure.segmentation.auto import _stacked

    upper = dict(c=(108.0, 86.0), area=763.0, ap=(90.0, 127.0), si=(69.0, 103.0))
    lower = dict(c=(92.0, 53.0), area=731.0, ap=(73.0, 111.0), si=(36.0, 72.0))
    assert _stacked(upper, lower)
    assert not _stacked(upper, dict(lower, si=(36.0, 82.0)))  # overlapping by 13 mm: not a disc between
    assert not _stacked(upper, dict(lower, area=300.0))


@pytest.mark.slow
def test_posed_patient_in_tilted_scan_levels(ph):
    """The case the box overlap broke (scan turned (7.9, -1.5, 1.8) degrees, patient (-5.7, 2.1, 5.0)):
    the old code found L2-L3 ... L5-S1, every disc under the wrong label (Dice 0)."""
    seg, disc, _ = auto_on_phantom(ph, seed=12, pose=(-5.7, 2.1, 5.0), fov_mm=(180, 230), center_mm=(0, 0, 10),
                                   spacing=(0.7, 0.7, 4.0), n_slices=11, rotation_deg=(7.9, -1.5, 1.8))
    assert seg.levels == LEVELS
    assert min(disc) > 0.85, disc


@pytest.mark.slow
def test_leaning_slice_with_part_of_the_sacrum(ph):
    """A single slice leaning ~11 degrees against the spine holds only part of the sacrum. L5 was
    taken for S1 and every level was one off (flagged ``canal_ends_above_s1``, the dural sac ending
    above the top of that "S1"; Binokay et al. 2006). S1 is now sought one pitch below the lowest
    body along its endplate normal (``_s1_below``) and found: numbered right. The flag stays (the
    sac leaves the leaning slice above S1: "or the canal is cut short"), a prompt to look.
    Measured: discs L1-L2 ... L5-S1 Dice 0.91, 0.94, 0.94, 0.93, 0.80; S1 0.85 (part of it only is
    in the slice).
    The sac leaves the slice at L5-S1, and the disc's posterior extension (for bulges) reached from
    the walls to the sac's tip over 12 mm of dark tissue: L5-S1 bulge 13.0 mm (truth labels: 0.44).
    The extension now needs the canal behind the wall both above and below the disc
    (``_canal_passes``): L5-S1 Dice 0.80 -> 0.92, bulge 1.99 mm."""
    seg, disc, _ = auto_on_phantom(ph, seed=3, pose=(0.1, 4.7, 3.3), fov_mm=(180, 230), center_mm=(0, 0, 10),
                                   spacing=(1.0, 1.0, 1.0), n_slices=1, rotation_deg=(-2.2, -6.3, -3.1))
    assert seg.levels == LEVELS
    assert min(disc[:4]) > 0.88 and disc[4] > 0.9, disc
    shape, aff = phantom.make_grid(fov_mm=(180, 230), center_mm=(0, 0, 10), spacing=(1.0, 1.0, 1.0), n_slices=1,
                                   rotation_deg=(-2.2, -6.3, -3.1))
    img, _ = phantom.render_t2w(ph.replace(pose=((0.1, 4.7, 3.3), (0.0, 0.0, 0.0))), shape, aff, snr=30,
                                supersample=2, seed=3)
    t = dm.measure(img, seg).set_index("level")
    assert t.loc["L5-S1", "bulge_mm"] < 3.0, t.loc["L5-S1", "bulge_mm"]


@pytest.mark.slow
def test_leaning_slice_keeps_the_top_of_s1(ph):
    """A single slice leaning against a posed patient (scan turned (1.9, -4.8, 6.8) degrees, patient
    (0.1, 0.1, 3.0)): the sacrum, tall and inclined, was split at its narrowest axial section as if
    two bodies were joined through a disc (``_split_tall``); that section lay at S1's top, whose
    posterior-superior corner became a sliver no rule kept as a body, and the L5-S1 disc took it
    (Dice 0.637). A cut is now made only at a waist. Measured: L5-S1 Dice 0.966."""
    seg, disc, body = auto_on_phantom(ph, seed=7, pose=(0.1, 0.1, 3.0), fov_mm=(180, 230), center_mm=(0, 0, 10),
                                      spacing=(1.0, 1.0, 1.0), n_slices=1, rotation_deg=(1.9, -4.8, 6.8))
    assert seg.levels == LEVELS
    assert min(disc) > 0.92 and min(body) > 0.95, (disc, body)


def test_split_tall_only_at_a_waist():
    """Two blocks joined through a narrow neck are cut there; a tall wedge whose sections only grow
    from its top down (the inclined sacrum in world SI) is left whole."""
    from discmeasure.segmentation.auto import _split_tall

    sp = np.array([1.0, 1.0, 1.0])
    comp = np.zeros((3, 40, 150), np.int32)
    for z0 in (2, 40, 78):  # three ordinary bodies, 25 mm high
        comp[:, 5:35, z0:z0 + 25] = 1
    comp, n = ndimage.label(comp > 0)
    # a tall component: two blocks joined through a 4 mm neck
    comp[:, 5:35, 106:126] = n + 1
    comp[:, 18:22, 126:130] = n + 1
    comp[:, 5:35, 130:148] = n + 1
    out, n2 = _split_tall(comp.copy(), n + 1, sp)
    assert n2 == n + 2 and len(np.unique(out[:, :, 131:148])) == 2  # the upper block is its own
    # the same height as a wedge growing downwards: no waist
    comp[:, :, 106:148] = 0
    for k, z in enumerate(range(106, 148)):
        comp[:, 5:5 + max(2, int(30 * (148 - z) / 42)), z] = n + 1
    out, n2 = _split_tall(comp.copy(), n + 1, sp)
    assert n2 == n + 1 and (out == n + 1).sum() == (comp == n + 1).sum()


def grey_csf_slice(ph):
    """One 1 mm sagittal slice of ``ph`` with grey CSF (the canal as dark as 0.6 x the marrow, as
    on some real 2-D T2 slices), segmented automatically: the truth labels, the segmentation and
    the disc Dice per level (L1-L2 ... L5-S1)."""
    shape, aff = phantom.make_grid(spacing=(1.0, 1.0, 1.0), n_slices=1)
    img, truth = phantom.render_t2w(ph, shape, aff, snr=35, seed=1)
    data = np.asarray(img.data, float).copy()
    data[truth == 61] = 0.6 * np.median(data[(truth >= 20) & (truth <= 26)])
    seg = segment(Scan(data, img.affine))
    return truth, seg, [dice(truth == v, seg.labels == v) for v in range(120, 125)]


@pytest.mark.slow
def test_grey_csf_single_slice_finds_s1(ph):
    """Grey CSF: the column comes from the chain of stacked bodies, which ended at L5; S1, one
    pitch below L5 along its endplate normal and behind the chain's line, was not found and every
    level was one off (L2-L3 ... L5-S1, each disc under the next label, Dice 0)."""
    _, seg, disc = grey_csf_slice(ph)
    assert seg.levels == LEVELS
    assert min(disc) > 0.9, disc


@pytest.mark.slow
def test_grey_csf_single_slice_steep_sacrum_spondylolisthesis(ph):
    """Grey CSF on one 1 mm slice, a steep sacrum (sacral slope 48 degrees) and L5 slipped 6 mm
    forward on S1: S1 lies 22 mm behind the point one pitch along L5's endplate normal when
    that normal is fitted in three passes (19 degrees from SI instead of L5's 37: the first
    passes see its side walls), beyond the 0.6-pitch allowance, and every level was one off.
    The normal is now refitted until it settles (37 degrees after five passes)."""
    _, seg, disc = grey_csf_slice(ph.replace(listhesis_mm={"L5-S1": 6.0}, sacral_slope_deg=48.0))
    assert seg.levels == LEVELS
    assert min(disc[:4]) > 0.85, disc  # L5-S1 itself: 0.47 (the slipped disc on one slice)


def test_inferior_normal_of_a_tilted_body():
    """The lower endplate's normal of a body section tilted 30 degrees (anterior end lower, as L5
    over a steep sacrum): pointing down and backwards, 30 degrees from SI."""
    from discmeasure.segmentation.auto import _inferior_normal

    Y, Z = np.mgrid[:120, :120] * 0.5  # (AP, SI) mm, anterior = +AP
    t = np.radians(30.0)
    a = (Y - 30) * np.cos(t) - (Z - 30) * np.sin(t)  # along the endplate, falling anteriorly
    h = (Y - 30) * np.sin(t) + (Z - 30) * np.cos(t)  # along the body's axis
    sec = (np.abs(a) < 17) & (np.abs(h) < 13)
    n = _inferior_normal(sec, (0.5, 0.5))
    assert n[1] < 0 and n[0] < 0  # down and backwards
    assert np.degrees(np.arccos(-n[1])) == pytest.approx(30.0, abs=2.0)


def test_cortex_shell_pv_lateral_slice():
    """A lateral wall inside a thick slice: labelled by the majority of the slice's volume."""
    from discmeasure.segmentation.auto import _cortex_shell_pv

    sp = (4.0, 0.7, 0.7)  # thick left-right slices, as on the working grid of a sagittal scan
    marrow, dark = 1.0, 0.1
    W = np.full((12, 60, 60), dark, np.float32)
    m = np.zeros(W.shape, bool)
    m[2:7, 15:45, 15:45] = True
    W[m] = marrow
    # slice 7 holds 45 % marrow (the wall at 1.8 mm into it) + 1.2 mm cortex: 75 % body -> body;
    # slice 1 holds 10 % marrow (0.4 mm) + 1.2 mm cortex: 40 % body -> not body
    W[7, 15:45, 15:45] = 0.45 * marrow + 0.55 * dark
    W[1, 15:45, 15:45] = 0.10 * marrow + 0.90 * dark
    out = _cortex_shell_pv(m, W, np.ones(W.shape, bool), sp, 1.2 + 0.5 * 0.7)
    assert out[7, 20:40, 20:40].all()
    assert not out[1].any() and not out[8].any()
    # in-plane: the plain shell, 1.55 mm = 2 pixels around the marrow
    assert out[4, 13, 30] and not out[4, 12, 30]


def test_faces_on_scan_grid_only_for_coarser_native_pixels():
    """The second, native working grid for the bodies' partial volume is made for sagittal scans
    with in-plane pixels of 0.8-1.25 mm only: finer ones get it on the working grid itself, coarser
    ones (1.5 mm) and axial stacks (their in-plane axes are not the sagittal plane's) get none."""
    from discmeasure.segmentation.auto import _faces_on_scan_grid, _working_grid

    def call(spacing, orientation="sagittal"):
        shape, aff = phantom.make_grid(orientation=orientation, spacing=spacing, n_slices=3, fov_mm=(60.0, 60.0))
        scan = Scan(np.zeros(shape, np.float32), aff)
        wshape, waff = _working_grid(scan, 0.8)
        return scan, _faces_on_scan_grid(scan, 1.0, wshape, waff, [], [], np.zeros(wshape, bool), 0.8)

    scan, f = call((1.0, 1.0, 4.0))
    assert f is not None and f.shape == scan.shape and f.dtype == np.float32
    assert call((0.7, 0.7, 4.0))[1] is None
    assert call((1.5, 1.5, 4.0))[1] is None
    assert call((1.0, 1.0, 2.0), "axial")[1] is None


def test_endplate_faces_from_the_marrow_edge_not_whole_voxels():
    """The endplate face lies 1.2 mm beyond the marrow's sub-voxel edge, not a whole number of voxels.

    Grown from the marrow mask's voxel faces, the 1.2 mm cortex plus half a voxel covers 2 voxels
    at 0.5 mm pixels (1.0 mm) wherever the marrow's edge lies inside its edge voxel; at 0.8 mm
    pixels it covers 1.6 mm. Automatic heights were up to 0.79 mm (0.5 mm pixels) and 0.66 mm
    (0.8 mm) off on the phantom (docs/methods.md).
    """
    from discmeasure.segmentation.auto import _cortex_shell_pv, _endplate_faces_pv

    M, D = 1.0, 0.1
    for s, f_out, f_in, first, short in ((0.5, 0.3, 1.0, 17, False), (0.5, 0.0, 1.0, 18, False), (0.8, 0.0, 0.6, 19, False),
                                         (0.8, 0.0, 1.0, 18, False), (0.5, 0.0, 1.0, 18, True), (0.8, 0.3, 1.0, 18, True)):
        sp = (4.0, s, s)
        W = np.full((5, 80, 60), D, np.float32)
        m = np.zeros(W.shape, bool)
        m[1:4, 20:60, 20:40] = True  # marrow from SI index 20 up; its edge toward index 19
        W[m] = M
        W[1:4, 20:60, 19] = f_out * M + (1 - f_out) * D  # the marrow's edge f_out into voxel 19
        W[1:4, 20:60, 20] = f_in * M + (1 - f_in) * D  # ... or 1 - f_in short of voxel 20's face
        if short:  # noise cut the marrow mask two voxels short of the marrow in the middle columns
            m[1:4, 35:45, 20:22] = False
        allowed = np.ones(W.shape, bool)
        grown = _cortex_shell_pv(m, W, allowed, sp, 1.2 + 0.5 * s)
        frac = _endplate_faces_pv(grown, m, W, allowed, sp, 1.2, D)
        # the edge at 19.5 - f_out + (1 - f_in) (index units); the face 1.2 mm below; a voxel is body
        # when its centre lies within the face (half of it or more; a centre on the face counts)
        col = frac[2, 40, :20] >= 0.5 - 1e-9
        assert col[first:].all() and not col[:first].any(), (s, f_out, f_in, short, np.flatnonzero(col))
        # the partial volume puts the face itself there: the body's share of the voxels below the
        # marrow's voxel 20 is f_out - (1 - f_in) + 1.2 mm (in voxels)
        assert frac[2, 40, :20].sum() == pytest.approx(f_out - (1 - f_in) + 1.2 / s, abs=0.01), (s, f_out, f_in, short)
        assert np.all(frac[2, 40, 20:40] == 1.0)
        # at the corners (within 1.5 mm of the marrow's AP ends) the grown shell is kept
        assert (frac[2, 20, :20] == grown[2, 20, :20]).all()


def test_disc_columns_follow_an_inclined_disc():
    """An inclined disc (35 deg, like L5-S1) is disc space from endplate to endplate, and no more.

    Columns along world SI (the method before) miss the triangles at the anterior and posterior
    ends of a steep disc, where a vertical column meets only one body (L5-S1 Dice 0.90-0.92 on the
    phantom); columns that graze a body's wall far from its endplate (a body wider at its far
    end) are not disc space.
    """
    from discmeasure.segmentation.auto import _disc_mask

    sp = (3.0, 0.5, 0.5)  # thick left-right slices, as on the working grid of a sagittal scan
    shape = (3, 160, 160)
    Y, Z = np.meshgrid(np.arange(shape[1]) * sp[1] - 40.0, np.arange(shape[2]) * sp[2] - 40.0, indexing="ij")
    th = np.deg2rad(35.0)
    t = Y * np.cos(th) + Z * np.sin(th)  # along the disc (AP)
    h = -Y * np.sin(th) + Z * np.cos(th)  # across it
    upper = (h > 4) & (h < 24) & (np.abs(t) < 15)
    # the lower body widens anteriorly towards its far end (a column there meets its wall, not its endplate)
    lower = (h < -4) & (h > -24) & (t > -15) & (t < 15 + np.clip(-h - 12, 0, None))
    disc = (np.abs(h) <= 4) & (np.abs(t) < 15) & ~upper & ~lower
    W = np.full(shape, 0.1, np.float32)
    u = np.broadcast_to(upper, shape).copy()
    l = np.broadcast_to(lower, shape).copy()
    W[u | l] = 0.5
    W[:, disc] = 0.3
    ones = np.ones(shape, bool)
    m = _disc_mask(u, l, u | l, ones, np.zeros(shape, bool), W, 1.0, sp)
    inner = (np.abs(h) <= 3.5) & (np.abs(t) < 14.0)
    assert m[1][inner].all(), (inner & ~m[1]).sum()
    # nothing beyond the endplates' planes (no strip along the lower body's anterior wall)
    assert not m[1][np.abs(h) > 5.0].any(), (m[1] & (np.abs(h) > 5.0)).sum()


def test_seeded_relabels_levels(ph):
    shape, aff = phantom.make_grid(spacing=(0.8, 0.8, 4.0), n_slices=9, fov_mm=(200, 220))
    img, truth = phantom.render_t2w(ph, shape, aff, snr=40, supersample=1)
    # a radiologist says the lowest disc is L4-L5 (e.g. transitional anatomy): everything shifts up
    sk = ph.skeleton()
    seeds = {"L4-L5": sk["discs"]["L5-S1"][0]}
    seg = segment(img, method="seeded", seeds=seeds)
    assert seg.levels[-1] == "L4-L5" and "L5-S1" not in seg.levels
    assert dice(seg.labels == 123, truth == 124) > 0.7
    with pytest.raises(SegmentationError, match="no disc found"):
        segment(img, method="seeded", seeds={"L4-L5": [500.0, 500.0, 500.0]})


def test_convert_conventions():
    a = np.array([41, 45, 50, 95, 100, 2, 1, 0])
    assert convert(a, "totalspineseg").tolist() == [20, 24, 26, 123, 124, 61, 61, 0]
    assert detect_convention(a) == "totalspineseg"
    b = np.array([1, 2, 6, 7, 0])
    assert convert(b, "totalsegmentator_vertebrae_mr").tolist() == [26, 24, 20, 19, 0]
    c = np.array([24, 124, 224, 60, 61])
    assert convert(c, "spineps").tolist() == [24, 124, 24, 61, 61]
    d = np.array([1, 2, 201, 202, 100])
    assert convert(d, "spider", spider_lowest="S1").tolist() == [26, 24, 124, 123, 61]


def test_total_mr_components_ordered():
    aff = np.eye(4)
    a = np.zeros((5, 5, 60), int)
    a[:, :, 0:8] = 18  # sacrum at the bottom
    a[:, :, 10:20] = 19
    a[:, :, 22:32] = 19
    a[:, :, 8:10] = 20
    a[:, :, 20:22] = 20
    out = convert(a, "totalsegmentator_total_mr", aff)
    assert out[2, 2, 4] == 26 and out[2, 2, 15] == 24 and out[2, 2, 25] == 23
    assert out[2, 2, 9] == 124 and out[2, 2, 21] == 123


def test_import_spineps_real(testdata):
    import discmeasure as dm

    d = testdata / "spine" / "tptbox_cervical"
    scan = dm.load(d / "sub-mri_label-6_T2w.nii.gz")
    seg = segment(scan, method="labels", labels=d / "sub-mri_seg-vert_label-6_msk.nii.gz")
    assert seg.method == "labels:spineps"
    assert seg.levels == ["C5-C6", "C6-C7"]
    vals = set(np.unique(seg.labels)) - {0}
    assert {5, 6, 7, 105, 106} <= vals and not any(v >= 200 for v in vals)


def test_errors(ph):
    with pytest.raises(SegmentationError):
        segment(Scan(np.random.default_rng(0).random((40, 40, 3)), np.eye(4)))
    with pytest.raises(SegmentationError, match="unknown method"):
        segment(Scan(np.zeros((4, 4, 4)), np.eye(4)), method="magic")
    with pytest.raises(SegmentationError, match="convention"):
        segment(Scan(np.zeros((4, 4, 4)), np.eye(4)), method="labels", labels=np.ones((4, 4, 4), int))


@pytest.mark.testdata
@pytest.mark.slow
def test_auto_on_real_sct_lumbar_volume(testdata):
    """Real 3-D T2w (sct_t2_lumbar): one consecutive column, every disc between labelled bodies.

    What was seen on the QC picture is in docs/segmentation.md; the bulge values on this volume
    are not reliable yet (docs/validation.md, test-retest), so only the labelling is asserted.
    """
    from discmeasure import labels as L

    scan = dm.load(testdata / "spine" / "sct_t2_lumbar" / "t2_lumbar.nii.gz")
    seg = segment(scan)
    assert seg.levels == ["T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    for lv in seg.levels:
        up, lo = lv.split("-")
        disc = seg.labels == L.disc_label_from_name(lv)
        assert disc.sum() > 300, lv
        # the disc lies between its two bodies (superior-inferior, world z)
        zs = {n: (scan.affine[:3, :3] @ np.argwhere(seg.labels == L.vertebra_number(n)).T.mean(axis=1))[2] for n in (up, lo)}
        zd = (scan.affine[:3, :3] @ np.argwhere(disc).T.mean(axis=1))[2]
        assert zs[lo] < zd < zs[up], lv
        # no holes in the disc: what the disc and its two bodies enclose in a sagittal slice is
        # disc (the old code left 45 holes of 3-200 pixels, 675 pixels in all: columns the height
        # cap dropped kept only their dark voxels). Single pixels can remain where the 0.8 mm
        # working grid is sampled onto the scan's 1 mm pixels (5 holes of 1-2 pixels).
        solid = disc | np.isin(seg.labels, [L.vertebra_number(up), L.vertebra_number(lo)])
        for x in range(solid.shape[0]):
            holes = ndimage.binary_fill_holes(solid[x]) & ~solid[x]
            hc, _ = ndimage.label(holes)
            touching = np.unique(hc[ndimage.binary_dilation(disc[x]) & holes])
            sizes = [int((hc == t).sum()) for t in touching if t > 0]
            assert max(sizes, default=0) <= 2, (lv, x, sizes)


@pytest.mark.testdata
@pytest.mark.slow
@pytest.mark.parametrize("rot, shift", [((3.0, -2.0, 2.0), (2.0, -3.0, 1.5)), ((-2.0, 1.5, -3.0), (-1.5, 2.5, -2.0))])
def test_auto_real_volume_moved_keeps_levels(testdata, rot, shift):
    """The same real anatomy, rigidly moved and resampled (a repositioned patient): same levels.

    Before bodies joined to tissue in front of them were re-opened (``_body_components``), these
    copies lost one or two vertebrae: 4 and 5 levels were found, one "disc" covered a body.
    """
    from discmeasure.geometry import resample
    from discmeasure.phantom import rotation_matrix

    scan = dm.load(testdata / "spine" / "sct_t2_lumbar" / "t2_lumbar.nii.gz")
    centre = scan.affine[:3, :3] @ ((np.array(scan.shape[:3]) - 1) / 2) + scan.affine[:3, 3]
    T = np.eye(4)
    T[:3, :3] = rotation_matrix(*rot)
    T[:3, 3] = centre - T[:3, :3] @ centre + np.asarray(shift, float)
    data = resample(np.asarray(scan.data, np.float32), T @ scan.affine, scan.shape[:3], scan.affine, order=3)
    seg = segment(Scan(np.clip(data, 0, None), scan.affine))
    assert seg.levels == ["T12-L1", "L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]


@pytest.mark.slow
def test_bright_marrow_under_an_endplate_stays_body(ph):
    """A bright (fatty) marrow focus under an endplate is body, not a "bite" filled with disc.

    Bright-class signal (above the global intermediate/bright threshold) opening onto the dark
    endplate was neither intermediate class nor a hole: the disc label filled it and the height
    there grew by the focus's depth (14.4 mm instead of 8.8 mm here; on sct_t2_lumbar the anterior
    L4-L5 height was 5 mm or 13 mm depending on a 2-3 degree move). The body's own hole-filled
    voxels were also cut out again where brighter than the intermediate class.

    The marrow between the focus and the endplate (a strip thinner than the body's opening) was
    then still lost: too far from the opened body to be regrown, the cortical shell grew from the
    focus instead, and the disc label reached a voxel into L4 over the focus (middle height 1.1 mm
    larger, seen once heights were read off a line fit along the endplate). That strip is now
    regrown from the focus: the heights match the scan without it.
    """
    from scipy import ndimage

    shape, aff = phantom.make_grid(spacing=(0.8, 0.8, 4.0), n_slices=9, fov_mm=(200, 220))
    img, truth = phantom.render_t2w(ph, shape, aff, snr=40, supersample=1)
    sp = np.linalg.norm(aff[:3, :3], axis=0)
    # the focus: L4 marrow 2.5-6 mm below the L3-L4 disc, middle third of the body's AP extent
    dist = ndimage.distance_transform_edt(truth != 122, sampling=sp)
    ijk = np.argwhere(truth == 23)
    ap = (ijk @ aff[:3, :3].T + aff[:3, 3])[:, 1]
    lo, hi = np.percentile(ap, [35, 65])
    d = dist[tuple(ijk.T)]
    pocket = np.zeros(shape, bool)
    pocket[tuple(ijk[(d >= 2.5) & (d <= 6.0) & (ap >= lo) & (ap <= hi)].T)] = True
    data = np.asarray(img.data, float).copy()
    data[pocket] = np.percentile(data[truth == 122], 90)  # as bright as the nucleus
    assert np.median(data[pocket]) > 1.8 * np.median(data[(truth == 23) & ~pocket])
    seg = segment(Scan(data, aff))
    assert np.mean(seg.labels[pocket] == 23) > 0.95  # was 0 (disc 306 voxels, background 198)
    ref = dm.measure(img, segment(img)).set_index("level").loc["L3-L4"]
    got = dm.measure(Scan(data, aff), seg).set_index("level").loc["L3-L4"]
    # same heights as without the focus, to a quarter of an in-plane voxel (0.8 mm); middle was
    # 14.4 vs 8.8 with the bite, 9.75 vs 8.65 with the strip lost
    for col in ("height_anterior_mm", "height_middle_mm", "height_posterior_mm"):
        assert got[col] == pytest.approx(ref[col], abs=0.2), col


@pytest.mark.testdata
@pytest.mark.slow
def test_auto_real_volume_moved_anterior_heights_repeat(testdata):
    """sct_t2_lumbar and its two moved copies (benchmarks/validate_retest.py): no marrow "bites".

    Before bright marrow pockets counted as body, the anterior L4-L5 height was 5.2 mm on the
    volume and 13.1 mm on both moved copies (|delta| 7.96 / 7.95 mm), L1-L2 12.0 vs 8.2 mm
    (3.76 mm). Now 1.6-1.9 and 0.6-0.8 mm. The 0.5 mm goal is not met (docs/validation.md):
    this guards against the bites only.
    """
    from discmeasure.geometry import resample
    from discmeasure.phantom import rotation_matrix

    scan = dm.load(testdata / "spine" / "sct_t2_lumbar" / "t2_lumbar.nii.gz")
    cols = ["height_anterior_mm"]
    m0 = dm.measure(scan, segment(scan)).set_index("level")
    centre = scan.affine[:3, :3] @ ((np.array(scan.shape[:3]) - 1) / 2) + scan.affine[:3, 3]
    for rot, shift in [((3.0, -2.0, 2.0), (2.0, -3.0, 1.5)), ((-2.0, 1.5, -3.0), (-1.5, 2.5, -2.0))]:
        T = np.eye(4)
        T[:3, :3] = rotation_matrix(*rot)
        T[:3, 3] = centre - T[:3, :3] @ centre + np.asarray(shift, float)
        data = resample(np.asarray(scan.data, np.float32), T @ scan.affine, scan.shape[:3], scan.affine, order=3)
        moved = Scan(np.clip(data, 0, None), scan.affine)
        m1 = dm.measure(moved, segment(moved)).set_index("level")
        for lv in ("L1-L2", "L4-L5"):
            delta = abs(m1.loc[lv, cols[0]] - m0.loc[lv, cols[0]])
            assert delta < 2.5, (rot, lv, m0.loc[lv, cols[0]], m1.loc[lv, cols[0]])


def test_missed_bodies_from_spacing():
    from discmeasure.segmentation.auto import missed_bodies

    # centres 35 mm apart, one body missing between the 2nd and 3rd found ones, two further down
    assert missed_bodies([0, -35, -105, -140, -175]) == [0, 1, 0, 0]
    assert missed_bodies([0, -35, -70, -175, -210]) == [0, 0, 2, 0]
    assert missed_bodies([0, -34, -70, -104, -141]) == [0, 0, 0, 0]  # normal variation
    assert missed_bodies([0, -35, -105]) == [0, 0]  # too few pairs to tell


@pytest.mark.testdata
def test_auto_on_real_2d_slices_without_bright_csf(testdata):
    """Real mid-sagittal slices (vesal_lumbar_2d, MIT): four of the six fully annotated ones have grey CSF.

    Before the column could be found from a chain of stacked vertebral bodies, three of the six
    were refused ("0/1 vertebral bodies found") and the mean disc Dice was 0.17 (0.557, 0, 0,
    0.000, 0.471, 0). Now every slice is segmented with at least five disc levels; the Dice values
    are asserted at the level reached (disc mean 0.665, min 0.605 since the disc columns follow the
    disc's inclination and stop at the endplates, were 0.647 and 0.556; 0.664 with the connected
    corner regrowth; vertebra mean 0.765, min 0.651) minus a small margin. The goal of issue 5 (0.90)
    is not reached: the annotation counts the dark endplate line as disc, the discmeasure
    convention (like the phantom truth) counts the cortex as body (docs/validation.md).
    On four of the six (2, 3, 6, 9) S1 lay behind the column's line under a steep sacrum and was
    not found: L5 was taken for S1 and every level named one too low (the Dice, blind to names,
    did not show it). With S1 sought along L5's endplate normal every segmented disc is named
    right; disc Dice mean 0.657 -> 0.699 (min 0.613), vertebra mean 0.785 -> 0.807 (min 0.747).
    With grey nuclei cut from the bodies (2026-11-24) disc mean 0.721 (min 0.647), vertebra 0.810.
    The annotated S1 is at least 68 % labelled S1 on each image (2026-11-25).
    """
    from PIL import Image
    from scipy import ndimage

    d = testdata / "spine" / "vesal_lumbar_2d"
    aff = np.array([[0, 0, 1.0, 0], [-1.0, 0, 0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1]])  # 1 mm, i posterior, j inferior
    dds, vds = [], []
    for i in (2, 3, 6, 7, 8, 9):
        im = np.asarray(Image.open(d / "images" / f"{i}.png").convert("L"), float)
        m = np.load(d / "masks" / f"{i}.npy")
        seg = segment(Scan(im.T[:, :, None], aff))
        lab = seg.labels[:, :, 0].T
        assert len(seg.levels) >= 5, (i, seg.levels)
        # level names: the lowest annotated disc is L5-S1 (S1 is annotated below it), the others
        # count upwards; each annotated disc that is segmented must carry its level's label
        cc, n = ndimage.label(m == 1)
        rows = ndimage.center_of_mass(m == 1, cc, range(1, n + 1))
        for k, j in enumerate(sorted(range(1, n + 1), key=lambda j: -rows[j - 1][0])):
            v = lab[cc == j]
            v = v[(v > 100) & (v < 130)]
            assert v.size or k > 0, (i, "L5-S1 not segmented")
            if v.size:
                assert np.bincount(v).argmax() == 124 - k, (i, k, np.bincount(v).argmax())
        # S1 (the lowest annotated vertebra) is ours: on image 9 a piece of the pelvic mass in front
        # of the sacrum, 52 mm below L5, had been taken for it (7 % of the annotated S1 labelled S1)
        cv, nv = ndimage.label(m == 2)
        rows = ndimage.center_of_mass(m == 2, cv, range(1, nv + 1))
        s1 = cv == 1 + int(np.argmax([r[0] for r in rows]))
        assert (lab[s1] == 26).mean() > 0.5, (i, (lab[s1] == 26).mean())
        dds.append(dice((lab > 100) & (lab < 130), m == 1))
        vds.append(dice((lab >= 1) & (lab <= 26), m == 2))
        assert dds[-1] > 0.60 and vds[-1] > 0.72, (i, dds[-1], vds[-1])
    assert np.mean(dds) > 0.69, dds
    assert np.mean(vds) > 0.79, vds


@pytest.mark.slow
def test_canal_kept_when_the_chain_holds_its_bodies():
    """The phantom in the real retest's first pose at 0.8 x 0.8 x 4 mm: the chain of bodies found 6
    against the canal column's 5 and won, and the canal was dropped with it: no canal label, and
    the discs' bulges were cut at the bodies' walls (L4-L5's 4.6 mm bulge measured 3.0 mm). The
    canal is now kept when the chain holds its bodies."""
    ph = phantom.default_phantom().replace(pose=((3.0, -2.0, 2.0), (2.0, -3.0, 1.5)))
    shape, aff = phantom.make_grid(fov_mm=(170.0, 220.0), center_mm=(0.0, 0.0, 10.0), spacing=(0.8, 0.8, 4.0),
                                   n_slices=11)
    img, truth = phantom.render_t2w(ph, shape, aff, snr=35, supersample=3, seed=12)
    seg = segment(img)
    assert seg.levels == LEVELS
    assert dice(truth == 61, seg.labels == 61) > 0.8
    tr = phantom.truth(ph, levels=("L4-L5",))["levels"]["L4-L5"]
    row = dm.measure(img, seg).set_index("level").loc["L4-L5"]
    assert abs(row.bulge_mm - tr["bulge_mm"]) < 0.5, (row.bulge_mm, tr["bulge_mm"])
