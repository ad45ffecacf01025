"""Estimated performance (CBPE): the pure estimators and the estimate beside outcomes."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from creditops.monitoring.estimated import (
    EstimatedPerformanceCalculator,
    expected_confusion_matrix,
    expected_roc_auc,
)
from creditops.monitoring.performance import (
    PerformanceCalculator,
    auc_sampling_components,
    auc_sampling_error,
)
from creditops.monitoring.windows import PerformanceConfig
from decision_frames import MONDAY, calibrated, decision_frame

# --------------------------------------------------------------------------- estimators


def test_expected_auc_is_sklearn_auc_on_the_weighted_duplicate() -> None:
    rng = np.random.default_rng(0)
    proba = rng.beta(2.0, 5.0, 3000)
    score = np.round(proba, 2)  # ties, which count half on both sides
    duplicated = np.r_[np.ones(len(score)), np.zeros(len(score))]
    expected = roc_auc_score(duplicated, np.r_[score, score], sample_weight=np.r_[proba, 1 - proba])
    assert expected_roc_auc(score, proba) == pytest.approx(expected, abs=1e-12)
    assert expected_roc_auc(np.full(10, 0.0)) is None  # nobody can default: undefined


def test_expected_confusion_matrix_sums_to_rows_and_splits_at_the_threshold() -> None:
    proba = np.array([0.1, 0.2, 0.6, 0.9])
    matrix = expected_confusion_matrix(proba, 0.5)
    assert matrix.tp + matrix.fp + matrix.fn + matrix.tn == pytest.approx(4.0)
    assert (matrix.tp, matrix.fp) == pytest.approx((1.5, 0.5))
    assert (matrix.fn, matrix.tn) == pytest.approx((0.3, 1.7))
    proba, _ = calibrated(5000, seed=2)
    big = expected_confusion_matrix(proba, 0.3)
    assert big.tp + big.fp + big.fn + big.tn == pytest.approx(5000)


def test_auc_sampling_error_matches_the_spread_over_chunks() -> None:
    proba, y = calibrated(205_000, seed=3)
    components = auc_sampling_components(y[:5000], proba[:5000])
    size = 500
    chunks = np.arange(size * 400).reshape(400, size) + 5000
    aucs = [roc_auc_score(y[c], proba[c]) for c in chunks]
    defaults = y[chunks].sum(axis=1).mean()
    error = auc_sampling_error(components, defaults, size - defaults)
    # The spread of 400 chunk AUCs is itself known to about 4%.
    assert 0.88 < np.std(aucs, ddof=1) / error < 1.12


# --------------------------------------------------------------------------- CBPE


def test_cbpe_estimate_is_right_on_calibrated_data_and_off_on_miscalibrated(
    calculator: PerformanceCalculator, estimator: EstimatedPerformanceCalculator
) -> None:
    proba, y = calibrated(20_000, seed=4)
    frame = decision_frame(proba, y)
    (window,) = estimator.calculate(frame).windows
    (realised,) = calculator.calculate(frame).windows
    est = window.estimated
    assert window.realised_status == realised.realised.status == "ok"
    assert est.realised_roc_auc == pytest.approx(realised.realised.roc_auc)
    assert est.band_low < realised.realised.roc_auc < est.band_high
    assert est.realised_within_band is True
    assert abs(est.estimate_error) < 3 * est.sampling_error
    assert est.expected_default_rate == pytest.approx(y.mean(), abs=0.01)

    # Outcomes much less predictable than the probabilities claim (true PD flattened).
    rng = np.random.default_rng(5)
    flat = rng.binomial(1, 0.5 * proba + 0.15)
    (window,) = estimator.calculate(decision_frame(proba, flat)).windows
    assert window.estimated.realised_within_band is False
    assert window.estimated.estimate_error < -3 * window.estimated.sampling_error


def test_miscalibrated_reference_is_recalibrated_when_auto() -> None:
    rng = np.random.default_rng(6)
    proba = rng.beta(2.0, 5.0, 30_000)
    truth = rng.binomial(1, np.clip(1.6 * proba, 0, 1))  # the model underestimates risk
    ref, cur = slice(0, 10_000), slice(10_000, None)
    auto = EstimatedPerformanceCalculator(PerformanceConfig(window=None)).fit(
        truth[ref], proba[ref]
    )
    never = EstimatedPerformanceCalculator(PerformanceConfig(window=None, recalibrate="never")).fit(
        truth[ref], proba[ref]
    )
    assert auto.reference_.well_calibrated is False
    assert auto.reference_.recalibrated is True
    frame = decision_frame(proba[cur], truth[cur])
    fixed, raw = auto.calculate(frame), never.calculate(frame)
    assert fixed.windows[0].estimated.realised_within_band is True
    assert raw.windows[0].estimated.realised_within_band is False
    assert fixed.windows[0].estimated.expected_default_rate == pytest.approx(
        truth[cur].mean(), abs=0.01
    )
    assert any("recalibrated" in note for note in fixed.notes)
    # Miscalibration shows in the realised figures as an under-estimated risk.
    realised = PerformanceCalculator(PerformanceConfig(window=None)).fit(truth[ref], proba[ref])
    assert realised.reference_.recalibrated is True  # one reference, fitted the same way
    calibration = [f for f in realised.calculate(frame).flags if f.metric == "calibration_gap"]
    assert [f.check for f in calibration] == ["performance"]
    assert "underestimates risk" in calibration[0].message


def test_estimated_drop_is_flagged_before_outcomes_arrive(
    estimator: EstimatedPerformanceCalculator,
) -> None:
    rng = np.random.default_rng(7)
    good = decision_frame(rng.beta(2.0, 5.0, 1000), None)
    # Probabilities bunched around 0.3: the model can no longer tell applicants apart.
    bunched = decision_frame(rng.uniform(0.25, 0.35, 1000), None, start=MONDAY + timedelta(days=7))
    result = estimator.calculate(pd.concat([good, bunched], ignore_index=True))
    first, second = result.windows
    assert first.realised_status == second.realised_status == "insufficient data"
    assert first.estimated.auc_drop_relative < 0.05
    assert second.estimated.roc_auc < 0.6
    (flag,) = result.flags
    assert flag.check == "estimated_performance"
    assert flag.level == "critical"
    assert flag.window_start == pd.Timestamp(MONDAY + timedelta(days=7))
    assert flag.value == pytest.approx(second.estimated.roc_auc)
    assert "in the week of 2026-11-23" in flag.message
