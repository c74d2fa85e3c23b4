"""Library QA (inputs): findings 3, 4, 9, 11, 12 (save, segment) and 17.

3. ``Scan(array, affine)`` flagged the caller's own array read-only.
4. Scan (and so Result) could not be pickled (``mappingproxy``): no multiprocessing / joblib.
9. Offsets and normalised arrays changed levels and bulges silently: the automatic segmentation now
   refuses images that are clearly not magnitude images with background near 0.
11. One NaN voxel made the segmentation call the image "blank", one inf failed in numpy; a float
    NIfTI with NaN failed the same way. Non-finite voxels are now read as 0, with a warning.
12. ``dm.save(segmentation, ...)`` wrote the NIfTI and then crashed before its sidecar; wrong types
    gave raw AttributeErrors; ``segment(path)`` an AttributeError.
17. ``fit_t2`` with echo times in seconds gave T2 = 1 ms everywhere without a word.
"""

from __future__ import annotations

import json
import multiprocessing
import pickle
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

import discmeasure as dm
from discmeasure import Scan, phantom
from discmeasure.errors import FitError, InputError, SegmentationError


def _sct(testdata):
    import nibabel as nib

    img = nib.load(testdata / "spine" / "sct_t2_lumbar" / "t2_lumbar.nii.gz")
    return np.asarray(img.dataobj).astype(np.float32), img.affine


def _levels_bulges(result):
    df = result.measurements
    return list(df["level"]), df["bulge_mm"].to_numpy(float)


# ----------------------------------------------------------------------------- finding 3
def test_scan_leaves_the_callers_array_writable():
    for shape in [(6, 5, 4), (6, 5, 4, 3), (6, 5)]:  # 3-D and 4-D arrays were flagged (a 2-D one was spared)
        a = np.random.default_rng(0).random(shape)
        s = Scan(a, np.eye(4), echo_times_ms=[10, 20, 30] if len(shape) == 4 else None)
        assert a.flags.writeable, shape
        assert not s.data.flags.writeable
        assert np.shares_memory(a, s.data)  # still not copied
        a[(0,) * a.ndim] = 7.0  # the caller may keep using (and changing) its array
        assert s.data[0, 0, 0, ...].flat[0] == 7.0
        assert s.echo(0).data.flags.writeable is False


# ----------------------------------------------------------------------------- finding 4
def _make_scan(n):
    return Scan(np.full((3, 4, 5), float(n)), np.diag([0.5, 0.5, 4.0, 1.0]), meta={"series_description": "x"},
                phi={"patient_name": "A^B"})


def test_scan_pickles_with_meta_and_phi():
    s = Scan(np.arange(120.0).reshape(2, 3, 4, 5), np.diag([0.5, 0.6, 4.0, 1.0]), echo_times_ms=[10, 20, 30, 40, 50],
             meta={"series_description": "T2 MESE", "patient_id": "123"})
    b = pickle.loads(pickle.dumps(s))
    assert np.array_equal(b.data, s.data) and np.array_equal(b.affine, s.affine)
    assert b.echo_times_ms == s.echo_times_ms
    assert dict(b.meta) == dict(s.meta) and dict(b.phi) == {"patient_id": "123"}
    assert not b.data.flags.writeable and not b.affine.flags.writeable
    with pytest.raises(TypeError):
        b.meta["x"] = 1  # still a read-only mapping
    # a process pool returns Scans (the CLI registered a reducer for mappingproxy to get this)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as ex:
        got = ex.submit(_make_scan, 3).result()
    assert got.data.max() == 3 and got.meta["series_description"] == "x" and got.phi["patient_name"] == "A^B"


def test_result_pickles(sample_scans):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = dm.analyze(sample_scans / "pre")
    b = pickle.loads(pickle.dumps(r))
    assert type(b) is type(r)
    assert b.measurements.equals(r.measurements)
    assert np.array_equal(b.segmentation.labels, r.segmentation.labels)
    assert b.segmentation.levels == r.segmentation.levels
    assert np.array_equal(b.t2.t2_ms, r.t2.t2_ms, equal_nan=True)
    assert np.array_equal(b.scan.data, r.scan.data) and dict(b.scan.meta) == dict(r.scan.meta)
    assert b.provenance == r.provenance


# ----------------------------------------------------------------------------- finding 11
def test_nonfinite_voxels_are_background_in_the_analysis(sample_scans):
    s = dm.load(sample_scans / "pre" / "T2W_SAG")
    d = np.array(s.data, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = dm.analyze(Scan(d, s.affine))
    lv_ref, b_ref = _levels_bulges(ref)
    for bad in (np.nan, np.inf, -np.inf):
        x = d.copy()
        x[0, 0, 0] = bad
        x[-1, -1, :] = bad
        with pytest.warns(UserWarning, match=r"holds 12 NaN/infinite voxel"):
            r = dm.analyze(Scan(x, s.affine))
        lv, b = _levels_bulges(r)
        assert lv == lv_ref
        np.testing.assert_allclose(b, b_ref, atol=1e-9, equal_nan=True)
        assert np.isnan(x[0, 0, 0]) or np.isinf(x[0, 0, 0])  # the caller's array is not cleaned in place


@pytest.mark.testdata
def test_float_nifti_with_nan_is_segmented_like_a_clean_one(testdata, tmp_path):
    import nibabel as nib

    v, aff = _sct(testdata)
    clean = dm.segment(Scan(v, aff))
    x = v.copy()
    x[:2] = np.nan  # NaN padding of a resampled volume
    x[19, 128, 100] = np.inf
    nib.save(nib.Nifti1Image(x, aff), tmp_path / "nan.nii.gz")
    scan = dm.load(tmp_path / "nan.nii.gz")
    with pytest.warns(UserWarning, match=rf"holds {2 * 257 * 201 + 1} NaN/infinite"):
        seg = dm.segment(scan)
    assert seg.levels == clean.levels


def test_all_nonfinite_image_is_refused_as_such():
    with pytest.raises(InputError, match="only NaN/infinite"):
        dm.segment(Scan(np.full((40, 40, 3), np.nan), np.eye(4)))


# ----------------------------------------------------------------------------- finding 9
@pytest.mark.testdata
def test_non_magnitude_images_are_refused(testdata):
    v, aff = _sct(testdata)
    with pytest.raises(SegmentationError, match=r"magnitude images with background near 0 expected; its darkest "
                                                r"1 % lies at 69\.6 % of its brightest \(pass the scanner's magnitude"):
        dm.segment(Scan(v + 500, aff))
    with pytest.raises(SegmentationError, match=r"the image has 66\.4 % negative voxels"):
        dm.segment(Scan((v - v.mean()) / v.std(), aff))
    # the analysis names the input and refuses before any measurement
    with pytest.raises(SegmentationError, match="magnitude"):
        dm.analyze(Scan(v - v.mean(), aff))
    # seeded segmentation relabels the automatic one: same requirement
    with pytest.raises(SegmentationError, match="magnitude"):
        dm.segment(Scan(v + 500, aff), method="seeded", seeds=np.zeros((3, 3)))
    # imported labels do not read the intensities
    lab = np.zeros(v.shape, np.int16)
    lab[10:20, 100:110, 100:105] = 123
    assert dm.segment(Scan(v + 500, aff), method="labels", labels=lab, convention="discmeasure").levels == ["L4-L5"]


@pytest.mark.testdata
def test_magnitude_images_pass_with_a_wide_margin(testdata, sample_scans):
    from PIL import Image

    from discmeasure.segmentation.core import MAX_DARKEST_PCT, MAX_NEGATIVE_PCT, check_magnitude_image, \
        intensity_stats

    sp = testdata / "spine"
    images = {f"sample {v}": dm.load(sample_scans / v / "T2W_SAG") for v in ("pre", "post")}
    v, aff = _sct(testdata)
    images["sct lumbar"] = Scan(v, aff)
    images["tptbox"] = dm.load(sp / "tptbox_cervical" / "sub-mri_label-6_T2w.nii.gz")
    for i in range(10):
        im = np.asarray(Image.open(sp / "vesal_lumbar_2d" / "images" / f"{i}.png").convert("L"), float)
        images[f"vesal {i}"] = Scan(im.T[:, :, None], np.eye(4))
    shape, paff = phantom.make_grid(fov_mm=(170.0, 220.0), center_mm=(0.0, 0.0, 10.0), spacing=(0.7, 0.7, 4.0),
                                    n_slices=11)
    images["phantom snr 15"] = phantom.render_t2w(phantom.default_phantom(), shape, paff, snr=15, supersample=1,
                                                  seed=5)[0]
    for name, scan in images.items():
        neg, darkest = intensity_stats(scan.data)
        assert neg == 0.0, name
        assert darkest < MAX_DARKEST_PCT / 4, (name, darkest)  # at most 2.4 %
        check_magnitude_image(scan)
    # a spline-resampled volume rings below 0 near its edges (3.4-3.8 % negative): far from refused
    from scipy import ndimage

    neg, _ = intensity_stats(ndimage.zoom(v, (1.37, 0.73, 1.0), order=3))
    assert 0 < neg < MAX_NEGATIVE_PCT / 4


# ----------------------------------------------------------------------------- finding 17
def test_echo_times_in_seconds_are_refused(tmp_path):
    te_ms = 10.0 * np.arange(1, 9)
    data = 1000.0 * np.exp(-te_ms / 80.0) * np.ones((3, 4, 5, 1))
    # a BIDS sidecar's EchoTime is in seconds and is still read as such
    import nibabel as nib

    nib.save(nib.Nifti1Image(data.astype(np.float32), np.eye(4)), tmp_path / "mese.nii.gz")
    (tmp_path / "mese.json").write_text(json.dumps({"EchoTime": (te_ms / 1000).tolist()}))
    mese = dm.load(tmp_path / "mese.nii.gz")
    assert mese.echo_times_ms == pytest.approx(tuple(te_ms))
    assert np.nanmedian(dm.fit_t2(mese, method="mono", noise_sigma=0).t2_ms) == pytest.approx(80.0, rel=1e-3)
    # seconds given as milliseconds
    with pytest.raises(FitError, match=r"echo times are in ms \(got 0\.01-0\.08: seconds\? multiply by 1000\)"):
        dm.fit_t2(data, te_ms / 1000, method="mono")
    with pytest.raises(FitError, match="seconds"):
        dm.fit_t2(mese, te_ms / 1000, method="epg")
    with pytest.raises(InputError, match=r"echo times are in ms \(got 0\.01-0\.08: seconds\?"):
        Scan(data, np.eye(4), echo_times_ms=te_ms / 1000)


def test_fit_t2_refuses_a_path():
    with pytest.raises(InputError, match=r"dm\.load\(path\) first"):
        dm.fit_t2("mese_folder/")


# ----------------------------------------------------------------------------- finding 12
def test_segment_refuses_what_is_not_a_scan():
    with pytest.raises(InputError, match=r"series/: segment takes a Scan, not a path \(pass a Scan: dm\.load"):
        dm.segment("series/")
    with pytest.raises(InputError, match=r"got an array \(pass a Scan: dm\.Scan\(array, affine\)"):
        dm.segment(np.zeros((10, 10, 3)))
    with pytest.raises(InputError, match="got NoneType"):
        dm.segment(None)


def _small_segmentation():
    lab = np.zeros((8, 9, 10), np.int16)
    lab[2:5, 2:5, 2:4] = 23
    lab[2:5, 2:5, 4:5] = 122
    lab[2:5, 2:5, 5:7] = 22
    return dm.segment(Scan(np.ones((8, 9, 10)), np.diag([0.5, 0.5, 4.0, 1.0])), method="labels", labels=lab,
                      convention="discmeasure")


def test_save_a_segmentation(tmp_path):
    seg = _small_segmentation()
    p = dm.save(seg, tmp_path / "seg.nii.gz")
    back = dm.load(p)
    assert back.data.dtype == np.int16
    assert np.array_equal(np.asarray(back.data), seg.labels) and np.allclose(back.affine, seg.affine)
    assert json.loads((tmp_path / "seg.json").read_text())["SeriesDescription"].startswith("discmeasure labels")
    assert sorted(f.name for f in tmp_path.iterdir()) == ["seg.json", "seg.nii.gz"]  # no temporaries left


def test_save_refuses_other_types_and_writes_nothing_on_failure(tmp_path):
    from discmeasure.pipeline import Result

    scan = Scan(np.ones((4, 5, 6), np.float32), np.eye(4))
    with pytest.raises(InputError, match=r"got ndarray \(wrap it with its geometry first: dm\.Scan\(array, affine\)"):
        dm.save(np.ones((4, 5, 6)), tmp_path / "a.nii.gz")
    with pytest.raises(InputError, match="write_visit"):
        dm.save(Result(subject="s", timepoint="t", scan=scan, segmentation=None, measurements=None),
                tmp_path / "r.nii.gz")
    # a sidecar that cannot be built: neither the image nor the sidecar is written
    with pytest.raises(TypeError):
        dm.save(scan, tmp_path / "b.nii.gz", sidecar_extra={"bad": object()})
    assert list(tmp_path.iterdir()) == []


def test_analyze_measures_the_image_it_segmented_when_it_holds_nan(sample_scans):
    """``analyze`` reads NaN voxels as background before segmenting and measuring, so the signal
    ratio (which reads the image) is measured on the same image as the segmentation: a NaN block
    inside L4-L5's nucleus (2 voxels) left its ``sir_np_csf`` NaN (the median over the ROI)."""
    import warnings as w

    scan = dm.load(sample_scans / "pre" / "T2W_SAG")
    clean = dm.analyze(scan).measurements.set_index("level")
    seg = dm.segment(scan)
    d = np.array(scan.data, np.float32)
    np_vox = np.argwhere(dm.rois(scan, seg) == 1231)
    d[tuple(np_vox[:2].T)] = np.nan
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        got = dm.analyze(dm.Scan(d, scan.affine, meta=scan.meta)).measurements.set_index("level")
    assert sum("NaN/infinite" in str(c.message) for c in caught) == 1
    assert np.isfinite(got.loc["L4-L5", "sir_np_csf"])
    assert got.loc["L4-L5", "sir_np_csf"] == pytest.approx(clean.loc["L4-L5", "sir_np_csf"], rel=0.02)
