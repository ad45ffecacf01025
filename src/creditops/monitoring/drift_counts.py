"""What data drift keeps of a window, chunk by chunk: per feature, the counts its drift method
reads, its missing values and the categories the reference never saw.

The data drift calculator (:mod:`.drift`) folds every chunk of the window into one
:class:`FeatureCounts` per feature and measures at the end, so a window of millions of
decisions costs the reference's bins, not the window's rows: counts per reference category (and
per unseen category) for categorical features and for numeric ones with few distinct values,
and the drift method's own :class:`~.drift_methods.NumericSummary` for the others.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from creditops.exceptions import DataValidationError
from creditops.monitoring.drift_methods import DriftMethod

__all__ = ["FeatureCounts", "numeric_values"]


def numeric_values(series: pd.Series, column: str) -> np.ndarray:
    """Float values with NaN for missing; refuses text and infinities, naming the column."""
    if not pd.api.types.is_numeric_dtype(series.dtype):
        try:
            series = pd.to_numeric(series, errors="raise")
        except (TypeError, ValueError):
            raise DataValidationError(
                f"column {column!r} is numeric in the reference but holds non-numeric values",
                column=column,
            ) from None
    values = series.to_numpy(dtype=float, na_value=np.nan)
    if np.isinf(values).any():
        raise DataValidationError(f"column {column!r} holds infinite values", column=column)
    return values


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class FeatureCounts:
    """One feature's summary of the current window.

    ``categories`` are the reference's categories (a ``pd.Index``) for a categorical feature,
    its sorted distinct values for a numeric one compared as categories, None otherwise.
    """

    def __init__(
        self, name: str, kind: str, categorical_path: bool, method: DriftMethod, categories: Any
    ) -> None:
        self.name, self.kind, self.method = name, kind, method
        self.categorical_path = categorical_path
        self.categories = categories
        self.rows = 0
        self.present = 0
        self.summary = None if categorical_path else method.begin_numeric()
        self.counts = np.zeros(0 if categories is None else len(categories), dtype=float)
        self.unseen: dict[Any, int] = {}  # in order of first appearance

    def update(self, series: pd.Series) -> None:
        self.rows += len(series)
        if self.kind == "numeric":
            values = numeric_values(series, self.name)
            present = values[~np.isnan(values)]
            self.present += len(present)
            if self.summary is not None:
                self.summary.update(present)
            else:
                self._update_discrete(present)
        else:
            self._update_categories(series)

    def _update_discrete(self, present: np.ndarray) -> None:
        categories = self.categories
        index = np.searchsorted(categories, present)
        clipped = np.minimum(index, len(categories) - 1)
        match = categories[clipped] == present
        self.counts += np.bincount(index[match], minlength=len(categories))
        other, other_counts = np.unique(present[~match], return_counts=True)
        for value, count in zip(other.tolist(), other_counts.tolist(), strict=True):
            self.unseen[value] = self.unseen.get(value, 0) + count

    def _update_categories(self, series: pd.Series) -> None:
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        uniques = pd.Index(np.asarray(uniques, dtype=object))
        per_unique = np.bincount(codes[codes >= 0], minlength=len(uniques))
        position = self.categories.get_indexer(uniques)
        seen = position >= 0
        np.add.at(self.counts, position[seen], per_unique[seen])
        for value, count in zip(uniques[~seen], per_unique[~seen].tolist(), strict=True):
            self.unseen[value] = self.unseen.get(value, 0) + count
        self.present += int(per_unique.sum())

    def unseen_counts(self) -> tuple[list[str], np.ndarray]:
        """Unseen categories, most frequent first (ties: in order of value for numbers, of
        first appearance for categories), and their counts."""
        values = list(self.unseen)
        if self.kind == "numeric":
            values = sorted(values)
        counts = np.array([self.unseen[v] for v in values], dtype=float)
        order = np.argsort(-counts, kind="stable")
        show = _number if self.kind == "numeric" else str
        return [show(values[i]) for i in order], counts[order]

    def measure(self) -> tuple[float | None, float | None, list[str], int]:
        """(statistic, p-value) of the drift method (None without values), the unseen
        categories and the rows that hold them."""
        names, unseen = self.unseen_counts()
        if not self.present:
            return None, None, names, int(unseen.sum())
        if self.summary is not None:
            statistic, p_value = self.method.measure_summary(self.summary)
        else:
            statistic, p_value = self.method.measure_categorical(
                np.concatenate([self.counts, unseen])
            )
        return statistic, p_value, names, int(unseen.sum())
