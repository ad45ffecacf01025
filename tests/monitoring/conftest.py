"""Shared fixtures of the monitoring tests."""

from __future__ import annotations

import pytest

from creditops.monitoring.performance import PerformanceCalculator, PerformanceConfig
from decision_frames import calibrated


@pytest.fixture(scope="module")
def calculator() -> PerformanceCalculator:
    """Fitted on 6,000 calibrated reference predictions, weekly windows."""
    proba, y = calibrated(6000, seed=1)
    return PerformanceCalculator(PerformanceConfig(window="7D")).fit(y, proba)
