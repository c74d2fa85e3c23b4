"""napari plugin on a real X server (pytest-xvfb) with a shown viewer."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari")

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "sample_scans"
pytestmark = pytest.mark.napari


def _wait(qtbot, worker, timeout=120_000):
    with qtbot.waitSignal(worker.finished, timeout=timeout):
        worker.start() if not worker.is_running else None


def _nonblank(img):
    img = np.asarray(img)[..., :3].astype(float)
    return img.std() > 5 and (img.max(axis=-1) > 30).mean() > 0.02


def test_npe2_manifest_valid():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-discmeasure")
    assert pm.name == "napari-discmeasure"
    exe = Path(sys.executable).with_name("npe2")
    r = subprocess.run([str(exe), "validate", "napari-discmeasure"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_reader_layers_in_mm_and_overlay(make_napari_viewer):
    import discmeasure as dm

    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(SAMPLE / "pre"), plugin="napari-discmeasure")
    names = [l.name for l in layers]
    assert any("T2w" in n for n in names) and any("multi-echo" in n for n in names)
    st = dm.load_study(SAMPLE / "pre")
    t2w = next(l for l in layers if "T2w" in l.name)
    me = next(l for l in layers if "multi-echo" in l.name)
    from napari_discmeasure._layers import layer_to_scan, to_napari_world

    # layers run R, S, A: scale = the voxel spacing along those axes
    np.testing.assert_allclose(sorted(t2w.scale), sorted(st.t2w.spacing), rtol=1e-6)
    np.testing.assert_allclose(t2w.scale, [4.0, 0.7, 0.7], rtol=1e-6)
    np.testing.assert_allclose(me.scale[1:], [4.0, 1.2, 1.2], rtol=1e-6)
    assert me.data.shape[0] == 10  # echo slider axis
    # both layers map a world point to the voxel holding the same value as the loaded scans
    w = st.t2w.voxel_to_world(np.array([[100, 150, 5]]))[0]
    ijk = np.round(t2w.world_to_data(to_napari_world(w))).astype(int)
    assert t2w.data[tuple(ijk)] == st.t2w.data[100, 150, 5]
    wm = st.mese.voxel_to_world(np.array([[50, 90, 3]]))[0]
    ijk = np.round(me.world_to_data(np.r_[0, to_napari_world(wm)])).astype(int)
    assert me.data[tuple(ijk)] == st.mese.data[50, 90, 3, 0]
    back = layer_to_scan(t2w)
    np.testing.assert_allclose(back.voxel_to_world(ijk[None, 1:] * 0 + back.world_to_voxel(w[None])), w[None], atol=1e-6)
    for k in ("patient_name", "patient_id"):
        assert k not in str(t2w.metadata)
    viewer.dims.ndisplay = 2
    shot = viewer.screenshot(canvas_only=True)
    assert _nonblank(shot)


def test_widgets_segment_measure_t2_compare(make_napari_viewer, qtbot):
    import discmeasure as dm
    from napari_discmeasure._widgets import compare_widget, measure_widget, segment_widget, t2_widget

    viewer = make_napari_viewer(show=True)
    pre = viewer.open(str(SAMPLE / "pre"), plugin="napari-discmeasure")
    t2w = next(l for l in pre if "T2w" in l.name)
    me = next(l for l in pre if "multi-echo" in l.name)

    seg_w = segment_widget()
    viewer.window.add_dock_widget(seg_w)
    n0 = len(viewer.layers)
    seg_w(image=t2w, method="auto", viewer=viewer)
    qtbot.waitUntil(lambda: len(viewer.layers) > n0, timeout=120_000)
    lab = viewer.layers[-1]
    assert lab._type_string == "labels"
    scan = dm.load_study(SAMPLE / "pre").t2w
    direct = dm.segment(scan)
    from napari_discmeasure._layers import labels_layer

    np.testing.assert_array_equal(np.asarray(lab.data), labels_layer(direct)[0])
    assert "L4-L5" in list(lab.features["name"])

    m_w = measure_widget()
    viewer.window.add_dock_widget(m_w)
    n0 = len(viewer.layers)
    m_w(image=t2w, labels=lab, viewer=viewer)
    qtbot.waitUntil(lambda: len(viewer.layers) > n0, timeout=120_000)
    shapes = viewer.layers[-1]
    assert shapes._type_string == "shapes" and len(shapes.data) == 2 * len(direct.levels)
    df = measure_widget.last_table if hasattr(measure_widget, "last_table") else None
    ref = dm.measure(scan, direct)
    if df is not None:
        np.testing.assert_allclose(df.bulge_mm, ref.bulge_mm, atol=1e-6)

    t_w = t2_widget()
    n0 = len(viewer.layers)
    t_w(multi_echo=me, method="mono", viewer=viewer)
    qtbot.waitUntil(lambda: len(viewer.layers) >= n0 + 2, timeout=120_000)
    names = [l.name for l in viewer.layers]
    assert any(n.startswith("T2 ms") for n in names)
    t2l = next(l for l in viewer.layers if l.name.startswith("T2 ms"))
    med = np.nanmedian(np.asarray(t2l.data)[np.asarray(t2l.data) > 0])
    assert 20 < med < 300

    post = viewer.open(str(SAMPLE / "post"), plugin="napari-discmeasure")
    post_t2w = next(l for l in post if "T2w" in l.name)
    post_seg = dm.segment(dm.load_study(SAMPLE / "post").t2w)
    data, kw, _ = labels_layer(post_seg, name="post labels")
    post_lab = viewer.add_labels(data, **kw)
    c_w = compare_widget()
    compare_widget.last_changes = None
    c_w(pre_image=t2w, pre_labels=lab, post_image=post_t2w, post_labels=post_lab, viewer=viewer)
    qtbot.waitUntil(lambda: getattr(compare_widget, "last_changes", None) is not None, timeout=180_000)
    ch = compare_widget.last_changes
    assert list(ch.level) == direct.levels

    viewer.dims.ndisplay = 2
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True)
    assert _nonblank(shot)
