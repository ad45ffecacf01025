"""The monitored model over time: the decision log cut into consecutive windows (weeks by
default), and for each window the figures the monitoring page draws.

Per window: each feature's drift statistic and level against the training rows (the heatmap),
its distribution on fixed reference bins (what a click on a cell shows), the PSI of the scores,
the share of decisions with an input outside the training range, realised performance on the
outcomes known so far beside the CBPE estimate and its band, and approval rates by protected
group. The checks are the monitor's own calculators, fitted once on the champion and applied
window by window, so a window means the same here as in an alert. Each window is read chunk by
chunk and every figure folded in as it comes (counts on fixed bins, the checks' streams), so no
more than one chunk of decisions is in memory at once.

A monitor run builds the timeline and stores it in its report (``monitor_reports``); the pages
only read it, so they cost the same with a million decisions in the log as with a hundred.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from creditops.data.experience import Experience
from creditops.data.spec import FeatureSchema
from creditops.exceptions import DataValidationError, InsufficientDataError
from creditops.monitoring.base import Calculator, Reference, Stream
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
        counts = self.counts(name, values)
        total = counts.sum()
        return _rounded(counts / total if total else counts)

    def counts(self, name: str, values: pd.Series) -> np.ndarray:
        """Non-missing ``values`` counted on the feature's bins (the last: other categories)."""
        if name in self.numeric:
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
            return self.numeric[name].counts(numbers[~np.isnan(numbers)])
        present = values.dropna().astype(str)
        found = present.value_counts()
        top = [float(found.get(c, 0)) for c in self.categories[name]]
        return np.array([*top, float(len(present)) - sum(top)])

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
    read_window: Callable[[datetime, datetime], pd.DataFrame | Iterable[pd.DataFrame]],
    config: TimelineConfig,
    drift: DriftConfig | None,
    performance: PerformanceConfig | None,
    now: datetime,
    min_rows: int,
) -> Timeline:
    """The timeline up to ``now``: ``read_window(start, end)`` gives one window's decisions
    (``PredictionLog.window`` columns), as one frame or as chunks, oldest first;
    ``make_calculator(cls, config)`` a check fitted on the monitored model (the monitor's own,
    so they are fitted once per run)."""
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
        read = read_window(start, end)
        chunks = [read] if isinstance(read, pd.DataFrame) else read
        window = _WindowFigures(start, end, _label(start, size), drift_calculator, windowed,
                                distributions, schema, min_rows)  # fmt: skip
        for chunk in chunks:
            window.update(chunk)
        if not windows and not window.rows:
            continue  # the timeline starts with the first decision
        windows.append(window.finish())
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


class _WindowFigures:
    """One window's figures, folded in chunk by chunk."""

    def __init__(
        self,
        start: datetime,
        end: datetime,
        label: str,
        drift: DataDriftCalculator,
        windowed: dict[str, Calculator[Any]],
        distributions: _Distributions,
        schema: Sequence[FeatureSchema],
        min_rows: int,
    ) -> None:
        self.window = TimelineWindow(start=start, end=end, label=label, rows=0)
        self.drift_calculator, self.distributions, self.min_rows = drift, distributions, min_rows
        # The service's own definition of "outside", categories included.
        self.experience = Experience.from_schema(schema, [f.name for f in drift.features_])
        self.rows = 0
        self.approved = 0
        self.outside_any = 0
        self.outside: dict[str, int] = {}
        self.present = {f.name: 0 for f in drift.features_}
        self.bins: dict[str, np.ndarray] = {}
        self.drift: Stream[DataDriftResult] | None = drift.stream(score_column="probability")
        self.drift_error: str | None = None
        self.streams: dict[str, Stream[Any] | None] = {
            name: calculator.stream() for name, calculator in windowed.items()
        }
        self.errors: dict[str, str] = {}

    def update(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        self.rows += len(frame)
        columns = frame.attrs.get("feature_columns") or {}
        outside = np.zeros(len(frame), dtype=bool)
        for name in self.experience.features:
            column = columns.get(name, name)
            if column not in frame.columns:
                continue
            beyond = self.experience.outside_mask(name, frame[column])
            if beyond.any():
                self.outside[name] = self.outside.get(name, 0) + int(beyond.sum())
                outside |= beyond
        self.outside_any += int(outside.sum())
        self.approved += int((frame["decision"] == "approve").sum())
        for name in self.present:
            column = columns.get(name, name)
            # A window whose decisions never carried the feature shows it all missing.
            values = frame[column] if column in frame.columns else pd.Series([None] * len(frame))
            self.present[name] += int(values.notna().sum())
            found = self.distributions.counts(name, values)
            self.bins[name] = found if name not in self.bins else self.bins[name] + found
        if self.drift is not None:
            try:
                self.drift.update(frame)
            except DataValidationError as error:
                self.drift, self.drift_error = None, f"drift not judged: {error}"
        for name, stream in self.streams.items():
            if stream is None:
                continue
            try:
                stream.update(frame)
            except InsufficientDataError as error:
                self.streams[name], self.errors[name] = None, str(error)

    def finish(self) -> TimelineWindow:
        window, rows = self.window, self.rows
        window.rows = rows
        if not rows:
            return window
        window.out_of_range_share = round(self.outside_any / rows, 5)
        window.out_of_range = {k: round(v / rows, 5) for k, v in self.outside.items()}
        window.approval_rate = round(self.approved / rows, 5)
        result: DataDriftResult | None = None
        if rows < self.min_rows:
            window.notes.append(f"{rows} decisions: drift is judged on at least {self.min_rows}")
        elif self.drift is None:
            window.notes.append(str(self.drift_error))
        else:
            try:
                result = self.drift.finish()
            except (DataValidationError, InsufficientDataError) as error:
                window.notes.append(f"drift not judged: {error}")
        for fitted in self.drift_calculator.features_:
            name = fitted.name
            counts = self.bins[name]
            total = counts.sum()
            cell = FeatureCell(
                level="insufficient",
                n=self.present[name],
                missing_rate=round(1.0 - self.present[name] / rows, 5),
                shares=_rounded(counts / total if total else counts),
            )
            if result is not None:
                level, feature = _level(result, name)
                cell.level, cell.statistic, cell.p_value = level, feature.statistic, feature.p_value
            window.features[name] = cell
        if result is not None:
            window.drift_share = result.drift_share
            window.prediction_psi = None if result.prediction is None else result.prediction.psi
        window.realised = self._first_window("realised", "realised")
        window.estimated = self._first_window("estimated", "estimated")
        window.fairness = list(self._first_window("fairness", "attributes") or [])
        return window

    def _first_window(self, name: str, field: str) -> Any:
        """``field`` of the check's one window (plain JSON), or None when it has too few
        decisions or outcomes to say anything."""
        stream = self.streams[name]
        if stream is None:
            self.window.notes.append(self.errors[name])
            return None
        try:
            result = stream.finish()
        except InsufficientDataError as error:
            self.window.notes.append(str(error))
            return None
        windows = result.to_dict().get("windows") or []
        return windows[0].get(field) if windows else None
