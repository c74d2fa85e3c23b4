"""Screenshots of the napari plugin for docs/napari.md (docs/img/napari_*.png).

Needs a real X display (Qt offscreen cannot draw image layers)::

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python docs/scripts/make_napari_figures.py

Every step is the one a user does: open the sample study with the discmeasure reader, segment,
seed, measure, fit T2, compare the two visits. Each widget runs its worker thread exactly as in
the GUI; the script waits for it and then takes the screenshot.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "img"
SAMPLE = ROOT / "sample_scans"


def wait(widget, timeout=300):
    """Process Qt events until the widget's worker has returned (or failed)."""
    from qtpy.QtWidgets import QApplication

    t0 = time.time()
    while widget.result is None and widget.error is None:
        QApplication.processEvents()
        time.sleep(0.02)
        if time.time() - t0 > timeout:
            raise TimeoutError(f"{type(widget).__name__} did not finish in {timeout} s")
    while not widget.run_button.enabled and time.time() - t0 < timeout:
        QApplication.processEvents()
        time.sleep(0.02)
    if widget.error:
        raise RuntimeError(widget.error)
    settle()


def settle(n=30):
    from qtpy.QtWidgets import QApplication

    for _ in range(n):
        QApplication.processEvents()
        time.sleep(0.01)


def run(widget):
    widget.result = None
    widget.run()
    wait(widget)


def close_notifications(viewer):
    """Close napari's toast notifications (e.g. the PyQt5 deprecation notice) before a screenshot."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for w in viewer.window._qt_window.findChildren(NapariQtNotification):
        w.close()


def shot(viewer, name, canvas_only=False):
    settle()
    close_notifications(viewer)
    settle(5)
    path = OUT / name
    img = viewer.screenshot(str(path), canvas_only=canvas_only)
    img = np.asarray(img)[..., :3].astype(float)
    if img.std() < 5:
        raise RuntimeError(f"{name}: blank screenshot")
    print(f"wrote {path.relative_to(ROOT)} {img.shape[1]}x{img.shape[0]}")


def remove_docks(viewer, keep=()):
    for name, dw in list(viewer.window.dock_widgets.items()):
        if name not in keep:
            viewer.window.remove_dock_widget(getattr(dw, "native", dw))


def zoom_to(viewer, centre_world_rsa, height_mm):
    """Centre the 2-D view on a world point (R, S, A) and show ``height_mm`` of it vertically."""
    cam = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    cam.center = tuple(centre_world_rsa[-2:])
    canvas_h = viewer.canvas.size[0] if hasattr(viewer, "canvas") else 600
    cam.zoom = canvas_h / height_mm


def main():
    import warnings

    # the PyQt5 deprecation toast would cover part of every screenshot
    warnings.filterwarnings("ignore", message=".*PyQt5 backend is deprecated.*")
    import napari

    import discmeasure as dm
    from napari_discmeasure._layers import to_napari_world
    from napari_discmeasure._widgets import CompareWidget, MeasureWidget, SegmentWidget, T2Widget

    OUT.mkdir(parents=True, exist_ok=True)
    viewer = napari.Viewer(show=True, title="napari - discmeasure")
    viewer.window._qt_window.resize(1500, 950)
    settle()

    # 1. open the study folder with the discmeasure reader
    pre = viewer.open(str(SAMPLE / "pre"), plugin="napari-discmeasure")
    t2w = next(layer for layer in pre if "T2w" in layer.name)
    me = next(layer for layer in pre if "multi-echo" in layer.name)
    viewer.dims.set_point(0, 0.0)  # mid-sagittal slice (R = 0 mm)
    viewer.layers.selection.active = t2w
    viewer.reset_view()
    shot(viewer, "napari_open.png")

    # 2. automatic segmentation
    seg_w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(seg_w, name="Segment discs", area="right")
    seg_w.image.value = t2w
    run(seg_w)
    lab = seg_w.labels_layer
    shot(viewer, "napari_segment.png")

    # 3. seeded segmentation: one click per disc (here: the disc centres a user would click)
    scan = dm.load_study(SAMPLE / "pre").t2w
    auto = seg_w.segmentation
    cents = [scan.voxel_to_world(np.argwhere(auto.labels == dm.labels.disc_label_from_name(lv)).mean(0)[None])[0]
             for lv in auto.levels]
    seeds = viewer.add_points(np.array([t2w.world_to_data(to_napari_world(c)) for c in cents]), name="seeds",
                              size=5, face_color="lime", border_color="black", scale=t2w.scale,
                              translate=t2w.translate, out_of_slice_display=True)
    viewer.dims.set_point(0, float(np.mean([to_napari_world(c)[0] for c in cents])))
    lab.visible = False
    viewer.layers[f"{lab.name} levels"].visible = False
    seg_w.reset_choices()
    seg_w.method.value, seg_w.seeds.value = "seeded", seeds
    seg_w.status.value = ""
    shot(viewer, "napari_seeds.png")
    run(seg_w)
    viewer.layers.remove(seeds)
    # measure on the automatic labels (the seeded ones are identical here: same discs)
    seg_w.method.value = "auto"
    run(seg_w)
    lab = seg_w.labels_layer
    viewer.dims.set_point(0, 0.0)
    settle()

    # 4. measure: baselines (cyan), maximum bulge (yellow), table, CSV/JSON export
    remove_docks(viewer)
    m_w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(m_w, name="Measure discs", area="right")
    m_w.image.value, m_w.labels_in.value = t2w, lab
    run(m_w)
    viewer.reset_view()
    shot(viewer, "napari_measure.png")
    # close-up of the lower lumbar discs on the slice of the L4-L5 maximum bulge
    df = m_w.table_df
    r = df.set_index("level").loc["L4-L5"]
    c = to_napari_world([r.bulge_point_x_mm, r.bulge_point_y_mm, r.bulge_point_z_mm])
    viewer.dims.set_point(0, float(c[0]))
    lab.opacity = 0.3
    zoom_to(viewer, c + np.array([0.0, 0.0, 12.0]), 100.0)
    shot(viewer, "napari_measure_zoom.png", canvas_only=True)
    lab.opacity = 0.45
    viewer.dims.set_point(0, 0.0)
    viewer.reset_view()

    # 5. T2 map (EPG fit) + per-ROI T2 table
    remove_docks(viewer)
    t_w = T2Widget(viewer)
    viewer.window.add_dock_widget(t_w, name="T2 map", area="right")
    t_w.multi_echo.value, t_w.method.value = me, "epg"
    t_w.anatomy.value, t_w.roi_labels.value = t2w, lab
    run(t_w)
    levels = viewer.layers[f"{lab.name} levels"]
    for layer in viewer.layers:
        layer.visible = layer in (t_w.t2_layer, lab, levels)
    lab.contour, lab.opacity = 1, 1.0  # disc outlines over the map
    viewer.layers.selection.active = t_w.t2_layer
    viewer.dims.set_point(0, 0.0)
    viewer.reset_view()
    shot(viewer, "napari_t2.png")
    lab.contour, lab.opacity = 0, 0.45

    # 6. compare pre/post: open the post study, segment it, compare
    remove_docks(viewer)
    for layer in list(viewer.layers):
        layer.visible = False
    post = viewer.open(str(SAMPLE / "post"), plugin="napari-discmeasure")
    post_t2w = next(layer for layer in post if "T2w" in layer.name)
    seg_post = SegmentWidget(viewer)
    seg_post.image.value = post_t2w
    run(seg_post)
    c_w = CompareWidget(viewer)
    viewer.window.add_dock_widget(c_w, name="Compare pre/post", area="right")
    c_w.pre_image.value, c_w.pre_labels.value = t2w, lab
    c_w.post_image.value, c_w.post_labels.value = post_t2w, seg_post.labels_layer
    c_w.uncertainty.value = 4  # each level's own MDC95: the designed L4-L5 change is marked beyond it
    run(c_w)
    viewer.dims.set_point(0, 0.0)
    viewer.reset_view()
    shot(viewer, "napari_compare.png")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
