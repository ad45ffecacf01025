"""The one shape of every monitoring check: a Calculator fitted on a reference and calculated
on current data, returning a Result (plain JSON through ``to_dict()``) that carries Flags.

Flags are the only thing alerting reads (:func:`creditops.monitoring.alerts.alerts_from_flags`),
so a check needs no conversion code of its own: the alert store and the gauges see every
check's findings the same way. Calculators are registered by name (:func:`register_calculator`).

The registry is also the monitor job's list of checks: ``creditops monitor`` runs every
registered calculator the same way, through the few hooks :class:`Calculator` defines for it
(``for_monitor`` to fit on the monitored model's :class:`Reference`, ``calculate_current`` on a
run's :class:`CurrentData`, ``run_figures`` and ``export`` for the run record and the gauges,
``config_section`` for its part of the monitoring YAML). So a new check is one class and one
registration; the job, the config file and the alert levels pick it up from here.

A window of the decision log may hold millions of decisions, so a check can also be fed chunk
by chunk: :meth:`Calculator.stream` (and, in a run, :meth:`Calculator.stream_current`) returns a
:class:`Stream` whose ``update(chunk)`` folds a chunk into the check's sufficient statistics and
whose ``finish()`` returns the same Result ``calculate`` would. The built-in checks keep only
bounded summaries (counts on the reference's bins, score histograms, counts by group);
``calculate(frame)`` is the one-chunk case. A check that does not stream is fed the chunks
joined into one frame (:class:`CollectedStream`), so every check still runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, ClassVar, Generic, Self, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

from creditops.data.spec import FeatureSchema
from creditops.exceptions import ConfigurationError, NotFittedError
from creditops.monitoring.gauges import MonitorGauges
from creditops.store.alerts import Level

__all__ = [
    "Calculator",
    "CollectedStream",
    "CurrentData",
    "Flag",
    "Level",
    "Reference",
    "Result",
    "Stream",
    "StrictResult",
    "alert_checks",
    "available_calculators",
    "calculators",
    "config_sections",
    "get_calculator",
    "register_calculator",
    "worst_level",
]


def worst_level(levels: Iterable[str | Level], default: Level = Level.OK) -> Level:
    """The most severe of ``levels`` (``default`` when there are none)."""
    return max((Level(level) for level in levels), key=lambda level: level.rank, default=default)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


class Result(BaseModel):
    """Base of every result a calculator returns: ``to_dict()`` is plain JSON, the form the
    API, MLflow artifacts and the alert store take."""

    model_config = ConfigDict(use_enum_values=True)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only: datetimes as ISO text, non-finite numbers as None."""
        return _finite(self.model_dump(mode="json"))


class StrictResult(Result):
    """A result whose every figure is defined or None: extra fields and NaN are refused, so an
    undefined figure cannot slip into the JSON as a number."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, use_enum_values=True)


class Flag(Result):
    """A finding worth an alert: what was measured, against what limit, and one sentence.

    ``check`` names the alert check (``data_drift``, ``performance``, ``fairness`` ...);
    ``kind`` what was found, finer than the check (``feature_drift``, ``auc_drop`` ...);
    ``subject`` what it is about, when not the whole model (a feature, a protected attribute);
    ``window_start`` / ``window_end`` the time window, for checks that read windows.
    """

    model_config = ConfigDict(extra="forbid", use_enum_values=True)

    check: str
    kind: str
    level: Level
    metric: str
    value: float
    threshold: float
    message: str
    subject: str | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None

    @field_validator("level")
    @classmethod
    def _a_finding(cls, value: Level) -> Level:
        if Level(value).rank < Level.WARNING.rank:
            raise ValueError("a flag is a finding: its level is 'warning' or 'critical'")
        return value


R = TypeVar("R", bound=Result)


@dataclass(frozen=True, eq=False)
class Reference:
    """What a monitored model is compared with, as the monitor job hands it to every check.

    ``features``: its training rows (the model's features, ``numeric`` and ``categorical``);
    ``scores`` and ``labels``: its probabilities of default on its test split and the outcomes
    there (1 = default); ``metrics``: its recorded test figures (tags, e.g. ``test_roc_auc``);
    ``decline_threshold``: the probability at or above which its decision policy declines;
    ``schema``: its spec's feature schema (the training ranges and categories the service
    judges "out of range" by). Plain data, so a check needs nothing from the registry or the
    store to fit.
    """

    features: pd.DataFrame
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    scores: np.ndarray
    labels: np.ndarray
    metrics: Mapping[str, float]
    decline_threshold: float
    schema: tuple[FeatureSchema, ...] = ()


@dataclass(frozen=True, eq=False)
class CurrentData:
    """What one monitor run judges: the monitored model's decisions in the columns of
    ``PredictionLog.window`` (``created_at``, ``probability``, ``decision``, ``outcome``, the
    features and protected attributes mapped in ``frame.attrs``), either as one ``frame`` or as
    ``chunks`` (a function giving the chunks of the window, oldest first, each time it is
    called); ``source``, where they came from, in words; ``min_rows``, the fewest decisions on
    which a distribution is judged."""

    source: str
    min_rows: int
    frame: pd.DataFrame | None = None
    chunks: Callable[[], Iterable[pd.DataFrame]] | None = None

    def iter_chunks(self) -> Iterable[pd.DataFrame]:
        """The decisions chunk by chunk (a frame is its own one chunk)."""
        if self.frame is not None:
            return [self.frame]
        if self.chunks is None:
            raise ValueError("CurrentData needs a frame or chunks")
        return self.chunks()


class Stream(Generic[R]):
    """One calculation fed chunk by chunk: ``update`` with each chunk of decisions (oldest
    first), then ``finish`` once for the Result."""

    def update(self, chunk: pd.DataFrame) -> None:
        raise NotImplementedError

    def finish(self) -> R:
        raise NotImplementedError


def concat_chunks(chunks: list[pd.DataFrame]) -> pd.DataFrame:
    """Chunks joined into one frame, keeping the first chunk's ``attrs`` (the column maps)."""
    if len(chunks) == 1:
        return chunks[0]
    frame = pd.concat(chunks, ignore_index=True)
    frame.attrs = dict(chunks[0].attrs)
    return frame


class CollectedStream(Stream[R]):
    """The stream of a check that only calculates on frames: the chunks are kept and joined
    (memory grows with the window; the built-in checks summarise instead)."""

    def __init__(self, finish: Callable[[pd.DataFrame], R]) -> None:
        self._finish = finish
        self._chunks: list[pd.DataFrame] = []

    def update(self, chunk: pd.DataFrame) -> None:
        self._chunks.append(chunk)

    def finish(self) -> R:
        if not self._chunks:
            return self._finish(pd.DataFrame())
        return self._finish(concat_chunks(self._chunks))


class Calculator(Generic[R]):
    """Fit once on a reference, then ``calculate`` any number of current windows.

    Subclasses implement ``_fit`` and ``_calculate``; the public methods add what every check
    needs: ``fit`` returns the calculator (so ``Calc(config).fit(ref).calculate(cur)`` reads
    as one line) and ``calculate`` refuses to run before ``fit`` with one
    :class:`~creditops.exceptions.NotFittedError`, whatever the check.

    The monitor job runs every registered calculator through the hooks below; their defaults
    suit a check whose ``_fit`` takes the :class:`Reference` and whose ``_calculate`` takes the
    decision frame. A check that cannot judge what it is given (no outcomes yet, too few rows)
    raises :class:`~creditops.exceptions.InsufficientDataError` from either: the job reports it
    skipped, with the message as the reason, and runs the others.
    """

    #: The section of the monitoring YAML that configures this check, and the pydantic model
    #: it is validated with (the monitor passes the validated section to :meth:`for_monitor`).
    #: Checks may share a section (the decision-log checks all read ``performance``).
    config_section: ClassVar[str | None] = None
    config_model: ClassVar[type[BaseModel] | None] = None
    #: The alert checks this calculator's flags name (``Flag.check``); empty: the name it is
    #: registered under. A run sets each one's alert level, 0 when it raised nothing.
    alert_checks: ClassVar[tuple[str, ...]] = ()

    _fitted: bool = False

    def fit(self, reference: Any = None, *args: Any, **kwargs: Any) -> Self:
        """Learn the reference (arguments as the check's ``_fit`` takes them)."""
        self._fitted = False
        self._fit(reference, *args, **kwargs)
        self._fitted = True
        return self

    def calculate(self, current: Any, *args: Any, **kwargs: Any) -> R:
        """Compare ``current`` with the fitted reference."""
        if not self._fitted:
            raise NotFittedError(f"{type(self).__name__}.calculate called before fit")
        return self._calculate(current, *args, **kwargs)

    def stream(self, *args: Any, **kwargs: Any) -> Stream[R]:
        """A calculation fed chunk by chunk (arguments as ``calculate`` takes them besides the
        data); its ``finish()`` returns what ``calculate`` would on the chunks joined."""
        if not self._fitted:
            raise NotFittedError(f"{type(self).__name__}.stream called before fit")
        return self._stream(*args, **kwargs)

    def calculate_chunks(self, chunks: Iterable[pd.DataFrame], *args: Any, **kwargs: Any) -> R:
        """``calculate`` on data given chunk by chunk (oldest first)."""
        stream = self.stream(*args, **kwargs)
        for chunk in chunks:
            stream.update(chunk)
        return stream.finish()

    def _stream(self, *args: Any, **kwargs: Any) -> Stream[R]:
        """By default the chunks are joined and calculated on; streaming checks summarise."""
        return CollectedStream(lambda frame: self._calculate(frame, *args, **kwargs))

    def _fit(self, reference: Any, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def _calculate(self, current: Any, *args: Any, **kwargs: Any) -> R:
        raise NotImplementedError

    # -- what the monitor job calls -----------------------------------------------------------

    @classmethod
    def for_monitor(cls, reference: Reference, config: BaseModel | None = None) -> Self:
        """This check, built from its config section (``config``; None without one) and fitted
        on the monitored model's ``reference``. The default builds it without arguments and
        fits it on ``reference`` itself."""
        return cls().fit(reference)

    def calculate_current(self, current: CurrentData) -> R:
        """This check on one run's decisions; the default calculates on ``current.frame``."""
        return self.calculate(current.frame)

    def stream_current(self, current: CurrentData) -> Stream[R]:
        """This check on one run's decisions, fed chunk by chunk; the default joins the chunks
        and calls :meth:`calculate_current` (a check that summarises overrides it)."""
        return CollectedStream(
            lambda frame: self.calculate_current(replace(current, frame=frame, chunks=None))
        )

    def flags(self, result: R) -> list[Flag]:
        """The findings in ``result``, which the run turns into alerts: by default its ``flags``
        field, the one every check's result carries."""
        flags: list[Flag] = result.flags  # type: ignore[attr-defined]
        return list(flags)

    def notes(self, result: R) -> list[str]:
        """What the run's report should say about ``result`` besides its flags (default: its
        ``notes`` field, when it has one)."""
        return list(getattr(result, "notes", None) or [])

    def run_figures(self, result: R) -> dict[str, Any]:
        """The headline figures the run's record keeps: a field of
        :class:`~creditops.store.alerts.MonitorRun` by its name (``drift_share``, ...), which
        the retraining triggers read; any other name goes to the record's ``summary``."""
        return {}

    def export(self, result: R, gauges: MonitorGauges) -> None:
        """Set this check's own Prometheus gauges from ``result`` (its alert level is set
        for it, from its flags)."""


_CALCULATORS: dict[str, type[Calculator[Any]]] = {}
C = TypeVar("C", bound=type[Calculator[Any]])


def register_calculator(name: str) -> Callable[[C], C]:
    """Class decorator: make a :class:`Calculator` available by ``name``, and so one of the
    checks every monitor run makes."""

    def decorator(cls: C) -> C:
        if name in _CALCULATORS and _CALCULATORS[name] is not cls:
            raise ConfigurationError(f"monitoring calculator {name!r} is already registered")
        _CALCULATORS[name] = cls
        return cls

    return decorator


def get_calculator(name: str) -> type[Calculator[Any]]:
    """The calculator class registered under ``name``."""
    try:
        return _CALCULATORS[name]
    except KeyError:
        known = ", ".join(available_calculators())
        raise ConfigurationError(
            f"unknown monitoring calculator {name!r}; available: {known}"
        ) from None


def available_calculators() -> list[str]:
    """Names of the registered calculators, sorted."""
    return sorted(_CALCULATORS)


def calculators() -> dict[str, type[Calculator[Any]]]:
    """Every registered calculator by name, in the order they were registered (the order a
    monitor run makes its checks in)."""
    return dict(_CALCULATORS)


def alert_checks() -> tuple[str, ...]:
    """The alert checks of every registered calculator (``Flag.check`` / ``Alert.check``):
    the one list of what the monitor checks."""
    names: dict[str, None] = {}
    for name, cls in _CALCULATORS.items():
        names.update(dict.fromkeys(cls.alert_checks or (name,)))
    return tuple(names)


def config_sections() -> dict[str, type[BaseModel]]:
    """The monitoring YAML sections the registered calculators read, with their models."""
    sections: dict[str, type[BaseModel]] = {}
    for name, cls in _CALCULATORS.items():
        section, model = cls.config_section, cls.config_model
        if section is None or model is None:
            continue
        if sections.setdefault(section, model) is not model:
            raise ConfigurationError(
                f"monitoring calculator {name!r} reads section {section!r} with "
                f"{model.__name__}, but another reads it with {sections[section].__name__}"
            )
    return sections
