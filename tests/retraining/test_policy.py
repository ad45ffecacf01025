"""Retraining triggers at their edges: limits are strict, critical drift must be a current
trend, the schedule counts from the last retrain, and evidence triggers cool down."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from creditops.retraining import RetrainConfig, RetrainDecision, should_retrain, trigger_status
from helpers import NOW, monitor_run


def _names(decision: RetrainDecision) -> list[str]:
    return [r.name for r in decision.reasons]


def test_nothing_to_go_on_is_no_reason():
    decision = should_retrain(RetrainConfig(), now=NOW)
    assert decision.retrain is False
    assert decision.summary == "no trigger fired"


@pytest.mark.parametrize(
    ("drop", "fires"), [(None, False), (0.02, False), (0.05, False), (0.0501, True)]
)
def test_auc_drop_must_exceed_the_limit(drop, fires):
    decision = should_retrain(RetrainConfig(), now=NOW, runs=[monitor_run(1, drop=drop)])
    assert _names(decision) == (["auc_drop"] if fires else [])
    if fires:
        reason = decision.reasons[0]
        assert reason.value == pytest.approx(0.0501)
        assert reason.threshold == pytest.approx(0.05)
        assert reason.message == (
            "realised ROC AUC is 5.0% below the champion's test AUC (limit 5%)"
        )


def test_features_drifted_reads_the_latest_run_only():
    config = RetrainConfig()
    at_limit = should_retrain(
        config, now=NOW, runs=[monitor_run(2, share=0.9), monitor_run(1, share=0.30)]
    )
    assert _names(at_limit) == []  # 30% is the limit, not beyond it; the older 90% is history
    beyond = should_retrain(config, now=NOW, runs=[monitor_run(1, share=0.31)])
    assert _names(beyond) == ["features_drifted"]
    assert "31% of the features drifted" in beyond.reasons[0].message
    unknown = should_retrain(config, now=NOW, runs=[monitor_run(1, share=None)])
    assert _names(unknown) == []


@pytest.mark.parametrize(
    ("hours", "fires"),
    [
        ((30,), False),  # one critical run is not a trend, and 30 h old is not news
        ((20, 1), False),  # critical for 20 hours only
        ((25, 2), True),  # two runs spanning 25 hours, the newest current
        ((50, 30), False),  # a long streak that stopped being reported 30 hours ago
        ((26, 18, 9, 1), True),
    ],
)
def test_critical_drift_must_be_a_current_trend(hours, fires):
    runs = [monitor_run(h, "critical") for h in hours]
    decision = should_retrain(RetrainConfig(), now=NOW, runs=runs)
    assert _names(decision) == (["drift_critical"] if fires else [])
    if fires:
        assert decision.reasons[0].value == pytest.approx(max(hours))
        assert f"for {max(hours)} hours" in decision.reasons[0].message


def test_a_run_without_a_drift_verdict_breaks_the_streak():
    runs = [
        monitor_run(40, "critical"),
        monitor_run(20, None, share=None),
        monitor_run(10, "critical"),
        monitor_run(1, "critical"),
    ]
    assert _names(should_retrain(RetrainConfig(), now=NOW, runs=runs)) == []
    shorter = RetrainConfig(drift_critical_hours=6)
    assert _names(should_retrain(shorter, now=NOW, runs=runs)) == ["drift_critical"]


def test_schedule_counts_from_the_champion_or_the_last_retrain():
    config = RetrainConfig()
    champion = NOW - timedelta(days=10)
    old = should_retrain(config, now=NOW, champion_created_at=champion)
    assert _names(old) == ["schedule"]
    assert old.reasons[0].message == "the champion is 10.0 days old (retrain every 7 days)"
    recent = should_retrain(
        config, now=NOW, champion_created_at=champion, last_retrain_at=NOW - timedelta(days=2)
    )
    assert _names(recent) == []
    stale = should_retrain(
        config, now=NOW, champion_created_at=champion, last_retrain_at=NOW - timedelta(days=8)
    )
    assert stale.reasons[0].message == "the last retrain was 8.0 days old (retrain every 7 days)"
    off = should_retrain(
        RetrainConfig(schedule_days=None), now=NOW, champion_created_at=NOW - timedelta(days=400)
    )
    assert _names(off) == []


def test_evidence_triggers_cool_down_after_a_retrain_but_force_does_not():
    runs = [monitor_run(1, share=0.6, drop=0.2)]
    three_hours_ago = NOW - timedelta(hours=3)
    held = should_retrain(RetrainConfig(), now=NOW, runs=runs, last_retrain_at=three_hours_ago)
    assert held.retrain is False
    assert held.notes == [
        "auc_drop, features_drifted held back: the last retrain ran 3.0 hours ago "
        "(at most one every 24 hours unless forced)"
    ]
    assert "held back" in held.summary
    forced = should_retrain(
        RetrainConfig(), now=NOW, runs=runs, last_retrain_at=three_hours_ago, force=True
    )
    assert _names(forced) == ["forced"]
    assert forced.retrain is True
    no_cooldown = RetrainConfig(min_hours_between_retrains=0)
    again = should_retrain(no_cooldown, now=NOW, runs=runs, last_retrain_at=three_hours_ago)
    assert _names(again) == ["auc_drop", "features_drifted"]
    assert again.notes == []


def test_a_decision_survives_json():
    decision = should_retrain(
        RetrainConfig(), now=NOW, runs=[monitor_run(1, share=0.5)], force=True
    )
    assert RetrainDecision.model_validate_json(decision.model_dump_json()) == decision


def test_config_refuses_nonsense():
    with pytest.raises(ValidationError, match="holdout_share"):
        RetrainConfig(holdout_share=1.0)
    with pytest.raises(ValidationError, match="unknown_key"):
        RetrainConfig(unknown_key=1)


def test_every_trigger_reports_its_value_against_its_threshold_fired_or_not():
    runs = [monitor_run(30, "critical"), monitor_run(2, "critical", share=0.2, drop=0.03)]
    statuses = {
        s.name: s
        for s in trigger_status(
            RetrainConfig(), now=NOW, runs=runs, champion_created_at=NOW - timedelta(days=3)
        )
    }
    assert list(statuses) == ["auc_drop", "drift_critical", "features_drifted", "schedule"]
    assert statuses["auc_drop"].value == pytest.approx(0.03)
    assert not statuses["auc_drop"].fired
    assert statuses["drift_critical"].value == pytest.approx(30.0)
    assert statuses["drift_critical"].fired
    assert statuses["features_drifted"].value == pytest.approx(0.2)
    assert statuses["features_drifted"].threshold == pytest.approx(0.3)
    assert statuses["schedule"].value == pytest.approx(3.0)
    assert not statuses["schedule"].fired
    # should_retrain fires exactly the statuses that fire, with the same words.
    decision = should_retrain(
        RetrainConfig(), now=NOW, runs=runs, champion_created_at=NOW - timedelta(days=3)
    )
    assert [(r.name, r.message) for r in decision.reasons] == [
        (s.name, s.message) for s in statuses.values() if s.fired
    ]


def test_with_no_run_yet_the_triggers_say_there_is_nothing_to_judge():
    statuses = trigger_status(RetrainConfig(), now=NOW)
    assert [(s.name, s.value, s.fired) for s in statuses] == [
        ("auc_drop", None, False),
        ("drift_critical", 0.0, False),
        ("features_drifted", None, False),
    ]
    assert statuses[0].message == "no realised ROC AUC yet (outcomes not known)"
