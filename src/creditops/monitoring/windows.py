"""The decision log window by window: the ``performance`` section of the monitoring config and
the time windows it cuts decisions into, shared by the three checks that read the log per window
(realised performance, estimated performance, fairness of approvals).

A window is a fixed duration counted from midnight UTC of the first decision (or from
``origin``), a calendar period, or the whole frame; its label ("in the week of 2026-11-16") is
the one every flag sentence uses. :class:`WindowedCalculator` is the three checks' common base:
built from this one section (so the YAML keeps one ``performance`` block for all three), with
the monitored model's decline threshold, and skipped by a run that has no decisions.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, NamedTuple, Self, TypeVar

import pandas as pd
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from creditops.evaluation.fairness import FOUR_FIFTHS
from creditops.exceptions import DataValidationError, InsufficientDataError
from creditops.monitoring.base import Calculator, CurrentData, Reference, Result, Stream

__all__ = [
    "DecisionWindow",
    "PerformanceConfig",
    "WindowedCalculator",
    "WindowedStream",
    "decision_windows",
    "latest_finite",
]

_CALENDAR = re.compile(r"^[A-Za-z]+(-[A-Za-z]+)?$")


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


class DecisionWindow(NamedTuple):
    """One window: ``start`` inclusive, ``end`` exclusive (with ``window=None``: the first and
    last decision's times), its ``label`` for sentences, and its ``rows``."""

    start: pd.Timestamp
    end: pd.Timestamp
    label: str
    rows: pd.DataFrame


def decision_windows(frame: pd.DataFrame, config: PerformanceConfig) -> Iterator[DecisionWindow]:
    """The windows of ``frame`` (a ``created_at`` column) as ``config`` defines them, oldest
    first; none for an empty frame."""
    if frame.empty:
        return
    if "created_at" not in frame.columns:
        raise DataValidationError("the frame has no 'created_at' column", column="created_at")
    created = pd.to_datetime(frame["created_at"], utc=True)
    if created.isna().any():
        raise DataValidationError("created_at holds missing values", column="created_at")
    window = config.window
    if window is None:
        start, last = created.min(), created.max()
        label = f"between {start:%Y-%m-%d} and {last:%Y-%m-%d}"
        yield DecisionWindow(start, last, label, frame.reset_index(drop=True))
        return
    spec = _parse_window(window)
    if isinstance(spec, pd.Timedelta):
        origin = (
            pd.Timestamp(config.origin).tz_convert("UTC")
            if config.origin is not None
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
        yield DecisionWindow(
            start, end, _label(spec, start, end), frame.iloc[index].reset_index(drop=True)
        )


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


def latest_finite(values: Iterable[float | None]) -> float | None:
    """The last finite value, or None: a run's headline figure is its newest window's that
    has one."""
    return next(
        (v for v in reversed(list(values)) if v is not None and math.isfinite(v)),
        None,
    )


R = TypeVar("R", bound=Result)


class WindowedCalculator(Calculator[R]):
    """Base of the checks that read the decision log window by window. They share the
    ``performance`` section of the monitoring YAML (:class:`PerformanceConfig`); in a monitor
    run its ``threshold`` is the monitored model's decline threshold, and a run without
    decisions skips them."""

    config_section = "performance"
    config_model = PerformanceConfig

    def __init__(self, config: PerformanceConfig | None = None) -> None:
        self.config = config or PerformanceConfig()

    @classmethod
    def for_monitor(cls, reference: Reference, config: BaseModel | None = None) -> Self:
        """Built with ``config`` and the model's decline threshold, fitted on ``reference``."""
        return cls(cls._monitor_config(reference, config)).fit(reference)

    @staticmethod
    def _monitor_config(reference: Reference, config: BaseModel | None) -> PerformanceConfig:
        section = config if isinstance(config, PerformanceConfig) else PerformanceConfig()
        return section.model_copy(update={"threshold": reference.decline_threshold})

    def calculate_current(self, current: CurrentData) -> R:
        return self.calculate_chunks(current.iter_chunks(), source=current.source)

    def stream_current(self, current: CurrentData) -> Stream[R]:
        return self.stream(source=current.source)

    def _calculate(self, frame: pd.DataFrame) -> R:
        """The windows of one frame: the one-chunk case of the stream."""
        return self.calculate_chunks([frame])

    def _stream(self, *, source: str | None = None) -> Stream[R]:
        """Chunks of decisions, oldest first; with ``source`` (a monitor run) a window
        without decisions is not judged."""
        stream = self._windowed_stream()
        if source is None:
            return stream
        return _Required(stream, source)

    def _windowed_stream(self) -> Stream[R]:
        raise NotImplementedError


class _Required(Stream[R]):
    """A monitor run's stream: no decisions at all is "nothing to judge", not a result."""

    def __init__(self, stream: Stream[R], source: str) -> None:
        self.stream, self.source, self.rows = stream, source, 0

    def update(self, chunk: pd.DataFrame) -> None:
        self.rows += len(chunk)
        self.stream.update(chunk)

    def finish(self) -> R:
        if not self.rows:
            raise InsufficientDataError(f"no decisions to judge ({self.source})")
        return self.stream.finish()


class WindowedStream(Stream[R]):
    """Decisions chunk by chunk (oldest first), cut into the config's windows: each window
    keeps only the summary its check folds the rows into (``new``/``fold``), and ``finish``
    hands the windows, oldest first, to ``done`` as ``(start, end, label, rows, summary)``."""

    def __init__(
        self,
        config: PerformanceConfig,
        new: Callable[[], Any],
        fold: Callable[[Any, pd.DataFrame], None],
        done: Callable[[list[tuple[pd.Timestamp, pd.Timestamp, str, int, Any]]], R],
    ) -> None:
        self.config = config
        self._new, self._fold, self._done = new, fold, done
        self._spec = None if config.window is None else _parse_window(config.window)
        self._origin: pd.Timestamp | None = (
            None if config.origin is None else pd.Timestamp(config.origin).tz_convert("UTC")
        )
        self._windows: dict[pd.Timestamp, list[Any]] = {}
        self._first: pd.Timestamp | None = None
        self._last: pd.Timestamp | None = None

    def update(self, chunk: pd.DataFrame) -> None:
        if chunk.empty:
            return
        if "created_at" not in chunk.columns:
            raise DataValidationError("the frame has no 'created_at' column", column="created_at")
        created = pd.to_datetime(chunk["created_at"], utc=True)
        if created.isna().any():
            raise DataValidationError("created_at holds missing values", column="created_at")
        low, high = created.min(), created.max()
        self._first = low if self._first is None else min(self._first, low)
        self._last = high if self._last is None else max(self._last, high)
        spec = self._spec
        if spec is None:
            self._add(pd.Timestamp(0, tz="UTC"), pd.Timestamp(0, tz="UTC"), chunk)
            return
        if isinstance(spec, pd.Timedelta):
            if self._origin is None:
                self._origin = low.floor("D")
            elif config_origin_missing(self.config) and low < self._origin:
                raise DataValidationError(
                    "decisions must come oldest first: a chunk starts before the first one",
                    column="created_at",
                )
            starts = self._origin + ((created - self._origin) // spec) * spec
            ends = starts + spec
        else:
            periods = created.dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period(spec)
            starts = periods.dt.start_time.dt.tz_localize("UTC")
            ends = (periods + 1).dt.start_time.dt.tz_localize("UTC")
        if starts.nunique() == 1:
            self._add(starts.iloc[0], ends.iloc[0], chunk)
            return
        for key, index in chunk.groupby(pd.DatetimeIndex(starts), sort=True).indices.items():
            rows = chunk.iloc[index]
            rows.attrs = chunk.attrs
            self._add(pd.Timestamp(key), ends.iloc[index[0]], rows)

    def _add(self, start: pd.Timestamp, end: pd.Timestamp, rows: pd.DataFrame) -> None:
        window = self._windows.get(start)
        if window is None:
            window = self._windows[start] = [end, 0, self._new()]
        window[1] += len(rows)
        self._fold(window[2], rows.reset_index(drop=True))

    def finish(self) -> R:
        out: list[tuple[pd.Timestamp, pd.Timestamp, str, int, Any]] = []
        if self._spec is None:
            if self._windows:
                (_, rows, state), = self._windows.values()  # fmt: skip
                start, last = self._first, self._last
                assert start is not None
                assert last is not None
                label = f"between {start:%Y-%m-%d} and {last:%Y-%m-%d}"
                out.append((start, last, label, rows, state))
            return self._done(out)
        for start in sorted(self._windows):
            end, rows, state = self._windows[start]
            out.append((start, end, _label(self._spec, start, end), rows, state))
        return self._done(out)


def config_origin_missing(config: PerformanceConfig) -> bool:
    """Whether windows count from the first decision (no fixed ``origin``)."""
    return config.origin is None
