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

:class:`EstimatedPerformanceCalculator` (check ``estimated_performance``) calls
:func:`estimate_performance` once per window. It is fitted as the realised check is, on the
model's labelled reference (placement variances, the calibration test, an isotonic
recalibration when the reference fails it; see :mod:`.performance`), and flags a drop of the
estimate only in windows whose outcomes are not yet known well enough to judge: once they are,
the realised check speaks.

Each window is summarised chunk by chunk (:class:`~.score_summary.ScoreSummary`), so the
estimate on millions of decisions costs a histogram of their scores, not the rows.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import Field

from creditops.monitoring.base import Flag, Level, StrictResult, register_calculator, worst_level
from creditops.monitoring.gauges import MonitorGauges
from creditops.monitoring.performance import (
    INSUFFICIENT,
    ConfusionCounts,
    LabelledReferenceCalculator,
    ReferenceSummary,
    Status,
    auc_level,
    auc_sampling_error,
    pct,
    realised_from_summary,
)
from creditops.monitoring.score_summary import ScoreSummary
from creditops.monitoring.windows import PerformanceConfig, WindowedStream, latest_finite

__all__ = [
    "EstimatedPerformance",
    "EstimatedPerformanceCalculator",
    "EstimatedPerformanceResult",
    "EstimatedWindow",
    "estimate_performance",
    "expected_confusion_matrix",
    "expected_roc_auc",
    "sampling_band",
]


class EstimatedPerformance(StrictResult):
    """CBPE estimate from the probabilities of every decision in the window.

    ``band_low``–``band_high``: estimate ± ``noise_sigmas`` sampling errors, where a realised
    AUC on this many rows is expected to fall. The ``*_on_labelled`` fields compare the estimate
    made on the labelled rows alone with what those rows realised.
    """

    status: Status
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
    summary = ScoreSummary(threshold)
    known = np.zeros(len(score)) if labelled is None else np.where(labelled, 0.0, np.nan)
    if labelled is None:
        known[:] = np.nan
    summary.update(score, proba, known)
    return estimate_from_summary(
        summary,
        reference_auc=reference_auc,
        components=components,
        noise_sigmas=noise_sigmas,
        min_rows=min_rows,
        realised_auc=realised_auc if labelled is not None else None,
    )


def estimate_from_summary(
    summary: ScoreSummary,
    *,
    reference_auc: float,
    components: tuple[float, float] | None,
    noise_sigmas: float,
    min_rows: int,
    realised_auc: float | None = None,
) -> EstimatedPerformance:
    """:func:`estimate_performance` from a window's :class:`ScoreSummary` (its labelled rows
    set beside ``realised_auc`` when that is given)."""
    n = summary.rows
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
    tp, fp, fn, tn = (float(v) for v in summary.expected)
    matrix = ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=tn)
    auc = summary.expected_roc_auc()
    error, low, high = sampling_band(auc, summary.sum_p, n, components, noise_sigmas)
    drop = reference_auc - auc if auc is not None else None
    comparison: dict[str, float | bool | None] = {}
    if realised_auc is not None:
        on_labelled = summary.expected_roc_auc(labelled=True)
        _, low_l, high_l = sampling_band(
            on_labelled, summary.sum_p_labelled, summary.labelled, components, noise_sigmas
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
        expected_default_rate=summary.sum_p / n,
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


# --------------------------------------------------------------------------- the check


class EstimatedWindow(StrictResult):
    """One window's estimate (``start`` inclusive, ``end`` exclusive), and whether its outcomes
    are known well enough to judge (``realised_status``, as the realised check sees them)."""

    start: datetime
    end: datetime
    label: str
    rows: int
    realised_status: Status
    estimated: EstimatedPerformance


class EstimatedPerformanceResult(StrictResult):
    schema_version: int = 1
    config: PerformanceConfig
    reference: ReferenceSummary
    windows: list[EstimatedWindow]
    flags: list[Flag]
    notes: list[str] = Field(default_factory=list)

    @property
    def level(self) -> Level:
        """The most severe flag's level, or "ok"."""
        return worst_level(flag.level for flag in self.flags)


@register_calculator("estimated_performance")
class EstimatedPerformanceCalculator(LabelledReferenceCalculator[EstimatedPerformanceResult]):
    """Estimated (CBPE) performance of one model, by window, from its probabilities alone.

    Fit on the model's labelled reference predictions and, preferably, its recorded test
    figures (as :class:`~creditops.monitoring.performance.PerformanceCalculator`); then
    ``calculate`` on decision-log frames.
    """

    def _windowed_stream(self) -> WindowedStream[EstimatedPerformanceResult]:
        new, fold = self._summarised(recalibrate=True)
        return WindowedStream(self.config, new, fold, self._result)

    def _result(
        self, found: list[tuple[Any, Any, str, int, ScoreSummary]]
    ) -> EstimatedPerformanceResult:
        """Every window (``PredictionLog.window`` columns), with its flags."""
        assert self.reference_ is not None  # calculate runs after fit
        reference = self.reference_
        notes: list[str] = []
        if reference.recalibrated:
            notes.append(
                "The reference probabilities failed the Hosmer–Lemeshow calibration test "
                f"(p = {reference.hosmer_lemeshow_p:.3g}); estimates use probabilities "
                "recalibrated on the reference (isotonic)."
                if not reference.well_calibrated
                else "Estimates use probabilities recalibrated on the reference (isotonic)."
            )
        if self._components is None:
            notes.append("Fitted without reference predictions: no sampling band for estimates.")
        windows: list[EstimatedWindow] = []
        flags: list[Flag] = []
        for start, end, label, rows, summary in found:
            realised = realised_from_summary(summary, self.config, reference, self._components)
            known = realised.status == "ok" and realised.roc_auc is not None
            window = EstimatedWindow(
                start=start,
                end=end,
                label=label,
                rows=rows,
                realised_status=realised.status,
                estimated=estimate_from_summary(
                    summary,
                    reference_auc=reference.roc_auc,
                    components=self._components,
                    noise_sigmas=self.config.noise_sigmas,
                    min_rows=self.config.min_estimation_rows,
                    realised_auc=realised.roc_auc if known else None,
                ),
            )
            windows.append(window)
            flags.extend(self._flags(window, reference))
        if not windows:
            notes.append("The frame holds no decisions.")
        return EstimatedPerformanceResult(
            config=self.config, reference=reference, windows=windows, flags=flags, notes=notes
        )

    def _flags(self, window: EstimatedWindow, reference: ReferenceSummary) -> list[Flag]:
        # Once outcomes are known they speak; the estimate is flagged only until then.
        estimated = window.estimated
        if window.realised_status == "ok" or estimated.roc_auc is None:
            return []
        level = auc_level(estimated.auc_drop_relative, self.config)
        if level is None:
            return []
        severity, limit = level
        band = (
            f"; a realised AUC would fall in {estimated.band_low:.2f}–{estimated.band_high:.2f}"
            if estimated.band_low is not None and estimated.band_high is not None
            else ""
        )
        return [
            Flag(
                check="estimated_performance",
                kind="estimated_auc_drop",
                metric="estimated_roc_auc",
                value=estimated.roc_auc,
                threshold=reference.roc_auc * (1.0 - limit),
                level=severity,
                message=(
                    f"Estimated ROC AUC {estimated.roc_auc:.2f} {window.label} is "
                    f"{pct(estimated.auc_drop_relative or 0.0)} below the model's test AUC "
                    f"{reference.roc_auc:.2f} (from the probabilities of {estimated.rows} "
                    f"decisions, outcomes not yet known{band})."
                ),
                window_start=window.start,
                window_end=window.end,
            )
        ]

    # -- in a monitor run -----------------------------------------------------------------------

    def run_figures(self, result: EstimatedPerformanceResult) -> dict[str, Any]:
        return {"estimated_roc_auc": latest_finite(w.estimated.roc_auc for w in result.windows)}

    def export(self, result: EstimatedPerformanceResult, gauges: MonitorGauges) -> None:
        if result.windows:
            gauges.set_estimated_performance(
                latest_finite(w.estimated.roc_auc for w in result.windows)
            )
