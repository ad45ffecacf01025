"""Model drift monitoring: realised performance by window, on synthetic frames with known
truth and on a real SQLite prediction log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score

from creditops.exceptions import ConfigurationError, NotFittedError
from creditops.monitoring.estimated import EstimatedPerformanceCalculator
from creditops.monitoring.fairness_watch import FairnessCalculator
from creditops.monitoring.performance import (
    PerformanceCalculator,
    PerformanceResult,
    reference_metrics_from_tags,
)
from creditops.monitoring.windows import PerformanceConfig
from creditops.store.predlog import PredictionLog, PredictionRecord
from decision_frames import MONDAY, calibrated, decision_frame

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
    ref_proba, ref_y = calibrated(4000, seed=9)
    test_auc = roc_auc_score(ref_y, ref_proba)
    config = PerformanceConfig(window="7D", min_labelled_rows=200)
    tags = {"test_roc_auc": str(test_auc)}
    calc = PerformanceCalculator(config).fit(ref_y, ref_proba, reference_metrics=tags)
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
    # The unlabelled third week is still estimated, and is fine; the same windows throughout.
    estimator = EstimatedPerformanceCalculator(config).fit(ref_y, ref_proba, reference_metrics=tags)
    estimated = estimator.calculate(frame)
    fairness = FairnessCalculator(config).fit().calculate(frame)
    assert [w.start for w in estimated.windows] == [w.start for w in result.windows]
    assert [w.start for w in fairness.windows] == [w.start for w in result.windows]
    assert estimated.windows[2].estimated.status == "ok"
    flags = [*result.flags, *estimated.flags, *fairness.flags]
    assert not [f for f in flags if f.window_start == third.start]
    # Protected attributes come from the log's own column map.
    attributes = fairness.windows[0].attributes
    assert {a.attribute for a in attributes} == {"Age", "Marital"}
    assert [g.group for g in attributes[0].groups] == ["<25", "25–39", "40–59", "60+"]

    text = json.dumps(result.to_dict(), allow_nan=False)
    assert PerformanceResult.model_validate(json.loads(text)).flags == result.flags


@pytest.mark.parametrize(
    ("relative_drop", "level"), [(0.02, None), (0.07, "warning"), (0.15, "critical")]
)
def test_realised_drop_levels_follow_the_relative_thresholds(
    relative_drop: float, level: str | None
) -> None:
    proba, y = calibrated(2000, seed=13)
    realised_auc = roc_auc_score(y, proba)
    test_auc = realised_auc / (1 - relative_drop)
    calc = PerformanceCalculator(PerformanceConfig(window=None)).fit(
        reference_metrics={"test_roc_auc": test_auc}
    )
    result = calc.calculate(decision_frame(proba, y))
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
    result = calculator.calculate(decision_frame(proba, outcome))
    realised = result.windows[0].realised
    assert realised.status == "insufficient data"
    assert realised.labelled_rows == 150
    assert realised.roc_auc is None
    assert realised.auc_drop is None
    assert "150 labelled decisions" in realised.note
    assert not [f for f in result.flags if f.check == "performance"]

    few_defaults = np.zeros(500, dtype=int)
    few_defaults[:5] = 1
    realised = calculator.calculate(decision_frame(proba, few_defaults)).windows[0].realised
    assert realised.status == "insufficient data"
    assert realised.defaults == 5


# --------------------------------------------------------------------------- API edges


def test_windows_follow_calendar_periods(calculator: PerformanceCalculator) -> None:
    proba, y = calibrated(700, seed=12)
    frame = decision_frame(proba, y, start=datetime(2026, 11, 18, tzinfo=UTC))  # a Wednesday
    weekly = PerformanceConfig(window="W", min_labelled_rows=50)
    result = PerformanceCalculator(weekly).fit(reference_metrics={"roc_auc": 0.7}).calculate(frame)
    assert [w.label for w in result.windows] == [
        "in the week of 2026-11-16",
        "in the week of 2026-11-23",
    ]
    assert sum(w.rows for w in result.windows) == 700
    assert result.windows[0].end == pd.Timestamp("2026-11-23", tz="UTC")
    assert result.windows[0].realised.sampling_error is None  # no reference predictions
    estimator = EstimatedPerformanceCalculator(weekly).fit(reference_metrics={"roc_auc": 0.7})
    estimated = estimator.calculate(frame)
    assert estimated.windows[0].estimated.sampling_error is None
    assert any("no sampling band" in note for note in estimated.notes)


def test_config_and_fit_refuse_what_cannot_work() -> None:
    with pytest.raises(ValidationError):
        PerformanceConfig(window="fortnightly")
    with pytest.raises(ValidationError):
        PerformanceConfig(auc_drop_relative=0.1, auc_drop_relative_critical=0.05)
    with pytest.raises(NotFittedError):
        PerformanceCalculator().calculate(decision_frame(np.array([0.1]), None))
    with pytest.raises(ConfigurationError):
        PerformanceCalculator().fit(reference_metrics={"test_ks": 0.4})
    assert reference_metrics_from_tags(
        {"test_roc_auc": "0.83", "test_ks": "nan", "brier": 0.15, "candidate": "xgboost"}
    ) == {"roc_auc": 0.83, "brier": 0.15}
