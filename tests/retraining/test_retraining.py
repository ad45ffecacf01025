"""Retraining triggers and gates (pure), and the pipeline's guarantees on a real store: too few
labels is audited and trains nothing, a crash changes no alias and is audited, two retrains
never run at once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from creditops.config import Settings
from creditops.data.datasets import load_builtin
from creditops.evaluation.fairness import four_fifths_verdict
from creditops.exceptions import RetrainInProgressError
from creditops.registry import get_version
from creditops.retraining import (
    RetrainConfig,
    RetrainDecision,
    Trigger,
    evaluate_gates,
    retrain,
    should_retrain,
)
from creditops.retraining import pipeline as pipeline_module
from creditops.store import locks
from creditops.store.audit import AuditLog
from helpers import NOW, log_labelled_decisions, monitor_run


def test_no_trigger_on_quiet_history():
    runs = [monitor_run(h) for h in (30, 20, 10, 1)]
    decision = should_retrain(
        RetrainConfig(), now=NOW, runs=runs, champion_created_at=NOW - timedelta(days=2)
    )
    assert decision.retrain is False
    assert decision.reasons == []


def test_each_trigger_fires_with_its_numbers():
    config = RetrainConfig()
    critical = [monitor_run(h, "critical") for h in (26, 18, 9, 1)]
    decision = should_retrain(
        config,
        now=NOW,
        runs=[*critical[:-1], monitor_run(1, "critical", share=0.45, drop=0.08)],
        champion_created_at=NOW - timedelta(days=9),
        force=True,
    )
    names = [r.name for r in decision.reasons]
    assert names == ["forced", "auc_drop", "drift_critical", "features_drifted", "schedule"]
    by_name = {r.name: r for r in decision.reasons}
    assert by_name["auc_drop"].value == pytest.approx(0.08)
    assert by_name["drift_critical"].value == pytest.approx(26.0)
    assert "45% of the features drifted" in by_name["features_drifted"].message


def test_critical_drift_must_last_the_whole_period():
    # Critical for 12 hours only, after an ok run: not yet a trend.
    runs = [
        monitor_run(30, "critical"),
        monitor_run(13, "ok"),
        monitor_run(12, "critical"),
        monitor_run(1, "critical"),
    ]
    decision = should_retrain(RetrainConfig(), now=NOW, runs=runs)
    assert [r.name for r in decision.reasons] == []


def _scores(auc: float, brier: float, di: dict[str, float]) -> dict:
    return {"roc_auc": auc, "brier": brier, "disparate_impact": di}


def test_gates_pass_and_fail_on_their_own_figures():
    config = RetrainConfig()
    champion = _scores(0.80, 0.150, {"Age": 0.60})
    good = evaluate_gates(champion, _scores(0.797, 0.152, {"Age": 0.59}), 400, config)
    assert all(g.passed for g in good)
    worse = evaluate_gates(champion, _scores(0.79, 0.160, {"Age": 0.50}), 100, config)
    failed = {g.name for g in worse if not g.passed}
    assert failed == {"minimum_labelled_rows", "auc_not_worse", "calibration_not_worse", "fairness"}
    strict = evaluate_gates(
        champion, _scores(0.82, 0.14, {"Age": 0.75}), 400, RetrainConfig(fairness="pass")
    )
    assert [g.name for g in strict if not g.passed] == ["fairness"]


@pytest.mark.parametrize("ratio", [0.5, 0.79, 0.7999, 0.8, 0.81, 1.0])
def test_the_pass_gate_reads_the_one_four_fifths_verdict(ratio: float):
    champion = _scores(0.80, 0.150, {"Age": 0.9})
    gates = evaluate_gates(
        champion, _scores(0.80, 0.150, {"Age": ratio}), 400, RetrainConfig(fairness="pass")
    )
    (fairness,) = [g for g in gates if g.name == "fairness"]
    assert fairness.passed == (four_fifths_verdict(ratio) == "no adverse impact presumed")
    assert four_fifths_verdict(None) == "not assessable"


@pytest.fixture
def store(trained_store: Settings) -> Settings:
    return trained_store


def _labelled_decisions(settings: Settings, n: int) -> None:
    frame, spec = load_builtin("credit_data")
    rows = frame.sample(n, random_state=5).reset_index(drop=True)
    log_labelled_decisions(settings, rows, (rows[spec.target] == spec.positive).astype(int))


FORCED = RetrainDecision(retrain=True, reasons=[Trigger(name="forced", message="forced")])


def test_too_few_labels_trains_nothing_and_says_why(store):
    _labelled_decisions(store, 300)  # a 30% holdout of 300 is 90 rows < 200
    result = retrain(store, RetrainConfig(models=["logistic_regression"]), FORCED, now=NOW)
    assert result.outcome == "skipped"
    assert "need 200" in result.message
    assert get_version(store, "2") is None  # nothing registered
    with AuditLog.from_settings(store) as audit:
        entry = audit.recent(1)[0]
    assert entry.outcome == "skipped"
    assert entry.reasons == ["forced"]


def test_a_crashed_retrain_changes_no_alias_and_is_audited(store, monkeypatch):
    _labelled_decisions(store, 800)

    def broken(*_, **__):
        raise RuntimeError("out of memory while tuning")

    monkeypatch.setattr(pipeline_module, "train", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        retrain(store, RetrainConfig(models=["logistic_regression"]), FORCED, now=NOW)
    assert str(get_version(store, "champion").version) == "1"
    assert get_version(store, "challenger") is None
    with AuditLog.from_settings(store) as audit:
        entry = audit.recent(1)[0]
    assert entry.outcome == "failed"
    assert "out of memory while tuning" in entry.message


def test_two_retrains_never_run_at_once(store):
    with (
        locks.exclusive(store, locks.RETRAIN_LOCK),
        pytest.raises(RetrainInProgressError, match="another retrain is running"),
    ):
        retrain(store, RetrainConfig(), FORCED, now=NOW)
