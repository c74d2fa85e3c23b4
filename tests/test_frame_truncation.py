"""Level frame under truncation by a narrow left-right field of view (issue 6, open).

Phantom with a known frame: the patient axially rotated by 8 degrees (so the true sagittal
plane is oblique to the slices), truth labels, 1 mm voxels. With a 70 mm wide field of view
every structure is imaged whole and u_lr is within 0.55 degrees of the truth. With a 30 mm wide,
6 mm off-centre field of view (discs and canal run into the outermost slices, as in the real
sct_t2_lumbar volume, 38 mm wide) the centroid-based frame is 14-18 degrees off: the imaged
parts' centroids shift towards the imaged side. Not fixed yet (docs/methods.md, "Level frame"):
the truncated case is a strict xfail, so it fails (XPASS) once a fix reaches the goal and the
marker must then be removed.
"""

from __future__ import annotations

import numpy as np
import pytest

from discmeasure import phantom
from discmeasure.measurements.frame import level_frame

ROT = (0.0, 0.0, 8.0)  # axial rotation of the patient (about world z, ~ SI)
DISCS = (120, 121, 122, 123, 124)


def _frame_errors_deg(n_slices: int, centre_x: float) -> list[float]:
    ph = phantom.default_phantom().replace(pose=(ROT, (0.0, 0.0, 0.0)))
    shape, aff = phantom.make_grid(spacing=(1.0, 1.0, 1.0), fov_mm=(100.0, 190.0), n_slices=n_slices,
                                   center_mm=(centre_x, -5.0, 10.0))
    _, labels, _ = phantom.tissue_fractions(ph, shape, aff, supersample=1)
    true_lr = phantom.rotation_matrix(*ROT) @ np.array([1.0, 0.0, 0.0])
    return [float(np.degrees(np.arccos(min(1.0, abs(float(level_frame(labels, aff, d).u_lr @ true_lr))))))
            for d in DISCS]


def test_frame_follows_axial_rotation_with_full_fov():
    err = _frame_errors_deg(70, 0.0)
    assert max(err) <= 1.0, err


@pytest.mark.xfail(strict=True, reason="issue 6: u_lr biased by truncation of disc/canal at the FOV edge (14-18 deg)")
def test_frame_within_2_deg_with_truncated_offcentre_fov():
    err = _frame_errors_deg(30, 6.0)
    assert max(err) <= 2.0, err


def test_discs_cut_by_the_field_of_view_are_flagged():
    """A disc whose labels reach the grid's outermost layer is flagged with the side(s) where it is
    cut (its volume is then a lower bound and its frame can turn); a disc inside is not."""
    import discmeasure as dm

    ph = phantom.default_phantom().replace(pose=(ROT, (0.0, 0.0, 0.0)))
    flags = {}
    for n, cx in ((70, 0.0), (30, 20.0)):
        shape, aff = phantom.make_grid(spacing=(1.0, 1.0, 1.0), fov_mm=(100.0, 190.0), n_slices=n,
                                       center_mm=(cx, -5.0, 10.0))
        _, labels, _ = phantom.tissue_fractions(ph, shape, aff, supersample=1)
        scan = dm.Scan(np.zeros(shape, np.float32), aff)
        df = dm.measure(scan, dm.segment(scan, method="labels", labels=labels), refine_edges=False)
        flags[n] = {r.level: [f for f in r.qc_flags.split(";") if f.startswith("disc_cut_by_fov")] for r in df.itertuples()}
    # 70 slices of 1 mm: no disc reaches the left or right edge (two reach the 100 mm AP field's front)
    assert all(not any(("L" in f.rsplit("_", 1)[1] or "R" in f.rsplit("_", 1)[1]) for f in fl) for fl in flags[70].values())
    assert flags[70]["L4-L5"] == [] and flags[70]["L2-L3"] == ["disc_cut_by_fov_A"]
    # 30 slices from x = 5 to 34 mm: every disc runs out on the left (patient's right is +x)
    assert all(any(f.rsplit("_", 1)[1].split("+")[0] == "L" for f in fl) for fl in flags[30].values()), flags[30]
