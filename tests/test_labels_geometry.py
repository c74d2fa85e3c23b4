import numpy as np
import pytest

from discmeasure import labels
from discmeasure.geometry import resample


def test_label_convention():
    assert labels.disc_label(23) == 123
    assert labels.disc_level_name(123) == "L4-L5"
    assert labels.disc_level_name(124) == "L5-S1"
    assert labels.disc_level_name(119) == "T12-L1"
    assert labels.disc_label_from_name("L5-S1") == 124
    assert labels.vertebra_name(26) == "S1"
    assert [n for n, _ in labels.LUMBAR_DISC_LEVELS] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]


def test_resample_world_consistent():
    # a box in world space, on two differently oriented grids, must land on the same world voxels
    src_aff = np.diag([1.0, 1.0, 1.0, 1.0])
    data = np.zeros((20, 20, 20), np.uint8)
    data[5:10, 6:12, 7:15] = 7
    dst_aff = np.array([[0, 0, -1, 19], [1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)
    out = resample(data, src_aff, (20, 20, 20), dst_aff, order=0)
    idx = np.argwhere(out == 7)
    world = idx @ dst_aff[:3, :3].T + dst_aff[:3, 3]
    assert world[:, 0].min() == 5 and world[:, 0].max() == 9
    assert world[:, 1].min() == 6 and world[:, 1].max() == 11
    assert world[:, 2].min() == 7 and world[:, 2].max() == 14
    assert (out == 7).sum() == (data == 7).sum()


def _random_affine(rng):
    from scipy.spatial.transform import Rotation

    a = np.eye(4)
    a[:3, :3] = Rotation.from_euler("xyz", rng.uniform(-30, 30, 3), degrees=True).as_matrix() * rng.uniform(0.5, 3, 3)
    a[:3, 3] = rng.uniform(-10, 10, 3)
    return a


def test_resample_mask_crop_equals_whole_volume():
    # resample_mask resamples only the mask's bounding box: it must give what thresholding the
    # linear resampling of the whole volume gives, for masks touching the edges and oblique grids
    from discmeasure.geometry import resample_mask

    rng = np.random.default_rng(7)
    for _ in range(100):
        shape = tuple(int(n) for n in rng.integers(1, 25, 3))
        m = np.zeros(shape, bool)
        lo = [int(rng.integers(0, s)) for s in shape]
        hi = [min(s, a + int(rng.integers(1, 9))) for a, s in zip(lo, shape)]
        m[tuple(slice(a, b) for a, b in zip(lo, hi))] = rng.random(tuple(b - a for a, b in zip(lo, hi))) > 0.3
        src, dst = _random_affine(rng), _random_affine(rng)
        dshape = tuple(int(n) for n in rng.integers(1, 30, 3))
        whole = resample(m.astype(np.float32), src, dshape, dst, order=1) >= 0.5 - 1e-6
        np.testing.assert_array_equal(resample_mask(m, src, dshape, dst), whole)


@pytest.mark.parametrize("oblique", [True, False])
def test_sample_planes_equal_whole_volume_interpolation(oblique):
    # sample_planes interpolates only the samples near each structure's bounding box; every sample
    # must equal the linear interpolation of the whole binary mask at that world point (an oblique
    # frame, and one along the voxel axes, where the box leaves no slack)
    from scipy import ndimage

    from discmeasure.measurements.frame import LevelFrame
    from discmeasure.measurements.planes import sample_planes

    rng = np.random.default_rng(3)
    lbl = np.zeros((12, 60, 50), np.int32)
    lbl[3:9, 10:40, 5:18] = 22
    lbl[2:10, 12:38, 19:25] = 122
    lbl[3:9, 11:41, 26:45] = 23
    aff = _random_affine(rng) if oblique else np.diag([3.0, 0.7, 0.7, 1.0])
    centre = aff[:3, :3] @ np.array([6.0, 25.0, 22.0]) + aff[:3, 3]
    u = np.linalg.qr(rng.normal(size=(3, 3)))[0] if oblique else np.eye(3)
    frame = LevelFrame("L3-L4", 122, 22, 23, centre, u[:, 0], u[:, 1], u[:, 2], True)
    st = sample_planes(lbl, aff, frame, lr_offsets=[-4.0, -1.0, 0.0, 2.5], ap_range=(-30, 30), si_range=(-25, 25),
                       step=0.5)
    inv = np.linalg.inv(aff)
    for name, value in (("disc", 122), ("upper", 22), ("lower", 23)):
        k, i, j = np.meshgrid(np.arange(len(st.lr)), np.arange(len(st.ap)), np.arange(len(st.si)), indexing="ij")
        w = frame.to_world(st.lr[k], st.ap[i], st.si[j])
        vox = w @ inv[:3, :3].T + inv[:3, 3]
        ref = ndimage.map_coordinates((lbl == value).astype(np.float32), vox.reshape(-1, 3).T, order=1,
                                      mode="constant", cval=0.0, prefilter=False).reshape(k.shape)
        assert st.masks[name].max() > 0.5
        np.testing.assert_allclose(st.masks[name], ref, atol=1e-5)


def test_single_slice_resamples_as_a_one_voxel_slab():
    """One oblique slice stands for a slab one voxel thick. Resampled onto itself after a turn in
    its plane (what the uncertainty's moves do), it came out blank: the slice-normal coordinate is
    off the single sample by rounding (1e-15) and scipy's "constant" mode then gives cval. Now a
    destination voxel within half a voxel of the slice takes its values, one further out cval."""
    from scipy.spatial.transform import Rotation

    R = Rotation.from_euler("xyz", [2.0, -4.0, 7.0], degrees=True).as_matrix()
    aff = np.eye(4)
    aff[:3, :3] = R @ np.diag([1.0, 1.0, 1.2])
    aff[:3, 3] = (-30.0, 12.0, 5.0)
    img = np.zeros((40, 30, 1), np.float32)
    img[10:30, 5:25, 0] = 7.0
    turn = np.eye(4)
    turn[:3, :3] = Rotation.from_rotvec(np.deg2rad(1.5) * aff[:3, 2] / 1.2).as_matrix()  # about the normal
    for order in (0, 1, 3):
        back = resample(img, turn @ aff, img.shape, aff, order=order)
        assert back[20, 15, 0] == pytest.approx(7.0, abs=1e-4), order
        assert np.count_nonzero(back) > 0.9 * np.count_nonzero(img), order
    for shift, inside in ((0.45, True), (0.55, False)):  # a destination slice moved along the normal
        moved = aff.copy()
        moved[:3, 3] += shift * aff[:3, 2]
        out = resample(img, aff, img.shape, moved, order=1)
        assert (out[20, 15, 0] == pytest.approx(7.0)) if inside else out[20, 15, 0] == 0.0, (shift, out[20, 15, 0])
    labels = (img > 0).astype(np.int16) * 123
    assert (resample(labels, turn @ aff, img.shape, aff, order=0) == 123).sum() > 0.9 * (labels == 123).sum()
