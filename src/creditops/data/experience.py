"""What a model version has seen: the one definition of an input "out of range".

A value is outside the model's experience when it lies past the range training saw
(:attr:`FeatureSchema.minimum` to :attr:`FeatureSchema.maximum`) or is a category training
never saw. Such a value is valid (the service decides it, by default as a referral), but the
model only extrapolates there, so the service flags the decision, counts it, and the monitor
tracks the share of such decisions per feature. The service, the bulk path, the monitor and the
dashboard's timeline all ask this module, so a decision is "out of range" in the same sense
everywhere. A missing value is never out of range (it is imputed, and reported as such).

The ranges are the version's spec's (its stored schema), not a recomputation on some other
sample, so a logged decision can be re-judged later exactly as it was judged when made.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from creditops.data.spec import FeatureSchema

__all__ = ["OUT_OF_RANGE_CODE", "OUT_OF_RANGE_TEXT", "Experience"]

#: The reason code of a decision referred because an input lies outside the model's experience.
OUT_OF_RANGE_CODE = "OUT_OF_RANGE"
#: What the code means, in words (each reason names its feature).
OUT_OF_RANGE_TEXT = "outside the range the model was trained on"


@dataclass(frozen=True)
class Experience:
    """The training ranges and categories of a version's features, ready to check values
    against: one request at a time (:meth:`outside`) or a whole column (:meth:`outside_mask`)."""

    ranges: Mapping[str, tuple[float, float]]
    categories: Mapping[str, frozenset[str]]
    order: tuple[str, ...] = ()  # the features' order in the spec: findings come in it

    @classmethod
    def from_schema(
        cls, schema: Iterable[FeatureSchema], features: Iterable[str] | None = None
    ) -> Experience:
        """From a spec's schema, for ``features`` (default: every feature it describes)."""
        schema = list(schema)
        wanted = None if features is None else set(features)
        ranges: dict[str, tuple[float, float]] = {}
        categories: dict[str, frozenset[str]] = {}
        for item in schema:
            if wanted is not None and item.name not in wanted:
                continue
            if item.kind == "numeric":
                if item.minimum is not None and item.maximum is not None:
                    ranges[item.name] = (float(item.minimum), float(item.maximum))
            elif item.categories:
                categories[item.name] = frozenset(item.categories)
        names = list(features) if features is not None else [item.name for item in schema]
        order = tuple(n for n in names if n in ranges or n in categories)
        return cls(ranges=ranges, categories=categories, order=order)

    @property
    def features(self) -> tuple[str, ...]:
        """The features this experience can judge, in the spec's order."""
        return self.order or (*self.ranges, *self.categories)

    def outside(self, values: Mapping[str, Any]) -> list[str]:
        """The features of one application whose value lies outside the model's experience,
        in the spec's order. Cheap enough for every request (a comparison per feature)."""
        found: list[str] = []
        ranges, categories = self.ranges, self.categories
        for name in self.features:
            value = values.get(name)
            if value is None:
                continue
            bounds = ranges.get(name)
            if bounds is not None:
                if value < bounds[0] or value > bounds[1]:
                    found.append(name)
            elif (value if isinstance(value, str) else str(value)) not in categories[name]:
                found.append(name)
        return found

    def outside_mask(self, name: str, column: Any) -> np.ndarray:
        """Which values of a whole column of feature ``name`` lie outside (missing: never)."""
        series = pd.Series(column) if not isinstance(column, pd.Series) else column
        if name in self.ranges:
            low, high = self.ranges[name]
            values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                return (values < low) | (values > high)
        if name in self.categories:
            present = series.notna().to_numpy()
            known = series.astype("string").isin(self.categories[name]).to_numpy(dtype=bool)
            return present & ~known
        return np.zeros(len(series), dtype=bool)

    def describe(self, name: str) -> str:
        """The training range or categories of ``name``, in words (for reasons and errors)."""
        if name in self.ranges:
            low, high = self.ranges[name]
            return f"training range {_number(low)} to {_number(high)}"
        seen = sorted(self.categories.get(name, ()))
        shown = ", ".join(seen[:8]) + (", ..." if len(seen) > 8 else "")
        return f"categories seen in training: {shown}"


def _number(value: float) -> float | int:
    return int(value) if math.isfinite(value) and float(value).is_integer() else value
