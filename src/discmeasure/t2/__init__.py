"""Quantitative T2 mapping: log-linear, mono-exponential (+ noise floor) and EPG stimulated-echo fits.

See docs/t2.md for the methods, the quality flags and the validation.
"""

from . import flags
from .fit import T2Fit, fit_t2
from .noise import NoiseEstimate, estimate_noise, estimate_sigma
from .stats import t2_stats

__all__ = ["fit_t2", "T2Fit", "t2_stats", "estimate_sigma", "estimate_noise", "NoiseEstimate", "flags"]
