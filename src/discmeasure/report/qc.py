"""QC pictures of a visit: mid-sagittal overlay with level names, bulge baselines and maximum marks;
T2 map with a colour bar; per-level zooms; pre/post change plot. Matplotlib Agg only (no GUI)."""

from __future__ import annotations

import io

import numpy as np

__all__ = ["midsagittal_overlay", "zoom_overlay", "t2_map_figure", "change_plot", "change_marks", "png_bytes"]


def _figure(figsize):
    """A new figure and its axes, without pyplot.

    An object-oriented :class:`matplotlib.figure.Figure` renders to PNG through Agg by itself,
    so the QC code never switches the process-wide backend (``matplotlib.use("Agg",
    force=True)`` did, which changed the backend for every other user of matplotlib in the same
    program, e.g. napari plugins) and never registers figures with pyplot (nothing to close).
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    return fig, fig.subplots()


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (110 dpi, tight box). Figures made here are not registered with
    pyplot, so the same figure can be saved again (the per-level zooms) and nothing needs closing."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _sagittal_slice(scan, labels):
    """Mid-sagittal plane resampled on a world-aligned (y, z) grid through the canal midline; a
    single sagittal-ish slice in its own plane, on the same (y, z) grid."""
    from ..geometry import resample, slice_normal

    lbl = np.asarray(labels)
    canal = np.argwhere(lbl == 61)
    pts = canal if len(canal) else np.argwhere(lbl > 0)
    x0 = float(np.median(scan.voxel_to_world(pts)[:, 0])) if len(pts) else float(scan.voxel_to_world((np.array(scan.shape) - 1) / 2)[0])
    corners = np.array(np.meshgrid(*[[0, n - 1] for n in scan.shape], indexing="ij")).reshape(3, -1).T
    w = scan.voxel_to_world(corners)
    step = max(0.5, min(scan.spacing))
    y0, y1, z0, z1 = w[:, 1].min(), w[:, 1].max(), w[:, 2].min(), w[:, 2].max()
    ny, nz = int((y1 - y0) / step) + 1, int((z1 - z0) / step) + 1
    aff = np.array([[0, 0, 0, x0], [step, 0, 0, y0], [0, step, 0, z0], [0, 0, 0, 1.0]])
    aff[0, 2] = 1.0  # a unit third axis (one plane)
    n = slice_normal(scan.affine, scan.shape[:3])
    if n is not None and abs(n[0]) > 0.5:
        # a single (sagittal-ish) slice is shown in its own plane, seen along x: a world plane
        # x = x0 met an oblique slice only along a strip
        p0 = np.asarray(scan.affine, float)[:3, 3]
        # x on the slice's plane at (y, z): n . (p - p0) = 0
        aff[0, :] = [-n[1] / n[0] * step, -n[2] / n[0] * step, 0.0,
                     p0[0] - (n[1] * (y0 - p0[1]) + n[2] * (z0 - p0[2])) / n[0]]
        aff[:3, 2] = n  # the third axis along the normal (one plane)
        x0 = float(p0[0] - (n[1] * (0.5 * (y0 + y1) - p0[1]) + n[2] * (0.5 * (z0 + z1) - p0[2])) / n[0])
    img = resample(np.asarray(scan.data if scan.ndim == 3 else scan.data[..., 0], np.float32), scan.affine,
                   (ny, nz, 1), aff, order=1)[:, :, 0]
    lab = resample(lbl.astype(np.int32), scan.affine, (ny, nz, 1), aff, order=0)[:, :, 0]
    extent = (y0, y0 + (ny - 1) * step, z0, z0 + (nz - 1) * step)
    return img, lab, extent, x0


def midsagittal_overlay(scan, labels, table=None, *, title="", zoom_level=None):
    """Figure: mid-sagittal image (anterior left, superior up), labels, level names, baselines, bulge marks.

    The figure carries ``level_centres``: ``{name: (y, z)}`` (world mm) of every labelled
    structure's centre on the slice shown, where :func:`zoom_overlay` centres a level that has
    no bulge point (bulge withheld for review).
    """
    from matplotlib.colors import ListedColormap

    from .. import labels as L

    img, lab, extent, x0 = _sagittal_slice(scan, labels)
    fig, ax = _figure((6, 7.5))
    # display y increasing to the left (anterior left, radiological sagittal), z up
    vmax = np.percentile(img, 99.5) or 1
    ax.imshow(img.T, cmap="gray", origin="lower", extent=extent, vmin=0, vmax=vmax, interpolation="nearest")
    rng = np.random.default_rng(3)
    colors = rng.uniform(0.2, 1.0, (300, 3))
    over = np.ma.masked_equal(lab.T, 0)
    cmap = ListedColormap(colors)
    ax.imshow(over % 300, cmap=cmap, origin="lower", extent=extent, alpha=0.35, vmin=0, vmax=299, interpolation="nearest")
    fig.level_centres = {}
    for v in np.unique(lab):
        if v == 0 or v == L.CANAL:
            continue
        ys, zs = np.nonzero(lab == v)
        if len(ys) < 5:
            continue
        y = extent[0] + ys.mean() * (extent[1] - extent[0]) / max(lab.shape[0] - 1, 1)
        z = extent[2] + zs.mean() * (extent[3] - extent[2]) / max(lab.shape[1] - 1, 1)
        name = L.disc_level_name(v) if L.is_disc(v) else L.vertebra_name(v)
        fig.level_centres[name] = (float(y), float(z))
        ax.text(y + (40 if L.is_disc(v) else 0), z, name, color="yellow" if L.is_disc(v) else "white",
                fontsize=8, ha="center", va="center", fontweight="bold", clip_on=True)
    if table is not None:
        for _, r in table.iterrows():
            if not np.isfinite(r.get("c_pi_y_mm", np.nan)):
                continue
            ax.plot([r.c_pi_y_mm, r.c_ps_y_mm], [r.c_pi_z_mm, r.c_ps_z_mm], "-", color="cyan", lw=1.2)
            ax.plot([r.c_pi_y_mm, r.c_ps_y_mm], [r.c_pi_z_mm, r.c_ps_z_mm], "o", color="cyan", ms=3)
            ax.plot([r.bulge_point_y_mm], [r.bulge_point_z_mm], "x", color="red", ms=6, mew=2)
            ax.text(r.bulge_point_y_mm - 3, r.bulge_point_z_mm, f"{r.bulge_mm:.1f} mm", color="red", fontsize=8, va="center",
                    clip_on=True)  # zoomed views must not show other levels' text outside the axes
    ax.set_xlim(extent[1], extent[0])  # anterior on the left
    ax.set_xlabel("anterior  ←  y (mm)  →  posterior")
    ax.set_ylabel("z (mm, superior up)")
    where = (f"the slice (x = {x0:.1f} mm at its centre)" if 1 in tuple(scan.shape)[:3]
             else f"mid-sagittal (x = {x0:.1f} mm)")
    ax.set_title(title or f"{where}: cyan = C_PI–C_PS baseline, red × = maximum bulge", fontsize=9)
    if zoom_level is not None and table is not None:
        zoom_overlay(fig, table, zoom_level, title=title or None)
    return fig


def zoom_overlay(fig, table, zoom_level, *, title=None):
    """Turn a :func:`midsagittal_overlay` figure into the zoom on one level (in place; returns it).

    Drawing the overlay once and zooming it level after level gives the same pictures as one
    overlay per level, for a fraction of the time. The zoom is centred on the level's bulge
    point; where the bulge was withheld (no point), on the disc's centre on the slice shown
    (the figure's ``level_centres``), 25 mm in front of which the posterior rim lies.
    """
    ax = fig.axes[0]
    r = table[table.level == zoom_level].iloc[0]
    y, z = r.bulge_point_y_mm, r.bulge_point_z_mm
    if not (np.isfinite(y) and np.isfinite(z)):
        centre = getattr(fig, "level_centres", {}).get(zoom_level)
        if centre is None:
            raise ValueError(f"level {zoom_level} has neither a bulge point nor a disc on the slice shown")
        # the posterior rim lies about half a disc depth behind the centre (-y = posterior)
        y, z = centre[0] - 15.0, centre[1]
    ax.set_xlim(y + 45, y - 20)
    ax.set_ylim(z - 25, z + 25)
    if title is not None:
        ax.set_title(title, fontsize=9)
    return fig


def t2_map_figure(fit, labels_on_fit=None, *, title="T2 map"):
    """Figure: the mid slice of the T2 map (ms) with a colour bar and disc outlines."""
    t2 = np.asarray(fit.t2_ms)
    if t2.ndim == 2:
        t2 = t2[:, :, None]
    k = t2.shape[2] // 2
    if labels_on_fit is not None and (labels_on_fit > 100).any():
        k = int(np.argmax(((labels_on_fit > 100) & (labels_on_fit < 130)).sum(axis=(0, 1))))
    fig, ax = _figure((5, 6))
    im = ax.imshow(np.nan_to_num(t2[:, :, k].T, nan=0.0), cmap="magma", vmin=0, vmax=200, origin="upper")
    if labels_on_fit is not None:
        ax.contour(((labels_on_fit[:, :, k] > 100) & (labels_on_fit[:, :, k] < 130)).T, levels=[0.5], colors="cyan", linewidths=0.6)
    fig.colorbar(im, ax=ax, label="T2 (ms)", shrink=0.8)
    ax.set_title(f"{title} ({fit.method}), slice {k}", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def change_plot(changes, *, metric="bulge_mm", title=None):
    """Bar chart of pre vs post per level, with % change labels.

    A change beyond the repeatability coefficient is marked ``*``; when the levels carry their own
    uncertainty (``analyze(..., uncertainty=N)`` at both visits) a change beyond the level's own
    95 % minimal detectable change is marked ``†``. The default title says which marks are used.
    """
    fig, ax = _figure((6, 3.5))
    lv = list(changes["level"])
    x = np.arange(len(lv))
    ax.bar(x - 0.2, changes[f"{metric}_pre"], 0.4, label="pre")
    ax.bar(x + 0.2, changes[f"{metric}_post"], 0.4, label="post")
    own = f"{metric}_within_uncertainty" in changes.columns
    for i, (_, r) in enumerate(changes.iterrows()):
        pct = r.get(f"{metric}_pct")
        if np.isfinite(pct):
            mark = "" if r.get(f"{metric}_within_repeatability") else " *"
            flag = r.get(f"{metric}_within_uncertainty") if own else None
            if flag is not None and not (isinstance(flag, float) and np.isnan(flag)) and not flag:
                mark += " †"
            ax.text(i, max(r[f"{metric}_pre"], r[f"{metric}_post"]) * 1.02, f"{pct:+.0f}%{mark}", ha="center", fontsize=8)
    ax.set_xticks(x, lv)
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    ax.set_title(title or f"{metric}: pre vs post ({change_marks(changes, metric)})", fontsize=9)
    return fig


def change_marks(changes, metric="bulge_mm", sep="; ") -> str:
    """The legend of :func:`change_plot`'s marks for this change table (``sep`` between marks)."""
    text = "* = change beyond repeatability"
    if f"{metric}_within_uncertainty" in changes.columns:
        text += f"{sep}† = beyond the level's own MDC95"
    return text
