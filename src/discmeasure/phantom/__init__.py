"""Digital lumbar spine phantom (L1-S1) with known truth: our reference object.

Like the QIBA/ISMRM digital reference objects, it gives exact truth for every
measurement discmeasure makes: per-level posterior bulge, disc heights, NP/AF
T2, on any grid and orientation, with partial volume, bias field, Rician noise
and stimulated echoes (EPG) in the multi-echo series.

Typical use::

    from discmeasure import phantom
    ph = phantom.default_phantom()
    shape, affine = phantom.make_grid(orientation="sagittal", spacing=(0.6, 0.6, 4.0))
    t2w, labels = phantom.render_t2w(ph, shape, affine, snr=40)
    mese, labels_m, b1 = phantom.render_mese(ph, *phantom.make_grid(spacing=(1.2, 1.2, 4.0), n_slices=7))
    truth = phantom.truth(ph)
"""

from .anatomy import BODIES, LEVELS, PATHOLOGIES, TISSUES, Phantom, default_phantom, rotation_matrix
from .pair import make_pair
from .render import b1_field, make_grid, render_mese, render_t2w, tissue_fractions
from .truth import truth
from .write import write_dicom_series, write_nifti

__all__ = [
    "Phantom", "default_phantom", "make_grid", "render_t2w", "render_mese", "truth", "make_pair",
    "write_dicom_series", "write_nifti", "b1_field", "tissue_fractions", "rotation_matrix",
    "LEVELS", "BODIES", "TISSUES", "PATHOLOGIES",
]
