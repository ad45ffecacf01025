"""The population stability index, the credit industry's measure of how far one distribution
has moved from another over the same bins: used by the data profile (a new file against the
champion's training data) and by the drift monitor (live traffic against the reference)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PSI_EPSILON = 1e-4
"""Share given to an empty bin in PSI, so that ``ln(current / reference)`` stays finite."""


def population_stability_index(
    reference_shares: Sequence[float] | np.ndarray,
    current_shares: Sequence[float] | np.ndarray,
    *,
    epsilon: float = PSI_EPSILON,
) -> float:
    """PSI = sum((current - reference) * ln(current / reference)) over bins, empty bins taken
    as ``epsilon`` so a bin that empties or appears counts heavily instead of infinitely."""
    ref = np.maximum(np.asarray(reference_shares, dtype=float), epsilon)
    cur = np.maximum(np.asarray(current_shares, dtype=float), epsilon)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


__all__ = ["PSI_EPSILON", "population_stability_index"]
