"""Dock widgets: segment, measure, T2 map, compare.

Each widget only converts layers to discmeasure objects, calls the public discmeasure API in a
worker thread (``napari.qt.threading``, with a progress bar: the UI never freezes) and converts the
results back to layers and tables. Errors appear as napari notifications carrying the same
one-line messages as the CLI (``str(DiscmeasureError)``). No segmentation, measurement or fitting
code lives here.
"""

from __future__ import annotations

import contextlib
import weakref
from pathlib import Path

import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, ProgressBar, PushButton, SpinBox, Table

import napari
from napari.layers import Image, Labels, Points

from ._layers import (
    META_KEY,
    canonical,
    labels_colormap,
    labels_layer,
    labels_source,
    layer_to_scan,
    level_text_points,
    scan_to_layer,
    transform_kwargs,
)

__all__ = ["SegmentWidget", "MeasureWidget", "T2Widget", "CompareWidget", "error_message"]

#: table columns of the T2 widget (per-ROI T2 of each level, from discmeasure.measure)
T2_COLUMNS = ["level", "t2_np_ms", "t2_np_iqr_ms", "t2_af_anterior_ms", "t2_af_posterior_ms", "t2_disc_ms", "qc_flags"]
#: table columns of the compare widget
CHANGE_COLUMNS = ["level", "bulge_mm_pre", "bulge_mm_post", "bulge_mm_delta", "bulge_mm_pct", "bulge_mm_within_repeatability",
                  "bulge_mm_mdc95", "bulge_mm_within_uncertainty",
                  "height_middle_mm_pre", "height_middle_mm_post", "height_middle_mm_pct", "t2_np_ms_pct",
                  "t2_np_ms_within_repeatability", "level_match_ok",
                  "registration_translation_mm"]


def error_message(exc: BaseException) -> str:
    """The one-line message shown to the user (the CLI's ``error:`` text for discmeasure errors)."""
    from discmeasure.errors import DiscmeasureError

    if isinstance(exc, DiscmeasureError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _deleted(exc: BaseException) -> bool:
    """True for the RuntimeError Qt bindings raise on a deleted C++ object."""
    return isinstance(exc, RuntimeError) and "deleted" in str(exc)


def _flag_summary(seg) -> str:
    """The segmentation's per-level QC flags as one line ("L5-S1: sacrum_not_confirmed"), or ""."""
    qc = getattr(seg, "qc", None) or {}
    parts = [f"{lv}: {', '.join(q.get('flags', []))}" for lv, q in qc.items()
             if isinstance(q, dict) and [f for f in q.get("flags", []) if f not in ("imported", "seeded")]]
    return "; ".join(parts)


def _series_uid(image_layer):
    md = (image_layer.metadata.get(META_KEY) or {}) if image_layer is not None else {}
    return (md.get("meta") or {}).get("series_uid")


def _warn_other_series(image_layer, labels_layer):
    """A warning when a labels layer made on one series is measured on another (the labels of
    the other visit were measured on the wrong anatomy, silently)."""
    made_on = (labels_layer.metadata.get(META_KEY) or {}).get("image_series_uid")
    uid = _series_uid(image_layer)
    if made_on and uid and made_on != uid:
        from napari.utils.notifications import show_warning

        show_warning(f"labels '{labels_layer.name}' were made on another series than image '{image_layer.name}': "
                     "measured through world coordinates, but check that they lie on this image's anatomy")
        return True
    return False


def _check_writable(path, what: str):
    """An output file the user chose, checked before the work (an unwritable place failed after it,
    with an OS error naming a temporary file)."""
    import os

    from discmeasure.errors import OutputError

    if path is None:
        return None
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"{what}: is a folder", path=path, hint="choose a file name")
    if not parent.is_dir():
        raise OutputError(f"{what}: folder does not exist", path=parent, hint="choose an existing folder")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{what}: folder is not writable", path=parent, hint="choose another folder")
    return path


def _show_error(msg: str):
    from napari.utils.notifications import show_error

    show_error(msg)


def _table_data(df, columns=None) -> dict:
    """DataFrame -> {column: list of str} for a magicgui Table.

    Coordinates and columns without any value are hidden; numbers are shown with 2 decimals
    (the exported CSV/JSON and ``widget.table_df`` keep full precision).
    """
    cols = [c for c in (columns or df.columns) if c in df.columns and not c.endswith(("_x_mm", "_y_mm", "_z_mm"))]
    out = {}
    for c in cols:
        vals = []
        for v in df[c]:
            if isinstance(v, (np.bool_, bool)):
                vals.append("yes" if v else "no")
            elif isinstance(v, (float, np.floating)):
                vals.append("" if not np.isfinite(v) else f"{float(v):.2f}")
            elif isinstance(v, (int, np.integer)):
                vals.append(str(int(v)))
            else:
                vals.append("" if v is None else str(v))
        if c in ("level",) or any(x != "" for x in vals):
            out[c] = vals
    return out


#: tooltip of the widgets' "uncertainty moves" box
UNCERTAINTY_TIP = ("0: none. 2-8: measure each level again after that many small rigid moves of the image and its "
                   "labels (1.5 degrees, 1.5 mm; discmeasure.uncertainty) and add each measure's SD (bulge_sd_mm, ...); "
                   "Compare then flags each change against the level's own 95 % minimal detectable change. "
                   "About N times the measuring time.")


def _uncertainty_box():
    return SpinBox(value=0, min=0, max=8, label="uncertainty moves", tooltip=UNCERTAINTY_TIP)


def _labels_snapshot(labels_layer):
    """(copy of the label array, voxel -> RAS+ affine of that array, the segmentation's body
    partial volume and its bodies' digest or None, the segmentation's per-level QC while the layer
    is unedited or None), taken in the GUI thread so painting while a worker runs cannot change
    what it measures."""
    lab = np.array(labels_layer.data, copy=True)
    md = labels_layer.metadata.get(META_KEY)
    aff = np.asarray(md["affine"], float) if md else layer_to_scan(labels_layer).affine
    pv = (md["body_fraction"], md.get("bodies_at_creation")) if md and md.get("body_fraction") is not None else None
    # the segmentation's own QC flags, while the layer is as the segmentation made it
    made = md.get("data_hash") if md else None  # set when the widget added the layer
    qc = md.get("qc") if made is not None and made == _data_hash(lab) else None
    return lab, aff, pv, qc


def _seg_from_labels(scan, snapshot):
    """A discmeasure Segmentation from a Labels layer snapshot, on the image's grid.

    The array is imported through ``discmeasure.segment(method="labels")``. Labels made on the
    image's grid (the usual case: the layer only differs from the scan by axis order) are
    flipped/permuted back exactly; labels on another grid are moved through world coordinates
    (nearest neighbour). The automatic segmentation's body partial volume, kept in the layer's
    metadata, comes along when the labels come back exactly.
    """
    from dataclasses import replace

    import discmeasure as dm
    from discmeasure.geometry import resample

    from ._layers import reorient_to

    lab, aff, pv, qc = snapshot
    exact = reorient_to(lab, aff, scan.affine, scan.shape)
    on_grid = exact
    frac = None
    if exact is None:
        on_grid = resample(lab.astype(np.int32), aff, scan.shape[:3], scan.affine, order=0)
    elif pv is not None:
        frac = reorient_to(pv[0], aff, scan.affine, scan.shape)
    seg = dm.segment(scan, method="labels", labels=on_grid.astype(np.int16), convention="discmeasure")
    if qc is not None and exact is not None:
        # an unedited automatic/seeded result on this image: its own QC flags (the table said
        # "imported" for every level and lost e.g. sacrum_not_confirmed). The method stays the
        # import's: the widgets' uncertainty moves the labels with the image, it does not segment again
        seg = replace(seg, qc={lv: dict(q) for lv, q in qc.items()})
    if frac is None:
        return seg
    # the automatic segmentation's body partial volume goes with its labels; measure() uses it
    # only while the bodies are unedited (the digest taken when it was made)
    return replace(seg, body_fraction=frac, bodies_at_creation=pv[1])


class _Base(Container):
    """A run button, a progress bar and status line, a worker thread, errors as notifications.

    Progress is shown in the widget (step k of n and its name), not with napari's activity
    indicator: that animated GIF re-lays out the whole main window ~25 times a second while a
    worker runs (~30 ms each with software OpenGL, e.g. remote desktops), which took most of a
    CPU core away from the computation.
    """

    title = ""
    n_steps = 2

    def __init__(self, napari_viewer: napari.Viewer, widgets):
        self.viewer = napari_viewer
        self.run_button = PushButton(text=self.title)
        self.progress = ProgressBar(value=0, min=0, max=self.n_steps, label="progress")
        self.status = Label(value="")
        # a long message wraps instead of widening the dock (it squeezed the canvas for good)
        self.status.native.setWordWrap(True)
        self.status.native.setMinimumWidth(200)  # a few words per line, not one
        super().__init__(widgets=[*widgets, self.run_button, self.progress, self.status])
        self.run_button.changed.connect(self.run)
        self.worker = None
        self.result = None
        self.error = None
        ref = weakref.ref(self)

        def _reset(*_):
            w = ref()
            if w is not None:
                try:
                    w.reset_choices()
                except RuntimeError:  # the Qt widget is gone
                    pass

        for ev in (napari_viewer.layers.events.inserted, napari_viewer.layers.events.removed):
            ev.connect(_reset)

    def run(self, *_):
        """Start the work in a thread; returns the worker (None if the inputs are incomplete)."""
        from napari.qt.threading import thread_worker

        self.error = None
        self.result = None  # a run again: the last run's result is not this one's
        try:
            gen = self._prepare()
        except Exception as exc:  # noqa: BLE001 -- inputs the user must fix: one line, no traceback
            self._failed(exc)
            return None
        worker = thread_worker(gen, ignore_errors=True)()
        self.progress.max, self.progress.value = self.n_steps, 0
        worker.yielded.connect(self._step)
        worker.returned.connect(self._returned)
        worker.errored.connect(self._failed)
        worker.finished.connect(self._finished)
        self.run_button.enabled = False
        self._k = 0
        self._set_status("running...")
        self.worker = worker
        worker.start()
        return worker

    def _finished(self):
        try:
            self.run_button.enabled = True
        except RuntimeError as exc:
            self._orphaned(exc)

    def _step(self, text):
        """A worker step started: advance the bar (the first step shows 0 of n) and name it."""
        k = self._k = getattr(self, "_k", 0) + 1
        try:
            self.progress.value = min(k - 1, self.n_steps)
            self.status.value = f"{k}/{self.n_steps} {text}..."
        except RuntimeError as exc:  # the widget was closed (with the viewer) while the worker ran
            self._orphaned(exc)

    def _returned(self, value):
        self.result = value
        try:
            self.progress.value = self.n_steps
            self._show(value)
        except RuntimeError as exc:
            if _deleted(exc):
                return self._orphaned(exc)
            return self._failed(exc)
        except Exception as exc:  # noqa: BLE001
            return self._failed(exc)
        self._set_status("done" + self._done_note())

    def _done_note(self) -> str:
        """Text after "done" in the status line (a subclass's summary, e.g. the QC flags)."""
        return ""

    def _failed(self, exc):
        self.error = error_message(exc)
        self._set_status("error: " + self.error)
        _show_error(self.error)

    def _set_status(self, text):
        try:
            self.status.value = text
            self.status.tooltip = text  # the whole text, also when the line is wrapped
        except RuntimeError as exc:
            self._orphaned(exc)

    def _orphaned(self, exc):
        """The widget's Qt objects are gone (the viewer or dock was closed while the worker ran):
        stop listening. A Qt slot that raised here aborted the whole Python process (SIGABRT), so
        nothing is raised from here: another RuntimeError only stops this update."""
        if not _deleted(exc):
            return
        w = self.worker
        if w is not None:
            for sig, slot in ((w.yielded, self._step), (w.returned, self._returned), (w.errored, self._failed)):
                try:
                    sig.disconnect(slot)
                except (TypeError, RuntimeError, ValueError):
                    pass
            with contextlib.suppress(Exception):
                w.quit()

    def _add(self, items):
        """Add layers; a re-run replaces its earlier result, except a Labels layer edited since
        (painted corrections are never thrown away: the new result is added beside it)."""
        from napari.utils.notifications import show_info

        out = []
        for data, kw, kind in items:
            name = kw.get("name")
            if name in self.viewer.layers:
                old = self.viewer.layers[name]
                if _edited_since_added(old):
                    show_info(f"kept your edited layer '{name}'; the new result is added beside it")
                else:
                    self.viewer.layers.remove(name)
            layer = getattr(self.viewer, f"add_{kind}")(data, **kw)
            if kind == "labels":
                layer.metadata.setdefault(META_KEY, {})["data_hash"] = _data_hash(layer.data)
            out.append(layer)
        return out

    def _dock_table(self, df, columns, name):
        tbl = Table(value=_table_data(df, columns))
        tbl.read_only = True
        _show_text_as_is(tbl)
        self.table = tbl
        _replace_dock(self.viewer, tbl, name, "bottom")
        return tbl


def _data_hash(data) -> str:
    import hashlib

    arr = np.ascontiguousarray(np.asarray(data))
    return hashlib.blake2b(arr.tobytes() + str((arr.shape, arr.dtype.str)).encode(), digest_size=16).hexdigest()


def _edited_since_added(layer) -> bool:
    """True for a Labels layer whose data changed since this plugin added it."""
    h = (layer.metadata.get(META_KEY) or {}).get("data_hash")
    return h is not None and h != _data_hash(layer.data)


def _show_text_as_is(table):
    """Show the cells' text as given (magicgui's default delegate re-formats numbers to 4 decimals)."""
    from qtpy.QtWidgets import QStyledItemDelegate

    class _AsIs(QStyledItemDelegate):
        def displayText(self, value, locale):  # noqa: N802 -- Qt override
            return "" if value is None else str(value)

    qt_table = getattr(table.native, "_qwidget", table.native)
    if hasattr(qt_table, "setItemDelegate"):
        qt_table.setItemDelegate(_AsIs(qt_table))  # parented: lives as long as the table
    if hasattr(qt_table, "resizeColumnsToContents"):
        qt_table.resizeColumnsToContents()  # full column names


def _replace_dock(viewer, widget, name, area):
    """Dock ``widget`` as ``name``, replacing the dock of that name from an earlier run."""
    try:
        win = viewer.window
    except Exception:  # noqa: BLE001 -- a viewer model without a window: nothing to dock into
        return
    old = dict(win.dock_widgets).get(name)
    if old is not None:
        # dock_widgets holds the inner widgets; remove_dock_widget looks for the Qt widget
        win.remove_dock_widget(getattr(old, "native", old))
    win.add_dock_widget(widget, name=name, area=area)


def _layer_combo(viewer, kind, label, nullable=False):
    """A ComboBox listing the viewer's layers of one type (kept current as layers come and go)."""

    def choices(_widget):
        return [(layer.name, layer) for layer in viewer.layers if isinstance(layer, kind)]

    return ComboBox(choices=choices, label=label, nullable=nullable)


def _need(layer, what):
    from discmeasure.errors import InputError

    if layer is None:
        hint = (f"segment the image first (Segment widget) or open a label map, and choose it as '{what}'"
                if "labels" in what else f"open a study (File > Open) and choose the {what} layer")
        raise InputError(f"no {what} layer selected", hint=hint)
    return layer


class SegmentWidget(_Base):
    """Segment discs and vertebral bodies: automatic, or one point per disc from a Points layer.

    The result is an editable Labels layer (discmeasure convention, one colour per disc level,
    level names as layer features) and a Points layer writing the level names on the discs.
    Seeded mode: add a Points layer, click once inside each disc (any order); the lowest
    point is taken as ``lowest level``.
    """

    title = "Segment"
    n_steps = 2

    def __init__(self, napari_viewer: napari.Viewer):
        self.image = _layer_combo(napari_viewer, Image, "T2w image")
        self.method = ComboBox(choices=["auto", "seeded"], value="auto", label="method")
        self.seeds = _layer_combo(napari_viewer, Points, "seed points", nullable=True)
        self.lowest = ComboBox(choices=["L5-S1", "L4-L5", "L3-L4"], value="L5-S1", label="lowest seed is")
        super().__init__(napari_viewer, [self.image, self.method, self.seeds, self.lowest])

    def _done_note(self) -> str:
        flagged = _flag_summary(getattr(self, "segmentation", None))
        return f"; QC flags: {flagged}" if flagged else ""

    def _mark_source(self, layer):
        """Note on the labels layer which series it was made on (Measure warns on another one's)."""
        uid = _series_uid(self._image_layer)
        if uid:
            layer.metadata.setdefault(META_KEY, {})["image_series_uid"] = uid

    def _prepare(self):
        import discmeasure as dm
        from discmeasure.errors import SegmentationError

        image = _need(self.image.value, "T2w image")
        self._image_layer = image
        scan = layer_to_scan(image)
        method = self.method.value
        seeds = None
        if method == "seeded":
            pts_layer = self.seeds.value
            if pts_layer is None or len(pts_layer.data) == 0:
                raise SegmentationError("seeded segmentation needs a Points layer with one point per disc",
                                        hint="add a Points layer, click inside each disc, choose it as 'seed points'")
            from ._layers import from_napari_world

            if pts_layer.ndim != 3:
                raise SegmentationError(f"seed points layer '{pts_layer.name}' is {pts_layer.ndim}-D; seeds need 3-D "
                                        "points (R, S, A)", hint="add the Points layer while the image is shown, "
                                                                 "so its points get all three coordinates")
            seeds = from_napari_world(np.array([pts_layer.data_to_world(p) for p in pts_layer.data]))
        lowest = self.lowest.value
        name = f"{image.name} labels"

        def work():
            yield f"segmenting ({method})"
            if method == "seeded":
                seg = dm.segment(scan, method="seeded", seeds=seeds, lowest_level=lowest)
            else:
                seg = dm.segment(scan, method="auto")
            yield "building layers"
            return seg, labels_layer(seg, name=name)

        return work

    def _show(self, value):
        seg, (data, kw, kind) = value
        values = sorted(int(v) for v in np.unique(data) if v)
        kw = {**kw, "colormap": labels_colormap(values), "opacity": 0.45}
        self.labels_layer = self._add([(data, kw, kind)])[0]
        # the level names, above the labels so they stay readable (named after the layer actually
        # added: an edited earlier result is kept and the new one gets a suffix)
        txt = level_text_points(data, kw, name=f"{self.labels_layer.name} levels")
        if txt is not None:
            self._add([txt])
        self.segmentation = seg
        self._mark_source(self.labels_layer)
        flagged = _flag_summary(seg)
        if flagged:
            from napari.utils.notifications import show_warning

            show_warning(f"segmentation QC: {flagged} (docs/segmentation.md, step 6)")
        discs = [v for v in values if v > 100 and v != 61]
        if discs:  # the paint brush starts with a disc label, not 1 (which means nothing)
            self.labels_layer.selected_label = discs[0]
        self.viewer.layers.selection.active = self.labels_layer


class MeasureWidget(_Base):
    """Measure every level from the current Labels layer and image (discmeasure.measure).

    Draws each level's baseline C_PI -> C_PS (cyan) and the maximum-bulge segment from the
    baseline to the disc's most posterior point (red, with its value) as a 2-D Shapes layer
    shown on every sagittal slice, shows the per-level table, and exports it as CSV and JSON
    (written atomically) when a file is chosen. The labels measured can be saved with them: as
    NIfTI (``.nii.gz``) on the image's grid, or as a DICOM SEG (``.seg.dcm``) on the DICOM series
    the image was read from (pseudonymised; ``discmeasure.io.dicom_seg``), and then the table
    too, as a DICOM SR measurement report on the SEG's segments beside it (``<name>.sr.dcm``;
    ``discmeasure.io.dicom_sr``). With "uncertainty moves" N > 0 each level is measured again
    after N small rigid moves of the image and its labels and the table gains each measure's SD
    (``discmeasure.uncertainty.with_uncertainty``).
    """

    title = "Measure"
    n_steps = 2

    def __init__(self, napari_viewer: napari.Viewer):
        self.image = _layer_combo(napari_viewer, Image, "T2w image")
        self.labels_in = _layer_combo(napari_viewer, Labels, "labels")
        self.band_mm = FloatSpinBox(value=5.0, min=0.5, max=20.0, step=0.5, label="band (mm)")
        self.export = FileEdit(mode="w", filter="*.csv", label="export CSV (+JSON)", value="")
        self.save_labels = FileEdit(mode="w", filter="*.nii.gz *.seg.dcm", label="save labels", value="",
                                    tooltip="the labels measured: .nii.gz, or .seg.dcm (DICOM SEG on the image's series, "
                                            "and the table as a DICOM SR beside it: <name>.sr.dcm)")
        self.uncertainty = _uncertainty_box()
        super().__init__(napari_viewer, [self.image, self.labels_in, self.band_mm, self.uncertainty, self.export,
                                         self.save_labels])

    def _prepare(self):
        import discmeasure as dm

        image = _need(self.image.value, "T2w image")
        labels = _labels_snapshot(_need(self.labels_in.value, "labels"))
        scan = layer_to_scan(image)
        band = float(self.band_mm.value)
        from discmeasure.uncertainty import check_uncertainty, with_uncertainty

        n_moves = check_uncertainty(self.uncertainty.value)  # refused before any work

        export = _check_writable(_chosen_file(self.export), "export CSV")
        save = _check_writable(_chosen_file(self.save_labels), "save labels")
        _warn_other_series(image, self.labels_in.value)
        source = labels_source(image)
        self._image_layer = image
        self.n_steps = 3 if n_moves else 2

        def work():
            yield "measuring"
            seg = _seg_from_labels(scan, labels)
            df = dm.measure(scan, seg, band_mm=band)
            if n_moves:
                yield f"uncertainty ({n_moves} moved measurements)"
                df = with_uncertainty(scan, seg, df, n_moves=n_moves, band_mm=band)
            if export is not None or save is not None:
                yield "exporting"
            try:
                if save is not None:
                    write_labels(seg, scan, save, source, df)
                if export is not None:
                    write_table(df, export)
            except OSError as exc:  # one line, naming the file chosen (not a temporary one)
                from discmeasure.errors import OutputError

                raise OutputError(f"cannot write: {exc.strerror or exc}", path=save if save is not None else export,
                                  hint="choose another place") from None
            return scan, df

        return work

    def _show(self, value):
        scan, df = value
        self.table_df = df
        img = self._image_layer
        lines, texts, kinds, plane_r = measurement_lines(df)
        if lines:
            # a 2-D (S, A) layer: napari shows it on every sagittal slice, so all levels are
            # visible together (as on the CLI's QC picture); each line's own plane is in its text
            # colours as on the CLI's QC picture: cyan baseline, red maximum bulge (+ its value,
            # written just behind the disc, i.e. posterior = towards smaller A)
            colours = ["cyan" if k == "baseline" else "red" for k in kinds]
            kw = {"name": f"{img.name} bulge", "shape_type": "line", "edge_color": colours, "edge_width": 0.5,
                  "features": {"label": texts, "kind": kinds, "plane_r_mm": plane_r},
                  "text": {"string": "{label}", "size": 10, "color": "red", "anchor": "upper_left",
                           "translation": [0.0, -1.5]}}
            self.shapes_layer = self._add([([ln[:, 1:] for ln in lines], kw, "shapes")])[0]
        self._dock_table(df, None, "discmeasure: measurements")


def _chosen_file(edit):
    """The file a FileEdit names, or None when it names none: empty, or a folder (a cleared field
    reads as the current folder, which must not become ``<folder>.csv``)."""
    value = str(edit.value or "")
    if value in ("", ".") or Path(value).is_dir():
        return None
    return Path(value)


def write_labels(seg, scan, path: Path, source, measurements) -> Path:
    """Write a segmentation as NIfTI (``.nii``/``.nii.gz``) or, for a ``.dcm`` name, as a DICOM SEG on
    the DICOM series ``source`` (the scan's own series in it; pseudonymised) together with
    ``measurements`` (the table measured on these labels) as a DICOM SR on the SEG's segments
    beside it (``discmeasure.io.dicom_sr.sr_path_beside``); both are made before either is
    written. Returns the labels' path."""
    from discmeasure.errors import InputError
    from discmeasure.io.dicom_sr import write_scan_seg_and_sr
    from discmeasure.io.write import save_nifti

    path = Path(path)
    if not path.name.lower().endswith(".dcm"):
        return save_nifti(seg.to_scan(), path, sidecar=False)
    if source is None:
        raise InputError("the image was not opened from a file: a DICOM SEG needs its series",
                         path=path, hint="save the labels as .nii.gz, or open the DICOM study with this plugin")
    return write_scan_seg_and_sr(seg, scan, source, measurements, path)[0]


def write_table(df, path: Path):
    """CSV and JSON (same stem) of a measurement table, each written atomically."""
    from discmeasure.atomic import write_text

    path = Path(path)
    if path.suffix.lower() != ".csv":
        path = path.with_suffix(".csv")
    write_text(path, df.to_csv(index=False, float_format="%.4f"))
    write_text(path.with_suffix(".json"), df.to_json(orient="records", indent=1, double_precision=6))
    return path


def measurement_lines(df):
    """Baseline and bulge segments of a measurement table in napari world coordinates (R, S, A mm).

    Returns (lines, texts, kinds, plane_r): each line a (2, 3) array; the baseline runs C_PI ->
    C_PS, the bulge from its foot on the baseline to the disc's most posterior point; texts
    are empty for baselines and "<bulge> mm" ("<bulge> ± <SD> mm" when the table has the level's
    uncertainty; + the R of its sagittal plane when it is not
    the mid-sagittal one) for bulges.
    """
    from ._layers import to_napari_world

    lines, texts, kinds, plane_r = [], [], [], []
    for _, r in df.iterrows():
        try:
            cpi = np.array([r.c_pi_x_mm, r.c_pi_y_mm, r.c_pi_z_mm], float)
            cps = np.array([r.c_ps_x_mm, r.c_ps_y_mm, r.c_ps_z_mm], float)
            bp = np.array([r.bulge_point_x_mm, r.bulge_point_y_mm, r.bulge_point_z_mm], float)
        except AttributeError:
            continue
        if not (np.all(np.isfinite(cpi)) and np.all(np.isfinite(cps))):
            continue
        lines.append(to_napari_world([cpi, cps]))
        texts.append("")
        kinds.append("baseline")
        plane_r.append(float(np.mean([cpi[0], cps[0]])))
        if np.all(np.isfinite(bp)):
            # the bulge: from the baseline (foot of the perpendicular) to the disc's maximum point
            d = cps - cpi
            t = float(np.dot(bp - cpi, d) / max(np.dot(d, d), 1e-9))
            foot = cpi + t * d
            lines.append(to_napari_world([foot, bp]))
            sd = float(getattr(r, "bulge_sd_mm", np.nan))
            txt = f"{r.bulge_mm:.1f}" + (f" ± {sd:.1f}" if np.isfinite(sd) else "") + " mm" if np.isfinite(r.bulge_mm) else ""
            if txt and abs(getattr(r, "bulge_lr_offset_mm", 0.0) or 0.0) >= 0.5:
                txt += f" (R {bp[0]:+.0f} mm)"
            texts.append(txt)
            kinds.append("bulge")
            plane_r.append(float(bp[0]))
    return lines, texts, kinds, plane_r


class T2Widget(_Base):
    """Fit T2 on a multi-echo layer (discmeasure.fit_t2: EPG, mono-exponential or log-linear).

    Adds the T2 map (ms, colour map ``magma``, 0-250 ms) and the quality-flag map (bit mask,
    see discmeasure.t2.flags). With an anatomical image and its labels, the per-ROI T2 of each
    level (nucleus, anterior/posterior annulus, whole disc) goes into a table.
    """

    title = "Fit T2"
    n_steps = 3

    def __init__(self, napari_viewer: napari.Viewer):
        self.multi_echo = _layer_combo(napari_viewer, Image, "multi-echo")
        self.method = ComboBox(choices=["epg", "mono", "loglinear"], value="epg", label="method")
        self.anatomy = _layer_combo(napari_viewer, Image, "T2w image (ROIs)", nullable=True)
        self.roi_labels = _layer_combo(napari_viewer, Labels, "labels (ROIs)", nullable=True)
        super().__init__(napari_viewer, [self.multi_echo, self.method, self.anatomy, self.roi_labels])

    def _prepare(self):
        import discmeasure as dm
        from discmeasure.errors import InputError

        me = _need(self.multi_echo.value, "multi-echo")
        scan = layer_to_scan(me)
        if scan.n_volumes < 3:  # Scan.shape is spatial only; the echoes are counted by n_volumes
            raise InputError(f"layer '{me.name}' is not a multi-echo series ({scan.n_volumes} echo)",
                             hint="choose the multi-echo spin-echo layer")
        method = self.method.value
        anat, labs = self.anatomy.value, self.roi_labels.value
        anat_scan = layer_to_scan(anat) if (anat is not None and labs is not None) else None
        if anat_scan is not None:
            _warn_other_series(anat, labs)
        labs = _labels_snapshot(labs) if anat_scan is not None else None
        me_name = me.name
        name = f"{me.name} T2 ms ({method})"  # per multi-echo layer: two visits' maps do not replace each other

        def work():
            yield f"fitting T2 ({method})"
            fit = dm.fit_t2(scan, method=method)
            yield "ROI values"
            df = None
            if anat_scan is not None:
                seg = _seg_from_labels(anat_scan, labs)
                df = dm.measure(anat_scan, seg, t2=fit)
            yield "building layers"
            t2 = scan_to_layer(fit.to_scan("t2_ms"), name, colormap="magma", contrast_limits=(0, 250))
            flags, faff = canonical(np.asarray(fit.flags).astype(np.int32), np.asarray(fit.affine))
            fl = (flags, {"name": f"{me_name} T2 quality flags ({method})", "visible": False, "opacity": 0.5,
                          **transform_kwargs(faff), "metadata": {META_KEY: {"affine": np.array(faff), "source_affine": np.array(fit.affine, float)}}},
                  "labels")
            return fit, df, [fl, t2]

        return work

    def _show(self, value):
        fit, df, items = value
        self.fit = fit
        self.table_df = df
        self.flags_layer, self.t2_layer = self._add(items)
        # put the maps just above the other images, so labels, level names and bulge marks
        # stay drawn on top of them
        layers = self.viewer.layers
        others = [i for i, layer in enumerate(layers)
                  if isinstance(layer, Image) and layer not in (self.t2_layer, self.flags_layer)]
        if others:
            dst = max(others) + 1  # both maps were appended on top: move them down (flags, then T2)
            layers.move(layers.index(self.flags_layer), dst)
            layers.move(layers.index(self.t2_layer), dst + 1)
        try:  # colour bar (ms) next to the map
            self.t2_layer.colorbar.visible = True
        except AttributeError:  # napari < 0.6: no layer colour bar
            pass
        self.viewer.layers.selection.active = self.t2_layer
        if df is not None:
            self._dock_table(df, T2_COLUMNS, "discmeasure: T2 per ROI")


class CompareWidget(_Base):
    """Compare two visits: measure both from their images and labels, then discmeasure.compare.

    Shows the per-level change table (pre, post, delta, %, within repeatability) and a bar plot.
    With "uncertainty moves" N > 0 both visits also get each level's SD
    (``discmeasure.uncertainty.with_uncertainty``) and the table the bulge's own 95 % minimal
    detectable change and whether the change is within it.
    """

    title = "Compare"
    n_steps = 3

    def __init__(self, napari_viewer: napari.Viewer):
        self.pre_image = _layer_combo(napari_viewer, Image, "pre image")
        self.pre_labels = _layer_combo(napari_viewer, Labels, "pre labels")
        self.post_image = _layer_combo(napari_viewer, Image, "post image")
        self.post_labels = _layer_combo(napari_viewer, Labels, "post labels")
        self.metric = ComboBox(choices=["bulge_mm", "bulge_midsagittal_mm", "height_middle_mm", "dhi", "volume_mm3"],
                               value="bulge_mm", label="plot")
        from discmeasure.comparison import REPEATABILITY

        # the bulge's repeatability coefficient for the "beyond repeatability" flags: the measured
        # default (docs/methods.md), or the site's own
        self.bulge_rc = FloatSpinBox(value=REPEATABILITY["bulge_mm"][1], min=0.05, max=10.0, step=0.05,
                                     label="bulge RC (mm)")
        self.uncertainty = _uncertainty_box()
        super().__init__(napari_viewer, [self.pre_image, self.pre_labels, self.post_image, self.post_labels, self.metric,
                                         self.bulge_rc, self.uncertainty])

    def _prepare(self):
        import discmeasure as dm
        from discmeasure.pipeline import Result

        layers = [(_need(self.pre_image.value, "pre image"), _need(self.pre_labels.value, "pre labels")),
                  (_need(self.post_image.value, "post image"), _need(self.post_labels.value, "post labels"))]
        for i, lab in layers:
            _warn_other_series(i, lab)
        items = [(layer_to_scan(i), _labels_snapshot(lab)) for i, lab in layers]
        metric = self.metric.value
        rc = {"bulge_mm": ("abs", float(self.bulge_rc.value))}
        from discmeasure.uncertainty import check_uncertainty, with_uncertainty

        n_moves = check_uncertainty(self.uncertainty.value)  # refused before any work

        self.n_steps = 5 if n_moves else 3

        def work():
            res = []
            for tp, (scan, lab) in zip(("pre", "post"), items):
                yield f"measuring {tp}"
                seg = _seg_from_labels(scan, lab)
                table = dm.measure(scan, seg)
                if n_moves:
                    yield f"uncertainty of {tp} ({n_moves} moved measurements)"
                    table = with_uncertainty(scan, seg, table, n_moves=n_moves)
                res.append(Result(subject="napari", timepoint=tp, scan=scan, segmentation=seg, measurements=table))
            yield "registering and comparing"
            ch = dm.compare(res[0], res[1], repeatability=rc)
            return ch, _change_figure(ch, metric)  # the figure too is drawn here, off the GUI thread

        return work

    def _show(self, value):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg

        ch, fig = value
        self.changes = ch
        self._dock_table(ch, CHANGE_COLUMNS, "discmeasure: pre/post change")
        self.figure = fig
        self.canvas = FigureCanvasQTAgg(fig)
        self.canvas.setMinimumSize(380, 300)
        _replace_dock(self.viewer, self.canvas, "discmeasure: change plot", "right")


def _change_figure(ch, metric):
    """discmeasure's pre/post change plot, with room for the % labels, ready for a Qt canvas."""
    import matplotlib.backends.backend_qtagg  # noqa: F401 -- imported here (worker), not in the GUI thread
    import matplotlib.pyplot as plt

    from discmeasure.report.qc import change_marks, change_plot

    fig = change_plot(ch, metric=metric, title=f"{metric}: pre vs post\n{change_marks(ch, metric, sep=chr(10))}")
    plt.close(fig)  # keep the figure out of pyplot's registry; the Qt canvas owns it
    ax = fig.axes[0]
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi + 0.12 * (hi - lo))  # room for the % labels above the bars
    fig.set_layout_engine("constrained")
    return fig


# npe2 widget contributions: callables taking the viewer
def segment_widget(napari_viewer: napari.Viewer):
    return SegmentWidget(napari_viewer)


def measure_widget(napari_viewer: napari.Viewer):
    return MeasureWidget(napari_viewer)


def t2_widget(napari_viewer: napari.Viewer):
    return T2Widget(napari_viewer)


def compare_widget(napari_viewer: napari.Viewer):
    return CompareWidget(napari_viewer)
