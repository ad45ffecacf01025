"""Estimated performance: how well the model ranks while outcomes are still unknown.

Lending outcomes arrive months after the decision, so until they do performance is estimated
from the probabilities alone, in the manner of confidence-based performance estimation (CBPE):
when the probabilities are calibrated, row i defaults with probability p_i, so the expected
confusion matrix at the decision threshold is a sum of p_i and 1 − p_i, and the expected ROC AUC
is the AUC of a data set where every row counts as a default with weight p_i and as a good with
weight 1 − p_i (the weighted Mann–Whitney statistic, computed exactly in O(n log n)). The band
around it is the sampling error of a realised AUC at the window's size, from DeLong's placement
variances on the reference. When outcomes arrive, the estimate on the labelled rows sits beside
the realised figure, so a reader sees whether the estimate was right.

:class:`~creditops.monitoring.performance.PerformanceCalculator` calls
:func:`estimate_performance` once per window.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

from creditops.evaluation.metrics import calibration_table
from creditops.exceptions import DataValidationError
from creditops.monitoring.base import StrictResult

__all__ = [
    "ConfusionCounts",
    "EstimatedPerformance",
    "auc_sampling_components",
    "auc_sampling_error",
    "estimate_performance",
    "expected_confusion_matrix",
    "expected_roc_auc",
    "hosmer_lemeshow",
    "sampling_band",
]

INSUFFICIENT = "insufficient data"


class ConfusionCounts(StrictResult):
    """Counts at the threshold, positive = default. Expected counts are fractional."""

    tp: float
    fp: float
    fn: float
    tn: float


class EstimatedPerformance(StrictResult):
    """CBPE estimate from the probabilities of every decision in the window.

    ``band_low``–``band_high``: estimate ± ``noise_sigmas`` sampling errors, where a realised
    AUC on this many rows is expected to fall. The ``*_on_labelled`` fields compare the estimate
    made on the labelled rows alone with what those rows realised.
    """

    status: Literal["ok", "insufficient data"]
    rows: int
    expected_default_rate: float | None
    expected_confusion_matrix: ConfusionCounts | None
    expected_precision: float | None
    expected_recall: float | None
    expected_accuracy: float | None
    roc_auc: float | None
    sampling_error: float | None
    band_low: float | None
    band_high: float | None
    auc_drop: float | None
    auc_drop_relative: float | None
    roc_auc_on_labelled: float | None = None
    band_low_on_labelled: float | None = None
    band_high_on_labelled: float | None = None
    realised_roc_auc: float | None = None
    estimate_error: float | None = None  # realised - estimated, on the labelled rows
    realised_within_band: bool | None = None
    note: str | None = None


def expected_roc_auc(score: np.ndarray, proba: np.ndarray | None = None) -> float | None:
    """ROC AUC expected when row i defaults with probability ``proba[i]`` (default: ``score``).

    Every row counts as a default with weight p and as a good with weight 1 − p; the AUC of
    ``score`` on that weighted data (ties count half) equals scikit-learn's ``roc_auc_score`` on
    the rows duplicated as (y=1, weight p) and (y=0, weight 1 − p), which is CBPE's estimate.
    O(n log n): one sort of the distinct scores. None when either weight total is zero.
    """
    score = np.asarray(score, dtype=np.float64)
    weight = score if proba is None else np.asarray(proba, dtype=np.float64)
    weight = np.clip(weight, 0.0, 1.0)
    if score.size == 0:
        return None
    values, inverse = np.unique(score, return_inverse=True)
    defaults = np.bincount(inverse, weights=weight, minlength=len(values))
    goods = np.bincount(inverse, weights=1.0 - weight, minlength=len(values))
    total = defaults.sum() * goods.sum()
    if total <= 0.0:
        return None
    goods_below = np.cumsum(goods) - goods
    return float(np.sum(defaults * (goods_below + 0.5 * goods)) / total)


def expected_confusion_matrix(
    score: np.ndarray, threshold: float, proba: np.ndarray | None = None
) -> ConfusionCounts:
    """Expected counts when the model predicts a default at ``score >= threshold``.

    Expected TP = Σ p over predicted defaults, FP = Σ (1 − p) over them; FN and TN likewise over
    predicted goods; the four sum to the number of rows.
    """
    score = np.asarray(score, dtype=np.float64)
    p = np.clip(score if proba is None else np.asarray(proba, dtype=np.float64), 0.0, 1.0)
    predicted = score >= threshold
    return ConfusionCounts(
        tp=float(p[predicted].sum()),
        fp=float((1.0 - p[predicted]).sum()),
        fn=float(p[~predicted].sum()),
        tn=float((1.0 - p[~predicted]).sum()),
    )


def auc_sampling_components(y_true: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """DeLong's placement variances (defaults, goods) of the ROC AUC on labelled rows.

    A default's placement is the share of goods it outranks (ties half), a good's the share of
    defaults that outrank it; the AUC's variance on m defaults and k goods is about
    var(default placements) / m + var(good placements) / k, so these two numbers from the
    reference give the sampling error at any window size.
    """
    y = np.asarray(y_true).astype(int)
    score = np.asarray(score, dtype=np.float64)
    pos, neg = np.sort(score[y == 1]), np.sort(score[y == 0])
    if len(pos) < 2 or len(neg) < 2:
        raise DataValidationError("the reference needs at least two defaults and two goods")
    below = np.searchsorted(neg, pos, "left") + np.searchsorted(neg, pos, "right")
    v_defaults = below / (2.0 * len(neg))
    under = np.searchsorted(pos, neg, "left") + np.searchsorted(pos, neg, "right")
    v_goods = 1.0 - under / (2.0 * len(pos))
    return float(np.var(v_defaults, ddof=1)), float(np.var(v_goods, ddof=1))


def auc_sampling_error(components: tuple[float, float], defaults: float, goods: float) -> float:
    """Standard error of a ROC AUC measured on ``defaults`` and ``goods`` rows (may be expected,
    fractional counts)."""
    var_defaults, var_goods = components
    if defaults <= 0 or goods <= 0:
        return math.inf
    return float(math.sqrt(var_defaults / defaults + var_goods / goods))


def hosmer_lemeshow(y_true: np.ndarray, proba: np.ndarray, *, n_bins: int = 10) -> float:
    """p-value of the Hosmer–Lemeshow test on equal-count bins (small: not calibrated).

    The calibration test of PD validation: Σ n_b (o_b − e_b)² / (e_b (1 − e_b)) over bins,
    chi-square with n_bins − 2 degrees of freedom.
    """
    from scipy.stats import chi2

    rows, _ = calibration_table(y_true, proba, n_bins=n_bins)
    statistic = 0.0
    for row in rows:
        expected = min(max(row["mean_predicted"], 1e-6), 1.0 - 1e-6)
        gap = row["observed_rate"] - expected
        statistic += row["count"] * gap * gap / (expected * (1.0 - expected))
    return float(chi2.sf(statistic, max(len(rows) - 2, 1)))


def sampling_band(
    estimate: float | None,
    expected_defaults: float,
    n: int,
    components: tuple[float, float] | None,
    noise_sigmas: float,
) -> tuple[float | None, float | None, float | None]:
    """Sampling error of a realised AUC on ``n`` rows, and the band of ``noise_sigmas`` errors
    around ``estimate`` where such an AUC is expected to fall (None without the reference's
    placement variances)."""
    if estimate is None or components is None:
        return None, None, None
    error = auc_sampling_error(components, expected_defaults, n - expected_defaults)
    if not math.isfinite(error):
        return None, None, None
    spread = noise_sigmas * error
    return error, max(0.0, estimate - spread), min(1.0, estimate + spread)


def estimate_performance(
    score: np.ndarray,
    proba: np.ndarray,
    *,
    threshold: float,
    reference_auc: float,
    components: tuple[float, float] | None,
    noise_sigmas: float,
    min_rows: int,
    labelled: np.ndarray | None = None,
    realised_auc: float | None = None,
) -> EstimatedPerformance:
    """CBPE estimate for one window: ``score`` the model's probabilities (they set the decision
    at ``threshold`` and the ranking), ``proba`` the probabilities taken as true (``score``
    recalibrated on the reference, or ``score`` itself). With ``labelled`` (a mask of the rows
    whose outcome is known) and their ``realised_auc``, the estimate on those rows is set beside
    what they realised."""
    n = len(score)
    if n < min_rows:
        return EstimatedPerformance(
            status=INSUFFICIENT,
            rows=n,
            expected_default_rate=None,
            expected_confusion_matrix=None,
            expected_precision=None,
            expected_recall=None,
            expected_accuracy=None,
            roc_auc=None,
            sampling_error=None,
            band_low=None,
            band_high=None,
            auc_drop=None,
            auc_drop_relative=None,
            note=f"{n} decisions; at least {min_rows} are needed",
        )
    p = proba
    matrix = expected_confusion_matrix(score, threshold, p)
    auc = expected_roc_auc(score, p)
    error, low, high = sampling_band(auc, float(p.sum()), n, components, noise_sigmas)
    drop = reference_auc - auc if auc is not None else None
    comparison: dict[str, float | bool | None] = {}
    if labelled is not None and realised_auc is not None:
        on_labelled = expected_roc_auc(score[labelled], p[labelled])
        _, low_l, high_l = sampling_band(
            on_labelled, float(p[labelled].sum()), labelled.sum(), components, noise_sigmas
        )
        comparison = {
            "roc_auc_on_labelled": on_labelled,
            "band_low_on_labelled": low_l,
            "band_high_on_labelled": high_l,
            "realised_roc_auc": realised_auc,
            "estimate_error": realised_auc - on_labelled if on_labelled is not None else None,
            "realised_within_band": bool(low_l <= realised_auc <= high_l)
            if low_l is not None and high_l is not None
            else None,
        }
    predicted_defaults = matrix.tp + matrix.fp
    actual_defaults = matrix.tp + matrix.fn
    return EstimatedPerformance(
        status="ok",
        rows=n,
        expected_default_rate=float(p.mean()),
        expected_confusion_matrix=matrix,
        expected_precision=matrix.tp / predicted_defaults if predicted_defaults > 0 else None,
        expected_recall=matrix.tp / actual_defaults if actual_defaults > 0 else None,
        expected_accuracy=(matrix.tp + matrix.tn) / n,
        roc_auc=auc,
        sampling_error=error,
        band_low=low,
        band_high=high,
        auc_drop=drop,
        auc_drop_relative=drop / reference_auc if drop is not None else None,
        **comparison,
    )
