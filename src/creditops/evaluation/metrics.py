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


def rank_auc(positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of a batch via the Mann–Whitney U statistic (ties count half)."""
    from scipy.stats import rankdata

    n_pos = positives.shape[1]
    ranks = rankdata(np.concatenate([positives, negatives], axis=1), axis=1)
    u = ranks[:, :n_pos].sum(axis=1) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * negatives.shape[1])


def _class_resamples(y_true: np.ndarray, n_boot: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of ``n_boot`` resamples drawn within each class: (bads, goods), one row per
    resample. Stratified, so every replicate keeps both classes."""
    rng = np.random.default_rng(seed)
    positives, negatives = np.flatnonzero(y_true == 1), np.flatnonzero(y_true == 0)
    pos = positives[rng.integers(0, len(positives), size=(n_boot, len(positives)))]
    neg = negatives[rng.integers(0, len(negatives), size=(n_boot, len(negatives)))]
    return pos, neg


def _percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)


def bootstrap_auc_interval(
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ROC AUC, resampling within each class.

    Stratified resampling keeps both classes in every replicate, and the rank-based AUC
    (Mann–Whitney U) is computed on all replicates at once, so 1,000 replicates cost
    milliseconds.
    """
    y_true = np.asarray(y_true).astype(int)
    proba = np.asarray(proba, dtype=np.float64)
    pos, neg = _class_resamples(y_true, n_boot, seed)
    return _percentile_interval(rank_auc(proba[pos], proba[neg]), level)


def paired_auc_difference_interval(
    y_true: np.ndarray,
    proba_a: np.ndarray,
    proba_b: np.ndarray,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of AUC(b) − AUC(a) on the same rows.

    Both models are scored on the same resamples (within each class, as
    :func:`bootstrap_auc_interval`), so the interval reflects the difference between them and
    not two independent sampling errors: two overlapping single-model intervals can still hide a
    difference that is clear when paired.
    """
    y_true = np.asarray(y_true).astype(int)
    a = np.asarray(proba_a, dtype=np.float64)
    b = np.asarray(proba_b, dtype=np.float64)
    if not len(y_true) == len(a) == len(b):
        raise ValueError(f"y_true ({len(y_true)}), proba_a ({len(a)}), proba_b ({len(b)}) differ")
    pos, neg = _class_resamples(y_true, n_boot, seed)
    return _percentile_interval(rank_auc(b[pos], b[neg]) - rank_auc(a[pos], a[neg]), level)


def calibration_table(
    y_true: np.ndarray, proba: np.ndarray, *, n_bins: int = 10
) -> tuple[list[dict[str, float]], float]:
    """Reliability curve on equal-count bins and the expected calibration error (ECE).

    ECE is the row-weighted mean gap between predicted and observed default rates per bin.
    """
    y_true = np.asarray(y_true).astype(float)
    proba = np.asarray(proba, dtype=np.float64)
    order = np.argsort(proba, kind="stable")
    rows, ece = [], 0.0
    for index in np.array_split(order, n_bins):
        if len(index) == 0:
            continue
        predicted, observed = float(proba[index].mean()), float(y_true[index].mean())
        rows.append(
            {
                "count": len(index),
                "min_proba": float(proba[index].min()),
                "max_proba": float(proba[index].max()),
                "mean_predicted": predicted,
                "observed_rate": observed,
            }
        )
        ece += len(index) / len(proba) * abs(predicted - observed)
    return rows, float(ece)


def lift_table(
    y_true: np.ndarray, proba: np.ndarray, *, n_groups: int = 10
) -> list[dict[str, float]]:
    """Gains and lift by decile of risk, riskiest decile first (the way credit teams read it)."""
    y_true = np.asarray(y_true).astype(float)
    order = np.argsort(-np.asarray(proba, dtype=np.float64), kind="stable")
    total_bads, base_rate = y_true.sum(), y_true.mean()
    rows, cumulative_bads, cumulative_rows = [], 0.0, 0
    for decile, index in enumerate(np.array_split(order, n_groups), start=1):
        bads = float(y_true[index].sum())
        cumulative_bads += bads
        cumulative_rows += len(index)
        rate = bads / len(index) if len(index) else 0.0
        rows.append(
            {
                "decile": decile,
                "count": len(index),
                "bads": bads,
                "bad_rate": rate,
                "lift": rate / base_rate if base_rate else 0.0,
                "cumulative_gain": cumulative_bads / total_bads if total_bads else 0.0,
                "cumulative_lift": (cumulative_bads / cumulative_rows) / base_rate
                if base_rate
                else 0.0,
            }
        )
    return rows


def detailed_metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    *,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, object]:
    """Everything a model-risk reviewer reads about discrimination and calibration."""
    from sklearn.metrics import confusion_matrix

    y_true = np.asarray(y_true).astype(int)
    proba = np.asarray(proba, dtype=np.float64)
    headline = classification_metrics(y_true, proba, threshold=threshold)
    low, high = bootstrap_auc_interval(y_true, proba, n_boot=n_boot, seed=seed)
    tn, fp, fn, tp = confusion_matrix(
        y_true, (proba >= threshold).astype(int), labels=[0, 1]
    ).ravel()
    calibration, ece = calibration_table(y_true, proba)
    return {
        **headline,
        "roc_auc_ci": [low, high],
        "gini_ci": [2 * low - 1, 2 * high - 1],
        "specificity": float(tn / (tn + fp)) if tn + fp else 0.0,
        "rmse": float(np.sqrt(np.mean((proba - y_true) ** 2))),
        "ece": ece,
        "threshold": threshold,
        "n": len(y_true),
        "positive_rate": float(y_true.mean()),
        "confusion_matrix": {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)},
        "calibration": calibration,
        "lift": lift_table(y_true, proba),
        **score_curves(y_true, proba),
    }


def _thin(index_count: int, points: int) -> np.ndarray:
    if index_count <= points:
        return np.arange(index_count)
    return np.unique(np.linspace(0, index_count - 1, points).round().astype(int))


def score_curves(
    y_true: np.ndarray, proba: np.ndarray, *, points: int = 200, bins: int = 20
) -> dict[str, object]:
    """ROC and precision-recall curves (at most ``points`` points each, ends kept) and the
    score distribution of goods and bads in ``bins`` equal-width bins: small enough to store
    with an evaluation and draw interactively, exact at the points kept."""
    from sklearn.metrics import precision_recall_curve, roc_curve

    y_true = np.asarray(y_true).astype(int)
    proba = np.asarray(proba, dtype=np.float64)
    fpr, tpr, _ = roc_curve(y_true, proba)
    keep = _thin(len(fpr), points)
    precision, recall, _ = precision_recall_curve(y_true, proba)
    keep_pr = _thin(len(precision), points)
    edges = np.linspace(0.0, 1.0, bins + 1)
    goods, _ = np.histogram(proba[y_true == 0], bins=edges)
    bads, _ = np.histogram(proba[y_true == 1], bins=edges)
    return {
        "roc_curve": {"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()},
        "pr_curve": {"recall": recall[keep_pr].tolist(), "precision": precision[keep_pr].tolist()},
        "score_histogram": {
            "edges": edges.tolist(),
            "goods": goods.tolist(),
            "bads": bads.tolist(),
        },
    }
