"""Findings of a QA walkthrough of the plugin (2026-11-25); each test fails on the code before.

Closing the viewer while a widget worked aborted Python; the automatic segmentation's QC flags
(sacrum_not_confirmed, ...) were replaced by "imported" in every table; two visits' T2 maps had
one name and replaced each other; a 2-D Points layer as seeds gave a matmul error; an unwritable
export place failed after the work with an OS error naming a temporary file; labels of another
visit were measured on this one without a word.
"""

import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari")

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "sample_scans"
pytestmark = pytest.mark.napari


@pytest.fixture(scope="module")
def pre_study():
    import discmeasure as dm

    if not (SAMPLE / "pre").is_dir():
        pytest.skip("sample_scans/pre missing")
    return dm.load_study(SAMPLE / "pre")


def test_closing_the_viewer_while_a_widget_works_does_not_abort(tmp_path):
    script = textwrap.dedent(f"""
        import time
        import napari
        from qtpy.QtWidgets import QApplication
        from napari_discmeasure._widgets import SegmentWidget

        v = napari.Viewer(show=True)
        layers = v.open({str(SAMPLE / "pre")!r}, plugin="napari-discmeasure")
        w = SegmentWidget(v)
        v.window.add_dock_widget(w)
        w.image.value = next(l for l in layers if "T2w" in l.name)
        w.run()
        t0 = time.time()
        while time.time() - t0 < 0.3:
            QApplication.processEvents(); time.sleep(0.02)
        v.close()
        t0 = time.time()
        while time.time() - t0 < 15:  # the worker ends after the widget is gone
            QApplication.processEvents(); time.sleep(0.05)
        print("survived")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "xcb")})
    assert r.returncode == 0 and "survived" in r.stdout, (r.returncode, r.stderr[-2000:])
    assert "has been deleted" not in r.stderr, r.stderr[-2000:]


def test_unedited_segmentation_keeps_its_qc_flags(pre_study):
    """Measured from its unedited layer, a segmentation keeps its own flags; once painted, the
    labels are the user's ("imported")."""
    import discmeasure as dm
    from napari.layers import Labels
    from napari_discmeasure._layers import labels_layer
    from napari_discmeasure._widgets import _data_hash, _labels_snapshot, _seg_from_labels, META_KEY

    scan = pre_study.t2w
    auto = dm.segment(scan)
    flagged = replace(auto, qc={lv: {"confidence": 0.5, "flags": ["sacrum_not_confirmed"]} if lv == "L5-S1" else q
                                for lv, q in auto.qc.items()})
    data, kw, _ = labels_layer(flagged, name="labels")
    layer = Labels(data, **kw)
    layer.metadata[META_KEY]["data_hash"] = _data_hash(layer.data)  # as the widget adds it
    seg = _seg_from_labels(scan, _labels_snapshot(layer))
    assert seg.qc["L5-S1"]["flags"] == ["sacrum_not_confirmed"]
    assert seg.method.startswith("labels")  # moved with the image for the uncertainty, not segmented again
    row = dm.measure(scan, seg).set_index("level").loc["L5-S1"]
    assert "segmentation: sacrum_not_confirmed" in row.qc_flags.split(";") and "imported" not in row.qc_flags
    # painted: the flags of the automatic result no longer describe these labels
    painted = np.array(layer.data)
    painted[tuple(np.argwhere(painted == 124)[0])] = 0
    layer.data = painted
    seg2 = _seg_from_labels(scan, _labels_snapshot(layer))
    assert seg2.qc["L5-S1"]["flags"] == ["imported"]


def _wait(qtbot, w, timeout=120_000):
    qtbot.waitUntil(lambda: w.result is not None or w.error is not None, timeout=timeout)
    qtbot.waitUntil(lambda: w.run_button.enabled, timeout=10_000)


def test_t2_maps_of_two_layers_do_not_replace_each_other(make_napari_viewer, qtbot):
    from napari_discmeasure._widgets import T2Widget

    viewer = make_napari_viewer(show=True)
    mes = []
    for tp in ("pre", "post"):
        layers = viewer.open(str(SAMPLE / tp), plugin="napari-discmeasure")
        mes.append(next(l for l in layers if "multi-echo" in l.name))
    t = T2Widget(viewer)
    t.method.value = "mono"
    for me in mes:
        t.multi_echo.value = me
        t.result = None
        t.run()
        _wait(qtbot, t)
        assert t.error is None, t.error
    for me in mes:
        assert f"{me.name} T2 ms (mono)" in viewer.layers and f"{me.name} T2 quality flags (mono)" in viewer.layers


def test_bad_seeds_and_unwritable_exports_refused_before_the_work(make_napari_viewer, tmp_path, pre_study):
    import discmeasure as dm
    from napari_discmeasure._layers import labels_layer
    from napari_discmeasure._widgets import MeasureWidget, SegmentWidget

    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(SAMPLE / "pre"), plugin="napari-discmeasure")
    t2w = next(l for l in layers if "T2w" in l.name)
    s = SegmentWidget(viewer)
    pts = viewer.add_points(np.array([[-66.0, -28.0], [-40.0, -20.0]]), name="flat seeds")
    s.reset_choices()
    s.image.value, s.method.value, s.seeds.value = t2w, "seeded", pts
    assert s.run() is None and "2-D" in s.error and "3-D" in s.error, s.error

    data, kw, _ = labels_layer(dm.segment(pre_study.t2w), name="pre labels")
    lab = viewer.add_labels(data, **kw)
    m = MeasureWidget(viewer)
    m.reset_choices()
    m.image.value, m.labels_in.value = t2w, lab
    m.export.value = tmp_path / "nowhere" / "m.csv"
    assert m.run() is None and "does not exist" in m.error and "export CSV" in m.error, m.error
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root): the rest is for other users")
        m.export.value = locked / "m.csv"
        assert m.run() is None and "not writable" in m.error, m.error
    finally:
        locked.chmod(0o700)


def test_root_cannot_write_into_proc_either(make_napari_viewer, pre_study):
    """As root every folder is 'writable' by os.access; a place the OS refuses still gives one
    line naming the chosen file (not the temporary file), after the work."""
    import discmeasure as dm
    from napari_discmeasure._layers import labels_layer
    from napari_discmeasure._widgets import MeasureWidget

    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(SAMPLE / "pre"), plugin="napari-discmeasure")
    t2w = next(l for l in layers if "T2w" in l.name)
    data, kw, _ = labels_layer(dm.segment(pre_study.t2w), name="pre labels")
    lab = viewer.add_labels(data, **kw)
    m = MeasureWidget(viewer)
    m.reset_choices()
    m.image.value, m.labels_in.value = t2w, lab
    m.export.value = "/proc/napqa.csv"
    w = m.run()
    if w is None:  # refused before the work (not root)
        assert "/proc" in m.error, m.error
        return
    import time

    from qtpy.QtWidgets import QApplication

    t0 = time.time()
    while m.error is None and m.result is None and time.time() - t0 < 120:
        QApplication.processEvents()
        time.sleep(0.05)
    assert m.error is not None and "/proc/napqa.csv" in m.error and ".tmp" not in m.error and "Errno" not in m.error, m.error


def test_labels_of_another_series_warn(make_napari_viewer, qtbot):
    from napari.utils.notifications import notification_manager
    from napari_discmeasure._widgets import MeasureWidget, SegmentWidget

    viewer = make_napari_viewer(show=True)
    imgs = {}
    for tp in ("pre", "post"):
        layers = viewer.open(str(SAMPLE / tp), plugin="napari-discmeasure")
        imgs[tp] = next(l for l in layers if "T2w" in l.name)
    s = SegmentWidget(viewer)
    s.image.value = imgs["post"]
    s.run()
    _wait(qtbot, s)
    assert s.error is None, s.error
    seen = []
    notification_manager.notification_ready.connect(lambda n: seen.append(str(n.message)))
    m = MeasureWidget(viewer)
    m.reset_choices()
    m.image.value, m.labels_in.value = imgs["pre"], s.labels_layer
    m.run()
    _wait(qtbot, m)
    qtbot.waitUntil(lambda: any("another series" in x for x in seen), timeout=5_000)
    # the post image with its own labels: no such warning
    seen.clear()
    m.image.value = imgs["post"]
    m.result = None
    m.run()
    _wait(qtbot, m)
    assert not any("another series" in x for x in seen), seen
