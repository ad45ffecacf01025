"""Model drift: realised performance of the champion, by time window of the decision log.

Lending outcomes arrive months after the decision, so one window is read three ways, by three
registered checks on one base (:class:`~creditops.monitoring.windows.WindowedCalculator`):

* **Realised** performance on the decisions whose outcome is known (ROC AUC, KS, Brier,
  default rate, calibration), with the drop against the model's test figures, here
  (:class:`PerformanceCalculator`, check ``performance``). Below a minimum number of labelled
  rows (or of defaults / goods) a window is "insufficient data" and never flagged: an AUC on a
  few dozen loans is noise.
* **Estimated** performance from the probabilities alone (CBPE), in :mod:`.estimated`
  (check ``estimated_performance``); flagged only while outcomes are unknown, since once they
  are known they speak.
* **Fairness** of the decisions (approval rate by protected group, four-fifths rule), in
  :mod:`.fairness_watch` (check ``fairness``).

Realised and estimated performance are both fitted on the model's labelled test (or
validation) predictions and its registered test figures, so what they share lives here:
:class:`LabelledReferenceCalculator` (the reference figures, DeLong's placement variances that
give the sampling error of an AUC at any window size, the Hosmer–Lemeshow test that decides
whether estimates recalibrate) and :func:`realised_performance`, beside which the estimate is
set once outcomes arrive. ``calculate`` takes a frame from ``PredictionLog.window(...)``; filter
it to one model version first: the figures compare the window with *that* model's test results.

Each window is summarised chunk by chunk (:class:`~.score_summary.ScoreSummary`: a histogram of
its scores with the outcomes known, and exact sums), so a window of millions of decisions costs
a bounded summary; ``calculate(frame)`` is the one-chunk case.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Self, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field
from scipy.stats import chi2
from sklearn.isotonic import IsotonicRegression

from creditops.evaluation.metrics import calibration_table, classification_metrics
from creditops.exceptions import ConfigurationError, DataValidationError
from creditops.monitoring.base import (
    Flag,
    Level,
    Reference,
    Result,
    StrictResult,
    register_calculator,
    worst_level,
)
from creditops.monitoring.gauges import MonitorGauges
from creditops.monitoring.score_summary import ScoreSummary
from creditops.monitoring.windows import (
    PerformanceConfig,
    WindowedCalculator,
    WindowedStream,
    latest_finite,
)

__all__ = [
    "ConfusionCounts",
    "LabelledReferenceCalculator",
    "PerformanceCalculator",
    "PerformanceResult",
    "RealisedPerformance",
    "ReferenceSummary",
    "WindowPerformance",
    "auc_level",
    "auc_sampling_components",
    "auc_sampling_error",
    "hosmer_lemeshow",
    "realised_performance",
    "reference_metrics_from_tags",
]

Status = Literal["ok", "insufficient data"]
INSUFFICIENT = "insufficient data"

# Names under which a model version's test figures may be recorded (tags or MLflow metrics).
_REFERENCE_KEYS = ("roc_auc", "ks", "brier", "default_rate", "ece", "gini")


# --------------------------------------------------------------------------- statistics


class ConfusionCounts(StrictResult):
    """Counts at the threshold, positive = default. Expected counts are fractional."""

    tp: float
    fp: float
    fn: float
    tn: float


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
    rows, _ = calibration_table(y_true, proba, n_bins=n_bins)
    statistic = 0.0
    for row in rows:
        expected = min(max(row["mean_predicted"], 1e-6), 1.0 - 1e-6)
        gap = row["observed_rate"] - expected
        statistic += row["count"] * gap * gap / (expected * (1.0 - expected))
    return float(chi2.sf(statistic, max(len(rows) - 2, 1)))


# --------------------------------------------------------------------------- result models


class ReferenceSummary(StrictResult):
    """The figures each window is compared with, and what the reference says about calibration.

    ``source`` says per figure whether it is the model's recorded test figure ("metrics") or was
    computed from the reference predictions ("reference").
    """

    rows: int | None
    roc_auc: float
    ks: float | None
    brier: float | None
    default_rate: float | None
    ece: float | None
    source: dict[str, str]
    hosmer_lemeshow_p: float | None
    well_calibrated: bool | None
    recalibrated: bool
    auc_placement_variance_defaults: float | None
    auc_placement_variance_goods: float | None


class RealisedPerformance(StrictResult):
    """Performance on the window's decisions whose outcome is known."""

    status: Status
    labelled_rows: int
    labelled_share: float
    defaults: int
    default_rate: float | None
    mean_predicted: float | None  # on the labelled rows
    calibration_gap: float | None  # observed default rate - mean predicted probability
    roc_auc: float | None
    gini: float | None
    ks: float | None
    brier: float | None
    ece: float | None
    sampling_error: float | None  # of the AUC at this many defaults and goods
    auc_drop: float | None  # reference AUC - realised AUC (positive = worse)
    auc_drop_relative: float | None
    ks_drop: float | None
    confusion_matrix: ConfusionCounts | None
    note: str | None = None


class WindowPerformance(StrictResult):
    """One window: ``start`` inclusive, ``end`` exclusive (with ``window=None``: the first and
    last decision's times)."""

    start: datetime
    end: datetime
    label: str  # e.g. "in the week of 2026-11-16", as used in the flag sentences
    rows: int
    realised: RealisedPerformance


class PerformanceResult(StrictResult):
    schema_version: int = 2  # 2: the estimate and fairness are checks of their own
    config: PerformanceConfig
    reference: ReferenceSummary
    windows: list[WindowPerformance]
    flags: list[Flag]
    notes: list[str] = Field(default_factory=list)

    @property
    def level(self) -> Level:
        """The most severe flag's level, or "ok"."""
        return worst_level(flag.level for flag in self.flags)


def reference_metrics_from_tags(tags: Mapping[str, Any]) -> dict[str, float]:
    """The test figures among a model version's tags or MLflow metrics, e.g.
    ``{"test_roc_auc": "0.83"}`` → ``{"roc_auc": 0.83}`` (``test_`` prefix optional; values
    that are not finite numbers are skipped)."""
    out: dict[str, float] = {}
    for key in _REFERENCE_KEYS:
        for name in (f"test_{key}", f"champion_test_{key}", key):
            if name in tags:
                try:
                    value = float(tags[name])
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    out[key] = value
                    break
    return out


# --------------------------------------------------------------------------- the reference


def _array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(array)):
        raise DataValidationError(f"{name} holds missing or non-finite values", column=name)
    return array


def pct(value: float) -> str:
    """A relative change in words: one decimal below 10%, whole percents above."""
    return f"{value * 100:.1f}%" if abs(value) < 0.1 else f"{value:.0%}"


R = TypeVar("R", bound=Result)


class LabelledReferenceCalculator(WindowedCalculator[R]):
    """Base of the checks fitted on the model's labelled reference predictions (its test or
    validation rows) and, preferably, its recorded test figures (``reference_metrics``, e.g.
    from :func:`reference_metrics_from_tags`): realised and estimated performance."""

    def __init__(self, config: PerformanceConfig | None = None) -> None:
        super().__init__(config)
        self.reference_: ReferenceSummary | None = None
        self._components: tuple[float, float] | None = None
        self._calibrator: IsotonicRegression | None = None

    @classmethod
    def for_monitor(cls, reference: Reference, config: BaseModel | None = None) -> Self:
        """Fitted on the model's test labels and scores, and its recorded test figures."""
        calculator = cls(cls._monitor_config(reference, config))
        return calculator.fit(
            reference.labels, reference.scores, reference_metrics=reference.metrics
        )

    def _fit(
        self,
        y_true: Any = None,
        proba: Any = None,
        *,
        reference_metrics: Mapping[str, Any] | None = None,
    ) -> None:
        """Learn what "as good as at test time" means.

        ``y_true`` (1 = default) and ``proba`` give the sampling error of the AUC per window
        size and the calibration check; ``reference_metrics`` (``roc_auc``, ``ks``, ``brier``,
        ``default_rate``, ``ece``; ``test_`` prefixes accepted) override the figures computed
        from them. Either is enough; without predictions there is no sampling band.
        """
        metrics = reference_metrics_from_tags(reference_metrics or {})
        if y_true is None and proba is None:
            if "roc_auc" not in metrics:
                raise ConfigurationError(
                    "fit needs the reference predictions (y_true, proba) or a reference roc_auc"
                )
            self._fit_metrics_only(metrics)
        elif y_true is None or proba is None:
            raise ConfigurationError("pass both y_true and proba, or neither")
        else:
            self._fit_predictions(_array(y_true, "outcome"), _array(proba, "probability"), metrics)

    def _fit_metrics_only(self, metrics: dict[str, float]) -> None:
        self._components = None
        self._calibrator = None
        self.reference_ = ReferenceSummary(
            rows=None,
            roc_auc=metrics["roc_auc"],
            ks=metrics.get("ks"),
            brier=metrics.get("brier"),
            default_rate=metrics.get("default_rate"),
            ece=metrics.get("ece"),
            source={key: "metrics" for key in metrics},
            hosmer_lemeshow_p=None,
            well_calibrated=None,
            recalibrated=False,
            auc_placement_variance_defaults=None,
            auc_placement_variance_goods=None,
        )

    def _fit_predictions(self, y: np.ndarray, proba: np.ndarray, metrics: dict[str, float]) -> None:
        if not np.isin(y, (0.0, 1.0)).all():
            raise DataValidationError("reference outcomes must be 0 or 1", column="outcome")
        if len(y) != len(proba):
            raise DataValidationError("reference outcomes and probabilities differ in length")
        y = y.astype(int)
        self._components = auc_sampling_components(y, proba)
        computed = classification_metrics(y, proba, threshold=self.config.threshold)
        _, ece = calibration_table(y, proba)
        computed = {
            "roc_auc": computed["roc_auc"],
            "ks": computed["ks"],
            "brier": computed["brier"],
            "default_rate": float(y.mean()),
            "ece": ece,
        }
        figures = {**computed, **metrics}
        p_value = hosmer_lemeshow(y, proba)
        well_calibrated = p_value >= self.config.calibration_alpha
        recalibrate = self.config.recalibrate == "always" or (
            self.config.recalibrate == "auto" and not well_calibrated
        )
        self._calibrator = None
        if recalibrate:
            self._calibrator = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(
                proba, y
            )
        self.reference_ = ReferenceSummary(
            rows=len(y),
            roc_auc=figures["roc_auc"],
            ks=figures["ks"],
            brier=figures["brier"],
            default_rate=figures["default_rate"],
            ece=figures["ece"],
            source={key: "metrics" if key in metrics else "reference" for key in figures},
            hosmer_lemeshow_p=p_value,
            well_calibrated=bool(well_calibrated),
            recalibrated=recalibrate,
            auc_placement_variance_defaults=self._components[0],
            auc_placement_variance_goods=self._components[1],
        )

    def _recalibrated(self, proba: np.ndarray) -> np.ndarray:
        if self._calibrator is None or proba.size == 0:
            return proba
        return np.asarray(self._calibrator.predict(proba), dtype=np.float64)

    def _checked(self, frame: pd.DataFrame) -> ReferenceSummary:
        """The fitted reference, once ``frame`` has the columns every window needs."""
        for column in ("created_at", "probability"):
            if column not in frame.columns:
                raise DataValidationError(f"the frame has no {column!r} column", column=column)
        _array(frame["probability"], "probability")
        assert self.reference_ is not None  # calculate runs after fit
        return self.reference_

    def _summarised(self, recalibrate: bool) -> tuple[Any, Any]:
        """(new, fold) for a :class:`WindowedStream`: each window a :class:`ScoreSummary` of
        its scores (recalibrated for the estimate) and known outcomes."""

        def new() -> ScoreSummary:
            return ScoreSummary(self.config.threshold)

        def fold(summary: ScoreSummary, rows: pd.DataFrame) -> None:
            self._checked(rows)
            score = rows["probability"].to_numpy(dtype=np.float64)
            p = self._recalibrated(score) if recalibrate else score
            summary.update(score, p, outcomes(rows))

        return new, fold


def outcomes(rows: pd.DataFrame) -> np.ndarray:
    """The rows' outcomes as floats: 1 default, 0 good, NaN not yet known."""
    if "outcome" not in rows.columns:
        return np.full(len(rows), np.nan)
    outcome = pd.to_numeric(rows["outcome"], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    known = outcome[~np.isnan(outcome)]
    if not np.isin(known, (0.0, 1.0)).all():
        raise DataValidationError("outcomes must be 1 (default) or 0", column="outcome")
    return outcome


def realised_performance(
    rows: pd.DataFrame,
    config: PerformanceConfig,
    reference: ReferenceSummary,
    components: tuple[float, float] | None,
) -> RealisedPerformance:
    """Performance on the decisions of ``rows`` whose outcome is known, against ``reference``;
    "insufficient data" below ``config.min_labelled_rows`` labelled decisions or
    ``config.min_class_rows`` of either class."""
    summary = ScoreSummary(config.threshold)
    score = rows["probability"].to_numpy(dtype=np.float64)
    summary.update(score, score, outcomes(rows))
    return realised_from_summary(summary, config, reference, components)


def realised_from_summary(
    summary: ScoreSummary,
    config: PerformanceConfig,
    reference: ReferenceSummary,
    components: tuple[float, float] | None,
) -> RealisedPerformance:
    """:func:`realised_performance` from a window's :class:`ScoreSummary`."""
    n, defaults = summary.labelled, summary.defaults
    goods = n - defaults
    mean_predicted = summary.sum_score / n if n else None
    base: dict[str, Any] = {
        "labelled_rows": n,
        "labelled_share": n / summary.rows if summary.rows else 0.0,
        "defaults": defaults,
        "default_rate": defaults / n if n else None,
        "mean_predicted": mean_predicted,
        "calibration_gap": defaults / n - mean_predicted if mean_predicted is not None else None,
    }
    empty = dict.fromkeys(
        (
            "roc_auc",
            "gini",
            "ks",
            "brier",
            "ece",
            "sampling_error",
            "auc_drop",
            "auc_drop_relative",
            "ks_drop",
            "confusion_matrix",
        )
    )
    if n < config.min_labelled_rows or min(defaults, goods) < config.min_class_rows:
        note = (
            f"{n} labelled decisions ({defaults} defaults, {goods} goods); at least "
            f"{config.min_labelled_rows} with {config.min_class_rows} of each class are "
            "needed to judge"
        )
        return RealisedPerformance(status=INSUFFICIENT, **base, **empty, note=note)
    auc = summary.roc_auc()
    ks = summary.ks()
    drop = reference.roc_auc - auc
    tp, fp, fn, tn = (float(v) for v in summary.confusion)
    return RealisedPerformance(
        status="ok",
        **base,
        roc_auc=auc,
        gini=2.0 * auc - 1.0,
        ks=ks,
        brier=summary.brier(),
        ece=summary.ece(),
        sampling_error=auc_sampling_error(components, defaults, goods) if components else None,
        auc_drop=drop,
        auc_drop_relative=drop / reference.roc_auc,
        ks_drop=reference.ks - ks if reference.ks is not None else None,
        confusion_matrix=ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=tn),
    )


def auc_level(relative_drop: float | None, config: PerformanceConfig) -> tuple[Level, float] | None:
    """The level of a relative AUC drop and the limit it passed, or None: one rule for the
    realised AUC and for its estimate."""
    if relative_drop is None:
        return None
    if relative_drop > config.auc_drop_relative_critical:
        return Level.CRITICAL, config.auc_drop_relative_critical
    if relative_drop > config.auc_drop_relative:
        return Level.WARNING, config.auc_drop_relative
    return None


# --------------------------------------------------------------------------- the check


@register_calculator("performance")
class PerformanceCalculator(LabelledReferenceCalculator[PerformanceResult]):
    """Realised performance of one model, by window: the AUC against its test AUC and the
    calibration in the large, on the decisions whose outcome is known.

    Fit on the model's labelled reference predictions and, preferably, its recorded test
    figures; then ``calculate`` on decision-log frames.
    """

    def _windowed_stream(self) -> WindowedStream[PerformanceResult]:
        new, fold = self._summarised(recalibrate=False)
        return WindowedStream(self.config, new, fold, self._result)

    def _result(self, found: list[tuple[Any, Any, str, int, ScoreSummary]]) -> PerformanceResult:
        """Every window (``PredictionLog.window`` columns), with its flags."""
        assert self.reference_ is not None  # calculate runs after fit
        reference = self.reference_
        notes: list[str] = []
        windows: list[WindowPerformance] = []
        flags: list[Flag] = []
        for start, end, label, rows, summary in found:
            window = WindowPerformance(
                start=start,
                end=end,
                label=label,
                rows=rows,
                realised=realised_from_summary(summary, self.config, reference, self._components),
            )
            windows.append(window)
            flags.extend(self._flags(window, reference))
        if not windows:
            notes.append("The frame holds no decisions.")
        return PerformanceResult(
            config=self.config, reference=reference, windows=windows, flags=flags, notes=notes
        )

    def _flags(self, window: WindowPerformance, reference: ReferenceSummary) -> list[Flag]:
        config, realised = self.config, window.realised
        flags: list[Flag] = []
        where = {"window_start": window.start, "window_end": window.end}
        level = auc_level(realised.auc_drop_relative, config) if realised.status == "ok" else None
        if level is not None and realised.roc_auc is not None:
            severity, limit = level
            noise = (
                f", sampling error ±{realised.sampling_error:.2f}"
                if realised.sampling_error is not None
                else ""
            )
            flags.append(
                Flag(
                    check="performance",
                    kind="auc_drop",
                    metric="roc_auc",
                    value=realised.roc_auc,
                    threshold=reference.roc_auc * (1.0 - limit),
                    level=severity,
                    message=(
                        f"Realised ROC AUC {realised.roc_auc:.2f} {window.label} is "
                        f"{pct(realised.auc_drop_relative or 0.0)} below the model's test AUC "
                        f"{reference.roc_auc:.2f} ({realised.labelled_rows} labelled "
                        f"decisions{noise})."
                    ),
                    **where,
                )
            )
        gap = realised.calibration_gap
        if realised.status == "ok" and gap is not None and realised.mean_predicted is not None:
            p = realised.mean_predicted
            noise_sd = math.sqrt(max(p * (1.0 - p), 1e-12) / realised.labelled_rows)
            if abs(gap) > config.max_calibration_gap and abs(gap) > config.noise_sigmas * noise_sd:
                direction = "under" if gap > 0 else "over"
                flags.append(
                    Flag(
                        check="performance",
                        kind="calibration_gap",
                        metric="calibration_gap",
                        value=abs(gap),
                        threshold=config.max_calibration_gap,
                        level=Level.WARNING,
                        message=(
                            f"Observed default rate {realised.default_rate:.1%} {window.label} "
                            f"is {abs(gap) * 100:.1f} points {'above' if gap > 0 else 'below'} "
                            f"the mean predicted probability {p:.1%} "
                            f"({realised.labelled_rows} labelled decisions): the model "
                            f"{direction}estimates risk."
                        ),
                        **where,
                    )
                )
        return flags

    # -- in a monitor run -----------------------------------------------------------------------

    def _measured(self, result: PerformanceResult) -> WindowPerformance | None:
        """The newest window with a realised AUC: the run's realised figure and its evidence."""
        return next(
            (
                w
                for w in reversed(result.windows)
                if latest_finite([w.realised.roc_auc]) is not None
            ),
            None,
        )

    def run_figures(self, result: PerformanceResult) -> dict[str, Any]:
        measured = self._measured(result)
        return {
            "realised_roc_auc": None if measured is None else measured.realised.roc_auc,
            "realised_auc_drop_relative": latest_finite(
                w.realised.auc_drop_relative for w in result.windows
            ),
            "labelled_rows": sum(w.realised.labelled_rows for w in result.windows),
        }

    def export(self, result: PerformanceResult, gauges: MonitorGauges) -> None:
        if not result.windows:
            return
        measured = self._measured(result)
        gauges.set_realised_performance(
            realised_auc=None if measured is None else measured.realised.roc_auc,
            reference_auc=result.reference.roc_auc,
            labelled_rows=0 if measured is None else measured.realised.labelled_rows,
        )
