"""Retraining: triggers (policy) and the retrain-compare-promote pipeline (its audit trail and
locks are in :mod:`creditops.store`)."""

from creditops.retraining.pipeline import (
    CHALLENGER,
    RetrainResult,
    decide_retrain,
    evaluate_gates,
    promote_challenger,
    record_no_retrain,
    retrain,
    retrain_config,
    rollback,
)
from creditops.retraining.policy import RetrainConfig, RetrainDecision, Trigger, should_retrain

__all__ = [
    "CHALLENGER",
    "RetrainConfig",
    "RetrainDecision",
    "RetrainResult",
    "Trigger",
    "decide_retrain",
    "evaluate_gates",
    "promote_challenger",
    "record_no_retrain",
    "retrain",
    "retrain_config",
    "rollback",
    "should_retrain",
]
