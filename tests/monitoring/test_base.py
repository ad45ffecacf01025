"""The monitoring base: one fit/calculate contract, one Flag, alerts from flags generically."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from creditops.exceptions import ConfigurationError, NotFittedError
from creditops.monitoring.alerts import alerts_from_flags
from creditops.monitoring.base import (
    Calculator,
    Flag,
    Level,
    Result,
    alert_checks,
    available_calculators,
    get_calculator,
    register_calculator,
    worst_level,
)


class MeanShift(Result):
    shift: float
    flags: list[Flag]


class MeanShiftCalculator(Calculator[MeanShift]):
    """A check in one class: how far the mean of ``x`` moved from the reference's."""

    def _fit(self, reference: pd.DataFrame) -> None:
        self.mean_ = float(reference["x"].mean())

    def _calculate(self, current: pd.DataFrame) -> MeanShift:
        shift = float(current["x"].mean()) - self.mean_
        flags = []
        if abs(shift) >= 1.0:
            flags.append(
                Flag(
                    check="toy_mean_shift",
                    kind="mean_shift",
                    level=Level.CRITICAL if abs(shift) >= 2.0 else Level.WARNING,
                    metric="mean_shift",
                    value=shift,
                    threshold=1.0,
                    message=f"x moved by {shift:+.2f}",
                    subject="x",
                )
            )
        return MeanShift(shift=shift, flags=flags)


@pytest.fixture(autouse=True)
def toy_registered(scoped_registry: None) -> None:
    """The toy check, registered for one test only (see ``scoped_registry``)."""
    register_calculator("toy_mean_shift")(MeanShiftCalculator)


def test_calculate_before_fit_raises_one_error_for_every_check() -> None:
    for name in ("toy_mean_shift", "data_drift", "performance"):
        with pytest.raises(NotFittedError, match="before fit"):
            get_calculator(name)().calculate(pd.DataFrame({"x": [1.0]}))


def test_a_registered_toy_calculator_raises_alerts_through_the_generic_path() -> None:
    assert {"toy_mean_shift", "data_drift", "performance"} <= set(available_calculators())
    # The registry is the one list of checks: the toy's alert check joins it by registering.
    assert {"toy_mean_shift", "data_drift", "prediction_drift", "fairness"} <= set(alert_checks())
    calculator = get_calculator("toy_mean_shift")().fit(pd.DataFrame({"x": [0.0, 1.0, 2.0]}))
    result = calculator.calculate(pd.DataFrame({"x": [3.0, 4.0, 5.0]}))
    assert result.to_dict()["flags"][0]["level"] == "critical"
    json.dumps(result.to_dict())  # plain JSON

    (alert,) = alerts_from_flags(result.flags, model_name="credit", run_id="r1")
    assert (alert.check, alert.level, alert.metric) == (
        "toy_mean_shift",
        "critical",
        "mean_shift:x",
    )
    assert alert.value == pytest.approx(3.0)
    assert alert.details == {
        "kind": "mean_shift",
        "subject": "x",
        "window_start": None,
        "window_end": None,
    }
    assert alert.to_dict()["model_name"] == "credit"


def test_levels_have_one_documented_order_and_flags_are_findings() -> None:
    assert [level.value for level in Level] == ["ok", "info", "warning", "critical"]
    assert worst_level(["warning", "info", "critical"]) == Level.CRITICAL
    assert worst_level([]) == "ok"
    with pytest.raises(ValueError, match="finding"):
        Flag(check="x", kind="y", level="ok", metric="m", value=0.0, threshold=0.0, message="-")
    with pytest.raises(ConfigurationError, match="already registered"):
        register_calculator("toy_mean_shift")(type("Other", (Calculator,), {}))
