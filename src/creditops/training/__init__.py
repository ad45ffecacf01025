"""Training: tuning, calibration, orchestration and MLflow tracking."""

from creditops.training.train import (
    CandidateResult,
    TrainingResult,
    choose_champion,
    load_training_data,
    summary_table,
    train,
)

__all__ = [
    "CandidateResult",
    "TrainingResult",
    "choose_champion",
    "load_training_data",
    "summary_table",
    "train",
]
