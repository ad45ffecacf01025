"""Univariate drift methods, registered by name so configuration can select them.

Each :class:`DriftMethod` is fitted on one reference column and measures one current column;
the data drift calculator (:mod:`creditops.monitoring.drift`) chooses a method per feature and
aggregates. A new method is one class under :func:`register_method`. Methods read their bin
counts and bands from :class:`MethodSettings`, which the calculator's ``DriftConfig`` satisfies,
so this module depends on nothing above it.

A window of millions of decisions is measured chunk by chunk: each method gives a
:class:`NumericSummary` (``begin_numeric``) that folds in the values of each chunk and that it
then measures (``measure_summary``). Every built-in summary is bounded by the reference, not by
the window: counts on the reference's bins (PSI, Jensen–Shannon), counts in the cells the
reference's sorted values cut the line into (KS: exact, the statistic and its p-value are those
of ``scipy.stats.ks_2samp`` on the raw values), and for Wasserstein the current values' counts,
exact up to :data:`WASSERSTEIN_EXACT_VALUES` distinct values, then on a fine grid of
:data:`WASSERSTEIN_GRID_BINS` bins across the reference's range (each bin keeps its count and
sum, so its mass sits at its mean): the distance then moves by at most one bin width, a normed
error of at most ``range / (WASSERSTEIN_GRID_BINS * std)`` of the reference
(:attr:`FineHistogram.error_bound`). A method registered without a summary of its own keeps
the values (:class:`AllValues`), so it still works, at the cost of memory.
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
    "WASSERSTEIN_EXACT_VALUES",
    "WASSERSTEIN_GRID_BINS",
    "AllValues",
    "BinCounts",
    "CellCounts",
    "DriftMethod",
    "FineHistogram",
    "MethodSettings",
    "NumericSummary",
    "QuantileBins",
    "available_methods",
    "get_method",
    "population_stability_index",
    "register_method",
]

AUTO = "auto"
_MIN_SCALE = 1e-3
#: Distinct current values a Wasserstein summary keeps exactly before it moves to its grid.
WASSERSTEIN_EXACT_VALUES = 100_000
#: Bins of the Wasserstein grid across the reference's range (wider ranges get more bins).
WASSERSTEIN_GRID_BINS = 1 << 16


class MethodSettings(Protocol):
    """What a method reads from the drift configuration."""

    psi_bins: int
    psi_warning: float
    histogram_bins: int


class NumericSummary:
    """What a method keeps of the current values of one numeric column, chunk by chunk:
    ``update`` with each chunk's non-missing values; ``n`` counts them."""

    n: int = 0

    def update(self, values: np.ndarray) -> None:
        raise NotImplementedError


class AllValues(NumericSummary):
    """Every value (the summary of a method that only measures raw values)."""

    def __init__(self) -> None:
        self.n = 0
        self._parts: list[np.ndarray] = []

    def update(self, values: np.ndarray) -> None:
        self._parts.append(np.asarray(values, dtype=float))
        self.n += len(values)

    def values(self) -> np.ndarray:
        return np.concatenate(self._parts) if self._parts else np.array([], dtype=float)


class BinCounts(NumericSummary):
    """Counts on a reference's quantile bins: exactly what PSI and Jensen–Shannon read."""

    def __init__(self, bins: QuantileBins) -> None:
        self.bins = bins
        self.n = 0
        self.counts = np.zeros(len(bins.edges) + 1, dtype=float)

    def update(self, values: np.ndarray) -> None:
        self.counts += self.bins.counts(values)
        self.n += len(values)

    def shares(self) -> np.ndarray:
        total = self.counts.sum()
        return self.counts / total if total else self.counts


class CellCounts(NumericSummary):
    """Counts of current values at each of the reference's sorted distinct values and in each
    gap between them (2k + 1 cells): every gap between the two empirical distribution functions
    is read off them, so the Kolmogorov–Smirnov statistic is exact."""

    def __init__(self, reference: np.ndarray) -> None:
        self.reference = reference
        self.distinct = np.unique(reference)
        self.n = 0
        self.counts = np.zeros(2 * len(self.distinct) + 1, dtype=np.int64)

    def update(self, values: np.ndarray) -> None:
        left = np.searchsorted(self.distinct, values, side="left")
        right = np.searchsorted(self.distinct, values, side="right")
        cells = 2 * left + (right > left)
        self.counts += np.bincount(cells, minlength=len(self.counts))
        self.n += len(values)

    def representatives(self) -> np.ndarray:
        """A sample with the same counts in every cell (so the same statistic as the values)."""
        d = self.distinct
        gaps = np.concatenate([[d[0] - 1.0], (d[:-1] + d[1:]) / 2.0, [d[-1] + 1.0]])
        points = np.empty(len(self.counts))
        points[0::2], points[1::2] = gaps, d
        return np.repeat(points, self.counts)

    def statistic(self) -> float:
        """sup |F_ref − F_cur|, evaluated as ``scipy.stats.ks_2samp`` does."""
        ref_at = np.searchsorted(np.sort(self.reference), self.distinct, side="right")
        cum = np.cumsum(self.counts)
        n1, n2 = len(self.reference), self.n
        # At each reference value, and at the largest current value of each non-empty gap
        # (where the current distribution gains most on the reference's).
        at = ref_at / n1 - cum[1::2] / n2
        gaps = np.concatenate([[0], ref_at]) / n1 - cum[0::2] / n2
        diffs = np.concatenate([at, gaps[self.counts[0::2] > 0]])
        high = float(np.max(diffs))
        low = float(np.clip(-np.min(diffs), 0, 1))
        return low if low > high else high


class FineHistogram(NumericSummary):
    """The current values' counts: exact while they have at most ``exact_values`` distinct
    values, then on a grid of bins of width ``width`` (each with its count and sum, so its mass
    sits at its mean). The Wasserstein distance it gives then differs from the exact one by at
    most ``width`` (:attr:`error_bound`, before norming)."""

    def __init__(self, origin: float, width: float, exact_values: int) -> None:
        self.origin, self.width, self.exact_values = origin, width, exact_values
        self.n = 0
        self.binned = False
        self._keys = np.array([], dtype=float)
        self._counts = np.array([], dtype=float)
        self._sums = np.array([], dtype=float)

    @property
    def error_bound(self) -> float:
        """Largest change of the distance from the grid: 0 while exact, else one bin width."""
        return self.width if self.binned else 0.0

    def _bin(self, values: np.ndarray) -> np.ndarray:
        index = np.floor((values - self.origin) / self.width)
        return np.clip(index, -(2.0**62), 2.0**62)

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=float)
        self.n += len(values)
        keys = self._bin(values) if self.binned else values
        keys, inverse = np.unique(np.concatenate([self._keys, keys]), return_inverse=True)
        counts = np.concatenate([self._counts, np.ones(len(values))])
        sums = np.concatenate([self._sums, values])
        self._keys = keys
        self._counts = np.bincount(inverse, weights=counts, minlength=len(keys))
        self._sums = np.bincount(inverse, weights=sums, minlength=len(keys))
        if not self.binned and len(self._keys) > self.exact_values:
            self.binned = True
            keys, inverse = np.unique(self._bin(self._keys), return_inverse=True)
            self._counts = np.bincount(inverse, weights=self._counts, minlength=len(keys))
            self._sums = np.bincount(inverse, weights=self._sums, minlength=len(keys))
            self._keys = keys

    def distribution(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, counts): the distinct values, or each bin's mean once binned."""
        if not self.binned:
            return self._keys, self._counts
        return self._sums / self._counts, self._counts


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

    def begin_numeric(self) -> NumericSummary:
        """An empty summary of current values (after ``fit_numeric``); by default every value
        is kept, for methods that only measure raw values."""
        return AllValues()

    def measure_summary(self, summary: NumericSummary) -> tuple[float, float | None]:
        """``measure_numeric`` on the values a summary of :meth:`begin_numeric` folded in."""
        assert isinstance(summary, AllValues)
        return self.measure_numeric(summary.values())

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

    def counts(self, values: np.ndarray) -> np.ndarray:
        # Bin i holds edges[i-1] < x <= edges[i].
        index = np.searchsorted(self.edges, values, side="left")
        return np.bincount(index, minlength=len(self.edges) + 1).astype(float)

    def shares(self, values: np.ndarray) -> np.ndarray:
        counts = self.counts(values)
        total = counts.sum()
        return counts / total if total else counts


# Sample sizes up to which scipy's ks_2samp computes the exact p-value (its MAX_AUTO_N).
_KS_EXACT_N = 10_000


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

    def begin_numeric(self) -> NumericSummary:
        return CellCounts(self._reference)

    def measure_summary(self, summary: NumericSummary) -> tuple[float, float | None]:
        assert isinstance(summary, CellCounts)
        n1, n2 = len(self._reference), summary.n
        if max(n1, n2) <= _KS_EXACT_N:  # scipy's exact p-value: on a sample of the same cells
            return self.measure_numeric(summary.representatives())
        statistic = summary.statistic()
        m, n = sorted([float(n1), float(n2)], reverse=True)
        p_value = float(np.clip(stats.kstwo.sf(statistic, np.round(m * n / (m + n))), 0, 1))
        return statistic, p_value


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

    def begin_numeric(self) -> NumericSummary:
        return BinCounts(self._bins)

    def measure_summary(self, summary: NumericSummary) -> tuple[float, float | None]:
        assert isinstance(summary, BinCounts)
        return population_stability_index(self._bins.reference_shares, summary.shares()), None

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
        self._origin = float(self._values[0])
        span = max(float(self._values[-1] - self._values[0]), self._scale)
        self._width = span / WASSERSTEIN_GRID_BINS

    def measure_numeric(self, values: np.ndarray) -> tuple[float, float | None]:
        current, counts = np.unique(values, return_counts=True)
        value = stats.wasserstein_distance(
            self._values, current, self._weights, counts.astype(float)
        )
        return float(value) / self._scale, None

    def begin_numeric(self) -> NumericSummary:
        return FineHistogram(self._origin, self._width, WASSERSTEIN_EXACT_VALUES)

    def measure_summary(self, summary: NumericSummary) -> tuple[float, float | None]:
        assert isinstance(summary, FineHistogram)
        current, counts = summary.distribution()
        value = stats.wasserstein_distance(self._values, current, self._weights, counts)
        return float(value) / self._scale, None

    def error_bound(self, summary: FineHistogram) -> float:
        """The largest normed error the summary's grid can cause (0 while exact)."""
        return summary.error_bound / self._scale


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

    def begin_numeric(self) -> NumericSummary:
        return BinCounts(self._bins)

    def measure_summary(self, summary: NumericSummary) -> tuple[float, float | None]:
        assert isinstance(summary, BinCounts)
        return float(distance.jensenshannon(self._bins.reference_shares, summary.shares())), None

    def fit_categorical(self, counts: np.ndarray) -> None:
        self._reference = counts.astype(float)

    def measure_categorical(self, counts: np.ndarray) -> tuple[float, float | None]:
        reference = _padded(self._reference, len(counts))
        return float(distance.jensenshannon(reference, counts.astype(float))), None
