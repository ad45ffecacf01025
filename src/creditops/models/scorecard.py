"""The weight-of-evidence (WoE) logistic scorecard as a scikit-learn classifier.

The model a credit validator expects next to any machine-learning model:

1. **Binning** (optbinning's ``BinningProcess``): each feature is cut into a few bins whose
   event rate (default rate) is monotone. The trend is ``monotonic_trend`` (default
   ``"auto_asc_desc"``: ascending or descending, whichever fits) unless the feature has a
   direction of its own: ``increasing`` features get an ascending default rate, ``decreasing``
   features a descending one, and ``ordered`` categorical features (categories listed from
   least to most risky) are binned on their position in that order with an ascending default
   rate, so neighbouring levels merge but the order is never broken. Numbers are binned as
   intervals, text as groups of categories; a missing value has a bin of its own.
2. **Selection**: features whose information value (IV) is below ``min_iv`` are dropped
   (optbinning's ``selection_criteria``); the feature with the highest IV is kept if none
   passes, so the scorecard always scores something.
3. **WoE transform**: each value becomes its bin's weight of evidence,
   ``ln(share of goods in the bin / share of bads in the bin)``; higher is safer. A missing value
   takes its bin's WoE ("empirical"); a category never seen in training takes WoE 0 (the
   average risk), as optbinning does.
4. **Logistic regression** on the WoE columns, unweighted by default, so the probabilities
   match the training default rate without a calibrator. A safer bin must never cost more, so
   every coefficient must be negative (the positive class is the bad one): a feature with a
   wrong-signed coefficient (collinearity) is dropped, lowest IV first, and the regression
   refitted. Monotone bins times a negative coefficient give a risk that is monotone in the
   feature, in the spec's direction where it gives one.

The log-odds of default is therefore ``intercept + Σ_j coefficient_j · WoE_j(bin of x_j)``: each
bin of each feature adds a fixed amount, listed by :meth:`ScorecardClassifier.bin_table`. Putting
it on a points scale (``creditops.evaluation.points``) is a fixed affine map of that sum.

Input: a DataFrame or an array. A column is binned as categorical when it holds text (the zoo's
binning preprocessor sends categories as text, numbers as floats with NaN for missing); its
values are compared as text.
"""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from creditops.data.validate import to_category_text

__all__ = ["Bin", "FeatureBins", "ScorecardClassifier"]

BinKind = Literal["numeric", "categorical", "ordered"]
# WoE of missing values: the missing bin's own (0 when training had no missing values there).
_METRIC_MISSING = "empirical"
_UNSEEN = "\x00creditops-unseen-category"  # a category no data holds: probes the unknown WoE
_INFINITY = "Input X contains infinity or a value too large for dtype('float64')."
# The missing bin of an ordered feature also holds the categories its order does not list.
MISSING_OR_UNORDERED = "Missing or outside the order"


@dataclass(frozen=True)
class Bin:
    """One bin of a feature: what the training rows in it looked like."""

    label: str
    count: int  # training rows (weighted when fitted with sample weights)
    event_rate: float | None  # default rate; None for a bin without training rows
    woe: float
    iv: float


@dataclass(frozen=True)
class FeatureBins:
    """One selected feature as the fitted scorecard scores it.

    Numeric values fall in bin ``i`` when ``splits[i-1] <= x < splits[i]``; categories (ordered
    ones too: their positions in the order were binned) are looked up in ``categories``.
    Missing values take ``missing.woe``; categories absent from ``categories`` take
    ``unknown_woe``.
    """

    feature: str
    kind: BinKind
    coefficient: float  # the logistic regression's weight on this feature's WoE (< 0)
    bins: tuple[Bin, ...]
    missing: Bin
    splits: tuple[float, ...] = ()  # numeric only
    categories: dict[str, int] | None = None  # categorical and ordered: category → bin
    unknown_woe: float = 0.0  # categorical: unseen categories; ordered: categories not ordered

    def terms(self) -> list[float]:
        """Log-odds of default each regular bin adds (coefficient × WoE), in bin order."""
        return [self.coefficient * b.woe for b in self.bins]

    @property
    def missing_term(self) -> float:
        return self.coefficient * self.missing.woe

    @property
    def unknown_term(self) -> float:
        return self.coefficient * self.unknown_woe

    @property
    def best_term(self) -> float:
        """The lowest log-odds of default a bin holding training rows adds: this feature's best
        bin, against which the points an applicant lost are measured."""
        terms = [t for t, b in zip(self.terms(), self.bins, strict=True) if b.count > 0]
        if self.missing.count > 0:
            terms.append(self.missing_term)
        return min(terms) if terms else 0.0


class ScorecardClassifier(ClassifierMixin, BaseEstimator):
    """Monotone optimal binning → WoE → logistic regression (binary targets only).

    Parameters
    ----------
    max_n_bins, min_bin_size:
        At most this many bins per feature, each with at least this share of training rows
        (the missing bin excepted).
    monotonic_trend:
        optbinning's trend of the default rate over the bins for features without a direction
        of their own (``"auto_asc_desc"``, ``"ascending"``, ``"descending"``, ``"auto"``, ...).
    increasing, decreasing:
        Numeric features whose higher values must not lower / must not raise the risk.
    ordered:
        Categorical features with their categories listed from least to most risky; a category
        the list omits is binned with the missing values.
    min_iv:
        Features with a lower information value are left out (0.02: "useless" below it).
    C, class_weight, max_iter:
        The logistic regression's inverse regularisation strength, class weights and iteration
        budget.
    """

    def __init__(
        self,
        *,
        max_n_bins: int | None = 6,
        min_bin_size: float | None = 0.05,
        monotonic_trend: str = "auto_asc_desc",
        increasing: tuple[str, ...] = (),
        decreasing: tuple[str, ...] = (),
        ordered: dict[str, tuple[str, ...]] | None = None,
        min_iv: float = 0.02,
        C: float = 1.0,
        class_weight: dict[Any, float] | str | None = None,
        max_iter: int = 1000,
    ) -> None:
        self.max_n_bins = max_n_bins
        self.min_bin_size = min_bin_size
        self.monotonic_trend = monotonic_trend
        self.increasing = increasing
        self.decreasing = decreasing
        self.ordered = ordered
        self.min_iv = min_iv
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        # Binary only: a scorecard scores default against no default.
        tags.classifier_tags.multi_class = False
        tags.input_tags.allow_nan = True  # missing values have a bin of their own
        tags.input_tags.string = True  # text columns are binned as categories
        tags.input_tags.categorical = True
        return tags

    # ------------------------------------------------------------------ fitting

    def fit(self, X: Any, y: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None) -> Self:
        """Bin, select, transform to WoE and fit the logistic regression."""
        from optbinning import BinningProcess

        self._check_params()
        _, y = validate_data(
            self, X, y, dtype=None, ensure_all_finite="allow-nan", reset=True, y_numeric=False
        )
        check_classification_targets(y)
        weights = None if sample_weight is None else _check_sample_weight(sample_weight, X)
        present = np.unique(y if weights is None else y[weights > 0])
        if present.size < 2:
            raise ValueError(
                "ScorecardClassifier needs samples of at least 2 classes (with non-zero weight) "
                f"in the data, but the data contains only one class: {present[:1].tolist()!r}."
            )
        y_type = type_of_target(y, input_name="y")
        if y_type != "binary":
            raise ValueError(
                "Only binary classification is supported. The type of the target is "
                f"{y_type} ({np.unique(y).size} classes)."
            )
        self.classes_ = np.unique(y)
        event = (y == self.classes_[1]).astype(np.int64)  # 1 = the positive (bad) class

        columns = self._input_columns(X)
        self.kinds_ = {c: _kind(col) for c, col in zip(columns, _columns(X), strict=True)}
        self._check_directions()
        frame = self._frame(X)
        params = {c: {"monotonic_trend": self._trend(c)} for c in columns}
        options = {
            "variable_names": list(columns),
            "categorical_variables": [c for c, k in self.kinds_.items() if k == "categorical"],
            "max_n_bins": self.max_n_bins,
            "min_bin_size": self.min_bin_size,
            "selection_criteria": {"iv": {"min": self.min_iv}},
            "binning_fit_params": params,
            "n_jobs": 1,
        }
        with _quiet_optbinning():
            binning = BinningProcess(**options).fit(frame, event, sample_weight=weights)
            ivs = {c: float(binning.get_binned_variable(c).binning_table.iv) for c in columns}
            if not binning.get_support().any():  # keep the most informative feature
                best = max(columns, key=lambda c: (ivs[c], c))
                binning = BinningProcess(**options, fixed_variables=[best]).fit(
                    frame, event, sample_weight=weights
                )
        self.binning_ = binning
        self.iv_ = ivs

        woe = self._selected_woe(frame)
        kept = [c for c in columns if c in woe.columns]
        while True:
            logistic = LogisticRegression(
                C=self.C, class_weight=self.class_weight, max_iter=self.max_iter
            )
            logistic.fit(woe[kept].to_numpy(dtype=np.float64), y, sample_weight=weights)
            wrong = [c for c, w in zip(kept, logistic.coef_[0], strict=True) if w > 0]
            if not wrong or len(kept) == 1:
                break
            kept.remove(min(wrong, key=lambda c: (self.iv_[c], c)))
        self.logistic_ = logistic
        self.n_iter_ = logistic.n_iter_
        self.features_ = tuple(kept)
        self.bins_ = tuple(
            self._feature_bins(c, float(w)) for c, w in zip(kept, logistic.coef_[0], strict=True)
        )
        return self

    def _check_params(self) -> None:
        """Validate hyper-parameters at fit time (sklearn forbids it in ``__init__``)."""
        if self.max_n_bins is not None and not (
            isinstance(self.max_n_bins, numbers.Integral) and self.max_n_bins >= 2
        ):
            raise ValueError(f"max_n_bins must be an int >= 2 or None, got {self.max_n_bins!r}.")
        if self.min_bin_size is not None and not 0.0 < self.min_bin_size <= 0.5:
            raise ValueError(f"min_bin_size must be in (0, 0.5] or None, got {self.min_bin_size}.")
        if not self.min_iv >= 0.0:
            raise ValueError(f"min_iv must be >= 0, got {self.min_iv!r}.")
        if not self.C > 0.0:
            raise ValueError(f"C must be > 0, got {self.C!r}.")

    def _check_directions(self) -> None:
        ordered = dict(self.ordered or {})
        named = [*self.increasing, *self.decreasing, *ordered]
        unknown = [c for c in named if c not in self.kinds_]
        if unknown:
            raise ValueError(f"monotone directions name columns X lacks: {unknown}")
        both = set(self.increasing) & set(self.decreasing)
        if both:
            raise ValueError(f"columns both increasing and decreasing: {sorted(both)}")
        numeric = [*self.increasing, *self.decreasing]
        text = [c for c in numeric if self.kinds_[c] != "numeric"]
        if text:
            raise ValueError(f"increasing / decreasing columns must be numeric: {text}")
        for column, levels in ordered.items():
            if self.kinds_[column] == "numeric":
                raise ValueError(f"ordered column {column!r} holds numbers, not categories")
            if len(set(map(str, levels))) != len(levels) or not levels:
                raise ValueError(f"the order of {column!r} must list distinct categories")
            self.kinds_[column] = "ordered"

    def _trend(self, column: str) -> str:
        if column in self.increasing or self.kinds_[column] == "ordered":
            return "ascending"
        if column in self.decreasing:
            return "descending"
        return self.monotonic_trend

    # ------------------------------------------------------------------ input handling

    def _input_columns(self, X: Any) -> tuple[str, ...]:
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            return tuple(str(n) for n in names)
        return tuple(f"x{i}" for i in range(self.n_features_in_))

    def _frame(self, X: Any) -> pd.DataFrame:
        """X as the binning reads it: columns by position under the fitted names, numbers as
        float64 (infinity refused), categories as text, ordered categories as positions."""
        names = self._input_columns(X)
        out: dict[str, Any] = {}
        for name, column in zip(names, _columns(X), strict=True):
            kind = self.kinds_[name]
            if kind == "numeric":
                values = pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64)
                if np.isinf(values).any():
                    raise ValueError(_INFINITY)
                out[name] = values
            elif kind == "categorical":
                out[name] = to_category_text(column).to_numpy(dtype=object)
            else:
                position = {str(level): float(i) for i, level in enumerate(self.ordered[name])}
                text = to_category_text(column)
                out[name] = text.map(position).to_numpy(dtype=np.float64, na_value=np.nan)
        return pd.DataFrame(out, columns=list(names))

    def _selected_woe(self, frame: pd.DataFrame) -> pd.DataFrame:
        with _quiet_optbinning():
            return self.binning_.transform(frame, metric="woe", metric_missing=_METRIC_MISSING)

    # ------------------------------------------------------------------ prediction

    def woe(self, X: Any) -> np.ndarray:
        """The WoE of each scored feature (``features_``), shape (n_samples, len(features_)):
        what the logistic regression reads."""
        check_is_fitted(self)
        validate_data(self, X, dtype=None, ensure_all_finite="allow-nan", reset=False)
        woe = self._selected_woe(self._frame(X))
        return woe[list(self.features_)].to_numpy(dtype=np.float64)

    def decision_function(self, X: Any) -> np.ndarray:
        """Log-odds of the positive class ``classes_[1]``, shape (n_samples,)."""
        woe = self.woe(X)  # checks the fitted state first
        return self.logistic_.decision_function(woe)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, 2), columns ordered as ``classes_``."""
        woe = self.woe(X)
        return self.logistic_.predict_proba(woe)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels (from ``classes_``), thresholding the probability at 0.5."""
        woe = self.woe(X)
        return self.logistic_.predict(woe)

    # ------------------------------------------------------------------ the fitted bins

    @property
    def intercept(self) -> float:
        check_is_fitted(self)
        return float(self.logistic_.intercept_[0])

    def bin_table(self) -> pd.DataFrame:
        """Every bin of every scored feature, with what it adds to the log-odds of default.

        Columns: feature, bin, count, event_rate, woe, iv, coefficient, log_odds
        (= coefficient × WoE). Each feature lists its regular bins, then "Missing" ("Missing or
        outside the order" for ordered categories), then (for categorical features) "Unseen
        category". The log-odds of default of an applicant is
        ``intercept`` plus the ``log_odds`` of the one row per feature that holds the
        applicant's value.
        """
        check_is_fitted(self)
        rows = []
        for feature in self.bins_:
            labelled = [*feature.bins, feature.missing]
            if feature.kind == "categorical":
                labelled.append(Bin("Unseen category", 0, None, feature.unknown_woe, 0.0))
            for b in labelled:
                rows.append(
                    {
                        "feature": feature.feature,
                        "bin": b.label,
                        "count": b.count,
                        "event_rate": b.event_rate,
                        "woe": b.woe,
                        "iv": b.iv,
                        "coefficient": feature.coefficient,
                        "log_odds": feature.coefficient * b.woe + 0.0,  # no -0.0
                    }
                )
        return pd.DataFrame(
            rows,
            columns=[
                "feature",
                "bin",
                "count",
                "event_rate",
                "woe",
                "iv",
                "coefficient",
                "log_odds",
            ],
        )

    def _feature_bins(self, column: str, coefficient: float) -> FeatureBins:
        """Read one feature's bins from optbinning: statistics from its binning table, WoE by
        transforming a probe value per bin (so they are exactly what scoring uses)."""
        optb = self.binning_.get_binned_variable(column)
        with _quiet_optbinning():
            table = optb.binning_table.build(add_totals=False)
        kind = self.kinds_[column]
        n_bins = len(table) - 2  # then the special and the missing bin
        stats = [
            (int(table["Count"].iloc[i]), float(table["Event rate"].iloc[i]), table["IV"].iloc[i])
            for i in range(len(table))
        ]

        def transform(values: Any) -> np.ndarray:
            with _quiet_optbinning():
                woe = optb.transform(values, metric="woe", metric_missing=_METRIC_MISSING)
            return np.asarray(woe, dtype=np.float64)

        splits: tuple[float, ...] = ()
        categories: dict[str, int] | None = None
        unknown_woe = 0.0
        if kind == "categorical":
            groups = [[str(c) for c in group] for group in optb.splits]
            labels = [", ".join(group) for group in groups]
            categories = {c: i for i, group in enumerate(groups) for c in group}
            probes = np.array([group[0] for group in groups] + [_UNSEEN, np.nan], dtype=object)
            woe = transform(probes)
            unknown_woe = float(woe[-2])
        else:
            splits = tuple(float(s) for s in optb.splits)
            probes = np.array([-np.inf, *splits, np.nan], dtype=np.float64)
            woe = transform(probes)
            woe = np.concatenate([woe[:-1], [np.nan], woe[-1:]])  # align with the table rows
            if kind == "numeric":
                labels = _interval_labels(splits)
            else:
                levels = [str(level) for level in self.ordered[column]]
                where = np.digitize(np.arange(len(levels), dtype=float), splits, right=False)
                categories = {level: int(b) for level, b in zip(levels, where, strict=True)}
                labels = [
                    ", ".join(lv for lv, b in categories.items() if b == i) for i in range(n_bins)
                ]
                splits = ()
                unknown_woe = float(woe[-1])  # outside the order: binned as missing
        if kind == "categorical":
            woe = np.concatenate([woe[:n_bins], [np.nan], woe[-1:]])

        def make(i: int, label: str) -> Bin:
            count, rate, iv = stats[i]
            return Bin(label, count, rate if count > 0 else None, float(woe[i]), float(iv))

        return FeatureBins(
            feature=column,
            kind=kind,
            coefficient=coefficient,
            bins=tuple(make(i, labels[i]) for i in range(n_bins)),
            missing=make(n_bins + 1, MISSING_OR_UNORDERED if kind == "ordered" else "Missing"),
            splits=splits,
            categories=categories,
            unknown_woe=unknown_woe,
        )


@contextmanager
def _quiet_optbinning() -> Iterator[None]:
    """optbinning 1.0 uses pandas idioms pandas 3 deprecates (in-place renames, upcasting
    assignments): warnings about its code, not the caller's data."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"optbinning\.")
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"optbinning\.")
        # its automatic trend detection divides by zero on a constant column (then bins it as one)
        warnings.filterwarnings("ignore", category=RuntimeWarning, module=r"optbinning\.")
        yield


def _kind(column: pd.Series) -> BinKind:
    """Numbers are binned as numbers; a categorical dtype, or any value that is not a real
    number (text, typically), makes the column categorical."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(column.dtype):
        return "numeric"
    numeric = all(
        isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) for v in column.dropna()
    )
    return "numeric" if numeric else "categorical"


def _columns(X: Any) -> list[pd.Series]:
    """The columns of X (a DataFrame or a 2-D array), as Series, in order."""
    if isinstance(X, pd.DataFrame):
        return [X.iloc[:, j].reset_index(drop=True) for j in range(X.shape[1])]
    array = np.asarray(X)
    return [pd.Series(array[:, j]) for j in range(array.shape[1])]


def _interval_labels(splits: tuple[float, ...]) -> list[str]:
    edges = [-math.inf, *splits, math.inf]
    return [f"[{_edge(lo)}, {_edge(hi)})" for lo, hi in itertools.pairwise(edges)]


def _edge(value: float) -> str:
    if math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:g}"
