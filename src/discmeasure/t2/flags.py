"""Quality flags of a T2 fit (bit mask, uint16). Every bit is documented in docs/t2.md."""

NOT_CONVERGED = 1  #: the iterative fit did not meet its tolerance
AT_BOUND = 2  #: T2 (or B1) at the edge of the allowed range / dictionary
LOW_SNR = 4  #: first used echo below 5 x noise sigma
SHORT_TRAIN = 8  #: last echo time < 1.5 x T2: the decay is poorly sampled
FEW_ECHOES = 16  #: fewer than 3 echoes above the noise floor: no fit
OUTSIDE_MASK = 32  #: voxel outside the fit mask: not fitted
NONFINITE = 64  #: NaN/inf or non-positive input
POOR_FIT = 128  #: coefficient of determination r2 < 0.9

#: flags that make a voxel unusable for ROI statistics
EXCLUDE = NOT_CONVERGED | AT_BOUND | FEW_ECHOES | OUTSIDE_MASK | NONFINITE

NAMES = {
    NOT_CONVERGED: "not_converged", AT_BOUND: "at_bound", LOW_SNR: "low_snr", SHORT_TRAIN: "short_train",
    FEW_ECHOES: "few_echoes", OUTSIDE_MASK: "outside_mask", NONFINITE: "nonfinite", POOR_FIT: "poor_fit",
}


def describe(value: int) -> list[str]:
    """Names of the bits set in ``value``."""
    return [name for bit, name in NAMES.items() if int(value) & bit]
