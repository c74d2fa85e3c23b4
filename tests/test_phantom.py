"""Phantom: written DICOM/NIfTI recovered exactly by our loader and by dcm2niix; truth consistency."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import discmeasure as dm
from discmeasure import phantom
from discmeasure.phantom.write import write_dicom_series


@pytest.fixture(scope="module")
def ph():
    return phantom.default_phantom()


@pytest.mark.parametrize("orient,rot", [("sagittal", (0, 0, 0)), ("sagittal", (7, -4, 11)), ("axial", (0, 5, 0))])
def test_dicom_geometry_round_trip_and_dcm2niix(tmp_path, ph, orient, rot):
    shape, aff = phantom.make_grid(orientation=orient, spacing=(0.9, 0.8, 3.5), fov_mm=(90, 110), n_slices=5,
                                   rotation_deg=rot)
    img, lab = phantom.render_t2w(ph, shape, aff, snr=None, supersample=1)
    write_dicom_series(img, tmp_path / "d", series_number=3, series_description="t2", study_uid="1.2.826.0.1.3680043.8.498.1")
    back = dm.load(tmp_path / "d")
    # same world for every voxel: compare canonical forms
    a = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(img.data), aff))
    b = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(back.data, np.float32), back.affine))
    np.testing.assert_allclose(a.affine, b.affine, atol=1e-4)
    np.testing.assert_allclose(np.asarray(a.dataobj), np.asarray(b.dataobj), rtol=2e-4, atol=0.05)
    exe = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    subprocess.run([exe, "-z", "y", "-b", "n", "-o", str(tmp_path), "-f", "ref", str(tmp_path / "d")], check=True,
                   capture_output=True)
    ref = nib.as_closest_canonical(nib.load(str(tmp_path / "ref.nii.gz")))
    np.testing.assert_allclose(ref.affine, a.affine, atol=1e-3)


def test_multiecho_nifti_sidecar_round_trip(tmp_path, ph):
    shape, aff = phantom.make_grid(spacing=(2.0, 2.0, 4.0), fov_mm=(60, 80), n_slices=3)
    mese, lab, b1 = phantom.render_mese(ph, shape, aff, n_echoes=8, supersample=1)
    phantom.write_nifti(mese, tmp_path / "me.nii.gz")
    side = json.loads((tmp_path / "me.json").read_text())
    assert side["EchoTime"] == pytest.approx([0.01 * (i + 1) for i in range(8)])
    back = dm.load(tmp_path / "me.nii.gz")
    assert back.echo_times_ms == pytest.approx(mese.echo_times_ms)
    np.testing.assert_allclose(back.affine, aff, atol=1e-5)


def test_truth_consistent_with_design(ph):
    tr = phantom.truth(ph)
    for lv, t in tr["levels"].items():
        hp, ha = ph.disc_heights[lv]
        assert hp - 0.6 < t["height_posterior_mm"] < t["height_anterior_mm"] < ha + 0.6
        assert t["bulge_mm"] == pytest.approx(ph.bulge_mm[lv], abs=0.7)
    # a bigger designed bulge gives a bigger true bulge, by the designed difference
    ph2 = ph.replace(bulge_mm={**ph.bulge_mm, "L4-L5": ph.bulge_mm["L4-L5"] - 1.0})
    t2 = phantom.truth(ph2, levels=("L4-L5",))["levels"]["L4-L5"]["bulge_mm"]
    assert tr["levels"]["L4-L5"]["bulge_mm"] - t2 == pytest.approx(1.0, abs=0.15)


def test_render_labels_match_truth_volumes(ph):
    shape, aff = phantom.make_grid(spacing=(1.0, 1.0, 2.0), fov_mm=(170, 220), n_slices=25)
    _, lab = phantom.render_t2w(ph, shape, aff, snr=None, supersample=2)
    assert {20, 21, 22, 23, 24, 26, 61, 120, 121, 122, 123, 124} <= set(np.unique(lab))


def test_truth_labels_leave_no_background_between_body_and_disc(ph):
    """A voxel split between a body and its disc is one of them, not background.

    With 2 sub-samples per axis, a face lying between the two sub-sample rows splits a voxel 4 : 4
    (in-plane). A label used to need a strict majority, so such voxels were background: a row of
    "background" between half of the endplates and their discs, counted against every
    segmentation (1677 voxels on the 0.7 x 0.7 x 4 mm grid).
    """
    shape, aff = phantom.make_grid(fov_mm=(170.0, 220.0), center_mm=(0.0, 0.0, 10.0), spacing=(0.7, 0.7, 4.0), n_slices=11)
    _, lab = phantom.render_t2w(ph, shape, aff, snr=None, supersample=2)
    lab = lab[:, :, 2:-2]  # (the outer slices hold the bodies' lateral walls: background inside them)
    body = (lab >= 20) & (lab <= 26)
    disc = (lab >= 120) & (lab <= 124)
    si = 1  # the grid's SI axis (sagittal: AP, SI, LR)
    assert abs(aff[2, si]) > 0.5
    # (away from the corners, where a face also meets the surroundings and background may win a
    # tie: labelled voxels within 2 voxels in AP and 1 in SI)
    gap = (lab == 0)
    for ax, reach in ((0, 2), (si, 1)):
        for r in range(1, reach + 1):
            gap &= (np.roll(lab, r, axis=ax) > 0) & (np.roll(lab, -r, axis=ax) > 0)
    up_body = np.roll(body, 1, axis=si) & np.roll(disc, -1, axis=si)
    down_body = np.roll(body, -1, axis=si) & np.roll(disc, 1, axis=si)
    assert (gap & (up_body | down_body)).sum() == 0


def test_sample_scans_match_truth_and_regenerate(sample_scans, tmp_path):
    st = dm.load_study(sample_scans / "pre")
    assert st.t2w.meta["series_number"] == 3 and st.mese.echo_times_ms == pytest.approx([10.0 * (i + 1) for i in range(10)])
    size = sum(f.stat().st_size for f in sample_scans.rglob("*") if f.is_file())
    assert size < 15e6


def test_listhesis_and_coronal_wedge_geometry(ph):
    """Pathology parameters move what they say: a listhesis displaces the upper body along the
    disc's AP axis (true posterior corners included); a coronal wedge makes the disc taller on
    the left and leans the spine above it to the right."""
    sk0 = ph.skeleton()
    c, R, hp, ha = sk0["discs"]["L4-L5"]
    antero = ph.replace(listhesis_mm={"L4-L5": 5.0})
    sk = antero.skeleton()
    step = (sk["bodies"]["L4"][0] - sk0["bodies"]["L4"][0]) @ R[:, 1]
    assert step == pytest.approx(5.0, abs=1e-6)
    np.testing.assert_allclose(sk["bodies"]["L5"][0], sk0["bodies"]["L5"][0])
    t0 = phantom.truth(ph, levels=("L4-L5",))["levels"]["L4-L5"]
    t1 = phantom.truth(antero, levels=("L4-L5",))["levels"]["L4-L5"]
    # the upper body's posterior-inferior corner moves 5 mm anteriorly (world +y, turned by the
    # disc's inclination), the lower body's stays
    d_pi = np.subtract(t1["c_pi_mm"], t0["c_pi_mm"]) @ R[:, 1]
    d_ps = np.subtract(t1["c_ps_mm"], t0["c_ps_mm"]) @ R[:, 1]
    assert d_pi == pytest.approx(5.0, abs=0.3) and d_ps == pytest.approx(0.0, abs=0.3)
    # the disc is sheared, not torn: disc label at the middle of its height over the whole span
    mid = c + R[:, 1] * np.linspace(-10, 10, 21)[:, None]
    assert (antero.classify(mid)[1] == 123).all()

    wedge = ph.replace(coronal_wedge_deg={"L3-L4": 6.0})
    c, R, hp, ha = wedge.skeleton()["discs"]["L3-L4"]
    s = np.linspace(-12, 12, 2401)

    def height_at(x):
        pts = c + x * R[:, 0] + s[:, None] * R[:, 2]
        return (wedge.classify(pts)[1] == 122).sum() * (s[1] - s[0])

    assert height_at(-15.0) - height_at(15.0) == pytest.approx(30 * np.tan(np.radians(6.0)), abs=0.2)
    assert wedge.skeleton()["bodies"]["L1"][0][0] > sk0["bodies"]["L1"][0][0] + 5.0
