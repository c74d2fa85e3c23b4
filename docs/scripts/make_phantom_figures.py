"""Figures of docs/phantom.md: mid-sagittal T2w, echo 1 vs last echo, label overlay, axial slice.

    python docs/scripts/make_phantom_figures.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import discmeasure as dm  # noqa: E402
from discmeasure import phantom  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "img"


def sag(a):
    """(i: posterior, j: inferior) array slice -> image with anterior left, superior up."""
    return a.T


def main():
    OUT.mkdir(exist_ok=True)
    ph = phantom.default_phantom()
    shape, aff = phantom.make_grid(spacing=(0.7, 0.7, 4.0), fov_mm=(170.0, 220.0), n_slices=11, center_mm=(0, 0, 10))
    t2w, lab = phantom.render_t2w(ph, shape, aff, snr=35, seed=1)
    shape_m, aff_m = phantom.make_grid(spacing=(1.2, 1.2, 4.0), fov_mm=(120.0, 220.0), n_slices=7, center_mm=(0, 5, 10))
    mese, _, b1 = phantom.render_mese(ph, shape_m, aff_m, n_echoes=10, snr=120)
    k = shape[2] // 2
    fig, ax = plt.subplots(1, 2, figsize=(9, 6))
    ax[0].imshow(sag(t2w.data[:, :, k]), cmap="gray", vmax=np.percentile(t2w.data, 99.5))
    ax[0].set_title("T2-weighted, mid-sagittal (anterior left)")
    ax[1].imshow(sag(t2w.data[:, :, k]), cmap="gray", vmax=np.percentile(t2w.data, 99.5))
    ax[1].imshow(np.ma.masked_equal(sag(lab[:, :, k]) % 40, 0), cmap="tab20", alpha=0.45)
    ax[1].set_title("truth labels (bodies, discs, canal)")
    for a in ax:
        a.axis("off")
    fig.tight_layout()
    fig.savefig(OUT / "phantom_t2w_labels.png", dpi=90)
    km = shape_m[2] // 2
    fig, ax = plt.subplots(1, 3, figsize=(10, 6))
    vmax = np.percentile(mese.data[..., 0], 99.5)
    ax[0].imshow(sag(mese.data[:, :, km, 0]), cmap="gray", vmax=vmax)
    ax[0].set_title("multi-echo: echo 1 (10 ms)")
    ax[1].imshow(sag(mese.data[:, :, km, -1]), cmap="gray", vmax=vmax)
    ax[1].set_title("echo 10 (100 ms)")
    im = ax[2].imshow(sag(b1[:, :, km]), cmap="viridis")
    ax[2].set_title("B1 (0.7-1.0)")
    fig.colorbar(im, ax=ax[2], shrink=0.6)
    for a in ax:
        a.axis("off")
    fig.tight_layout()
    fig.savefig(OUT / "phantom_mese.png", dpi=90)
    c = ph.skeleton()["discs"]["L4-L5"][0]
    sh, af = phantom.make_grid(orientation="axial", spacing=(0.7, 0.7, 4.0), fov_mm=(200.0, 180.0), n_slices=1, center_mm=c)
    ax_img, ax_lab = phantom.render_t2w(ph, sh, af, snr=35)
    fig, ax = plt.subplots(1, 1, figsize=(5, 5))
    ax.imshow(ax_img.data[:, :, 0].T, cmap="gray")
    ax.contour(ax_lab[:, :, 0].T == 123, levels=[0.5], colors="yellow", linewidths=0.8)
    ax.set_title("axial through L4-L5: posterior bulge into the canal")
    ax.axis("off")
    fig.savefig(OUT / "phantom_axial_L4L5.png", dpi=90)


if __name__ == "__main__":
    main()
