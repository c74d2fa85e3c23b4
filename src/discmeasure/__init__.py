"""discmeasure: reproducible lumbar intervertebral disc measurements on MRI.

Posterior disc bulge (mm) and quantitative T2 (ms), level by level, for single
visits and pre/post pairs. Public names are imported lazily so that
``import discmeasure`` stays fast and never imports napari or Qt.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "Scan": "discmeasure.scan",
    "errors": "discmeasure.errors",
    "DiscmeasureError": "discmeasure.errors",
    "labels": "discmeasure.labels",
    "load": "discmeasure.io",
    "load_study": "discmeasure.io",
    "Study": "discmeasure.io",
    "save": "discmeasure.io",
    "phantom": "discmeasure.phantom",
    "epg": "discmeasure.epg",
    "fit_t2": "discmeasure.t2",
    "T2Fit": "discmeasure.t2",
    "t2_stats": "discmeasure.t2",
    "segment": "discmeasure.segmentation",
    "Segmentation": "discmeasure.segmentation",
    "measure": "discmeasure.measurements",
    "rois": "discmeasure.measurements",
    "analyze": "discmeasure.pipeline",
    "Result": "discmeasure.pipeline",
    "compare": "discmeasure.comparison",
    "cohort_summary": "discmeasure.comparison",
    "repeatability_coefficient": "discmeasure.comparison",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    try:
        modname = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'discmeasure' has no attribute {name!r}") from None
    mod = importlib.import_module(modname)
    # a public module (errors, labels, phantom, epg) or a name defined in its module
    value = mod if modname.rsplit(".", 1)[-1] == name else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
