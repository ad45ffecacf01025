"""Retraining: triggers (policy), the retrain-compare-promote pipeline, and its audit trail."""

from creditops.retraining.audit import AuditEntry, AuditLog, AuditLogError, Gate
from creditops.retraining.pipeline import (
    CHALLENGER,
    RetrainInProgressError,
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
    "AuditEntry",
    "AuditLog",
    "AuditLogError",
    "Gate",
    "RetrainConfig",
    "RetrainDecision",
    "RetrainInProgressError",
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
