"""The monitoring timeline on a real decision log: four weeks of the champion's decisions, the
last with incomes tripled. The monitor run stores it with its report; the shifted week stands
out on the shifted feature only, its out-of-range share rises, and the weeks with outcomes carry
realised figures beside the estimate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.monitoring.monitor import MonitorConfig, run_monitor
from creditops.monitoring.timeline import TimelineConfig, window_bounds
from creditops.registry import load_model
from creditops.store.alerts import AlertStore
from creditops.store.predlog import PredictionLog, PredictionRecord

pytestmark = pytest.mark.slow

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


@pytest.fixture
def store(trained_store: Settings) -> Settings:
    return trained_store


def _log_weeks(settings: Settings, weeks: int, per_week: int, shifted_week: int) -> None:
    frame, spec = load_builtin("credit_data")
    loaded = load_model(settings)
    features = loaded.spec.features
    bounds = window_bounds(TimelineConfig(windows=weeks), NOW)
    rng = np.random.default_rng(3)
    with PredictionLog(settings.resolved_database_url) as log:
        for week, (start, _) in enumerate(bounds):
            rows = frame.sample(per_week, random_state=week).reset_index(drop=True)
            if week == shifted_week:
                rows["Income"] = rows["Income"] * 3
            probability = loaded.model.predict_proba(rows[features])[:, 1]
            records = [
                PredictionRecord(
                    created_at=start + timedelta(minutes=int(rng.integers(0, 7 * 24 * 60 - 1))),
                    model_name=loaded.name,
                    model_version=loaded.version,
                    features={f: (None if v != v else v) for f, v in row[features].items()},
                    protected={p: row[p] for p in spec.protected},
                    probability=float(p),
                    points=500,
                    decision="approve" if p < 0.3 else "decline",
                    latency_ms=1.0,
                )
                for (_, row), p in zip(rows.iterrows(), probability, strict=True)
            ]
            log.write_many(records)
            defaulted = (rows[spec.target].astype(str) == str(spec.positive)).astype(int)
            log.record_outcomes(
                [(r.prediction_id, int(y)) for r, y in zip(records, defaulted, strict=True)]
            )


def test_the_timeline_shows_the_shifted_week_on_the_shifted_feature(store):
    _log_weeks(store, weeks=4, per_week=400, shifted_week=3)
    config = MonitorConfig.model_validate({"timeline": {"windows": 5, "window": "7D"}})
    report = run_monitor(store, config=config, now=NOW)
    with AlertStore.from_settings(store) as alerts:
        stored = alerts.latest_report(model_version=report.model_version)
    assert stored is not None
    assert stored["run_id"] == report.run_id
    timeline = stored["timeline"]
    # Five windows asked for; the first is empty and before any decision, so left out.
    weeks = timeline["windows"]
    assert [w["rows"] for w in weeks] == [400, 400, 400, 400]
    last_start = window_bounds(TimelineConfig(windows=1), NOW)[0][0]
    assert weeks[-1]["label"] == f"week of {last_start:%Y-%m-%d}"

    income = [w["features"]["Income"]["level"] for w in weeks]
    assert income[:3] == ["stable"] * 3
    assert income[3] in ("warning", "critical")
    others = [c["level"] for name, c in weeks[3]["features"].items() if name != "Income"]
    assert others.count("stable") >= len(others) - 1
    # Tripled incomes leave the training range more often than the other weeks' incomes.
    usual = max(w["out_of_range"].get("Income", 0.0) for w in weeks[:3])
    assert weeks[3]["out_of_range"]["Income"] > usual
    assert weeks[3]["out_of_range_share"] >= weeks[3]["out_of_range"]["Income"]

    # Each cell's distribution is on its feature's reference bins.
    references = {f["feature"]: f for f in timeline["features"]}
    cell = weeks[3]["features"]["Income"]
    assert len(cell["shares"]) == len(references["Income"]["bins"])
    assert sum(cell["shares"]) == pytest.approx(1.0, abs=1e-3)
    assert sum(references["Income"]["shares"]) == pytest.approx(1.0, abs=1e-3)

    # Outcomes are known for every week: realised figures beside the estimate and its band.
    for week in weeks:
        realised, estimated = week["realised"], week["estimated"]
        assert 0.5 < realised["roc_auc"] <= 1.0
        assert realised["labelled_rows"] == 400
        assert estimated["band_low"] < estimated["roc_auc"] < estimated["band_high"]
        assert {a["attribute"] for a in week["fairness"]} == {"Age", "Marital"}
    assert timeline["reference_auc"] is not None


def test_no_timeline_when_asked_for_none(store):
    _log_weeks(store, weeks=1, per_week=150, shifted_week=-1)
    config = MonitorConfig.model_validate({"timeline": {"windows": 0}})
    report = run_monitor(store, config=config, now=NOW)
    assert report.timeline is None


def test_a_timeline_window_is_a_duration_of_an_hour_or_more():
    with pytest.raises(ValueError, match="not a duration"):
        TimelineConfig(window="W")
    with pytest.raises(ValueError, match="at least one hour"):
        TimelineConfig(window="5min")
