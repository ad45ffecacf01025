"""How much of the data and of the clock training may spend on the search.

On larger data, tuning and selection cross-validate on a seeded stratified sample of the
training split (a few tens of thousands of rows rank settings as well as all of them, at a
fraction of the cost), and a time budget bounds the search: a share of it for tuning, divided
among the candidates by their relative cost; the rest is kept for the final fits and
calibration, which cost more on every training row. No grid point or trial starts after a
candidate's deadline (each keeps at least one), and the evidence that is worth having but not
necessary (what the monotone constraints cost, the ensemble, the selection's second round) is
skipped once the budget is spent.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import train_test_split

from creditops.config import Settings
from creditops.models.zoo import Candidate

# The share of a time budget for tuning; the rest is for the final fits and calibration, the
# ensemble and the selection's second round. Measured with 0.4: 150,000 rows (105,000 to
# train) took 153 s of a 300 s budget, 21,000 rows 190 s, 28,000 rows 170 s.
TUNING_SHARE = 0.6


def tuning_rows(y: np.ndarray, train: np.ndarray, settings: Settings) -> np.ndarray:
    """The training rows tuning and selection cross-validate on: all of them, or a seeded
    stratified sample of ``settings.tuning_rows`` on larger data."""
    if len(train) <= settings.tuning_rows:
        return train
    sample, _ = train_test_split(
        train,
        train_size=settings.tuning_rows,
        stratify=y[train],
        random_state=settings.seed,
    )
    return np.sort(sample)


class Budget:
    """A run's time budget in seconds (None: unbounded), counted from its creation."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self._started = time.monotonic()
        self._tuning_until = None if seconds is None else self._started + TUNING_SHARE * seconds

    def tuning_deadline(self, candidate: Candidate, remaining: Sequence[Candidate]) -> float | None:
        """The ``time.monotonic()`` instant ``candidate``'s tuning must not start anything
        after: its share, by ``tuning_cost``, of the tuning time ``remaining`` (itself and the
        candidates after it) have left."""
        if self._tuning_until is None:
            return None
        now = time.monotonic()
        left = max(self._tuning_until - now, 0.0)
        return now + left * candidate.tuning_cost / sum(c.tuning_cost for c in remaining)

    @property
    def spent(self) -> bool:
        return self.seconds is not None and time.monotonic() - self._started > self.seconds


__all__ = ["TUNING_SHARE", "Budget", "tuning_rows"]
