"""Decisions made on inputs outside the model's experience, per feature.

The service decides an application whose value lies past the training range, or names a
category training never saw (by default as a referral: see ``CREDITOPS_OUT_OF_RANGE``), and
flags it. A growing share of such decisions is the plainest sign that applicants have moved
beyond what the model learnt from, often before any drift statistic crosses its band and long
before outcomes arrive. :class:`OutOfRangeCalculator` (check ``out_of_range``, section
``out_of_range`` of the monitoring YAML) counts, over a run's decisions, the share outside per
feature, with the one definition of "outside" in :mod:`creditops.data.experience`, and flags a
feature whose share reaches the warning or critical share.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from creditops.data.experience import Experience
from creditops.exceptions import DataValidationError
from creditops.monitoring.base import (
    Calculator,
    CurrentData,
    Flag,
    Level,
    Reference,
    Stream,
    StrictResult,
    register_calculator,
    worst_level,
)
from creditops.monitoring.gauges import MonitorGauges

__all__ = ["OutOfRangeCalculator", "OutOfRangeConfig", "OutOfRangeResult"]


class OutOfRangeConfig(BaseModel):
    """When a feature's share of out-of-range decisions is a finding."""

    model_config = ConfigDict(extra="forbid")

    warning: float = Field(
        0.01, gt=0, le=1, description="share of decisions outside on one feature: a warning"
    )
    critical: float = Field(0.05, gt=0, le=1, description="the share that is critical")

    @model_validator(mode="after")
    def _ordered(self) -> OutOfRangeConfig:
        if self.critical < self.warning:
            raise ValueError("critical must be at least the warning share")
        return self


class OutOfRangeResult(StrictResult):
    """Shares of a run's decisions with an input outside the model's experience."""

    rows: int
    judged: bool = Field(description="false when there were too few decisions to judge")
    share: float | None = Field(None, description="decisions with any input outside")
    features: dict[str, float] = Field(
        default_factory=dict, description="share of decisions outside, per feature"
    )
    level: Level = Level.OK
    flags: list[Flag] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class _Counting(Stream[OutOfRangeResult]):
    def __init__(self, calculator: OutOfRangeCalculator, min_rows: int) -> None:
        self.calculator = calculator
        self.min_rows = min_rows
        self.rows = 0
        self.any = 0
        self.counts = dict.fromkeys(calculator.experience.features, 0)

    def update(self, chunk: pd.DataFrame) -> None:
        columns = chunk.attrs.get("feature_columns") or {}
        outside = np.zeros(len(chunk), dtype=bool)
        for name in self.counts:
            column = columns.get(name, name)
            if column not in chunk.columns:
                continue
            mask = self.calculator.experience.outside_mask(name, chunk[column])
            self.counts[name] += int(mask.sum())
            outside |= mask
        self.rows += len(chunk)
        self.any += int(outside.sum())

    def finish(self) -> OutOfRangeResult:
        return self.calculator.result(self.rows, self.any, self.counts, self.min_rows)


@register_calculator("out_of_range")
class OutOfRangeCalculator(Calculator[OutOfRangeResult]):
    """Fit on a version's spec schema (through the monitor's :class:`Reference`), then count a
    decision frame's inputs outside it, feature by feature."""

    config_section = "out_of_range"
    config_model = OutOfRangeConfig

    def __init__(self, config: OutOfRangeConfig | None = None) -> None:
        self.config = config if config is not None else OutOfRangeConfig()
        self.experience = Experience(ranges={}, categories={})

    @classmethod
    def for_monitor(cls, reference: Reference, config: BaseModel | None = None) -> Self:
        calculator = cls(config if isinstance(config, OutOfRangeConfig) else None)
        return calculator.fit(
            Experience.from_schema(reference.schema, [*reference.numeric, *reference.categorical])
        )

    def _fit(self, reference: Any, *args: Any, **kwargs: Any) -> None:
        if not isinstance(reference, Experience):
            raise DataValidationError("an out-of-range check is fitted on an Experience")
        self.experience = reference

    def _stream(self, min_rows: int = 1) -> Stream[OutOfRangeResult]:
        return _Counting(self, min_rows)

    def _calculate(self, current: pd.DataFrame, min_rows: int = 1) -> OutOfRangeResult:
        stream = _Counting(self, min_rows)
        stream.update(current)
        return stream.finish()

    def calculate_current(self, current: CurrentData) -> OutOfRangeResult:
        return self.calculate_chunks(current.iter_chunks(), min_rows=current.min_rows)

    def stream_current(self, current: CurrentData) -> Stream[OutOfRangeResult]:
        return self.stream(min_rows=current.min_rows)

    def result(
        self, rows: int, outside_any: int, counts: dict[str, int], min_rows: int
    ) -> OutOfRangeResult:
        """The shares and their flags from the counts of ``rows`` decisions."""
        if not self.experience.features:
            note = "The version's spec records no ranges or categories to judge against."
            return OutOfRangeResult(rows=rows, judged=False, notes=[note])
        shares = {name: round(n / rows, 6) for name, n in counts.items()} if rows else {}
        share = round(outside_any / rows, 6) if rows else None
        if rows < max(min_rows, 1):
            note = f"{rows} decision(s): fewer than {min_rows}, the shares are not judged."
            return OutOfRangeResult(
                rows=rows, judged=False, share=share, features=shares, notes=[note]
            )
        flags = [
            self._flag(name, value)
            for name, value in shares.items()
            if value >= self.config.warning
        ]
        return OutOfRangeResult(
            rows=rows,
            judged=True,
            share=share,
            features=shares,
            level=worst_level(f.level for f in flags),
            flags=flags,
        )

    def _flag(self, name: str, share: float) -> Flag:
        critical = share >= self.config.critical
        threshold = self.config.critical if critical else self.config.warning
        return Flag(
            check="out_of_range",
            kind="feature_out_of_range",
            level=Level.CRITICAL if critical else Level.WARNING,
            metric="share_outside",
            value=share,
            threshold=threshold,
            subject=name,
            message=(
                f"{share:.1%} of decisions had {name} outside the model's experience "
                f"({self.experience.describe(name)}); at least {threshold:.0%} is "
                f"{'critical' if critical else 'a warning'}: applicants have moved beyond the "
                "training data"
            ),
        )

    def run_figures(self, result: OutOfRangeResult) -> dict[str, Any]:
        return {"out_of_range_share": result.share}

    def export(self, result: OutOfRangeResult, gauges: MonitorGauges) -> None:
        gauges.set_out_of_range(result.features)
