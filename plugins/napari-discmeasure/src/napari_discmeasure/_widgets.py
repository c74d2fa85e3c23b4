"""Dock widgets: segment, measure, T2 map, compare. Each calls the discmeasure public API in a
worker thread (the UI never freezes) and shows errors as napari notifications with the same
one-line messages as the CLI."""

from pathlib import Path
from typing import Optional

import numpy as np
from magicgui import magic_factory
from napari.qt.threading import thread_worker

from ._layers import canonical, from_napari_world, labels_layer, layer_to_scan, scan_to_layer, to_napari_world, transform_kwargs

import napari
from napari.layers import Image, Labels, Points


def _notify_errors(worker):
    from napari.utils.notifications import show_error

    def on_err(exc):
        show_error(str(exc) if str(exc) else type(exc).__name__)

    worker.errored.connect(on_err)
    return worker


def _add_layers(viewer, result):
    """Add LayerDataTuple(s) to the viewer."""
    if viewer is None or result is None:
        return
    items = result if isinstance(result, list) else [result]
    for data, kw, kind in items:
        getattr(viewer, f"add_{kind}")(data, **kw)


def _start(worker, viewer, on_result=None):
    """Connect results/errors and start the worker (the GUI thread stays free)."""
    _notify_errors(worker)
    worker.returned.connect(on_result or (lambda r: _add_layers(viewer, r)))
    worker.start()
    return worker


def _table_widget(df, title):
    from magicgui.widgets import Container, Label, Table

    cols = [c for c in df.columns if not c.endswith(("_x_mm", "_y_mm", "_z_mm"))]
    data = {c: [("" if (isinstance(v, float) and np.isnan(v)) else (round(v, 2) if isinstance(v, float) else v))
                for v in df[c]] for c in cols}
    return Container(widgets=[Label(value=title), Table(value=data)], labels=False)


def _dock(viewer, widget, name):
    if viewer is None:
        return
    try:
        viewer.window.add_dock_widget(widget, name=name, area="bottom")
    except Exception:  # noqa: BLE001 -- headless viewers without a window
        pass


@magic_factory(call_button="Segment", method={"choices": ["auto", "seeded"]})
def segment_widget(image: Image, seeds: Optional[Points] = None, method: str = "auto", viewer: napari.Viewer = None):
    """Segment discs and vertebral bodies (auto, or one point per disc in a Points layer)."""
    import discmeasure as dm

    scan = layer_to_scan(image)
    pts = None
    if method == "seeded":
        if seeds is None or len(seeds.data) == 0:
            from discmeasure.errors import SegmentationError

            raise SegmentationError("seeded segmentation needs a Points layer with one point per disc")
        # points are in the layer's data coordinates -> world (RAS mm)
        pts = from_napari_world(np.array([seeds.data_to_world(p) for p in seeds.data]))

    @thread_worker
    def work():
        seg = dm.segment(scan, method=method, seeds=pts) if method == "seeded" else dm.segment(scan)
        return labels_layer(seg, name=f"{image.name} labels")

    return _start(work(), viewer)


@magic_factory(call_button="Measure", export={"mode": "w", "filter": "*.csv"})
def measure_widget(image: Image, labels: Labels, band_mm: float = 5.0, export: Path = Path(""),
                   viewer: napari.Viewer = None):
    """Measure every level from the current labels; draw baselines and maximum bulges; table; export."""
    import discmeasure as dm

    scan = layer_to_scan(image)
    lab = np.asarray(labels.data)
    affine = labels.metadata.get("discmeasure", {}).get("affine", scan.affine)

    @thread_worker
    def work():
        seg = dm.segmentation.Segmentation(lab, np.asarray(affine), dm.segmentation.levels_of(lab), {}, "napari")
        df = dm.measure(scan, seg, band_mm=band_mm)
        if str(export) not in ("", "."):
            from discmeasure.atomic import write_text

            write_text(export, df.to_csv(index=False, float_format="%.4f"))
            write_text(Path(export).with_suffix(".json"), df.to_json(orient="records", indent=1))
        return df

    def shapes(df):
        lines, texts = [], []
        for _, r in df.iterrows():
            if not np.isfinite(r.c_pi_x_mm):
                continue
            cpi = [r.c_pi_x_mm, r.c_pi_y_mm, r.c_pi_z_mm]
            cps = [r.c_ps_x_mm, r.c_ps_y_mm, r.c_ps_z_mm]
            bp = [r.bulge_point_x_mm, r.bulge_point_y_mm, r.bulge_point_z_mm]
            lines.append(to_napari_world(np.array([cpi, cps])))
            texts.append(f"{r.level} baseline")
            # the bulge: from its foot on the baseline to the disc point
            a, b, q = np.array(cpi), np.array(cps), np.array(bp)
            t = np.clip(np.dot(q - a, b - a) / max(np.dot(b - a, b - a), 1e-9), 0, 1)
            lines.append(to_napari_world(np.array([a + t * (b - a), q])))
            texts.append(f"{r.level} {r.bulge_mm:.1f} mm")
        return lines, texts

    def done(df):
        lines, texts = shapes(df)
        if viewer is not None and lines:
            viewer.add_shapes(lines, shape_type="line", edge_color="cyan", edge_width=0.8, name="bulge baselines",
                              features={"label": texts}, text={"string": "{label}", "size": 8, "color": "yellow"})
        _dock(viewer, _table_widget(df, "discmeasure: per-level measurements"), "measurements")
        measure_widget.last_table = df

    return _start(work(), viewer, done)


@magic_factory(call_button="Fit T2", method={"choices": ["epg", "mono", "loglinear"]})
def t2_widget(multi_echo: Image, method: str = "epg", viewer: napari.Viewer = None):
    """Fit T2 on a multi-echo layer; add the T2 map (ms, magma 0-200) and the quality-flag map."""
    import discmeasure as dm

    scan = layer_to_scan(multi_echo)

    @thread_worker
    def work():
        fit = dm.fit_t2(scan, method=method)
        t2 = scan_to_layer(fit.to_scan("t2_ms"), f"T2 ms ({method})", colormap="magma", contrast_limits=(0, 200),
                           blending="additive")
        flags, faff = canonical(np.asarray(fit.flags).astype(np.int32), scan.affine)
        fl = (flags, {"name": "T2 quality flags", "visible": False, **transform_kwargs(faff)}, "labels")
        t2_widget.last_fit = fit
        return [t2, fl]

    return _start(work(), viewer)


@magic_factory(call_button="Compare")
def compare_widget(pre_image: Image, pre_labels: Labels, post_image: Image, post_labels: Labels,
                   viewer: napari.Viewer = None):
    """Measure both visits from their labels and show the per-level change table and plot."""
    import discmeasure as dm
    from discmeasure.pipeline import Result

    items = [(layer_to_scan(pre_image), np.asarray(pre_labels.data)), (layer_to_scan(post_image), np.asarray(post_labels.data))]

    @thread_worker
    def work():
        res = []
        for k, (scan, lab) in enumerate(items):
            seg = dm.segmentation.Segmentation(lab, np.asarray(scan.affine), dm.segmentation.levels_of(lab), {}, "napari")
            res.append(Result("napari", ("pre", "post")[k], scan, seg, dm.measure(scan, seg)))
        return dm.compare(res[0], res[1])

    def done(ch):
        compare_widget.last_changes = ch
        _dock(viewer, _table_widget(ch[["level", "bulge_mm_pre", "bulge_mm_post", "bulge_mm_pct", "height_middle_mm_delta",
                                        "level_match_ok"]], "pre/post change"), "changes")
        try:
            from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

            from discmeasure.report.qc import change_plot

            fig = change_plot(ch)
            _dock(viewer, FigureCanvasQTAgg(fig), "change plot")
        except Exception:  # noqa: BLE001 -- the table is the result; the plot is a convenience
            pass

    return _start(work(), viewer, done)
