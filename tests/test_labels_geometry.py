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
