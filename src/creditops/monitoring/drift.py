r"""Data drift: does the current data still look like the data the champion was trained on?

:class:`DataDriftCalculator` is a :class:`~creditops.monitoring.base.Calculator`: fitted once
on a reference (the champion's training data), it compares any number of current windows (a
slice of the decision log, a file) against it, returning a :class:`DataDriftResult` with
``to_dict()`` and flags (:class:`~creditops.monitoring.base.Flag`).

Per feature, a drift method is chosen by name (``DriftConfig``) or automatically, in the manner
of Evidently: p-value tests (``ks``, ``chi2``) when the reference is small (at most 1,000
values), distances (``wasserstein`` normed by the reference standard deviation,
``jensenshannon``) above that, because on large samples p-values flag shifts too small to
matter. ``psi`` on reference deciles, with the credit bands 0.10 / 0.25, can be chosen by name.
Methods are classes registered under their name in :mod:`creditops.monitoring.drift_methods`
(:func:`~creditops.monitoring.drift_methods.register_method`), so a new one is one class and
config can select it.

Everything that depends only on the reference (sorted values, decile edges, histogram shares,
category counts) is computed in ``fit``, so ``calculate`` costs one pass over the current data
per feature. Missing values are not part of any distribution test; their rate is tracked and
flagged separately, as are categories never seen in the reference.

A window can also be fed chunk by chunk (``stream()``, and ``stream_current`` in a monitor
run): each chunk is folded into counts on the reference's bins and categories
(:mod:`.drift_counts`), so memory is bounded by the reference, not by the window;
``calculate(frame)`` is the one-chunk case and gives the same result.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from creditops.exceptions import ConfigurationError, DataValidationError, InsufficientDataError
from creditops.monitoring.base import (
    Calculator,
    CurrentData,
    Flag,
    Level,
    Reference,
    Result,
    Stream,
    register_calculator,
)
from creditops.monitoring.drift_counts import FeatureCounts, numeric_values
from creditops.monitoring.drift_methods import (
    AUTO,
    DriftMethod,
    QuantileBins,
    get_method,
    population_stability_index,
)
from creditops.monitoring.gauges import MonitorGauges

__all__ = [
    "DataDriftCalculator",
    "DataDriftResult",
    "DriftConfig",
    "FeatureDrift",
    "PredictionDriftResult",
    "prediction_drift",
]

SCHEMA_VERSION = 1

Kind = Literal["numeric", "categorical"]
Band = Literal["stable", "warning", "drift"]
# The kinds of drift flags: "prediction_drift" alerts under its own check, the others under
# "data_drift".
FLAG_KINDS = (
    "dataset_drift",
    "feature_drift",
    "missing_increase",
    "unseen_categories",
    "prediction_drift",
)


# --------------------------------------------------------------------------------------------
# Configuration


class DriftConfig(BaseModel):
    """How drift is measured and when it counts. Method names come from the registry;
    ``auto`` picks per feature by type and reference size."""

    model_config = ConfigDict(extra="forbid")

    numeric_method: str = AUTO
    categorical_method: str = AUTO
    feature_methods: dict[str, str] = Field(
        default_factory=dict, description="per-feature method, overriding the type's method"
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="per-method threshold (p-value alpha or distance) replacing its default",
    )
    small_sample_rows: int = Field(
        1000, ge=1, description="reference values at or below which auto uses ks / chi2"
    )
    discrete_max_values: int = Field(
        5,
        ge=0,
        description="numeric features with at most this many distinct reference values "
        "are compared as categories under auto",
    )
    psi_bins: int = Field(10, ge=2, description="reference quantile bins for PSI (deciles)")
    psi_warning: float = Field(0.10, gt=0, description="PSI warning band (drift at 0.25)")
    histogram_bins: int = Field(20, ge=2, description="reference quantile bins for JS")
    warning_share: float = Field(0.5, gt=0, le=1)
    critical_share: float = Field(0.7, gt=0, le=1)
    feature_weights: dict[str, float] | None = Field(
        None, description="importance weights for the dataset score; unlisted features weigh 0"
    )
    missing_increase: float = Field(
        0.10, gt=0, le=1, description="flag when the missing rate rises by this much (absolute)"
    )
    unseen_share: float = Field(
        0.01, ge=0, le=1, description="flag when unseen categories exceed this share of rows"
    )
    prediction_bins: int = Field(10, ge=2)
    prediction_psi_warning: float = Field(0.10, gt=0)
    prediction_psi_drift: float = Field(0.25, gt=0)

    @field_validator("numeric_method", "categorical_method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value != AUTO:
            get_method(value)
        return value

    @field_validator("feature_methods")
    @classmethod
    def _known_feature_methods(cls, value: dict[str, str]) -> dict[str, str]:
        for method in value.values():
            get_method(method)
        return value

    @field_validator("thresholds")
    @classmethod
    def _known_threshold_methods(cls, value: dict[str, float]) -> dict[str, float]:
        for method, threshold in value.items():
            get_method(method)
            if not threshold > 0:
                raise ConfigurationError(f"threshold for {method!r} must be > 0, got {threshold}")
        return value

    @field_validator("feature_weights")
    @classmethod
    def _non_negative_weights(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        for feature, weight in (value or {}).items():
            if not weight >= 0 or not math.isfinite(weight):
                raise ConfigurationError(f"weight of {feature!r} must be >= 0, got {weight}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DriftConfig:
        if self.critical_share < self.warning_share:
            raise ConfigurationError(
                f"critical_share ({self.critical_share}) must be >= warning_share "
                f"({self.warning_share})"
            )
        if self.prediction_psi_drift < self.prediction_psi_warning:
            raise ConfigurationError("prediction_psi_drift must be >= prediction_psi_warning")
        name = self.categorical_method
        if name != AUTO and "categorical" not in get_method(name).kinds:
            raise ConfigurationError(f"drift method {name!r} does not handle categorical features")
        return self

    def threshold_for(self, method: str) -> float:
        return self.thresholds.get(method, get_method(method).default_threshold)


# --------------------------------------------------------------------------------------------
# Results


class FeatureDrift(Result):
    """One feature. ``n_ref`` / ``n_cur`` count the non-missing values compared."""

    feature: str
    kind: Kind
    method: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool
    warning: bool = False
    weight: float = 1.0
    n_ref: int
    n_cur: int
    missing_rate_ref: float
    missing_rate_cur: float
    missing_increase: bool
    unseen_categories: list[str] = Field(default_factory=list)
    unseen_share: float = 0.0
    unseen_flag: bool = False


class PredictionDriftResult(Result):
    """PSI of the score distribution on reference score deciles."""

    method: Literal["psi"] = "psi"
    psi: float
    band: Band
    warning_threshold: float
    drift_threshold: float
    n_ref: int
    n_cur: int
    edges: list[float]
    reference_shares: list[float]
    current_shares: list[float]


class DataDriftResult(Result):
    schema_version: int = SCHEMA_VERSION
    n_ref: int
    n_cur: int
    n_features: int
    n_drifted: int
    drift_share: float = Field(description="share of drifted features, weighted if configured")
    weighted: bool
    level: Level
    warning_share: float
    critical_share: float
    drifted_features: list[str]
    missing_flags: list[str]
    unseen_flags: list[str]
    features: list[FeatureDrift]
    prediction: PredictionDriftResult | None = None
    flags: list[Flag]

    def feature(self, name: str) -> FeatureDrift:
        for item in self.features:
            if item.feature == name:
                return item
        raise KeyError(name)


# --------------------------------------------------------------------------------------------
# Prediction drift


class _ScoreReference:
    def __init__(self, scores: np.ndarray, bins: int) -> None:
        self.n = len(scores)
        self.bins = QuantileBins(scores, bins)

    def compare(self, scores: np.ndarray, warning: float, drift: float) -> PredictionDriftResult:
        return self.compare_counts(self.bins.counts(scores), warning, drift)

    def compare_counts(
        self, counts: np.ndarray, warning: float, drift: float
    ) -> PredictionDriftResult:
        """PSI of current scores counted on the reference's bins."""
        total = counts.sum()
        shares = counts / total if total else counts
        psi = population_stability_index(self.bins.reference_shares, shares)
        band: Band = "drift" if psi >= drift else "warning" if psi >= warning else "stable"
        return PredictionDriftResult(
            psi=psi,
            band=band,
            warning_threshold=warning,
            drift_threshold=drift,
            n_ref=self.n,
            n_cur=int(total),
            edges=[float(e) for e in self.bins.edges],
            reference_shares=[float(s) for s in self.bins.reference_shares],
            current_shares=[float(s) for s in shares],
        )


def _scores(values: Any, role: str) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"{role} scores must be numbers: {exc}", column=role) from None
    if len(array) == 0:
        raise DataValidationError(f"{role} scores are empty", column=role)
    if not np.isfinite(array).all():
        raise DataValidationError(f"{role} scores hold missing or infinite values", column=role)
    return array


def prediction_drift(
    reference_scores: Any,
    current_scores: Any,
    *,
    bins: int = 10,
    warning: float = 0.10,
    drift: float = 0.25,
) -> PredictionDriftResult:
    """PSI of the predicted default probabilities: the score distribution moving is the first
    visible sign of drift that matters, before any outcome is known."""
    reference = _ScoreReference(_scores(reference_scores, "reference"), bins)
    return reference.compare(_scores(current_scores, "current"), warning, drift)


# --------------------------------------------------------------------------------------------
# Calculator


@dataclass
class _Feature:
    name: str
    kind: Kind
    categorical_path: bool
    method: DriftMethod
    weight: float
    n_ref: int
    missing_rate_ref: float
    categories: Any = None  # pd.Index (categorical) or sorted float array (discrete numeric)


@register_calculator("data_drift")
class DataDriftCalculator(Calculator[DataDriftResult]):
    """Fit on the reference once, then ``calculate`` any number of current windows.

    >>> calc = DataDriftCalculator(DriftConfig()).fit(train, numeric=[...], categorical=[...])
    >>> result = calc.calculate(window)  # DataDriftResult

    Its flags alert under two checks: ``data_drift`` (the inputs) and ``prediction_drift`` (the
    scores); the ``drift`` section of the monitoring YAML configures it.
    """

    config_section = "drift"
    config_model = DriftConfig
    alert_checks = ("data_drift", "prediction_drift")

    def __init__(self, config: DriftConfig | None = None) -> None:
        self.config = config if config is not None else DriftConfig()

    # -- in a monitor run -------------------------------------------------------------------

    @classmethod
    def for_monitor(cls, reference: Reference, config: BaseModel | None = None) -> Self:
        """Fitted on the model's training rows, and its test scores for prediction drift."""
        calculator = cls(config if isinstance(config, DriftConfig) else None)
        return calculator.fit(
            reference.features,
            list(reference.numeric),
            list(reference.categorical),
            reference_scores=reference.scores,
        )

    def calculate_current(self, current: CurrentData) -> DataDriftResult:
        """The run's decisions and their scores; fewer than ``current.min_rows`` are not
        judged (a distribution of a few dozen rows drifts by chance)."""
        return self.calculate_chunks(
            current.iter_chunks(),
            score_column="probability",
            min_rows=current.min_rows,
            source=current.source,
        )

    def stream_current(self, current: CurrentData) -> Stream[DataDriftResult]:
        return self.stream(
            score_column="probability", min_rows=current.min_rows, source=current.source
        )

    def run_figures(self, result: DataDriftResult) -> dict[str, Any]:
        return {
            "drift_level": result.level,
            "drift_share": result.drift_share,
            "prediction_psi": None if result.prediction is None else result.prediction.psi,
        }

    def export(self, result: DataDriftResult, gauges: MonitorGauges) -> None:
        gauges.set_drift(
            result.drift_share,
            {f.feature: f.drifted for f in result.features},
            statistics={f.feature: f.statistic for f in result.features},
            methods={f.feature: f.method for f in result.features},
        )
        gauges.set_prediction_drift(None if result.prediction is None else result.prediction.psi)

    # -- fitting ----------------------------------------------------------------------------

    def _fit(
        self,
        reference: pd.DataFrame,
        numeric: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        *,
        reference_scores: Any = None,
        feature_weights: Mapping[str, float] | None = None,
    ) -> None:
        """Learn the reference. Without ``numeric`` and ``categorical`` every column is used,
        typed by dtype. ``feature_weights`` (e.g. model importances) replace the config's."""
        if not isinstance(reference, pd.DataFrame):
            raise DataValidationError("reference must be a pandas DataFrame")
        if len(reference) == 0:
            raise DataValidationError("reference data has no rows")
        if numeric is None and categorical is None:
            numeric = [c for c in reference.columns if pd.api.types.is_numeric_dtype(reference[c])]
            categorical = [c for c in reference.columns if c not in set(numeric)]
        numeric, categorical = list(numeric or []), list(categorical or [])
        both = sorted(set(numeric) & set(categorical))
        if both:
            raise ConfigurationError(f"features listed as numeric and categorical: {both}")
        if not numeric and not categorical:
            raise ConfigurationError("no features to monitor")
        for column in [*numeric, *categorical]:
            if column not in reference.columns:
                raise DataValidationError(
                    f"feature {column!r} is not a column of the reference data", column=column
                )
        features = [*numeric, *categorical]
        unknown = sorted(set(self.config.feature_methods) - set(features))
        if unknown:
            raise ConfigurationError(f"method override for features not monitored: {unknown}")
        weights = feature_weights if feature_weights is not None else self.config.feature_weights
        self._fit_features(reference, numeric, categorical, reference_scores, weights)

    def _calculate(
        self,
        current: pd.DataFrame,
        *,
        current_scores: Any = None,
        columns: Mapping[str, str] | None = None,
    ) -> DataDriftResult:
        """Compare ``current`` with the reference. ``columns`` maps feature names to columns
        of ``current`` when they differ (a decision-log window carries this mapping in
        ``attrs['feature_columns']``, used by default)."""
        stream = _DriftStream(self, columns=columns, given_scores=current_scores is not None)
        stream.update(current, scores=current_scores)
        return stream.finish()

    def _stream(
        self,
        *,
        columns: Mapping[str, str] | None = None,
        score_column: str | None = None,
        min_rows: int = 0,
        source: str = "the window",
    ) -> _DriftStream:
        """Chunks of current data; ``score_column`` names their scores (for prediction
        drift); fewer than ``min_rows`` rows in all are not judged."""
        return _DriftStream(
            self, columns=columns, score_column=score_column, min_rows=min_rows, source=source
        )

    def _fit_features(
        self,
        reference: pd.DataFrame,
        numeric: list[str],
        categorical: list[str],
        reference_scores: Any,
        weights: Mapping[str, float] | None,
    ) -> None:
        n_rows = len(reference)
        if weights is not None:
            DriftConfig(feature_weights=dict(weights))  # same checks as in config
            total = sum(float(weights.get(f, 0.0)) for f in [*numeric, *categorical])
            if total <= 0:
                raise ConfigurationError("feature weights of the monitored features sum to 0")
        fitted: list[_Feature] = []
        for name in numeric:
            values = numeric_values(reference[name], name)
            present = np.sort(values[~np.isnan(values)])
            self._require_values(name, len(present))
            distinct = np.unique(present)
            method_name, as_categories = self._choose(name, "numeric", len(present), len(distinct))
            method = self._make(method_name)
            categorical_path = as_categories or "numeric" not in method.kinds
            if categorical_path:  # few distinct values (auto) or a categories-only method
                counts = np.bincount(np.searchsorted(distinct, present), minlength=len(distinct))
                method.fit_categorical(counts)
            else:
                method.fit_numeric(present)
            fitted.append(
                _Feature(
                    name=name,
                    kind="numeric",
                    categorical_path=categorical_path,
                    method=method,
                    weight=1.0 if weights is None else float(weights.get(name, 0.0)),
                    n_ref=len(present),
                    missing_rate_ref=1.0 - len(present) / n_rows,
                    categories=distinct if categorical_path else None,
                )
            )
        for name in categorical:
            counts_by_value = reference[name].value_counts(dropna=True)
            n_present = int(counts_by_value.sum())
            self._require_values(name, n_present)
            method_name, _ = self._choose(name, "categorical", n_present, len(counts_by_value))
            method = self._make(method_name)
            if "categorical" not in method.kinds:
                raise ConfigurationError(
                    f"drift method {method_name!r} does not handle categorical feature {name!r}"
                )
            method.fit_categorical(counts_by_value.to_numpy(dtype=float))
            fitted.append(
                _Feature(
                    name=name,
                    kind="categorical",
                    categorical_path=True,
                    method=method,
                    weight=1.0 if weights is None else float(weights.get(name, 0.0)),
                    n_ref=n_present,
                    missing_rate_ref=1.0 - n_present / n_rows,
                    categories=pd.Index(np.asarray(counts_by_value.index, dtype=object)),
                )
            )
        self.features_ = fitted
        self.weighted_ = weights is not None
        self.n_ref_ = n_rows
        self.scores_ = (
            None
            if reference_scores is None
            else _ScoreReference(
                _scores(reference_scores, "reference"), self.config.prediction_bins
            )
        )

    @staticmethod
    def _require_values(name: str, n_present: int) -> None:
        if n_present == 0:
            raise DataValidationError(
                f"feature {name!r} has no non-missing values in the reference", column=name
            )

    def _choose(self, name: str, kind: Kind, n_present: int, n_distinct: int) -> tuple[str, bool]:
        """The method's name, and whether a numeric feature is compared as categories: under
        auto when it has few distinct values (a flag, a count of dependants), as Evidently
        does; always for a categories-only method (chi2)."""
        cfg = self.config
        explicit = cfg.feature_methods.get(name)
        if explicit is None:
            explicit = cfg.numeric_method if kind == "numeric" else cfg.categorical_method
        if explicit != AUTO:
            return get_method(explicit).name, False
        small = n_present <= cfg.small_sample_rows
        discrete = kind == "numeric" and n_distinct <= cfg.discrete_max_values
        if kind == "categorical" or discrete:
            return ("chi2" if small else "jensenshannon"), discrete
        return ("ks" if small else "wasserstein"), False

    def _make(self, method_name: str) -> DriftMethod:
        cls = get_method(method_name)
        return cls(self.config.threshold_for(method_name), self.config)

    # -- calculating ------------------------------------------------------------------------

    def _result(
        self, counts: list[FeatureCounts], n_cur: int, score_counts: np.ndarray | None
    ) -> DataDriftResult:
        features = [self._feature(f, c, n_cur) for f, c in zip(self.features_, counts, strict=True)]
        total_weight = sum(f.weight for f in features)
        drift_share = sum(f.weight for f in features if f.drifted) / total_weight
        cfg = self.config
        level = (
            Level.CRITICAL
            if drift_share >= cfg.critical_share
            else Level.WARNING
            if drift_share >= cfg.warning_share
            else Level.OK
        )
        prediction = None
        if score_counts is not None and self.scores_ is not None:
            prediction = self.scores_.compare_counts(
                score_counts, cfg.prediction_psi_warning, cfg.prediction_psi_drift
            )
        drifted = [f.feature for f in features if f.drifted]
        return DataDriftResult(
            n_ref=self.n_ref_,
            n_cur=n_cur,
            n_features=len(features),
            n_drifted=len(drifted),
            drift_share=drift_share,
            weighted=self.weighted_,
            level=level,
            warning_share=cfg.warning_share,
            critical_share=cfg.critical_share,
            drifted_features=drifted,
            missing_flags=[f.feature for f in features if f.missing_increase],
            unseen_flags=[f.feature for f in features if f.unseen_flag],
            features=features,
            prediction=prediction,
            flags=_flags(features, drift_share, level, prediction, cfg),
        )

    def _feature(self, feature: _Feature, counts: FeatureCounts, n_cur: int) -> FeatureDrift:
        method = feature.method
        statistic, p_value, unseen, unseen_rows = counts.measure()
        n_present = counts.present
        drifted = statistic is not None and method.is_drift(statistic, p_value)
        warning = statistic is not None and method.is_warning(statistic, p_value)
        missing_rate = 1.0 - n_present / n_cur
        unseen_share = unseen_rows / n_cur
        return FeatureDrift(
            feature=feature.name,
            kind=feature.kind,
            method=method.name,
            statistic=statistic,
            p_value=p_value,
            threshold=method.threshold,
            drifted=bool(drifted),
            warning=bool(warning),
            weight=feature.weight,
            n_ref=feature.n_ref,
            n_cur=n_present,
            missing_rate_ref=feature.missing_rate_ref,
            missing_rate_cur=missing_rate,
            missing_increase=missing_rate - feature.missing_rate_ref
            >= self.config.missing_increase - 1e-12,
            unseen_categories=unseen,
            unseen_share=unseen_share,
            unseen_flag=unseen_rows > 0 and unseen_share > self.config.unseen_share,
        )


class _DriftStream(Stream[DataDriftResult]):
    """A window of current data, chunk by chunk: counts per feature and on the score bins."""

    def __init__(
        self,
        calculator: DataDriftCalculator,
        *,
        columns: Mapping[str, str] | None = None,
        score_column: str | None = None,
        given_scores: bool = False,
        min_rows: int = 0,
        source: str = "the window",
    ) -> None:
        if (score_column is not None or given_scores) and calculator.scores_ is None:
            raise ConfigurationError("current_scores given but fit had no reference_scores")
        self.calculator = calculator
        self.columns = columns
        self.score_column = score_column
        self.min_rows, self.source = min_rows, source
        self.rows = 0
        self.counts = [
            FeatureCounts(f.name, f.kind, f.categorical_path, f.method, f.categories)
            for f in calculator.features_
        ]
        self.score_counts: np.ndarray | None = None
        self.mapping: dict[str, str] | None = None

    def update(self, chunk: pd.DataFrame, scores: Any = None) -> None:
        if not isinstance(chunk, pd.DataFrame):
            raise DataValidationError("current data must be a pandas DataFrame")
        if self.mapping is None:
            columns = self.columns
            if columns is None:
                columns = chunk.attrs.get("feature_columns") or {}
            self.mapping = {f.name: columns.get(f.name, f.name) for f in self.calculator.features_}
        if chunk.empty:
            return
        for name, column in self.mapping.items():
            if column not in chunk.columns:
                raise DataValidationError(
                    f"feature {name!r} is missing from the current data (column {column!r})",
                    column=name,
                )
        self.rows += len(chunk)
        for counts in self.counts:
            counts.update(chunk[self.mapping[counts.name]])
        if scores is None and self.score_column is not None:
            scores = chunk[self.score_column]
        if scores is not None:
            reference = self.calculator.scores_
            assert reference is not None
            found = reference.bins.counts(_scores(scores, "current"))
            self.score_counts = found if self.score_counts is None else self.score_counts + found

    def finish(self) -> DataDriftResult:
        if self.rows < self.min_rows:
            raise InsufficientDataError(
                f"{self.rows} decision(s) ({self.source}); drift is judged on at least "
                f"{self.min_rows}"
            )
        if self.rows == 0:
            raise DataValidationError("current data has no rows: nothing to compare")
        return self.calculator._result(self.counts, self.rows, self.score_counts)


def _flags(
    features: list[FeatureDrift],
    drift_share: float,
    level: Level,
    prediction: PredictionDriftResult | None,
    cfg: DriftConfig,
) -> list[Flag]:
    flags: list[Flag] = []
    if level != Level.OK:
        threshold = cfg.critical_share if level == "critical" else cfg.warning_share
        flags.append(
            Flag(
                check="data_drift",
                kind="dataset_drift",
                level=level,
                metric="drift_share",
                value=drift_share,
                threshold=threshold,
                message=f"{drift_share:.0%} of features drifted (threshold {threshold:.0%})",
            )
        )
    for f in features:
        if f.drifted and f.statistic is not None:
            shown = f.p_value if f.p_value is not None else f.statistic
            label = "p-value" if f.p_value is not None else f.method
            flags.append(
                Flag(
                    check="data_drift",
                    kind="feature_drift",
                    level="warning",
                    subject=f.feature,
                    metric=f.method,
                    value=float(shown),
                    threshold=f.threshold,
                    message=f"{f.feature} drifted: {label} {shown:.4g} "
                    f"({'below' if f.p_value is not None else 'at or above'} {f.threshold:g})",
                )
            )
        if f.missing_increase:
            flags.append(
                Flag(
                    check="data_drift",
                    kind="missing_increase",
                    level="warning",
                    subject=f.feature,
                    metric="missing_rate",
                    value=f.missing_rate_cur,
                    threshold=f.missing_rate_ref + cfg.missing_increase,
                    message=f"{f.feature} is missing in {f.missing_rate_cur:.1%} of rows "
                    f"(reference {f.missing_rate_ref:.1%})",
                )
            )
        if f.unseen_flag:
            shown_names = ", ".join(f.unseen_categories[:5])
            flags.append(
                Flag(
                    check="data_drift",
                    kind="unseen_categories",
                    level="warning",
                    subject=f.feature,
                    metric="unseen_share",
                    value=f.unseen_share,
                    threshold=cfg.unseen_share,
                    message=f"{f.feature} has categories never seen in training in "
                    f"{f.unseen_share:.1%} of rows: {shown_names}",
                )
            )
    if prediction is not None and prediction.band != "stable":
        critical = prediction.band == "drift"
        flags.append(
            Flag(
                check="prediction_drift",
                kind="prediction_drift",
                level="critical" if critical else "warning",
                metric="psi",
                value=prediction.psi,
                threshold=prediction.drift_threshold if critical else prediction.warning_threshold,
                message=f"score distribution PSI {prediction.psi:.3f} ({prediction.band})",
            )
        )
    return flags
