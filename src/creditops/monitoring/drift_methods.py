"""Univariate drift methods, registered by name so configuration can select them.

Each :class:`DriftMethod` is fitted on one reference column and measures one current column;
the data drift calculator (:mod:`creditops.monitoring.drift`) chooses a method per feature and
aggregates. A new method is one class under :func:`register_method`. Methods read their bin
counts and bands from :class:`MethodSettings`, which the calculator's ``DriftConfig`` satisfies,
so this module depends on nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, Protocol, TypeVar

import numpy as np
from scipy import stats
from scipy.spatial import distance

from creditops.data.stability import PSI_EPSILON, population_stability_index
from creditops.exceptions import ConfigurationError

__all__ = [
    "AUTO",
    "PSI_EPSILON",
    "DriftMethod",
    "MethodSettings",
    "QuantileBins",
    "available_methods",
    "get_method",
    "population_stability_index",
    "register_method",
]

AUTO = "auto"
_MIN_SCALE = 1e-3


class MethodSettings(Protocol):
    """What a method reads from the drift configuration."""

    psi_bins: int
    psi_warning: float
    histogram_bins: int


class DriftMethod:
    """One univariate drift measure, fitted on a reference column.

    Numeric input is a float array of the non-missing values (sorted in ``fit_numeric``).
    Categorical input is a count vector: one entry per reference category, in the order of
    ``fit_categorical``'s counts, followed in ``measure_categorical`` by one entry per category
    unseen in the reference. ``measure_*`` returns ``(statistic, p_value)``; p-value methods
    (``uses_p_value``) drift when the p-value is below the threshold, the others when the
    statistic reaches it.
    """

    name: ClassVar[str] = ""
    kinds: ClassVar[frozenset[str]] = frozenset()
    default_threshold: ClassVar[float]
    uses_p_value: ClassVar[bool] = False

    def __init__(self, threshold: float, config: MethodSettings) -> None:
        self.threshold = threshold
        self.config = config

    def fit_numeric(self, values: np.ndarray) -> None:
        raise ConfigurationError(f"drift method {self.name!r} does not handle numeric features")

    def fit_categorical(self, counts: np.ndarray) -> None:
        raise ConfigurationError(f"drift method {self.name!r} does not handle categorical features")

    # Reached only after the matching fit_* succeeded, so a method that overrides fit_numeric
    # must override measure_numeric too (and likewise for categorical): a programming error.
    def measure_numeric(self, values: np.ndarray) -> tuple[float, float | None]:
        raise NotImplementedError(f"{type(self).__name__} fits numeric data but cannot measure it")

    def measure_categorical(self, counts: np.ndarray) -> tuple[float, float | None]:
        raise NotImplementedError(
            f"{type(self).__name__} fits categorical data but cannot measure it"
        )

    def is_drift(self, statistic: float, p_value: float | None) -> bool:
        if self.uses_p_value:
            return p_value is not None and p_value < self.threshold
        return statistic >= self.threshold

    def is_warning(self, statistic: float, p_value: float | None) -> bool:
        """An early band below drift (PSI 0.10-0.25); most methods have none."""
        return False


_METHODS: dict[str, type[DriftMethod]] = {}
M = TypeVar("M", bound=type[DriftMethod])


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator: make a :class:`DriftMethod` selectable by ``name`` in config."""

    def decorator(cls: M) -> M:
        if name in _METHODS:
            raise ConfigurationError(f"drift method {name!r} is already registered")
        cls.name = name
        _METHODS[name] = cls
        return cls

    return decorator


def available_methods() -> list[str]:
    return sorted(_METHODS)


def get_method(name: str) -> type[DriftMethod]:
    try:
        return _METHODS[name]
    except KeyError:
        known = ", ".join(available_methods())
        raise ConfigurationError(
            f"unknown drift method {name!r}; available: {known} (or {AUTO!r})"
        ) from None


def _padded(counts: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=float)
    out[: len(counts)] = counts
    return out


class QuantileBins:
    """Bins with edges at reference quantiles, open at both ends, so current values outside
    the reference range still land in a bin. Ties collapse edges (a column that is 0 for 80% of
    applicants gets fewer, not empty, bins)."""

    def __init__(self, values: np.ndarray, bins: int) -> None:
        probs = np.linspace(0.0, 1.0, bins + 1)[1:-1]
        self.edges = np.unique(np.quantile(values, probs)) if len(values) else np.array([])
        self.reference_shares = self.shares(values)

    def shares(self, values: np.ndarray) -> np.ndarray:
        # Bin i holds edges[i-1] < x <= edges[i].
        index = np.searchsorted(self.edges, values, side="left")
        counts = np.bincount(index, minlength=len(self.edges) + 1).astype(float)
        total = counts.sum()
        return counts / total if total else counts


@register_method("ks")
class KolmogorovSmirnov(DriftMethod):
    """Two-sample Kolmogorov-Smirnov test on the raw values (small samples)."""

    kinds = frozenset({"numeric"})
    default_threshold = 0.05
    uses_p_value = True

    def fit_numeric(self, values: np.ndarray) -> None:
        self._reference = values

    def measure_numeric(self, values: np.ndarray) -> tuple[float, float | None]:
        result = stats.ks_2samp(self._reference, values)
        return float(result.statistic), float(result.pvalue)


@register_method("chi2")
class ChiSquare(DriftMethod):
    """Chi-square test of homogeneity on the reference vs current category counts."""

    kinds = frozenset({"categorical"})
    default_threshold = 0.05
    uses_p_value = True

    def fit_categorical(self, counts: np.ndarray) -> None:
        self._reference = counts.astype(float)

    def measure_categorical(self, counts: np.ndarray) -> tuple[float, float | None]:
        table = np.vstack([_padded(self._reference, len(counts)), counts.astype(float)])
        table = table[:, table.sum(axis=0) > 0]
        if table.shape[1] < 2:
            return 0.0, 1.0
        result = stats.chi2_contingency(table)
        return float(result.statistic), float(result.pvalue)


@register_method("psi")
class PopulationStability(DriftMethod):
    """PSI on reference deciles (numeric) or category shares; credit bands 0.10 / 0.25."""

    kinds = frozenset({"numeric", "categorical"})
    default_threshold = 0.25

    def fit_numeric(self, values: np.ndarray) -> None:
        self._bins = QuantileBins(values, self.config.psi_bins)

    def measure_numeric(self, values: np.ndarray) -> tuple[float, float | None]:
        return population_stability_index(
            self._bins.reference_shares, self._bins.shares(values)
        ), None

    def fit_categorical(self, counts: np.ndarray) -> None:
        self._reference = counts / counts.sum()

    def measure_categorical(self, counts: np.ndarray) -> tuple[float, float | None]:
        current = counts / counts.sum()
        return population_stability_index(_padded(self._reference, len(counts)), current), None

    def is_warning(self, statistic: float, p_value: float | None) -> bool:
        return self.config.psi_warning <= statistic < self.threshold


@register_method("wasserstein")
class NormedWasserstein(DriftMethod):
    """First Wasserstein distance divided by the reference standard deviation: "how far, in
    reference standard deviations, did the mass move" (0.1 by default)."""

    kinds = frozenset({"numeric"})
    default_threshold = 0.1

    def fit_numeric(self, values: np.ndarray) -> None:
        # Credit features are mostly whole numbers with many repeats: scipy works on the
        # distinct values with their counts, which is exact and much faster.
        self._values, counts = np.unique(values, return_counts=True)
        self._weights = counts.astype(float)
        self._scale = max(float(np.std(values)), _MIN_SCALE)

    def measure_numeric(self, values: np.ndarray) -> tuple[float, float | None]:
        current, counts = np.unique(values, return_counts=True)
        value = stats.wasserstein_distance(
            self._values, current, self._weights, counts.astype(float)
        )
        return float(value) / self._scale, None


@register_method("jensenshannon")
class JensenShannon(DriftMethod):
    """Jensen-Shannon distance (natural log, 0..0.83) between binned shares: reference
    quantile bins for numeric features, categories for categorical ones."""

    kinds = frozenset({"numeric", "categorical"})
    default_threshold = 0.1

    def fit_numeric(self, values: np.ndarray) -> None:
        self._bins = QuantileBins(values, self.config.histogram_bins)

    def measure_numeric(self, values: np.ndarray) -> tuple[float, float | None]:
        return float(
            distance.jensenshannon(self._bins.reference_shares, self._bins.shares(values))
        ), None

    def fit_categorical(self, counts: np.ndarray) -> None:
        self._reference = counts.astype(float)

    def measure_categorical(self, counts: np.ndarray) -> tuple[float, float | None]:
        reference = _padded(self._reference, len(counts))
        return float(distance.jensenshannon(reference, counts.astype(float))), None
