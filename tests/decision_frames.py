"""Decision-log-shaped frames for the monitoring tests (realised, estimated, fairness)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

MONDAY = datetime(2026, 11, 16, tzinfo=UTC)


def calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of default and outcomes drawn from them: calibrated by construction."""
    rng = np.random.default_rng(seed)
    proba = rng.beta(2.0, 5.0, n)
    return proba, rng.binomial(1, proba)


def decision_frame(
    proba: np.ndarray, outcome: np.ndarray | None, start: datetime = MONDAY
) -> pd.DataFrame:
    """A decision-log-shaped frame spread over the 7 days from ``start``."""
    n = len(proba)
    created = pd.Timestamp(start) + pd.to_timedelta(np.linspace(0, 6.9, n), unit="D")
    values = pd.array([pd.NA] * n if outcome is None else outcome, dtype="Int64")
    return pd.DataFrame(
        {
            "created_at": created,
            "probability": proba,
            "decision": np.where(proba < 0.3, "approve", "decline"),
            "outcome": values,
        }
    )
