"""Classification metrics for default prediction, with the credit-specific ones (Gini, KS).

Pure functions of labels and probabilities: training, evaluation and monitoring share them.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

HEADLINE_METRICS = (
    "roc_auc",
    "gini",
    "ks",
    "pr_auc",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "brier",
    "log_loss",
)


def ks_statistic(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Kolmogorov–Smirnov: the largest gap between the score distributions of bads and goods."""
    fpr, tpr, _ = roc_curve(y_true, proba)
    return float(np.max(tpr - fpr))


def classification_metrics(
    y_true: np.ndarray, proba: np.ndarray, *, threshold: float = 0.5
) -> dict[str, float]:
    """The headline metrics for probabilities of default ``proba`` (positive class = default)."""
    y_true = np.asarray(y_true)
    proba = np.clip(np.asarray(proba, dtype=np.float64), 0.0, 1.0)
    predicted = (proba >= threshold).astype(int)
    auc = float(roc_auc_score(y_true, proba))
    return {
        "roc_auc": auc,
        "gini": 2.0 * auc - 1.0,
        "ks": ks_statistic(y_true, proba),
        "pr_auc": float(average_precision_score(y_true, proba)),
        "accuracy": float(accuracy_score(y_true, predicted)),
        "precision": float(precision_score(y_true, predicted, zero_division=0)),
        "recall": float(recall_score(y_true, predicted, zero_division=0)),
        "f1": float(f1_score(y_true, predicted, zero_division=0)),
        "brier": float(brier_score_loss(y_true, proba)),
        "log_loss": float(log_loss(y_true, proba, labels=[0, 1])),
    }
