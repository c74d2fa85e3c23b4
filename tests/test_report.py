"""QC pictures: rendered without pyplot state, never switching the program's matplotlib backend."""

import subprocess
import sys

CODE = """
import matplotlib
matplotlib.use("svg")
import pandas as pd
from discmeasure.report import qc
ch = pd.DataFrame({"level": ["L4-L5"], "bulge_mm_pre": [4.0], "bulge_mm_post": [3.1], "bulge_mm_pct": [-22.5],
                   "bulge_mm_within_repeatability": [False]})
png = qc.png_bytes(qc.change_plot(ch))
import matplotlib.pyplot as plt
print(matplotlib.get_backend(), png[:8] == b"\\x89PNG\\r\\n\\x1a\\n", len(plt.get_fignums()))
"""


def test_qc_keeps_the_host_programs_backend():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["svg", "True", "0"], out


def test_zoom_on_a_level_whose_bulge_was_withheld():
    """A level without a bulge point (bulge withheld for review) is zoomed on its disc centre, not
    skipped (it is the level a reader most needs to see) and not a crash on NaN axis limits."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np

    import discmeasure as dm
    from _blockspine import block_labels, sagittal_affine
    from discmeasure.report import qc

    aff, R = sagittal_affine()
    shape = (110, 140, 11)
    lab = block_labels(shape, aff, R, bulge_mm=3.0)
    scan = dm.Scan((lab > 0).astype(np.float32) * 100, aff)
    df = dm.measure(scan, lab, refine_edges=False)
    assert np.isfinite(df.bulge_point_y_mm).all()
    fig = qc.midsagittal_overlay(scan, lab, df)
    disc_y, disc_z = fig.level_centres["L4-L5"]
    withheld = df.copy()
    for c in [c for c in df.columns if c.startswith(("bulge", "c_pi", "c_ps"))]:
        withheld[c] = np.nan
    qc.zoom_overlay(fig, withheld, "L4-L5")
    (x1, x0), (z0, z1) = fig.axes[0].get_xlim(), fig.axes[0].get_ylim()
    assert x0 < disc_y < x1 and z0 < disc_z < z1
    # the posterior rim (behind the wall at y = -15 in the block's frame) is in the picture too
    qc.zoom_overlay(fig, df, "L4-L5")
    (w1, w0) = fig.axes[0].get_xlim()
    assert x0 < df.bulge_point_y_mm[0] < x1 and w0 < df.bulge_point_y_mm[0] < w1


def test_outputs_get_the_umask_permissions_not_private_temp_ones(tmp_path):
    """Outputs are written to temporary files/folders (0600/0700) and renamed: they used to keep
    those private modes, unreadable to colleagues on a shared server, unlike a plain open()."""
    import os

    from discmeasure.atomic import write_bytes
    from discmeasure.report.outputs import OUTPUT_MARKER, staged_dir

    old = os.umask(0o022)
    try:
        with staged_dir(tmp_path / "visit") as d:
            write_bytes(d / "a.csv", b"x\n")
        write_bytes(tmp_path / "b.png", b"png")
    finally:
        os.umask(old)
    assert (tmp_path / "visit" / OUTPUT_MARKER).is_file()
    assert oct((tmp_path / "visit").stat().st_mode & 0o777) == oct(0o755)
    assert oct((tmp_path / "visit" / "a.csv").stat().st_mode & 0o777) == oct(0o644)
    assert oct((tmp_path / "b.png").stat().st_mode & 0o777) == oct(0o644)


def test_a_single_oblique_slice_is_shown_whole():
    """The QC picture of one slice turned (2, -4, 7) degrees shows that slice in its own plane:
    a world plane x = x0 met it only along a strip (each disc a few pixels). Every disc is shown
    with about its area on the slice (1 mm pixels both)."""
    import numpy as np

    import discmeasure as dm
    from discmeasure import phantom
    from discmeasure.report import qc

    shape, aff = phantom.make_grid(fov_mm=(170.0, 220.0), center_mm=(0.0, 0.0, 10.0), spacing=(1.0, 1.0, 1.0),
                                   n_slices=1, rotation_deg=(2, -4, 7))
    img, lab = phantom.render_t2w(phantom.default_phantom(), shape, aff, snr=35, supersample=1, seed=5)
    shown_img, shown, _, _ = qc._sagittal_slice(img, lab)
    for d in (120, 121, 122, 123, 124):
        assert (shown == d).sum() >= 0.9 * (lab == d).sum(), (d, int((shown == d).sum()), int((lab == d).sum()))
    assert shown_img[shown > 0].min() > 0  # the image under the labels too
    fig = qc.midsagittal_overlay(img, lab, dm.measure(img, dm.segment(img, method="labels", labels=lab)))
    assert fig.axes[0].get_title().startswith("the slice")
