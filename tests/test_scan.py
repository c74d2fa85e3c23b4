import numpy as np
import pytest

import discmeasure
from discmeasure import Scan
from discmeasure.errors import GeometryError, InputError, DiscmeasureError


def test_spacing_orientation_oblique():
    rot = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]], float)  # i->A, j->S, k->R
    aff = np.eye(4)
    aff[:3, :3] = rot * [0.6, 0.7, 4.0]
    aff[:3, 3] = [10, -20, 30]
    s = Scan(np.zeros((3, 4, 5), np.float32), aff)
    assert s.spacing == pytest.approx((0.6, 0.7, 4.0))
    assert s.orientation == ("A", "S", "R")
    assert s.axis_closest_to("x") == 2
    xyz = s.voxel_to_world([[1, 2, 3]])
    assert np.allclose(s.world_to_voxel(xyz), [[1, 2, 3]])
    assert np.allclose(xyz, [[10 + 12, -20 + 0.6, 30 + 1.4]])


def test_nifti_round_trip_exact(tmp_path):
    rng = np.random.default_rng(0)
    aff = np.array([[0, -0.5, 0.1, 3], [0.01, 0, 3.9, -7], [0.6, 0, 0, 11], [0, 0, 0, 1]], float)
    data = rng.normal(size=(5, 6, 7, 4)).astype(np.float32)
    s = Scan(data, aff, echo_times_ms=[10, 20, 30, 40], meta={"series_description": "T2 map", "patient_name": "X^Y"})
    assert "patient_name" not in s.meta and s.phi["patient_name"] == "X^Y"
    assert "X^Y" not in repr(s)
    p = tmp_path / "a.nii.gz"
    s.save(p)
    back = discmeasure.load(p)
    assert np.array_equal(np.asarray(back.data), data)
    assert np.allclose(back.affine, aff, atol=1e-6)
    assert back.echo_times_ms == pytest.approx((10, 20, 30, 40))
    assert "X^Y" not in (tmp_path / "a.json").read_text()


@pytest.mark.parametrize(
    "aff",
    [np.zeros((4, 4)), np.full((4, 4), np.nan), np.eye(3), np.diag([1, 1, 0, 1.0])],
)
def test_bad_affine(aff):
    with pytest.raises(GeometryError):
        Scan(np.zeros((2, 2, 2)), aff)


def test_bad_data():
    with pytest.raises(InputError):
        Scan(np.zeros((0, 2, 2)), np.eye(4))
    with pytest.raises(InputError):
        Scan(np.zeros((2, 2, 2, 2, 2)), np.eye(4))
    with pytest.raises(InputError):
        Scan(np.zeros((2, 2, 2, 3)), np.eye(4), echo_times_ms=[1, 2])


def test_echo_and_2d():
    s = Scan(np.arange(24.0).reshape(2, 3, 4), np.eye(4))
    assert s.shape == (2, 3, 4)
    s2 = Scan(np.zeros((5, 6)), np.eye(4))
    assert s2.shape == (5, 6, 1)
    m = Scan(np.ones((2, 2, 2, 3)) * [1, 2, 3], np.eye(4), echo_times_ms=[5, 10, 15])
    assert m.echo(2).data.max() == 3 and m.echo(2).meta["echo_time_ms"] == 15


def test_error_message_format():
    e = InputError("no DICOM files found", path="/x/y", hint="point to the series folder")
    assert str(e) == "/x/y: no DICOM files found (point to the series folder)"
    assert isinstance(e, DiscmeasureError)


def test_import_does_not_pull_gui():
    import subprocess
    import sys

    code = "import sys, discmeasure; discmeasure.Scan; assert not any(m.startswith(('napari','PyQt5','qtpy','PySide')) for m in sys.modules), sorted(sys.modules)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_are_the_functions_even_after_submodule_imports():
    import importlib

    import discmeasure as dm

    for mod in ("discmeasure.comparison", "discmeasure.segmentation", "discmeasure.measurements",
                "discmeasure.pipeline", "discmeasure.t2", "discmeasure.io"):
        importlib.import_module(mod)
    for name in ("compare", "segment", "measure", "analyze", "fit_t2", "load", "load_study", "cohort_summary", "rois",
                 "repeatability_coefficient"):
        assert callable(getattr(dm, name)) and not isinstance(getattr(dm, name), type(dm)), name


def test_reprs_summarise_instead_of_printing_arrays(sample_scans):
    """repr(Result) / repr(Segmentation) / repr(T2Fit) printed whole label and map arrays."""
    import discmeasure as dm

    res = dm.analyze(sample_scans / "pre")
    for obj in (res, res.segmentation, res.t2):
        text = repr(obj)
        assert len(text) < 600 and "array(" not in text and "\n" not in text, text
    assert "L4-L5" in repr(res.segmentation) and res.subject in repr(res)


def test_input_errors_say_what_to_do(tmp_path):
    """Messages a smoke test found unhelpful: a picture file was "no DICOM images found", a folder
    of NIfTI files too, an empty file had no advice, and a scan with no lumbar disc failed with
    "segment the scan first" without naming the file."""
    import nibabel as nib

    import discmeasure as dm

    png = tmp_path / "slice.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(InputError, match="picture files carry no scanner geometry") as e:
        dm.load(png)
    assert str(e.value).startswith(str(png)) and "DICOM" in str(e.value)
    folder = tmp_path / "niftis"
    folder.mkdir()
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), folder / "t2.nii.gz")
    with pytest.raises(DiscmeasureError, match="give one of them, e.g. t2.nii.gz"):
        dm.load(folder)
    (tmp_path / "empty.nii.gz").write_bytes(b"")
    with pytest.raises(InputError, match="copy the file again"):
        dm.load(tmp_path / "empty.nii.gz")
    # a volume without spine: the pipeline's error names the file
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.random((40, 64, 64)).astype(np.float32), np.diag([1.0, 1.0, 1.0, 1.0])),
             tmp_path / "noise.nii.gz")
    with pytest.raises(DiscmeasureError) as e:
        dm.analyze(tmp_path / "noise.nii.gz")
    assert str(tmp_path / "noise.nii.gz") in str(e.value), str(e.value)
