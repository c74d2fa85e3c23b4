"""napari plugin on a real X server (pytest-xvfb) with shown viewers.

Every number the widgets produce is compared with the same discmeasure call made directly.
"""

import json
import subprocess
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari")

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "sample_scans"
pytestmark = pytest.mark.napari


def _nonblank(img):
    """Screenshot shows something: contrast and >2 % of pixels brighter than the background."""
    img = np.asarray(img)[..., :3].astype(float)
    return img.std() > 5 and (img.max(axis=-1) > 30).mean() > 0.02


def _corners(shape):
    return np.array(list(product(*[(0, n - 1) for n in shape[:3]])), float)


def _sorted_rows(a):
    a = np.round(np.asarray(a, float), 4)
    return a[np.lexsort(a.T[::-1])]


@pytest.fixture(scope="module")
def pre_study():
    import discmeasure as dm

    if not (SAMPLE / "pre").is_dir():
        pytest.skip("sample_scans/pre missing")
    return dm.load_study(SAMPLE / "pre")


def test_npe2_manifest_valid():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-discmeasure")
    assert pm.name == "napari-discmeasure"
    rd = pm.contributions.readers[0]
    assert rd.accepts_directories and {"*.nii", "*.nii.gz", "*.dcm", "*"} <= set(rd.filename_patterns)
    assert {w.display_name for w in pm.contributions.widgets} == {"Segment discs", "Measure discs", "T2 map", "Compare pre/post"}
    exe = Path(sys.executable).with_name("npe2")
    r = subprocess.run([str(exe), "validate", "napari-discmeasure"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_oblique_scan_layer_maps_voxels_to_world():
    """A rotated (oblique) scan: the layer transform reproduces the scan's voxel -> world map."""
    from napari.layers import Image

    from discmeasure import Scan
    from napari_discmeasure._layers import from_napari_world, layer_to_scan, scan_to_layer

    th = np.deg2rad(17.0)
    R = np.array([[np.cos(th), -np.sin(th), 0], [np.sin(th), np.cos(th), 0], [0, 0, 1]])
    # voxel axes ~ (A, -S, R) with spacings 0.8, 0.9, 3.5 and a 17 degree rotation about z
    M = R @ np.array([[0, 0, 3.5], [0.8, 0, 0], [0, -0.9, 0]])
    A = np.eye(4)
    A[:3, :3], A[:3, 3] = M, [-30.0, 12.0, 80.0]
    data = np.random.default_rng(0).random((20, 30, 5)).astype(np.float32)
    scan = Scan(data, A)
    data_l, kw, kind = scan_to_layer(scan, "oblique")
    layer = Image(data_l, **kw)
    ijk = np.array([[0, 0, 0], [19, 29, 4], [7, 11, 2]])
    world = scan.voxel_to_world(ijk)
    for p, w in zip(ijk, world):
        d = np.round(layer.world_to_data(np.asarray(w) @ np.array([[1, 0, 0], [0, 0, 1], [0, 1, 0]]).T)).astype(int)
        assert layer.data[tuple(d)] == data[tuple(p)]
        np.testing.assert_allclose(from_napari_world(layer.data_to_world(d)), w, atol=1e-6)
    back = layer_to_scan(layer)
    np.testing.assert_allclose(sorted(back.spacing), sorted(scan.spacing), rtol=1e-9)


def test_reader_layers_in_mm_and_overlay(make_napari_viewer, pre_study, tmp_path):
    import discmeasure as dm
    from discmeasure import Scan
    from napari_discmeasure._layers import from_napari_world, layer_to_scan

    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(SAMPLE / "pre"), plugin="napari-discmeasure")
    t2w = next(l for l in layers if "T2w" in l.name)
    me = next(l for l in layers if "multi-echo" in l.name)
    st = pre_study

    # scale = voxel spacing (mm) along the layer axes R, S, A; the echo axis is a leading slider
    np.testing.assert_allclose(sorted(t2w.scale), sorted(st.t2w.spacing), rtol=1e-6)
    np.testing.assert_allclose(t2w.scale, [4.0, 0.7, 0.7], rtol=1e-6)
    np.testing.assert_allclose(me.scale[1:], [4.0, 1.2, 1.2], rtol=1e-6)
    assert me.data.shape[0] == len(st.mese.echo_times_ms) == 10 and me.scale[0] == 1
    assert t2w.metadata["discmeasure"]["meta"]["series_uid"] == st.t2w.meta["series_uid"]
    for k in ("patient_name", "patient_id", "patient_birth_date"):
        assert k not in str(t2w.metadata) and k not in str(me.metadata)

    # world corners of each layer = world corners of its scan (through the affine)
    for layer, scan, lead in ((t2w, st.t2w, []), (me, st.mese, [0])):
        c_layer = [from_napari_world(layer.data_to_world(np.r_[lead, c])) for c in _corners(layer.data.shape[len(lead):])]
        np.testing.assert_allclose(_sorted_rows(c_layer), _sorted_rows(scan.voxel_to_world(_corners(scan.shape))), atol=1e-4)
    # and the two series overlay: a world point samples the same voxel value as the loaded scans
    w = st.t2w.voxel_to_world(np.array([[100, 150, 5]]))[0]
    from napari_discmeasure._layers import to_napari_world

    assert t2w.data[tuple(np.round(t2w.world_to_data(to_napari_world(w))).astype(int))] == st.t2w.data[100, 150, 5]
    wm = st.mese.voxel_to_world(np.array([[50, 90, 3]]))[0]
    assert me.data[tuple(np.round(me.world_to_data(np.r_[0, to_napari_world(wm)])).astype(int))] == st.mese.data[50, 90, 3, 0]

    # the same image as NIfTI with flipped + permuted voxel axes overlays the DICOM layer exactly
    arr = np.flip(np.transpose(np.asarray(st.t2w.data), (2, 0, 1)), axis=1)
    P = np.zeros((4, 4))
    P[1, 2] = P[2, 0] = P[3, 3] = 1
    P[0, 1], P[0, 3] = -1, st.t2w.shape[0] - 1  # new (k, i', j) -> old (i = n-1-i', j, k)
    aff = st.t2w.affine @ P
    np.testing.assert_allclose(aff @ [2, 3, 4, 1], st.t2w.affine @ [st.t2w.shape[0] - 1 - 3, 4, 2, 1])
    nii = tmp_path / "t2w.nii.gz"
    dm.save(Scan(arr, aff), nii)
    (nl,) = viewer.open(str(nii), plugin="napari-discmeasure")
    np.testing.assert_array_equal(np.asarray(nl.data), np.asarray(t2w.data))
    np.testing.assert_allclose(nl.scale, t2w.scale, rtol=1e-6)
    np.testing.assert_allclose(nl.translate, t2w.translate, atol=1e-4)

    # a series folder and a single DICOM file open too (the file as its one slice)
    (sl,) = viewer.open(str(SAMPLE / "pre" / "T2W_SAG"), plugin="napari-discmeasure")
    np.testing.assert_array_equal(np.asarray(sl.data), np.asarray(t2w.data))
    np.testing.assert_allclose(sl.translate, t2w.translate, atol=1e-6)
    one = sorted((SAMPLE / "pre" / "T2W_SAG").glob("*.dcm"))[0]
    (fl,) = viewer.open(str(one), plugin="napari-discmeasure")
    assert fl.data.shape == (1, *t2w.data.shape[1:])
    k = int(np.round(t2w.world_to_data(fl.data_to_world([0, 0, 0]))[0]))
    np.testing.assert_array_equal(np.asarray(fl.data)[0], np.asarray(t2w.data)[k])

    # radiological sagittal view (superior up, anterior left), also for a NIfTI in a new viewer
    assert tuple(viewer.scene.camera.orientation2d) == ("up", "left")
    v2 = make_napari_viewer(show=True)
    v2.open(str(nii), plugin="napari-discmeasure")
    assert tuple(v2.scene.camera.orientation2d) == ("up", "left")

    # sample data (File > Open Sample > discmeasure) = the reader on sample_scans/pre
    sample = viewer.open_sample("napari-discmeasure", "pre")
    s_t2w = next(l for l in sample if "T2w" in l.name)
    np.testing.assert_array_equal(np.asarray(s_t2w.data), np.asarray(t2w.data))
    np.testing.assert_allclose(s_t2w.scale, t2w.scale)
    assert any(l.data.ndim == 4 for l in sample)

    # back from a layer to a Scan: the very array and affine the library loaded (exact), so the
    # widgets compute on the same voxels as the CLI; the echo axis goes back last
    for layer, scan in ((t2w, st.t2w), (me, st.mese), (nl, dm.load(nii))):
        back = layer_to_scan(layer)
        np.testing.assert_array_equal(back.affine, scan.affine)
        np.testing.assert_array_equal(np.asarray(back.data), np.asarray(scan.data))
    assert layer_to_scan(me).echo_times_ms == st.mese.echo_times_ms

    viewer.dims.ndisplay = 2
    viewer.reset_view()
    assert _nonblank(viewer.screenshot(canvas_only=True))


def _run(qtbot, widget, timeout=120_000):
    worker = widget.run()
    assert worker is not None, widget.error
    # the work is not done in the GUI thread: run() returns at once, the button waits for the end
    assert widget.result is None and not widget.run_button.enabled
    qtbot.waitUntil(lambda: widget.result is not None or widget.error is not None, timeout=timeout)
    qtbot.waitUntil(lambda: widget.run_button.enabled, timeout=5_000)
    assert widget.error is None, widget.error
    assert widget.progress.value == widget.progress.max == widget.n_steps  # progress shown to the end
    assert widget.status.value == "done"
    return widget.result


def test_widgets_segment_measure_t2_compare(make_napari_viewer, qtbot, tmp_path, pre_study):
    import pandas as pd

    import discmeasure as dm
    from napari_discmeasure._layers import canonical, labels_layer, to_napari_world
    from napari_discmeasure._widgets import CompareWidget, MeasureWidget, SegmentWidget, T2Widget

    viewer = make_napari_viewer(show=True)
    pre = viewer.open(str(SAMPLE / "pre"), plugin="napari-discmeasure")
    t2w = next(l for l in pre if "T2w" in l.name)
    me = next(l for l in pre if "multi-echo" in l.name)
    scan = pre_study.t2w

    direct = dm.segment(scan)
    assert "L4-L5" in direct.levels
    seg_w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(seg_w)
    seg_w.image.value = t2w

    # --- seeded: one point per disc (world centroids of the library's discs), lowest = L5-S1
    cents = [scan.voxel_to_world(np.argwhere(direct.labels == dm.labels.disc_label_from_name(lv)).mean(0)[None])[0]
             for lv in direct.levels]
    pts = viewer.add_points(np.array([t2w.world_to_data(to_napari_world(c)) for c in cents]), name="seeds", **{
        k: getattr(t2w, k) for k in ("scale", "translate")})
    seg_w.reset_choices()
    seg_w.method.value, seg_w.seeds.value = "seeded", pts
    _run(qtbot, seg_w)
    seeded = dm.segment(scan, method="seeded", seeds=np.array(cents))
    np.testing.assert_array_equal(np.asarray(seg_w.labels_layer.data), labels_layer(seeded)[0])
    # seeds placed one level too low relabel every disc one level down
    seg_w.lowest.value = "L4-L5"
    seg_w.result = None
    _run(qtbot, seg_w)
    assert list(seg_w.segmentation.levels) == [dm.labels.disc_level_name(dm.labels.disc_label_from_name(lv) - 1)
                                               for lv in direct.levels]

    # --- segment (auto) = the library's segmentation, as an editable, coloured, named Labels layer
    # (replacing the seeded one: same layer name)
    seg_w.method.value = "auto"
    seg_w.result = None
    _run(qtbot, seg_w)
    lab = seg_w.labels_layer
    assert [layer.name for layer in viewer.layers].count(lab.name) == 1
    np.testing.assert_array_equal(np.asarray(lab.data), labels_layer(direct)[0])
    assert list(lab.features["name"][lab.features["index"] > 100]) == direct.levels
    c123 = np.asarray(lab.colormap.map(np.array([123])))[0]
    c122 = np.asarray(lab.colormap.map(np.array([122])))[0]
    assert c123[3] > 0 and not np.allclose(c123, c122)  # discs visible, levels told apart
    assert lab.selected_label == dm.labels.disc_label_from_name(direct.levels[0])  # paint brush = a disc
    names = viewer.layers[f"{t2w.name} labels levels"]
    assert set(names.features["level"]) == set(direct.levels)

    # --- measure: table = library, CSV/JSON exported atomically, lines at C_PI/C_PS and the bulge point
    m_w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(m_w)
    m_w.image.value, m_w.labels_in.value = t2w, lab
    m_w.export.value = tmp_path / "pre_measurements.csv"
    _run(qtbot, m_w)
    ref = dm.measure(scan, direct)
    df = m_w.table_df
    assert list(df.level) == list(ref.level)
    np.testing.assert_allclose(df.bulge_mm, ref.bulge_mm, atol=1e-9)
    np.testing.assert_allclose(df.height_middle_mm, ref.height_middle_mm, atol=1e-9)
    csv = pd.read_csv(tmp_path / "pre_measurements.csv")
    np.testing.assert_allclose(csv.bulge_mm, ref.bulge_mm, atol=1e-4)
    js = json.loads((tmp_path / "pre_measurements.json").read_text())
    assert [r["level"] for r in js] == list(ref.level)
    assert not list(tmp_path.glob("*.tmp*"))
    shapes = m_w.shapes_layer
    n_ok = int(np.isfinite(ref.c_pi_x_mm).sum() + np.isfinite(ref.bulge_point_x_mm).sum())
    assert len(shapes.data) == n_ok == 2 * len(ref)
    # a 2-D (S, A) layer: every level's lines are shown on every sagittal slice
    assert shapes.ndim == 2 and list(shapes.features["kind"]) == ["baseline", "bulge"] * len(ref)
    for k, (_, r) in enumerate(ref.iterrows()):
        base = np.array([shapes.data_to_world(p) for p in shapes.data[2 * k]])
        bulge = np.array([shapes.data_to_world(p) for p in shapes.data[2 * k + 1]])
        # (S, A) positions exact (napari stores shapes as float32: 1e-4 mm)
        np.testing.assert_allclose(base, to_napari_world([[r.c_pi_x_mm, r.c_pi_y_mm, r.c_pi_z_mm],
                                                          [r.c_ps_x_mm, r.c_ps_y_mm, r.c_ps_z_mm]])[:, 1:], atol=1e-4)
        np.testing.assert_allclose(bulge[1], to_napari_world([r.bulge_point_x_mm, r.bulge_point_y_mm, r.bulge_point_z_mm])[1:],
                                   atol=1e-4)
        # the drawn bulge segment (baseline foot -> disc point) has the measured length
        assert abs(np.linalg.norm(bulge[1] - bulge[0]) - r.bulge_mm) < 1e-3
        # its text gives the value, and the sagittal plane (R, mm) when that is off the midline
        assert shapes.features["plane_r_mm"][2 * k + 1] == pytest.approx(r.bulge_point_x_mm)
        assert shapes.features["label"][2 * k + 1].startswith(f"{r.bulge_mm:.1f} mm")
        assert ("(R " in shapes.features["label"][2 * k + 1]) == (abs(r.bulge_lr_offset_mm) >= 0.5)
    assert m_w.table.shape[0] == len(ref)

    # --- the labels measured, saved with them: NIfTI on the scan's grid, DICOM SEG on its series
    for name in ("pre_labels.nii.gz", "pre_labels.seg.dcm"):
        m_w.save_labels.value = tmp_path / name
        _run(qtbot, m_w)
    saved = dm.load(tmp_path / "pre_labels.nii.gz")
    np.testing.assert_array_equal(np.asarray(saved.data), direct.labels)
    np.testing.assert_allclose(saved.affine, scan.affine, atol=1e-5)
    import highdicom as hd

    back = hd.seg.segread(tmp_path / "pre_labels.seg.dcm")
    vol = back.get_volume(combine_segments=True)
    value_of = {int(s.SegmentNumber): int(s.SegmentLabel.rsplit("(", 1)[1].rstrip(")")) for s in back.SegmentSequence}
    arr = np.vectorize(lambda n: value_of.get(int(n), 0))(np.asarray(vol.array))
    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(vol.affine, float)
    ijk = np.rint(np.indices(arr.shape).reshape(3, -1).T @ (np.linalg.inv(scan.affine) @ ras)[:3, :3].T
                  + (np.linalg.inv(scan.affine) @ ras)[:3, 3]).astype(int)
    np.testing.assert_array_equal(arr.ravel(), direct.labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]])
    assert str(back.PatientID) == dm.pipeline.default_subject(scan)
    # and the table beside it as a DICOM SR whose groups reference that SEG's disc segments
    from discmeasure.io.dicom_sr import read_dicom_sr

    report = read_dicom_sr(tmp_path / "pre_labels.sr.dcm").set_index("level")
    assert list(report.index) == list(ref.level)
    assert set(report.seg_sop_instance_uid) == {back.SOPInstanceUID}
    np.testing.assert_allclose(report.bulge_mm, ref.bulge_mm, atol=1e-9)
    np.testing.assert_allclose(report.height_middle_mm, ref.height_middle_mm, atol=1e-9)
    for level, number in report.segment_number.items():
        assert back.SegmentSequence[int(number) - 1].SegmentLabel.startswith(f"{level} disc")
    # the reader opens that SEG as a labels layer, which measures as the library's labels
    from napari_discmeasure._widgets import _labels_snapshot, _seg_from_labels

    (seg_layer,) = viewer.open(str(tmp_path / "pre_labels.seg.dcm"), plugin="napari-discmeasure")
    assert seg_layer._type_string == "labels"
    np.testing.assert_array_equal(_seg_from_labels(scan, _labels_snapshot(seg_layer)).labels, direct.labels)
    viewer.layers.remove(seg_layer)
    # cleared fields read as the current folder: nothing is written (was "<cwd>.csv" beside it)
    m_w.save_labels.value, m_w.export.value = "", ""
    stray = Path(str(Path.cwd()) + ".csv")
    assert not stray.exists()
    _run(qtbot, m_w)
    assert not stray.exists()

    # --- T2 map + per-ROI table = library (mono fit: fast)
    t_w = T2Widget(viewer)
    viewer.window.add_dock_widget(t_w)
    t_w.multi_echo.value, t_w.method.value = me, "mono"
    t_w.anatomy.value, t_w.roi_labels.value = t2w, lab
    _run(qtbot, t_w)
    fit = dm.fit_t2(pre_study.mese, method="mono")
    t2l = t_w.t2_layer
    # the map is the library's fit, voxel for voxel, shown on the R, S, A grid of the layers
    np.testing.assert_array_equal(np.asarray(t2l.data), canonical(np.asarray(fit.t2_ms), fit.affine)[0])
    np.testing.assert_allclose(t2l.scale, me.scale[1:], rtol=1e-6)
    np.testing.assert_allclose(t2l.translate, me.translate[1:], atol=1e-6)
    assert t2l.colorbar.visible and viewer.layers.selection.active is t2l
    # the maps sit above the images and below the labels / level names / bulge marks
    idx = viewer.layers.index
    assert idx(me) < idx(t_w.flags_layer) < idx(t2l) < min(idx(lab), idx(m_w.shapes_layer))
    assert t2l.colormap.name == "magma" and tuple(t2l.contrast_limits) == (0, 250)
    np.testing.assert_array_equal(np.asarray(t_w.flags_layer.data), canonical(np.asarray(fit.flags), fit.affine)[0])
    ref_t2 = dm.measure(scan, direct, t2=fit)
    np.testing.assert_allclose(t_w.table_df.t2_np_ms, ref_t2.t2_np_ms, rtol=1e-9)
    assert 60 < np.nanmedian(ref_t2.t2_np_ms) < 200  # phantom NP T2 in the physiological range

    # --- compare pre/post = discmeasure.compare on the same visits
    post = viewer.open(str(SAMPLE / "post"), plugin="napari-discmeasure")
    post_t2w = next(l for l in post if "T2w" in l.name)
    post_scan = dm.load_study(SAMPLE / "post").t2w
    post_seg = dm.segment(post_scan)
    data, kw, _ = labels_layer(post_seg, name="post labels")
    post_lab = viewer.add_labels(data, **kw)
    c_w = CompareWidget(viewer)
    viewer.window.add_dock_widget(c_w)
    c_w.pre_image.value, c_w.pre_labels.value = t2w, lab
    c_w.post_image.value, c_w.post_labels.value = post_t2w, post_lab
    # the viewer stays responsive during the longest run (measure x 2 + registration): a 20 ms
    # timer keeps firing; run in the GUI thread, the computation would stop it for nearly the
    # whole run (the bound is relative, so a loaded CI machine does not make it flaky)
    from qtpy.QtCore import QTimer

    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    t0 = time.perf_counter()
    _run(qtbot, c_w, timeout=180_000)
    timer.stop()
    t1 = time.perf_counter()
    gaps = np.diff([t0, *ticks, t1])
    assert gaps.max() < 0.3 * (t1 - t0), f"GUI blocked for {gaps.max():.2f} s during a {t1 - t0:.1f} s run"
    from discmeasure.pipeline import Result

    ref_ch = dm.compare(Result("s", "pre", scan, direct, ref), Result("s", "post", post_scan, post_seg, dm.measure(post_scan, post_seg)))
    ch = c_w.changes
    assert list(ch.level) == list(ref_ch.level) == direct.levels
    np.testing.assert_allclose(ch.bulge_mm_pct, ref_ch.bulge_mm_pct, atol=1e-9)
    assert (ch.bulge_mm_delta < 0).sum() >= 1  # the phantom's post visit has smaller bulges at some level
    assert len(c_w.figure.axes[0].patches) == 2 * len(ch)
    # the flags use the widget's bulge RC: the measured default, then a site's own 0.5 mm
    assert list(ch.bulge_mm_within_repeatability) == list(ref_ch.bulge_mm_within_repeatability)
    c_w.bulge_rc.value = 0.5
    _run(qtbot, c_w, timeout=180_000)
    beyond = ~c_w.changes.set_index("level").bulge_mm_within_repeatability.astype(bool)
    assert list(beyond[beyond].index) == list(ch.level[ch.bulge_mm_delta.abs() >= 0.5]), c_w.changes
    assert beyond["L4-L5"]  # the designed 1.1 mm reduction

    # --- a correction with the paint tool is what gets measured: erase the tip of the L4-L5
    # bulge (brush, label 0) on its sagittal slice and measure again
    from napari_discmeasure._layers import from_napari_world

    r45 = ref.set_index("level").loc["L4-L5"]
    tip = to_napari_world([r45.bulge_point_x_mm, r45.bulge_point_y_mm, r45.bulge_point_z_mm])
    viewer.dims.set_point(viewer.dims.ndim - 3, tip[0])
    before = np.asarray(lab.data).copy()
    lab.brush_size, lab.n_edit_dim = 7, 2
    # painting while a measurement runs does not change that measurement (the worker got a copy)
    m_w.result = None
    assert m_w.run() is not None
    lab.paint(lab.world_to_data(tip), 0)
    qtbot.waitUntil(lambda: m_w.result is not None or m_w.error is not None, timeout=120_000)
    qtbot.waitUntil(lambda: m_w.run_button.enabled, timeout=5_000)
    assert m_w.error is None, m_w.error
    np.testing.assert_allclose(m_w.table_df.bulge_mm, ref.bulge_mm, atol=1e-9)
    changed = np.argwhere(np.asarray(lab.data) != before)
    assert len(changed) > 0 and set(before[tuple(changed.T)]) <= {123, 61}
    # the same edit made on the library's own array, through world coordinates only
    src = np.round(scan.world_to_voxel(from_napari_world(np.array([lab.data_to_world(c) for c in changed])))).astype(int)
    edited = direct.labels.copy()
    edited[tuple(src.T)] = 0
    ref_ed = dm.measure(scan, dm.segment(scan, method="labels", labels=edited, convention="discmeasure"))
    m_w.result = None
    _run(qtbot, m_w)
    np.testing.assert_allclose(m_w.table_df.bulge_mm, ref_ed.bulge_mm, atol=1e-9)
    b45 = m_w.table_df.set_index("level").bulge_mm
    assert b45["L4-L5"] < r45.bulge_mm - 0.1  # the edit mattered

    # segmenting again never throws the corrected labels away: the new result goes beside them
    edited_now = np.asarray(lab.data).copy()
    seg_w.result = None
    _run(qtbot, seg_w)
    assert lab in viewer.layers and seg_w.labels_layer is not lab and seg_w.labels_layer.name != lab.name
    np.testing.assert_array_equal(np.asarray(lab.data), edited_now)
    np.testing.assert_array_equal(np.asarray(seg_w.labels_layer.data), labels_layer(direct)[0])
    assert f"{seg_w.labels_layer.name} levels" in viewer.layers and f"{lab.name} levels" in viewer.layers

    viewer.dims.ndisplay = 2
    viewer.reset_view()
    assert _nonblank(viewer.screenshot(canvas_only=True))


def test_body_fraction_travels_with_the_labels_layer(pre_study):
    """The automatic segmentation's body partial volume (read by the heights) goes into the Labels
    layer and back, so napari measures what the library measures; once a body is painted it is
    dropped and the heights come from the labels."""
    from napari.layers import Labels

    import discmeasure as dm
    from discmeasure.measurements.core import _body_fraction
    from napari_discmeasure._layers import labels_layer
    from napari_discmeasure._widgets import _labels_snapshot, _seg_from_labels

    scan = pre_study.t2w
    aff = np.asarray(scan.affine, float)
    seg = dm.segment(scan)
    assert seg.body_fraction is not None
    data, kw, _ = labels_layer(seg)
    layer = Labels(data, **kw)
    back = _seg_from_labels(scan, _labels_snapshot(layer))
    np.testing.assert_array_equal(back.labels, seg.labels)
    np.testing.assert_array_equal(_body_fraction(back, back.labels, aff), seg.body_fraction)
    # a disc voxel erased: the bodies, and their fraction, still hold
    disc_vox = np.argwhere(layer.data == 123)[0]
    layer.data[tuple(disc_vox)] = 0
    edited = _seg_from_labels(scan, _labels_snapshot(layer))
    assert _body_fraction(edited, edited.labels, aff) is not None
    # a body voxel painted as disc: the fraction no longer applies
    body_vox = np.argwhere(layer.data == 23)[0]
    layer.data[tuple(body_vox)] = 123
    edited = _seg_from_labels(scan, _labels_snapshot(layer))
    assert _body_fraction(edited, edited.labels, aff) is None


def test_errors_become_notifications(make_napari_viewer, qtbot, pre_study):
    """Bad input: no traceback, the library's one-line message in a napari notification."""
    import discmeasure as dm
    from discmeasure.errors import DiscmeasureError
    from napari.utils.notifications import notification_manager
    from napari_discmeasure._widgets import MeasureWidget, SegmentWidget, T2Widget

    viewer = make_napari_viewer(show=True)
    pre = viewer.open(str(SAMPLE / "pre"), plugin="napari-discmeasure")
    t2w = next(l for l in pre if "T2w" in l.name)
    seen = []
    notification_manager.notification_ready.connect(lambda n: seen.append(str(n.message)))

    # empty labels: the library refuses them; the same message reaches the user
    empty = viewer.add_labels(np.zeros(t2w.data.shape, np.int32), name="empty", metadata=dict(t2w.metadata),
                              scale=t2w.scale, translate=t2w.translate)
    with pytest.raises(DiscmeasureError) as ei:
        dm.segment(pre_study.t2w, method="labels", labels=np.zeros(pre_study.t2w.shape, np.int16), convention="discmeasure")
    m_w = MeasureWidget(viewer)
    m_w.image.value, m_w.labels_in.value = t2w, empty
    m_w.run()
    qtbot.waitUntil(lambda: m_w.error is not None, timeout=30_000)
    assert m_w.error == str(ei.value)
    qtbot.waitUntil(lambda: any(str(ei.value) in s for s in seen), timeout=5_000)

    # seeded without points: refused before any thread starts
    s_w = SegmentWidget(viewer)
    s_w.image.value, s_w.method.value = t2w, "seeded"
    assert s_w.run() is None and "Points layer" in s_w.error

    # a single-echo image is not a multi-echo series
    t_w = T2Widget(viewer)
    t_w.multi_echo.value = t2w
    assert t_w.run() is None and "not a multi-echo series" in t_w.error
    assert all("patient" not in s.lower() for s in seen)


def test_uncertainty_in_measure_and_compare(make_napari_viewer, qtbot, pre_study):
    """"uncertainty moves" N: Measure adds each level's SDs, as the library's with_uncertainty on the
    same labels (their body partial volume moved with them); Compare flags each change against
    the level's own MDC95: on the sample pair only the designed L4-L5 reduction is beyond it.
    N = 1 is refused before any thread starts, with the library's message."""
    import discmeasure as dm
    from discmeasure.uncertainty import with_uncertainty
    from napari_discmeasure._layers import labels_layer
    from napari_discmeasure._widgets import CompareWidget, MeasureWidget

    viewer = make_napari_viewer(show=True)
    layers = {}
    for tp in ("pre", "post"):
        opened = viewer.open(str(SAMPLE / tp), plugin="napari-discmeasure")
        image = next(l for l in opened if "T2w" in l.name)
        scan = dm.load_study(SAMPLE / tp).t2w
        data, kw, _ = labels_layer(dm.segment(scan), name=f"{tp} labels")
        layers[tp] = (image, viewer.add_labels(data, **kw), scan)

    m_w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(m_w)
    m_w.image.value, m_w.labels_in.value = layers["pre"][0], layers["pre"][1]
    m_w.uncertainty.value = 1
    assert m_w.run() is None and "2 to 8" in m_w.error
    m_w.uncertainty.value = 2
    _run(qtbot, m_w)
    # the library on the same labels, given (moved with the image, not segmented again) with the
    # automatic segmentation's body partial volume
    from dataclasses import replace

    auto = dm.segment(pre_study.t2w)
    given = replace(dm.segment(pre_study.t2w, method="labels", labels=auto.labels, convention="discmeasure"),
                    body_fraction=auto.body_fraction, bodies_at_creation=auto.bodies_at_creation)
    ref = with_uncertainty(pre_study.t2w, given, dm.measure(pre_study.t2w, given), n_moves=2)
    df = m_w.table_df
    assert list(df.level) == list(ref.level)
    for c in ("bulge_sd_mm", "height_middle_sd_mm", "uncertainty_n"):
        np.testing.assert_allclose(df[c], ref[c], atol=1e-9, err_msg=c)
    assert (df.uncertainty_n == 3).all() and (df.bulge_sd_mm > 0).all()
    assert "bulge_sd_mm" in m_w.table.column_headers
    # the bulge marks carry the SD: "4.4 ± 0.1 mm"
    bulge_texts = [t for t, k in zip(m_w.shapes_layer.features["label"], m_w.shapes_layer.features["kind"]) if k == "bulge"]
    assert [t.split(" mm")[0] for t in bulge_texts] == [f"{b:.1f} ± {sd:.1f}" for b, sd in zip(ref.bulge_mm, ref.bulge_sd_mm)]

    c_w = CompareWidget(viewer)
    viewer.window.add_dock_widget(c_w)
    c_w.pre_image.value, c_w.pre_labels.value = layers["pre"][0], layers["pre"][1]
    c_w.post_image.value, c_w.post_labels.value = layers["post"][0], layers["post"][1]
    c_w.uncertainty.value = 4
    _run(qtbot, c_w, timeout=300_000)
    ch = c_w.changes.set_index("level")
    beyond = ch.index[~ch.bulge_mm_within_uncertainty.astype(bool)].tolist()
    assert beyond == ["L4-L5"], ch[["bulge_mm_delta", "bulge_mm_mdc95"]]
    assert ch.bulge_mm_within_repeatability.astype(bool).all()
    assert "bulge_mm_mdc95" in c_w.table.column_headers
    assert c_w.progress.max == 5 and c_w.progress.value == 5
    # the plot marks that change: "†" = beyond the level's own MDC95 (its legend in the title)
    ax = c_w.figure.axes[0]
    marked = [t.get_text() for t in ax.texts if "†" in t.get_text()]
    assert len(marked) == 1 and marked[0].startswith(f"{ch.loc['L4-L5', 'bulge_mm_pct']:+.0f}%"), [t.get_text() for t in ax.texts]
    assert "MDC95" in ax.get_title()
