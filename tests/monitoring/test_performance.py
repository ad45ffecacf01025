"""Model drift monitoring: realised and estimated (CBPE) performance and decision fairness,
on synthetic frames with known truth and on a real SQLite prediction log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from creditops.exceptions import ConfigurationError
from creditops.monitoring.performance import (
    MonitorNotFittedError,
    PerformanceCalculator,
    PerformanceConfig,
    PerformanceResult,
    approval_fairness,
    auc_sampling_components,
    auc_sampling_error,
    expected_confusion_matrix,
    expected_roc_auc,
    reference_metrics_from_tags,
)
from creditops.store.predlog import PredictionLog, PredictionRecord

MONDAY = datetime(2026, 11, 16, tzinfo=UTC)


def _calibrated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities of default and outcomes drawn from them: calibrated by construction."""
    rng = np.random.default_rng(seed)
    proba = rng.beta(2.0, 5.0, n)
    return proba, rng.binomial(1, proba)


def _frame(proba: np.ndarray, outcome: np.ndarray | None, start: datetime = MONDAY) -> pd.DataFrame:
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


@pytest.fixture(scope="module")
def calculator() -> PerformanceCalculator:
    proba, y = _calibrated(6000, seed=1)
    return PerformanceCalculator(PerformanceConfig(window="7D")).fit(y, proba)


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
    proba, _ = _calibrated(5000, seed=2)
    big = expected_confusion_matrix(proba, 0.3)
    assert big.tp + big.fp + big.fn + big.tn == pytest.approx(5000)


def test_auc_sampling_error_matches_the_spread_over_chunks() -> None:
    proba, y = _calibrated(205_000, seed=3)
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
    calculator: PerformanceCalculator,
) -> None:
    proba, y = _calibrated(20_000, seed=4)
    result = calculator.calculate(_frame(proba, y))
    (window,) = result.windows
    est = window.estimated
    assert window.realised.status == "ok"
    assert est.band_low < window.realised.roc_auc < est.band_high
    assert est.realised_within_band is True
    assert abs(est.estimate_error) < 3 * est.sampling_error
    assert est.expected_default_rate == pytest.approx(y.mean(), abs=0.01)

    # Outcomes much less predictable than the probabilities claim (true PD flattened).
    rng = np.random.default_rng(5)
    flat = rng.binomial(1, 0.5 * proba + 0.15)
    (window,) = calculator.calculate(_frame(proba, flat)).windows
    assert window.estimated.realised_within_band is False
    assert window.estimated.estimate_error < -3 * window.estimated.sampling_error


def test_miscalibrated_reference_is_recalibrated_when_auto() -> None:
    rng = np.random.default_rng(6)
    proba = rng.beta(2.0, 5.0, 30_000)
    truth = rng.binomial(1, np.clip(1.6 * proba, 0, 1))  # the model underestimates risk
    ref, cur = slice(0, 10_000), slice(10_000, None)
    auto = PerformanceCalculator(PerformanceConfig(window=None)).fit(truth[ref], proba[ref])
    never = PerformanceCalculator(PerformanceConfig(window=None, recalibrate="never")).fit(
        truth[ref], proba[ref]
    )
    assert auto.reference_.well_calibrated is False
    assert auto.reference_.recalibrated is True
    frame = _frame(proba[cur], truth[cur])
    fixed, raw = auto.calculate(frame), never.calculate(frame)
    assert fixed.windows[0].estimated.realised_within_band is True
    assert raw.windows[0].estimated.realised_within_band is False
    assert fixed.windows[0].estimated.expected_default_rate == pytest.approx(
        truth[cur].mean(), abs=0.01
    )
    assert any("recalibrated" in note for note in fixed.notes)
    # Miscalibration shows in the realised figures as an under-estimated risk.
    calibration = [f for f in raw.flags if f.metric == "calibration_gap"]
    assert [f.check for f in calibration] == ["performance"]
    assert "underestimates risk" in calibration[0].message


def test_estimated_drop_is_flagged_before_outcomes_arrive(
    calculator: PerformanceCalculator,
) -> None:
    rng = np.random.default_rng(7)
    good = _frame(rng.beta(2.0, 5.0, 1000), None)
    # Probabilities bunched around 0.3: the model can no longer tell applicants apart.
    bunched = _frame(rng.uniform(0.25, 0.35, 1000), None, start=MONDAY + timedelta(days=7))
    result = calculator.calculate(pd.concat([good, bunched], ignore_index=True))
    first, second = result.windows
    assert first.realised.status == second.realised.status == "insufficient data"
    assert first.estimated.auc_drop_relative < 0.05
    assert second.estimated.roc_auc < 0.6
    (flag,) = result.flags
    assert flag.check == "estimated_performance"
    assert flag.level == "critical"
    assert flag.window_start == pd.Timestamp(MONDAY + timedelta(days=7))
    assert flag.value == pytest.approx(second.estimated.roc_auc)
    assert "in the week of 2026-11-23" in flag.message


# --------------------------------------------------------------------------- realised, SQLite


def _log_week(log: PredictionLog, proba: np.ndarray, start: datetime) -> list[str]:
    records = [
        PredictionRecord(
            created_at=start + timedelta(minutes=10 * i),
            model_name="credit-default",
            model_version="3",
            features={"Income": 100 + i},
            protected={"Age": 20 + i % 50, "Marital": "married" if i % 2 else "single"},
            probability=float(p),
            points=600,
            decision="approve" if p < 0.3 else "decline",
            latency_ms=1.0,
        )
        for i, p in enumerate(proba)
    ]
    log.write_many(records)
    return [str(r.prediction_id) for r in records]


def test_realised_performance_from_a_real_prediction_log(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    ref_proba, ref_y = _calibrated(4000, seed=9)
    test_auc = roc_auc_score(ref_y, ref_proba)
    calc = PerformanceCalculator(PerformanceConfig(window="7D", min_labelled_rows=200)).fit(
        ref_y, ref_proba, reference_metrics={"test_roc_auc": str(test_auc)}
    )
    weeks = [rng.beta(2.0, 5.0, 400) for _ in range(3)]
    with PredictionLog(f"sqlite:///{tmp_path}/predictions.db") as log:
        ids = [_log_week(log, p, MONDAY + timedelta(days=7 * k)) for k, p in enumerate(weeks)]
        good = rng.binomial(1, weeks[0])  # outcomes as predicted
        flipped = rng.binomial(1, 1 - weeks[1])  # the riskiest now repay: ranking reversed
        log.record_outcome(ids[0][0], bool(good[0]))
        updates = [(i, int(o)) for i, o in zip(ids[0][1:], good[1:], strict=True)]
        updates += [(i, int(o)) for i, o in zip(ids[1], flipped, strict=True)]
        updates += [(i, int(o)) for i, o in zip(ids[2][:60], good[:60], strict=True)]  # too few
        log.record_outcomes(updates)
        frame = log.window(model_version="3")
        labelled_first = log.window(until=MONDAY + timedelta(days=7), with_outcomes_only=True)

    result = calc.calculate(frame)
    first, second, third = result.windows
    assert [w.rows for w in result.windows] == [400, 400, 400]
    assert first.start == pd.Timestamp(MONDAY)
    assert first.realised.roc_auc == pytest.approx(
        roc_auc_score(labelled_first["outcome"].astype(int), labelled_first["probability"])
    )
    assert first.realised.labelled_rows == 400
    assert first.realised.confusion_matrix.tp + first.realised.confusion_matrix.tn > 0
    assert second.realised.roc_auc < 0.4
    assert third.realised.status == "insufficient data"
    assert third.realised.roc_auc is None
    assert third.realised.labelled_share == pytest.approx(60 / 400)
    assert result.reference.source["roc_auc"] == "metrics"

    realised_flags = [f for f in result.flags if f.metric == "roc_auc"]
    (flag,) = realised_flags
    assert flag.window_start == second.start
    assert flag.level == "critical"
    assert flag.threshold == pytest.approx(test_auc * 0.9)
    assert flag.message.startswith(f"Realised ROC AUC {second.realised.roc_auc:.2f} in the week")
    assert "below the model's test AUC" in flag.message
    # The unlabelled third week is still estimated, and is fine.
    assert third.estimated.status == "ok"
    assert not [f for f in result.flags if f.window_start == third.start]
    # Protected attributes come from the log's own column map.
    assert {a.attribute for a in first.fairness} == {"Age", "Marital"}
    assert [g.group for g in first.fairness[0].groups] == ["<25", "25–39", "40–59", "60+"]

    text = json.dumps(result.to_dict(), allow_nan=False)
    assert PerformanceResult.model_validate(json.loads(text)).flags == result.flags


@pytest.mark.parametrize(
    ("relative_drop", "level"), [(0.02, None), (0.07, "warning"), (0.15, "critical")]
)
def test_realised_drop_levels_follow_the_relative_thresholds(
    relative_drop: float, level: str | None
) -> None:
    proba, y = _calibrated(2000, seed=13)
    realised_auc = roc_auc_score(y, proba)
    test_auc = realised_auc / (1 - relative_drop)
    calc = PerformanceCalculator(PerformanceConfig(window=None)).fit(
        reference_metrics={"test_roc_auc": test_auc}
    )
    result = calc.calculate(_frame(proba, y))
    realised = result.windows[0].realised
    assert realised.auc_drop == pytest.approx(test_auc - realised_auc)
    assert realised.auc_drop_relative == pytest.approx(relative_drop)
    flags = [f for f in result.flags if f.check == "performance"]
    assert [f.level for f in flags] == ([level] if level else [])
    if level == "warning":
        assert flags[0].threshold == pytest.approx(test_auc * 0.95)
        assert "7.0% below the model's test AUC" in flags[0].message
    assert result.level == (level or "ok")


def test_too_few_labels_or_one_class_is_insufficient_and_never_flagged(
    calculator: PerformanceCalculator,
) -> None:
    rng = np.random.default_rng(10)
    proba = rng.beta(2.0, 5.0, 500)
    outcome = rng.binomial(1, 1 - proba).astype(object)  # terrible, but...
    outcome[150:] = None  # ...only 150 labelled
    result = calculator.calculate(_frame(proba, outcome))
    realised = result.windows[0].realised
    assert realised.status == "insufficient data"
    assert realised.labelled_rows == 150
    assert realised.roc_auc is None
    assert realised.auc_drop is None
    assert "150 labelled decisions" in realised.note
    assert not [f for f in result.flags if f.check == "performance"]

    few_defaults = np.zeros(500, dtype=int)
    few_defaults[:5] = 1
    realised = calculator.calculate(_frame(proba, few_defaults)).windows[0].realised
    assert realised.status == "insufficient data"
    assert realised.defaults == 5


# --------------------------------------------------------------------------- fairness


def _fairness_frame(rate_a: float, rate_b: float, n: int = 400, small: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    groups = ["A"] * n + ["B"] * n + ["C"] * small
    approved = np.r_[
        np.arange(n) < round(rate_a * n), np.arange(n) < round(rate_b * n), np.zeros(small, bool)
    ]
    frame = _frame(rng.beta(2.0, 5.0, len(groups)), None)
    frame["decision"] = np.where(approved, "approve", "refer")
    frame["Group"] = groups
    frame["Age"] = rng.integers(18, 80, len(groups))
    frame.attrs["protected_columns"] = {"Group": "Group", "Age": "Age"}
    return frame


def test_half_the_approval_rate_flags_disparate_impact(calculator: PerformanceCalculator) -> None:
    result = calculator.calculate(_fairness_frame(0.8, 0.4))
    group = next(a for a in result.windows[0].fairness if a.attribute == "Group")
    rates = {g.group: g.approval_rate for g in group.groups}
    assert rates == {"A": 0.8, "B": 0.4}
    assert group.disparate_impact_ratio == pytest.approx(0.5)
    assert group.verdict == "adverse impact presumed"
    (flag,) = [f for f in result.flags if f.check == "fairness"]
    assert (flag.subject, flag.metric, flag.level) == (
        "Group",
        "disparate_impact_ratio",
        "critical",
    )
    assert "approval 40% for 'B' vs 80% for 'A'" in flag.message


def test_equal_rates_do_not_flag_and_small_groups_are_too_small(
    calculator: PerformanceCalculator,
) -> None:
    result = calculator.calculate(_fairness_frame(0.6, 0.6, small=20))
    group = next(a for a in result.windows[0].fairness if a.attribute == "Group")
    status = {g.group: g.status for g in group.groups}
    assert status == {"A": "judged", "B": "judged", "C": "too small to judge"}
    assert group.judged_groups == ["A", "B"]
    assert group.disparate_impact_ratio > 0.8  # C (never approved) is left out
    assert not [f for f in result.flags if f.check == "fairness"]


def test_disparate_impact_between_warning_and_critical_is_a_warning() -> None:
    frame = _fairness_frame(0.8, 0.56)
    (group,) = approval_fairness(frame, {"Group": "Group"}, min_group=30)
    assert 0.6 < group.disparate_impact_ratio < 0.8
    calc = PerformanceCalculator(PerformanceConfig(protected=["Group"], window=None))
    result = calc.fit(reference_metrics={"roc_auc": 0.8}).calculate(frame)
    (flag,) = [f for f in result.flags if f.check == "fairness"]
    assert flag.level == "warning"
    assert flag.threshold == 0.8


def test_a_low_ratio_on_small_groups_needs_significance_to_flag() -> None:
    frame = _fairness_frame(0.5, 0.35, n=40)  # 20 vs 14 approvals of 40: ratio 0.7, but noise
    (group,) = approval_fairness(frame, {"Group": "Group"})
    assert group.disparate_impact_ratio < 0.8
    assert group.p_value > 0.05
    strict = PerformanceConfig(protected=["Group"], window=None, min_estimation_rows=10)
    loose = strict.model_copy(update={"di_alpha": None})
    for config, expected in ((strict, 0), (loose, 1)):
        calc = PerformanceCalculator(config).fit(reference_metrics={"roc_auc": 0.7})
        flags = [f for f in calc.calculate(frame).flags if f.check == "fairness"]
        assert len(flags) == expected


# --------------------------------------------------------------------------- API edges


def test_windows_follow_calendar_periods(calculator: PerformanceCalculator) -> None:
    proba, y = _calibrated(700, seed=12)
    frame = _frame(proba, y, start=datetime(2026, 11, 18, tzinfo=UTC))  # a Wednesday
    weekly = PerformanceCalculator(PerformanceConfig(window="W", min_labelled_rows=50))
    result = weekly.fit(reference_metrics={"roc_auc": 0.7}).calculate(frame)
    assert [w.label for w in result.windows] == [
        "in the week of 2026-11-16",
        "in the week of 2026-11-23",
    ]
    assert sum(w.rows for w in result.windows) == 700
    assert result.windows[0].end == pd.Timestamp("2026-11-23", tz="UTC")
    assert result.windows[0].estimated.sampling_error is None  # no reference predictions
    assert any("no sampling band" in note for note in result.notes)


def test_config_and_fit_refuse_what_cannot_work() -> None:
    with pytest.raises(ValidationError):
        PerformanceConfig(window="fortnightly")
    with pytest.raises(ValidationError):
        PerformanceConfig(auc_drop_relative=0.1, auc_drop_relative_critical=0.05)
    with pytest.raises(MonitorNotFittedError):
        PerformanceCalculator().calculate(_frame(np.array([0.1]), None))
    with pytest.raises(ConfigurationError):
        PerformanceCalculator().fit(reference_metrics={"test_ks": 0.4})
    assert reference_metrics_from_tags(
        {"test_roc_auc": "0.83", "test_ks": "nan", "brier": 0.15, "candidate": "xgboost"}
    ) == {"roc_auc": 0.83, "brier": 0.15}
