"""Training: tuning, calibration, orchestration and MLflow tracking."""

from creditops.training.select import Selection, choose_champion
from creditops.training.train import (
    CandidateResult,
    TrainingResult,
    load_training_data,
    summary_table,
    train,
)

__all__ = [
    "CandidateResult",
    "Selection",
    "TrainingResult",
    "choose_champion",
    "load_training_data",
    "summary_table",
    "train",
]
