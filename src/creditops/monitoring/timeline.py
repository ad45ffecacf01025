"""The monitored model over time: the decision log cut into consecutive windows (weeks by
default), and for each window the figures the monitoring page draws.

Per window: each feature's drift statistic and level against the training rows (the heatmap),
its distribution on fixed reference bins (what a click on a cell shows), the PSI of the scores,
the share of decisions with an input outside the training range, realised performance on the
outcomes known so far beside the CBPE estimate and its band, and approval rates by protected
group. The checks are the monitor's own calculators, fitted once on the champion and applied
window by window, so a window means the same here as in an alert, and no more than one window
of decisions is in memory at once.

A monitor run builds the timeline and stores it in its report (``monitor_reports``); the pages
only read it, so they cost the same with a million decisions in the log as with a hundred.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from creditops.data.spec import FeatureSchema
from creditops.exceptions import DataValidationError, InsufficientDataError
from creditops.monitoring.base import Calculator, Reference
from creditops.monitoring.drift import DataDriftCalculator, DataDriftResult, DriftConfig
from creditops.monitoring.drift_methods import QuantileBins
from creditops.monitoring.estimated import EstimatedPerformanceCalculator
from creditops.monitoring.fairness_watch import FairnessCalculator
from creditops.monitoring.performance import PerformanceCalculator
from creditops.monitoring.windows import PerformanceConfig

__all__ = [
    "FeatureCell",
    "FeatureReference",
    "Timeline",
    "TimelineConfig",
    "TimelineWindow",
    "build_timeline",
    "window_bounds",
]

SCHEMA_VERSION = 1
CellLevel = Literal["stable", "warning", "critical", "insufficient"]
# Categories beyond this many (by reference frequency) are shown together as "other".
_TOP_CATEGORIES = 12
_DISTRIBUTION_BINS = 10


class TimelineConfig(BaseModel):
    """How far back the timeline looks: ``windows`` consecutive windows of ``window`` each,
    the last one ending at the next midnight UTC after the run (``windows=0``: no timeline)."""

    model_config = ConfigDict(extra="forbid")

    windows: int = Field(default=12, ge=0, le=520)
    window: str = Field(default="7D", description="a duration: '7D', '1D', '12h'")

    @field_validator("window")
    @classmethod
    def _a_duration(cls, value: str) -> str:
        try:
            duration = pd.Timedelta(value)
        except (ValueError, TypeError):
            raise ValueError(f"window {value!r} is not a duration such as '7D' or '12h'") from None
        if duration < pd.Timedelta("1h"):
            raise ValueError("a timeline window is at least one hour")
        return value


class FeatureReference(BaseModel):
    """A feature's reference distribution on the bins every window is shown on."""

    feature: str
    kind: Literal["numeric", "categorical"]
    bins: list[str]
    shares: list[float]
    method: str
    threshold: float


class FeatureCell(BaseModel):
    """One feature in one window: the heatmap's cell and the distribution behind it."""

    level: CellLevel
    statistic: float | None = None
    p_value: float | None = None
    n: int = 0
    missing_rate: float | None = None
    shares: list[float] | None = None


class TimelineWindow(BaseModel):
    start: datetime
    end: datetime
    label: str
    rows: int
    features: dict[str, FeatureCell] = Field(default_factory=dict)
    drift_share: float | None = None
    prediction_psi: float | None = None
    out_of_range_share: float | None = None
    out_of_range: dict[str, float] = Field(default_factory=dict, description="share per feature")
    approval_rate: float | None = None
    realised: dict[str, Any] | None = None
    estimated: dict[str, Any] | None = None
    fairness: list[dict[str, Any]] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class Timeline(BaseModel):
    schema_version: int = SCHEMA_VERSION
    window: str
    features: list[FeatureReference]
    reference_auc: float | None
    di_threshold: float
    windows: list[TimelineWindow]
    seconds: float = 0.0


def window_bounds(config: TimelineConfig, now: datetime) -> list[tuple[datetime, datetime]]:
    """The windows, oldest first, the last ending at the next midnight UTC after ``now``."""
    size = pd.Timedelta(config.window).to_pytimedelta()
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    end = day + timedelta(days=1)
    return [(end - size * (k + 1), end - size * k) for k in reversed(range(config.windows))]


def _label(start: datetime, size: timedelta) -> str:
    if size == timedelta(days=7):
        return f"week of {start:%Y-%m-%d}"
    if size == timedelta(days=1):
        return f"{start:%Y-%m-%d}"
    return f"{start:%Y-%m-%d %H:%M}"


class _Distributions:
    """Fixed bins per feature from the reference (deciles, or the most common categories), so a
    window's distribution can be drawn beside the reference's."""

    def __init__(self, reference: Reference) -> None:
        self.numeric: dict[str, QuantileBins] = {}
        self.categories: dict[str, list[str]] = {}
        self.references: dict[str, tuple[str, list[str], list[float]]] = {}
        for name in reference.numeric:
            values = pd.to_numeric(reference.features[name], errors="coerce").to_numpy(float)
            present = values[~np.isnan(values)]
            bins = QuantileBins(present, _DISTRIBUTION_BINS)
            self.numeric[name] = bins
            self.references[name] = (
                "numeric",
                _edge_labels(bins.edges),
                _rounded(bins.shares(present)),
            )
        for name in reference.categorical:
            counts = reference.features[name].dropna().astype(str).value_counts()
            top = [str(c) for c in counts.index[:_TOP_CATEGORIES]]
            self.categories[name] = top
            shares = self._category_shares(name, reference.features[name])
            self.references[name] = ("categorical", [*top, "other"], shares)

    def shares(self, name: str, values: pd.Series) -> list[float]:
        if name in self.numeric:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
            return _rounded(self.numeric[name].shares(numbers[~np.isnan(numbers)]))
        return self._category_shares(name, values)

    def _category_shares(self, name: str, values: pd.Series) -> list[float]:
        present = values.dropna().astype(str)
        if present.empty:
            return [0.0] * (len(self.categories[name]) + 1)
        counts = present.value_counts()
        top = [float(counts.get(c, 0)) for c in self.categories[name]]
        other = float(len(present)) - sum(top)
        return _rounded(np.array([*top, other]) / len(present))


def _rounded(shares: np.ndarray) -> list[float]:
    return [round(float(s), 5) for s in shares]


def _edge_labels(edges: np.ndarray) -> list[str]:
    if len(edges) == 0:
        return ["all"]
    shown = [f"{e:,.4g}" for e in edges]
    middle = [f"{a} – {b}" for a, b in itertools.pairwise(shown)]
    return [f"≤ {shown[0]}", *middle, f"> {shown[-1]}"]


def _level(result: DataDriftResult, name: str) -> tuple[CellLevel, Any]:
    feature = result.feature(name)
    level: CellLevel = "critical" if feature.drifted else "warning" if feature.warning else "stable"
    return level, feature


def _out_of_range(
    frame: pd.DataFrame, columns: dict[str, str], schema: Sequence[FeatureSchema]
) -> tuple[float | None, dict[str, float]]:
    """The share of decisions with a numeric input outside the training range, overall and
    per feature (only features where some are)."""
    if frame.empty:
        return None, {}
    outside = np.zeros(len(frame), dtype=bool)
    by_feature: dict[str, float] = {}
    for item in schema:
        if item.kind != "numeric" or item.minimum is None or item.maximum is None:
            continue
        column = columns.get(item.name, item.name)
        if column not in frame.columns:
            continue
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(float)
        beyond = (values < item.minimum) | (values > item.maximum)
        if beyond.any():
            by_feature[item.name] = round(float(beyond.mean()), 5)
            outside |= beyond
    return round(float(outside.mean()), 5), by_feature


def _windowed(
    make: Callable[[type[Calculator[Any]], Any], Calculator[Any]],
    performance: PerformanceConfig,
) -> dict[str, Calculator[Any]]:
    """The windowed checks, each fitted once with the whole frame as its one window."""
    whole = performance.model_copy(update={"window": None})
    return {
        "realised": make(PerformanceCalculator, whole),
        "estimated": make(EstimatedPerformanceCalculator, whole),
        "fairness": make(FairnessCalculator, whole),
    }


def build_timeline(
    *,
    reference: Reference,
    schema: Sequence[FeatureSchema],
    make_calculator: Callable[[type[Calculator[Any]], Any], Calculator[Any]],
    read_window: Callable[[datetime, datetime], pd.DataFrame],
    config: TimelineConfig,
    drift: DriftConfig | None,
    performance: PerformanceConfig | None,
    now: datetime,
    min_rows: int,
) -> Timeline:
    """The timeline up to ``now``: ``read_window(start, end)`` gives one window's decisions
    (``PredictionLog.window`` columns); ``make_calculator(cls, config)`` a check fitted on
    the monitored model (the monitor's own, so they are fitted once per run)."""
    import time

    started = time.perf_counter()
    performance = performance or PerformanceConfig()
    drift_calculator = make_calculator(DataDriftCalculator, drift or DriftConfig())
    assert isinstance(drift_calculator, DataDriftCalculator)
    windowed = _windowed(make_calculator, performance)
    distributions = _Distributions(reference)
    references = []
    for fitted in drift_calculator.features_:
        kind, bins, shares = distributions.references[fitted.name]
        references.append(
            FeatureReference(
                feature=fitted.name,
                kind=kind,  # type: ignore[arg-type]
                bins=bins,
                shares=shares,
                method=fitted.method.name,
                threshold=float(fitted.method.threshold),
            )
        )
    size = pd.Timedelta(config.window).to_pytimedelta()
    windows: list[TimelineWindow] = []
    for start, end in window_bounds(config, now):
        frame = read_window(start, end)
        if not windows and frame.empty:
            continue  # the timeline starts with the first decision
        windows.append(
            _window(frame, start, end, _label(start, size), drift_calculator, windowed,
                    distributions, schema, min_rows)
        )  # fmt: skip
    return Timeline(
        window=config.window,
        features=references,
        reference_auc=_reference_auc(reference),
        di_threshold=performance.di_threshold,
        windows=windows,
        seconds=round(time.perf_counter() - started, 3),
    )


def _reference_auc(reference: Reference) -> float | None:
    value = reference.metrics.get("roc_auc")
    return None if value is None else float(value)


def _window(
    frame: pd.DataFrame,
    start: datetime,
    end: datetime,
    label: str,
    drift: DataDriftCalculator,
    windowed: dict[str, Calculator[Any]],
    distributions: _Distributions,
    schema: Sequence[FeatureSchema],
    min_rows: int,
) -> TimelineWindow:
    window = TimelineWindow(start=start, end=end, label=label, rows=len(frame))
    if frame.empty:
        return window
    columns = frame.attrs.get("feature_columns") or {}
    window.out_of_range_share, window.out_of_range = _out_of_range(frame, columns, schema)
    window.approval_rate = round(float((frame["decision"] == "approve").mean()), 5)
    result: DataDriftResult | None = None
    if len(frame) >= min_rows:
        try:
            result = drift.calculate(frame, current_scores=frame["probability"].to_numpy(float))
        except (DataValidationError, InsufficientDataError) as error:
            window.notes.append(f"drift not judged: {error}")
    else:
        window.notes.append(f"{len(frame)} decisions: drift is judged on at least {min_rows}")
    for fitted in drift.features_:
        name = fitted.name
        column = columns.get(name, name)
        # A window whose decisions never carried the feature shows it all missing.
        values = frame[column] if column in frame.columns else pd.Series([None] * len(frame))
        cell = FeatureCell(
            level="insufficient",
            n=int(values.notna().sum()),
            missing_rate=round(float(values.isna().mean()), 5),
            shares=distributions.shares(name, values),
        )
        if result is not None:
            level, feature = _level(result, name)
            cell.level, cell.statistic, cell.p_value = level, feature.statistic, feature.p_value
        window.features[name] = cell
    if result is not None:
        window.drift_share = result.drift_share
        window.prediction_psi = None if result.prediction is None else result.prediction.psi
    window.realised = _first_window(windowed["realised"], frame, "realised", window.notes)
    window.estimated = _first_window(windowed["estimated"], frame, "estimated", window.notes)
    fairness = _first_window(windowed["fairness"], frame, "attributes", window.notes)
    window.fairness = list(fairness or [])  # type: ignore[arg-type]
    return window


def _first_window(
    calculator: Calculator[Any], frame: pd.DataFrame, field: str, notes: list[str]
) -> Any:
    """``field`` of the check's one window on ``frame`` (plain JSON), or None when it has
    too few decisions or outcomes to say anything."""
    try:
        result = calculator.calculate(frame)
    except InsufficientDataError as error:
        notes.append(str(error))
        return None
    windows = result.to_dict().get("windows") or []
    return windows[0].get(field) if windows else None
