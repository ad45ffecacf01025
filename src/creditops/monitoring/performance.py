"""Model drift: realised performance of the champion, by time window of the decision log.

Lending outcomes arrive months after the decision, so one window is read three ways:

* **Realised** performance on the decisions whose outcome is known (ROC AUC, KS, Brier,
  default rate, calibration), with the drop against the model's test figures, here. Below a
  minimum number of labelled rows (or of defaults / goods) a window is "insufficient data" and
  never flagged: an AUC on a few dozen loans is noise.
* **Estimated** performance from the probabilities alone (CBPE), in :mod:`.estimated`; flagged
  only while outcomes are unknown, since once they are known they speak.
* **Fairness** of the decisions (approval rate by protected group, four-fifths rule), in
  :mod:`.fairness_watch`.

:class:`PerformanceCalculator` is a :class:`~creditops.monitoring.base.Calculator`: ``fit`` on
the champion's labelled test (or validation) predictions and its registered test figures, then
``calculate`` on a frame from ``PredictionLog.window(...)``, which returns a
:class:`PerformanceResult` (``to_dict()`` is plain JSON) with its
:class:`~creditops.monitoring.base.Flag` list. Filter the frame to one model version first: the
figures compare the window with *that* model's test results.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from creditops.evaluation.fairness import FOUR_FIFTHS
from creditops.evaluation.metrics import calibration_table, classification_metrics
from creditops.exceptions import ConfigurationError, DataValidationError
from creditops.monitoring.base import (
    Calculator,
    Flag,
    Level,
    StrictResult,
    register_calculator,
    worst_level,
)
from creditops.monitoring.estimated import (
    ConfusionCounts,
    EstimatedPerformance,
    auc_sampling_components,
    auc_sampling_error,
    estimate_performance,
    hosmer_lemeshow,
)
from creditops.monitoring.fairness_watch import (
    AttributeApproval,
    approval_fairness,
    fairness_flags,
)

__all__ = [
    "PerformanceCalculator",
    "PerformanceConfig",
    "PerformanceResult",
    "RealisedPerformance",
    "ReferenceSummary",
    "WindowPerformance",
    "reference_metrics_from_tags",
]

# Flags name their alert check: realised AUC and calibration are "performance", the CBPE
# estimate "estimated_performance", approval by group "fairness".
Status = Literal["ok", "insufficient data"]
INSUFFICIENT = "insufficient data"

# Names under which a model version's test figures may be recorded (tags or MLflow metrics).
_REFERENCE_KEYS = ("roc_auc", "ks", "brier", "default_rate", "ece", "gini")
_CALENDAR = re.compile(r"^[A-Za-z]+(-[A-Za-z]+)?$")


# --------------------------------------------------------------------------- configuration


def _parse_window(window: str) -> pd.Timedelta | str:
    """A fixed duration (``"7D"``, ``"12h"``) or a calendar period alias (``"W"``, ``"M"``)."""
    if _CALENDAR.match(window):
        pd.Period("2026-01-01", freq=window)  # raises for an unknown alias
        return window
    duration = pd.Timedelta(window)
    if duration <= pd.Timedelta(0):
        raise ValueError("a window must be a positive duration")
    return duration


class PerformanceConfig(BaseModel):
    """What a window is, when a figure is trusted, and when it is flagged.

    ``window``: a fixed duration starting at midnight UTC of the first decision (or at
    ``origin``), e.g. ``"7D"``, ``"1D"``, ``"12h"``; or a calendar period alias, e.g. ``"W"``
    (Monday–Sunday weeks), ``"M"`` (months), ``"D"``; ``None``: the whole frame is one window.
    ``threshold``: the probability of default at or above which the model predicts a default
    (the serving policy's decline threshold), for the confusion matrices.
    """

    model_config = ConfigDict(extra="forbid")

    window: str | None = "7D"
    origin: AwareDatetime | None = None
    threshold: float = Field(default=0.5, gt=0.0, lt=1.0)
    # Realised performance: below these counts a window is "insufficient data", never flagged.
    min_labelled_rows: int = Field(default=200, ge=2)
    min_class_rows: int = Field(default=10, ge=1, description="defaults and goods, each")
    # Relative ROC AUC drop against the model's test AUC: warning above, critical above.
    auc_drop_relative: float = Field(default=0.05, gt=0.0, lt=1.0)
    auc_drop_relative_critical: float = Field(default=0.10, gt=0.0, lt=1.0)
    # Calibration in the large: |observed default rate - mean predicted| above this, *and*
    # beyond ``noise_sigmas`` binomial standard errors, is a warning.
    max_calibration_gap: float = Field(default=0.05, gt=0.0, lt=1.0)
    noise_sigmas: float = Field(default=3.0, gt=0.0, description="width of sampling bands")
    # Estimated performance (CBPE).
    min_estimation_rows: int = Field(default=200, ge=2)
    recalibrate: Literal["auto", "always", "never"] = "auto"
    # 'auto' recalibrates when the reference fails Hosmer–Lemeshow at this level; kept small,
    # because recalibrating a calibrated model only imports the reference's sampling noise.
    calibration_alpha: float = Field(default=0.01, gt=0.0, lt=1.0)
    # Fairness.
    protected: list[str] | None = None  # default: the frame's attrs["protected_columns"]
    fairness_min_group: int = Field(default=30, ge=1)
    di_threshold: float = Field(default=FOUR_FIFTHS, gt=0.0, le=1.0)
    di_critical: float = Field(default=0.6, gt=0.0, le=1.0)
    # A ratio below the threshold is flagged only when the gap between the least and the most
    # approved group is also statistically significant at this level (two-proportion z-test,
    # Bonferroni-adjusted over the pairs of judged groups, since the extremes were picked), so
    # that a few refusals in a group of 40 raise no alarm; None: the ratio alone decides.
    di_alpha: float | None = Field(default=0.05, gt=0.0, lt=1.0)

    @field_validator("window")
    @classmethod
    def _valid_window(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            _parse_window(value)
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"window {value!r} is neither a duration ('7D', '12h') nor a calendar period "
                f"('W', 'M', 'D'): {exc}"
            ) from None
        return value

    @model_validator(mode="after")
    def _ordered_levels(self) -> PerformanceConfig:
        if self.auc_drop_relative_critical < self.auc_drop_relative:
            raise ValueError("auc_drop_relative_critical must be >= auc_drop_relative")
        if self.di_critical > self.di_threshold:
            raise ValueError("di_critical must be <= di_threshold")
        return self


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
    estimated: EstimatedPerformance
    fairness: list[AttributeApproval]


class PerformanceResult(StrictResult):
    schema_version: int = 1
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


# --------------------------------------------------------------------------- calculator


def _array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(array)):
        raise DataValidationError(f"{name} holds missing or non-finite values", column=name)
    return array


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%" if abs(value) < 0.1 else f"{value:.0%}"


@register_calculator("performance")
class PerformanceCalculator(Calculator[PerformanceResult]):
    """Realised and estimated performance and decision fairness of one model, by window.

    Fit on the model's labelled reference predictions (its test or validation rows) and,
    preferably, its recorded test figures (``reference_metrics``, e.g. from
    :func:`reference_metrics_from_tags`); then ``calculate`` on decision-log frames.
    """

    def __init__(self, config: PerformanceConfig | None = None) -> None:
        self.config = config or PerformanceConfig()
        self.reference_: ReferenceSummary | None = None
        self._components: tuple[float, float] | None = None
        self._calibrator: Any = None

    # -- fit ------------------------------------------------------------------------------------

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
            from sklearn.isotonic import IsotonicRegression

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

    # -- calculate ------------------------------------------------------------------------------

    def _calculate(self, frame: pd.DataFrame) -> PerformanceResult:
        """Every window of ``frame`` (``PredictionLog.window`` columns), with its flags."""
        config, reference = self.config, self.reference_
        assert reference is not None
        for column in ("created_at", "probability"):
            if column not in frame.columns:
                raise DataValidationError(f"the frame has no {column!r} column", column=column)
        _array(frame["probability"], "probability")
        notes: list[str] = []
        protected = self._protected_columns(frame, notes)
        if "outcome" not in frame.columns:
            notes.append("No outcome column: realised performance is not available.")
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
        windows: list[WindowPerformance] = []
        flags: list[Flag] = []
        for start, end, label, rows in self._windows(frame):
            realised = self._realised(rows)
            estimated = self._estimated(rows, realised)
            fairness = (
                approval_fairness(rows, protected, min_group=config.fairness_min_group)
                if protected
                else []
            )
            window = WindowPerformance(
                start=start,
                end=end,
                label=label,
                rows=len(rows),
                realised=realised,
                estimated=estimated,
                fairness=fairness,
            )
            windows.append(window)
            flags.extend(self._flags(window))
        if not windows:
            notes.append("The frame holds no decisions.")
        return PerformanceResult(
            config=config, reference=reference, windows=windows, flags=flags, notes=notes
        )

    def _protected_columns(self, frame: pd.DataFrame, notes: list[str]) -> dict[str, str]:
        if self.config.protected is not None:
            columns = {name: name for name in self.config.protected}
        else:
            columns = dict(frame.attrs.get("protected_columns") or {})
        missing = [column for column in columns.values() if column not in frame.columns]
        if missing:
            raise DataValidationError(
                f"protected column(s) {', '.join(missing)} not in the frame", column=missing[0]
            )
        if columns and "decision" not in frame.columns:
            notes.append("No decision column: fairness of approvals is not available.")
            return {}
        return columns

    # -- windows --------------------------------------------------------------------------------

    def _windows(
        self, frame: pd.DataFrame
    ) -> Iterator[tuple[pd.Timestamp, pd.Timestamp, str, pd.DataFrame]]:
        if frame.empty:
            return
        created = pd.to_datetime(frame["created_at"], utc=True)
        if created.isna().any():
            raise DataValidationError("created_at holds missing values", column="created_at")
        window = self.config.window
        if window is None:
            start, last = created.min(), created.max()
            label = f"between {start:%Y-%m-%d} and {last:%Y-%m-%d}"
            yield start, last, label, frame.reset_index(drop=True)
            return
        spec = _parse_window(window)
        if isinstance(spec, pd.Timedelta):
            origin = (
                pd.Timestamp(self.config.origin).tz_convert("UTC")
                if self.config.origin is not None
                else created.min().floor("D")
            )
            starts = origin + ((created - origin) // spec) * spec
            ends = starts + spec
        else:
            periods = created.dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period(spec)
            starts = periods.dt.start_time.dt.tz_localize("UTC")
            ends = (periods + 1).dt.start_time.dt.tz_localize("UTC")
        groups = frame.groupby(pd.DatetimeIndex(starts), sort=True).indices
        for key, index in groups.items():
            start, end = pd.Timestamp(key), ends.iloc[index[0]]
            yield (
                start,
                end,
                self._label(spec, start, end),
                frame.iloc[index].reset_index(drop=True),
            )

    @staticmethod
    def _label(spec: pd.Timedelta | str, start: pd.Timestamp, end: pd.Timestamp) -> str:
        day = pd.Timedelta(days=1)
        if isinstance(spec, str):
            unit = spec.split("-")[0].upper()
            if unit == "W":
                return f"in the week of {start:%Y-%m-%d}"
            if unit == "D":
                return f"on {start:%Y-%m-%d}"
            if unit in ("M", "MS", "ME"):
                return f"in {start:%B %Y}"
        elif spec == 7 * day:
            return f"in the week of {start:%Y-%m-%d}"
        elif spec == day:
            return f"on {start:%Y-%m-%d}"
        fmt = (
            "%Y-%m-%d"
            if (end - start) % day == pd.Timedelta(0) and start.hour == 0
            else ("%Y-%m-%d %H:%M")
        )
        return f"from {start.strftime(fmt)} to {end.strftime(fmt)}"

    # -- per window -----------------------------------------------------------------------------

    def _recalibrated(self, proba: np.ndarray) -> np.ndarray:
        if self._calibrator is None or proba.size == 0:
            return proba
        return np.asarray(self._calibrator.predict(proba), dtype=np.float64)

    def _realised(self, rows: pd.DataFrame) -> RealisedPerformance:
        config, reference = self.config, self.reference_
        assert reference is not None
        if "outcome" in rows.columns:
            outcome = pd.to_numeric(rows["outcome"], errors="coerce")
            labelled = outcome.notna().to_numpy()
        else:
            outcome = pd.Series(np.nan, index=rows.index)
            labelled = np.zeros(len(rows), dtype=bool)
        y = outcome[labelled].to_numpy(dtype=np.float64)
        if not np.isin(y, (0.0, 1.0)).all():
            raise DataValidationError("outcomes must be 1 (default) or 0", column="outcome")
        y = y.astype(int)
        proba = rows.loc[labelled, "probability"].to_numpy(dtype=np.float64)
        n, defaults = len(y), int(y.sum())
        goods = n - defaults
        base: dict[str, Any] = {
            "labelled_rows": n,
            "labelled_share": n / len(rows) if len(rows) else 0.0,
            "defaults": defaults,
            "default_rate": defaults / n if n else None,
            "mean_predicted": float(proba.mean()) if n else None,
            "calibration_gap": float(y.mean() - proba.mean()) if n else None,
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
        metrics = classification_metrics(y, proba, threshold=config.threshold)
        _, ece = calibration_table(y, proba)
        predicted = proba >= config.threshold
        auc = metrics["roc_auc"]
        drop = reference.roc_auc - auc
        return RealisedPerformance(
            status="ok",
            **base,
            roc_auc=auc,
            gini=metrics["gini"],
            ks=metrics["ks"],
            brier=metrics["brier"],
            ece=ece,
            sampling_error=auc_sampling_error(self._components, defaults, goods)
            if self._components
            else None,
            auc_drop=drop,
            auc_drop_relative=drop / reference.roc_auc,
            ks_drop=reference.ks - metrics["ks"] if reference.ks is not None else None,
            confusion_matrix=ConfusionCounts(
                tp=float(np.sum(predicted & (y == 1))),
                fp=float(np.sum(predicted & (y == 0))),
                fn=float(np.sum(~predicted & (y == 1))),
                tn=float(np.sum(~predicted & (y == 0))),
            ),
        )

    def _estimated(self, rows: pd.DataFrame, realised: RealisedPerformance) -> EstimatedPerformance:
        reference = self.reference_
        assert reference is not None
        score = rows["probability"].to_numpy(dtype=np.float64)
        labelled = None
        if realised.status == "ok" and realised.roc_auc is not None:
            labelled = pd.to_numeric(rows["outcome"], errors="coerce").notna().to_numpy()
        return estimate_performance(
            score,
            self._recalibrated(score),
            threshold=self.config.threshold,
            reference_auc=reference.roc_auc,
            components=self._components,
            noise_sigmas=self.config.noise_sigmas,
            min_rows=self.config.min_estimation_rows,
            labelled=labelled,
            realised_auc=realised.roc_auc if labelled is not None else None,
        )

    # -- flags ----------------------------------------------------------------------------------

    def _auc_level(self, relative_drop: float | None) -> tuple[Level, float] | None:
        config = self.config
        if relative_drop is None:
            return None
        if relative_drop > config.auc_drop_relative_critical:
            return Level.CRITICAL, config.auc_drop_relative_critical
        if relative_drop > config.auc_drop_relative:
            return Level.WARNING, config.auc_drop_relative
        return None

    def _flags(self, window: WindowPerformance) -> list[Flag]:
        config, reference = self.config, self.reference_
        assert reference is not None
        flags: list[Flag] = []
        where = {"window_start": window.start, "window_end": window.end}
        realised, estimated = window.realised, window.estimated
        level = self._auc_level(realised.auc_drop_relative) if realised.status == "ok" else None
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
                        f"{_pct(realised.auc_drop_relative or 0.0)} below the model's test AUC "
                        f"{reference.roc_auc:.2f} ({realised.labelled_rows} labelled "
                        f"decisions{noise})."
                    ),
                    **where,
                )
            )
        # Once outcomes are known they speak; the estimate is flagged only until then.
        level = self._auc_level(estimated.auc_drop_relative) if realised.status != "ok" else None
        if level is not None and estimated.roc_auc is not None:
            severity, limit = level
            band = (
                f"; a realised AUC would fall in {estimated.band_low:.2f}–{estimated.band_high:.2f}"
                if estimated.band_low is not None and estimated.band_high is not None
                else ""
            )
            flags.append(
                Flag(
                    check="estimated_performance",
                    kind="estimated_auc_drop",
                    metric="estimated_roc_auc",
                    value=estimated.roc_auc,
                    threshold=reference.roc_auc * (1.0 - limit),
                    level=severity,
                    message=(
                        f"Estimated ROC AUC {estimated.roc_auc:.2f} {window.label} is "
                        f"{_pct(estimated.auc_drop_relative or 0.0)} below the model's test AUC "
                        f"{reference.roc_auc:.2f} (from the probabilities of {estimated.rows} "
                        f"decisions, outcomes not yet known{band})."
                    ),
                    **where,
                )
            )
        gap = realised.calibration_gap
        if realised.status == "ok" and gap is not None and realised.mean_predicted is not None:
            p = realised.mean_predicted
            noise = math.sqrt(max(p * (1.0 - p), 1e-12) / realised.labelled_rows)
            if abs(gap) > config.max_calibration_gap and abs(gap) > config.noise_sigmas * noise:
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
        flags.extend(
            fairness_flags(
                window.fairness,
                label=window.label,
                window_start=window.start,
                window_end=window.end,
                threshold=config.di_threshold,
                critical=config.di_critical,
                alpha=config.di_alpha,
            )
        )
        return flags
