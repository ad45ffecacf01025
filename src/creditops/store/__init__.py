"""Durable records shared by serving, monitoring and retraining: the decision log, written by
the service and read by the monitors and the retraining pipeline."""

from creditops.store.predlog import (
    OutcomeConflictError,
    PredictionLog,
    PredictionLogError,
    PredictionRecord,
    UnknownPredictionError,
)

__all__ = [
    "OutcomeConflictError",
    "PredictionLog",
    "PredictionLogError",
    "PredictionRecord",
    "UnknownPredictionError",
]
