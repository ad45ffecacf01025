"""The one shape of every monitoring check: a Calculator fitted on a reference and calculated
on current data, returning a Result (plain JSON through ``to_dict()``) that carries Flags.

Flags are the only thing alerting reads (:func:`creditops.monitoring.alerts.alerts_from_flags`),
so a check needs no conversion code of its own: the alert store and the gauges see every
check's findings the same way. Calculators are registered by name (:func:`register_calculator`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Generic, Self, TypeVar

from pydantic import BaseModel, ConfigDict, field_validator

from creditops.exceptions import ConfigurationError, NotFittedError
from creditops.store.alerts import Level

__all__ = [
    "Calculator",
    "Flag",
    "Level",
    "Result",
    "StrictResult",
    "available_calculators",
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


class Calculator(Generic[R]):
    """Fit once on a reference, then ``calculate`` any number of current windows.

    Subclasses implement ``_fit`` and ``_calculate``; the public methods add what every check
    needs: ``fit`` returns the calculator (so ``Calc(config).fit(ref).calculate(cur)`` reads
    as one line) and ``calculate`` refuses to run before ``fit`` with one
    :class:`~creditops.exceptions.NotFittedError`, whatever the check.
    """

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

    def _fit(self, reference: Any, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError

    def _calculate(self, current: Any, *args: Any, **kwargs: Any) -> R:
        raise NotImplementedError


_CALCULATORS: dict[str, type[Calculator[Any]]] = {}
C = TypeVar("C", bound=type[Calculator[Any]])


def register_calculator(name: str) -> Callable[[C], C]:
    """Class decorator: make a :class:`Calculator` available by ``name``."""

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
