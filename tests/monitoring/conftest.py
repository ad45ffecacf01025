"""Shared fixtures of the monitoring tests."""

from __future__ import annotations

import pytest

from creditops.monitoring import base
from creditops.monitoring.estimated import EstimatedPerformanceCalculator
from creditops.monitoring.fairness_watch import FairnessCalculator
from creditops.monitoring.performance import PerformanceCalculator
from creditops.monitoring.windows import PerformanceConfig
from decision_frames import calibrated


@pytest.fixture
def scoped_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checks a test registers are forgotten after it: every registered check is one the
    monitor job runs, so a test's check must not outlive the test."""
    monkeypatch.setattr(base, "_CALCULATORS", dict(base._CALCULATORS))


@pytest.fixture(scope="module")
def calculator() -> PerformanceCalculator:
    """Realised performance fitted on 6,000 calibrated reference predictions, weekly windows."""
    proba, y = calibrated(6000, seed=1)
    return PerformanceCalculator(PerformanceConfig(window="7D")).fit(y, proba)


@pytest.fixture(scope="module")
def estimator() -> EstimatedPerformanceCalculator:
    """Estimated (CBPE) performance fitted on the same reference, weekly windows."""
    proba, y = calibrated(6000, seed=1)
    return EstimatedPerformanceCalculator(PerformanceConfig(window="7D")).fit(y, proba)


@pytest.fixture(scope="module")
def fairness() -> FairnessCalculator:
    """Approval by group, weekly windows."""
    return FairnessCalculator(PerformanceConfig(window="7D")).fit()
