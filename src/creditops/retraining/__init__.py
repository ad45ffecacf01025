"""Retraining: triggers (policy) and the retrain-compare-promote pipeline (its audit trail and
locks are in :mod:`creditops.store`)."""

from creditops.retraining.pipeline import (
    CHALLENGER,
    RetrainResult,
    current_triggers,
    decide_retrain,
    evaluate_gates,
    promote_challenger,
    record_no_retrain,
    retrain,
    retrain_config,
    rollback,
)
from creditops.retraining.policy import (
    RetrainConfig,
    RetrainDecision,
    Trigger,
    TriggerStatus,
    should_retrain,
    trigger_status,
)

__all__ = [
    "CHALLENGER",
    "RetrainConfig",
    "RetrainDecision",
    "RetrainResult",
    "Trigger",
    "TriggerStatus",
    "current_triggers",
    "decide_retrain",
    "evaluate_gates",
    "promote_challenger",
    "record_no_retrain",
    "retrain",
    "retrain_config",
    "rollback",
    "should_retrain",
    "trigger_status",
]
