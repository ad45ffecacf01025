"""Error analysis: which applicants the model gets wrong, what that costs, and where it happens.

"Positive" means *predicted default*, i.e. declined (``proba >= threshold``), so:

* a **false positive** (FP) is a good applicant declined: the lender loses the margin the loan
  would have earned;
* a **false negative** (FN) is a defaulter approved: the lender loses the part of the amount it
  does not recover (LGD × amount).

The report answers the questions a credit-risk reviewer asks of a model's mistakes: how many
and how costly (counts, rates, costs); how the mistaken applicants differ from the correctly
classified ones (feature distributions, ranked by the size of the difference); where the model
errs most (error rate by quantile bin or category of each feature, worst segments first); and
which mistakes were the most confident (the FNs it rated safest, the FPs it rated riskiest),
with an explanation per case when an ``explain`` callback is given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field

from creditops.data.spec import ResolvedSpec
from creditops.exceptions import DataValidationError
from creditops.features.preprocessing import MISSING_CATEGORY

ErrorKind = Literal["false_positive", "false_negative"]
Explain = Callable[[pd.DataFrame], list[dict[str, Any]]]
JSONScalar = int | float | str | bool | None

DEFINITIONS: dict[str, str] = {
    "positive": "predicted default: proba ≥ threshold, the applicant is declined",
    "false_positive": "a good applicant declined (lost margin)",
    "false_negative": "a defaulter approved (credit loss)",
    "fp_rate": "false positives / actual goods",
    "fn_rate": "false negatives / actual defaulters",
    "error_rate": "(false positives + false negatives) / rows",
    "correct": "true positives and true negatives together",
    "smd": (
        "standardized mean difference of an error group vs the correct group: "
        "(mean_error − mean_correct) / sqrt((var_error + var_correct) / 2), sample variances, "
        "missing values left out"
    ),
    "ks": "two-sample Kolmogorov–Smirnov statistic of an error group vs the correct group",
    "total_variation": (
        "half the sum of absolute differences in category shares between an error group and "
        "the correct group (the largest difference in the probability of any set of categories)"
    ),
    "score": (
        "feature ranking measure in [0, 1]: the larger of the FP and FN KS statistics (numeric) "
        "or total variation distances (categorical); both are the largest gap in probability "
        "between an error group and the correct group, so they rank together"
    ),
    "segment": (
        "numeric features: quantile bins (a value holding a whole quantile step gets its own "
        "segment; features with at most n_bins distinct values keep their values); categorical "
        "features: their categories; missing values: the segment 'missing'"
    ),
    "lift": "segment error rate / overall error rate",
}


# --------------------------------------------------------------------------- config and results


class ErrorCosts(BaseModel):
    """What each kind of mistake costs the lender.

    With ``amount_column`` (the loan amount, a column of X) costs scale with the loan: an
    approved defaulter costs ``lgd × amount`` (the share of the exposure not recovered) and a
    declined good applicant ``margin × amount`` (the net margin the loan would have earned).
    Without it each mistake costs a flat ``fn_cost`` / ``fp_cost`` in arbitrary units.

    Defaults: LGD 0.45, the Basel foundation-IRB supervisory LGD for senior unsecured claims;
    margin 0.10 of the amount over the loan's life; flat costs 5 : 1, the cost matrix of the
    German credit data (a missed default costs five times a lost good loan). The amount-based
    defaults give a similar 4.5 : 1 ratio.
    """

    model_config = ConfigDict(extra="forbid")

    amount_column: str | None = None
    lgd: float = Field(default=0.45, ge=0.0, le=1.0)
    margin: float = Field(default=0.10, ge=0.0)
    fn_cost: float = Field(default=5.0, ge=0.0)
    fp_cost: float = Field(default=1.0, ge=0.0)


class ConfusionCounts(BaseModel):
    tn: int
    fp: int
    fn: int
    tp: int


class ErrorGroup(BaseModel):
    kind: ErrorKind
    count: int
    rate: float | None  # FP / actual goods, FN / actual defaulters; None when there are none
    share: float  # of all rows
    total_cost: float
    mean_cost: float | None  # None when the group is empty
    mean_proba: float | None


class NumericGroupStats(BaseModel):
    count: int  # rows in the group, missing values included
    missing_rate: float | None
    mean: float | None
    median: float | None
    std: float | None  # sample standard deviation; None below two values


class NumericDifference(BaseModel):
    feature: str
    kind: Literal["numeric"] = "numeric"
    false_positive: NumericGroupStats
    false_negative: NumericGroupStats
    correct: NumericGroupStats
    smd_fp: float | None
    smd_fn: float | None
    ks_fp: float | None
    ks_fn: float | None
    ks_pvalue_fp: float | None
    ks_pvalue_fn: float | None
    score: float | None


class CategoryShare(BaseModel):
    category: str
    false_positive: float | None  # share of the group's rows; None when the group is empty
    false_negative: float | None
    correct: float | None


class CategoryShift(BaseModel):
    category: str
    difference: float  # error group share − correct share


class CategoricalDifference(BaseModel):
    feature: str
    kind: Literal["categorical"] = "categorical"
    shares: list[CategoryShare]
    largest_shift_fp: CategoryShift | None
    largest_shift_fn: CategoryShift | None
    total_variation_fp: float | None
    total_variation_fn: float | None
    score: float | None


FeatureDifference = Annotated[
    NumericDifference | CategoricalDifference, Field(discriminator="kind")
]


class FeatureRank(BaseModel):
    feature: str
    kind: Literal["numeric", "categorical"]
    score: float | None
    measure: Literal["ks", "total_variation"]
    driven_by: ErrorKind | None  # the error group with the larger difference


class Segment(BaseModel):
    feature: str
    label: str
    lower: float | None  # numeric segments only; the label says which ends are closed
    upper: float | None
    size: int
    errors: int
    false_positives: int
    false_negatives: int
    error_rate: float
    fp_rate: float | None  # FP / goods in the segment; None without goods
    fn_rate: float | None  # FN / defaulters in the segment; None without defaulters
    cost: float
    lift: float | None  # error_rate / overall error rate; None when there are no errors
    meets_min_size: bool


class FeatureSegments(BaseModel):
    feature: str
    kind: Literal["numeric", "categorical"]
    binning: Literal["quantile", "values", "categories"]
    segments: list[Segment]


class ConfidentError(BaseModel):
    kind: ErrorKind
    rank: int  # 1 = most confidently wrong
    index: int | float | str  # the row's label in X's index
    id: int | float | str | None
    proba: float
    y_true: int
    cost: float
    features: dict[str, Any]
    explanation: dict[str, Any] | None = None


class ErrorReport(BaseModel):
    schema_version: int = 1
    threshold: float
    n: int
    positive: str = "predicted default: declined when proba ≥ threshold"
    costs: ErrorCosts
    cost_basis: Literal["amount", "flat"]
    confusion: ConfusionCounts
    error_rate: float
    false_positives: ErrorGroup
    false_negatives: ErrorGroup
    total_cost: float
    feature_differences: list[FeatureDifference]  # largest score first
    feature_ranking: list[FeatureRank]
    segments: list[FeatureSegments]  # in spec feature order
    worst_segments: list[Segment]
    most_confident_false_negatives: list[ConfidentError]  # lowest proba first
    most_confident_false_positives: list[ConfidentError]  # highest proba first
    n_bins: int
    min_segment_size: int
    top_k: int
    notes: list[str] = Field(default_factory=list)
    definitions: dict[str, str] = Field(default_factory=lambda: dict(DEFINITIONS))

    def feature_segments(self, feature: str) -> FeatureSegments:
        """The segments of one feature."""
        for result in self.segments:
            if result.feature == feature:
                return result
        raise KeyError(feature)

    def feature_difference(self, feature: str) -> NumericDifference | CategoricalDifference:
        """How FP and FN differ from the correct group on one feature."""
        for result in self.feature_differences:
            if result.feature == feature:
                return result
        raise KeyError(feature)


# --------------------------------------------------------------------------- helpers


def _float(value: Any) -> float | None:
    """A plain float, or None for None/NaN/inf (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    """numpy/pandas values turned into plain JSON types, recursively; NaN becomes None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return _float(value)
    if value is None or isinstance(value, str):
        return value
    if pd.api.types.is_scalar(value) and pd.isna(value):
        return None
    return str(value)


def _number_texts(values: np.ndarray) -> list[str]:
    """Short, distinct, non-scientific texts for sorted distinct numbers (4+ significant digits)."""
    for precision in range(4, 18):
        texts = [
            np.format_float_positional(
                float(v), precision=precision, unique=False, fractional=False, trim="-"
            )
            for v in values
        ]
        if len(set(texts)) == len(texts):
            return texts
    return [repr(float(v)) for v in values]


def _category_text(values: pd.Series) -> np.ndarray:
    """Categories as text, missing values (and blanks) as ``"missing"``."""
    series = values.astype(object)
    missing = series.isna().to_numpy()
    text = np.array([str(v).strip() for v in series], dtype=object)
    text[missing | (text == "")] = MISSING_CATEGORY
    return text


def _check_inputs(
    X: pd.DataFrame, y_true: Any, proba: Any, spec: ResolvedSpec, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(X, pd.DataFrame):
        raise TypeError("X must be a pandas DataFrame with the spec's feature columns")
    absent = [f for f in spec.features if f not in X.columns]
    if absent:
        raise DataValidationError(
            f"X lacks the spec's feature columns: {', '.join(absent)}", column=absent[0]
        )
    y = np.asarray(y_true).ravel()
    p = np.asarray(proba, dtype=np.float64).ravel()
    if len(y) != len(X) or len(p) != len(X):
        raise ValueError(f"X ({len(X)}), y_true ({len(y)}) and proba ({len(p)}) differ in rows")
    if len(X) == 0:
        raise ValueError("error analysis needs at least one row")
    if not np.isin(y, [0, 1]).all():
        raise ValueError("y_true must be 0/1 with 1 = default")
    if not (np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()):
        raise ValueError("proba must be probabilities of default in [0, 1], with no NaN")
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
    return y.astype(np.int64), p


def _row_costs(
    X: pd.DataFrame, costs: ErrorCosts, notes: list[str]
) -> tuple[np.ndarray, np.ndarray, Literal["amount", "flat"]]:
    """What each row would cost as an FN and as an FP."""
    n = len(X)
    column = costs.amount_column
    if column is None:
        return np.full(n, costs.fn_cost), np.full(n, costs.fp_cost), "flat"
    if column not in X.columns:
        raise DataValidationError(f"amount column '{column}' is not in X", column=column)
    amount = pd.to_numeric(X[column], errors="coerce").astype("float64").to_numpy()
    missing = ~np.isfinite(amount)
    if missing.all():
        raise DataValidationError(f"amount column '{column}' holds no numbers", column=column)
    if (amount[~missing] < 0).any():
        raise DataValidationError(f"amount column '{column}' has negative amounts", column=column)
    if missing.any():
        fill = float(np.median(amount[~missing]))
        amount = np.where(missing, fill, amount)
        notes.append(
            f"{int(missing.sum())} rows without a valid '{column}' were costed at the median "
            f"amount {fill:g}."
        )
    return costs.lgd * amount, costs.margin * amount, "amount"


# --------------------------------------------------------------------------- differences


def _numeric_stats(values: np.ndarray, mask: np.ndarray) -> NumericGroupStats:
    group = values[mask]
    present = group[~np.isnan(group)]
    return NumericGroupStats(
        count=int(mask.sum()),
        missing_rate=float(np.isnan(group).mean()) if group.size else None,
        mean=float(present.mean()) if present.size else None,
        median=float(np.median(present)) if present.size else None,
        std=float(present.std(ddof=1)) if present.size >= 2 else None,
    )


def _smd(error: np.ndarray, correct: np.ndarray) -> float | None:
    if error.size < 2 or correct.size < 2:
        return None
    difference = float(error.mean() - correct.mean())
    pooled = math.sqrt((float(error.var(ddof=1)) + float(correct.var(ddof=1))) / 2.0)
    if pooled == 0.0:
        return 0.0 if difference == 0.0 else None
    return difference / pooled


def _ks(error: np.ndarray, correct: np.ndarray) -> tuple[float | None, float | None]:
    from scipy.stats import ks_2samp

    if error.size == 0 or correct.size == 0:
        return None, None
    result = ks_2samp(error, correct)
    return _float(result.statistic), _float(result.pvalue)


def _max_with_source(fp: float | None, fn: float | None) -> tuple[float | None, ErrorKind | None]:
    if fp is None and fn is None:
        return None, None
    if fn is None or (fp is not None and fp >= fn):
        return fp, "false_positive"
    return fn, "false_negative"


def _numeric_difference(
    feature: str, values: np.ndarray, fp: np.ndarray, fn: np.ndarray, correct: np.ndarray
) -> NumericDifference:
    present = ~np.isnan(values)
    groups = {
        name: values[mask & present] for name, mask in (("fp", fp), ("fn", fn), ("ok", correct))
    }
    ks_fp, p_fp = _ks(groups["fp"], groups["ok"])
    ks_fn, p_fn = _ks(groups["fn"], groups["ok"])
    return NumericDifference(
        feature=feature,
        false_positive=_numeric_stats(values, fp),
        false_negative=_numeric_stats(values, fn),
        correct=_numeric_stats(values, correct),
        smd_fp=_smd(groups["fp"], groups["ok"]),
        smd_fn=_smd(groups["fn"], groups["ok"]),
        ks_fp=ks_fp,
        ks_fn=ks_fn,
        ks_pvalue_fp=p_fp,
        ks_pvalue_fn=p_fn,
        score=_max_with_source(ks_fp, ks_fn)[0],
    )


def _shares(text: np.ndarray, mask: np.ndarray, categories: list[str]) -> list[float] | None:
    group = text[mask]
    if group.size == 0:
        return None
    return [float(np.mean(group == c)) for c in categories]


def _shift(
    categories: list[str], error: list[float] | None, correct: list[float] | None
) -> tuple[CategoryShift | None, float | None]:
    if error is None or correct is None:
        return None, None
    differences = [e - c for e, c in zip(error, correct, strict=True)]
    largest = int(np.argmax(np.abs(differences)))  # first category on ties
    shift = CategoryShift(category=categories[largest], difference=differences[largest])
    return shift, 0.5 * float(np.sum(np.abs(differences)))


def _categorical_difference(
    feature: str, text: np.ndarray, fp: np.ndarray, fn: np.ndarray, correct: np.ndarray
) -> CategoricalDifference:
    categories = _category_order(text)
    fp_shares = _shares(text, fp, categories)
    fn_shares = _shares(text, fn, categories)
    ok_shares = _shares(text, correct, categories)
    shift_fp, tv_fp = _shift(categories, fp_shares, ok_shares)
    shift_fn, tv_fn = _shift(categories, fn_shares, ok_shares)
    return CategoricalDifference(
        feature=feature,
        shares=[
            CategoryShare(
                category=category,
                false_positive=None if fp_shares is None else fp_shares[i],
                false_negative=None if fn_shares is None else fn_shares[i],
                correct=None if ok_shares is None else ok_shares[i],
            )
            for i, category in enumerate(categories)
        ],
        largest_shift_fp=shift_fp,
        largest_shift_fn=shift_fn,
        total_variation_fp=tv_fp,
        total_variation_fn=tv_fn,
        score=_max_with_source(tv_fp, tv_fn)[0],
    )


def _rank(difference: NumericDifference | CategoricalDifference) -> FeatureRank:
    if isinstance(difference, NumericDifference):
        score, source = _max_with_source(difference.ks_fp, difference.ks_fn)
        measure: Literal["ks", "total_variation"] = "ks"
    else:
        score, source = _max_with_source(
            difference.total_variation_fp, difference.total_variation_fn
        )
        measure = "total_variation"
    return FeatureRank(
        feature=difference.feature,
        kind=difference.kind,
        score=score,
        measure=measure,
        driven_by=source,
    )


# --------------------------------------------------------------------------- segments


def _category_order(text: np.ndarray) -> list[str]:
    present = sorted({str(v) for v in text if v != MISSING_CATEGORY})
    return [*present, MISSING_CATEGORY] if (text == MISSING_CATEGORY).any() else present


# (label, lower, upper, row mask)
_Bin = tuple[str, float | None, float | None, np.ndarray]


def _numeric_bins(values: np.ndarray, n_bins: int) -> tuple[str, list[_Bin]]:
    """Quantile bins that partition the non-missing values, plus a "missing" bin.

    Edges are quantiles taken at data values (inverted CDF), so labels show values that
    occur. Duplicate edges collapse; a value that fills a whole quantile step (a point mass,
    e.g. Debt = 0 for most applicants) becomes its own segment instead of being merged with
    its neighbours. Features with at most ``n_bins`` distinct values keep one segment each.
    """
    present = ~np.isnan(values)
    x = values[present]
    distinct = np.unique(x)
    bins: list[_Bin] = []
    binning = "values"
    if 0 < distinct.size <= n_bins:
        texts = _number_texts(distinct)
        bins = [(t, float(v), float(v), values == v) for t, v in zip(texts, distinct, strict=True)]
    elif distinct.size > n_bins:
        binning = "quantile"
        # Inverted-CDF quantiles in exact integer arithmetic (the smallest value whose share at
        # or below reaches i / n_bins): float probabilities like 0.6000000000000001 would
        # otherwise move an edge by one value.
        ordered = np.sort(x)
        positions = [max(-(-len(x) * i // n_bins) - 1, 0) for i in range(n_bins + 1)]
        raw = ordered[positions]
        edges, repeats = np.unique(raw, return_counts=True)
        point = repeats > 1
        texts = _number_texts(edges)
        if point[0]:
            bins.append((texts[0], float(edges[0]), float(edges[0]), values == edges[0]))
        for i in range(len(edges) - 1):
            low, high = edges[i], edges[i + 1]
            low_closed = i == 0 and not point[0]
            high_closed = not point[i + 1]
            above = values >= low if low_closed else values > low
            below = values <= high if high_closed else values < high
            opening, closing = "[" if low_closed else "(", "]" if high_closed else ")"
            label = f"{opening}{texts[i]}, {texts[i + 1]}{closing}"
            bins.append((label, float(low), float(high), above & below))
            if point[i + 1]:
                bins.append((texts[i + 1], float(high), float(high), values == high))
    if not present.all():
        bins.append((MISSING_CATEGORY, None, None, ~present))
    return binning, [b for b in bins if b[3].any()]


def _categorical_bins(text: np.ndarray) -> list[_Bin]:
    return [(c, None, None, text == c) for c in _category_order(text)]


def _segment(
    feature: str,
    bin_: _Bin,
    y: np.ndarray,
    fp: np.ndarray,
    fn: np.ndarray,
    error_cost: np.ndarray,
    overall_error_rate: float,
    min_segment_size: int,
) -> Segment:
    label, lower, upper, mask = bin_
    size = int(mask.sum())
    n_fp, n_fn = int((fp & mask).sum()), int((fn & mask).sum())
    goods, bads = int((mask & (y == 0)).sum()), int((mask & (y == 1)).sum())
    error_rate = (n_fp + n_fn) / size
    return Segment(
        feature=feature,
        label=label,
        lower=lower,
        upper=upper,
        size=size,
        errors=n_fp + n_fn,
        false_positives=n_fp,
        false_negatives=n_fn,
        error_rate=error_rate,
        fp_rate=n_fp / goods if goods else None,
        fn_rate=n_fn / bads if bads else None,
        cost=float(error_cost[mask].sum()),
        lift=error_rate / overall_error_rate if overall_error_rate > 0 else None,
        meets_min_size=size >= min_segment_size,
    )


# --------------------------------------------------------------------------- confident errors


def _confident_errors(
    kind: ErrorKind,
    positions: np.ndarray,
    X: pd.DataFrame,
    features: list[str],
    ids: np.ndarray | None,
    y: np.ndarray,
    p: np.ndarray,
    error_cost: np.ndarray,
    explanations: Sequence[dict[str, Any]] | None,
) -> list[ConfidentError]:
    out = []
    for rank, position in enumerate(positions, start=1):
        values = X.iloc[position]
        index = _jsonable(X.index[position])
        out.append(
            ConfidentError(
                kind=kind,
                rank=rank,
                index=int(position) if index is None else index,
                id=None if ids is None else _jsonable(ids[position]),
                proba=float(p[position]),
                y_true=int(y[position]),
                cost=float(error_cost[position]),
                features={f: _jsonable(values[f]) for f in features},
                explanation=None if explanations is None else explanations[rank - 1],
            )
        )
    return out


def _explain(explain: Explain, rows: pd.DataFrame) -> list[dict[str, Any]]:
    result = list(explain(rows))
    if len(result) != len(rows):
        raise ValueError(
            f"explain returned {len(result)} explanations for {len(rows)} rows; it must return "
            "one dict per row"
        )
    if not all(isinstance(item, Mapping) for item in result):
        raise TypeError("explain must return one dict per row")
    return [_jsonable(item) for item in result]


# --------------------------------------------------------------------------- analysis


def error_analysis(
    X: pd.DataFrame,
    y_true: np.ndarray | pd.Series,
    proba: np.ndarray | pd.Series,
    spec: ResolvedSpec,
    *,
    threshold: float,
    costs: ErrorCosts | None = None,
    explain: Explain | None = None,
    ids: pd.Series | np.ndarray | None = None,
    top_k: int = 10,
    n_bins: int = 5,
    min_segment_size: int = 30,
    n_worst: int = 10,
) -> ErrorReport:
    """Count, cost, profile and locate the model's mistakes at ``threshold``.

    ``X`` holds the spec's features (extra columns are ignored, except ``costs.amount_column``
    and ``spec.id`` which may live there); ``y_true`` (1 = default) and ``proba`` (probability of
    default) are aligned with it by position. ``ids`` (by position too) names the rows in the
    confident-error lists (default: ``X[spec.id]`` when present, else only X's index).
    ``explain`` receives the confidently wrong rows once (FNs then FPs, feature columns only,
    X's index kept) and must return one JSON-able dict per row. Worst segments are the
    ``n_worst`` segments of at least ``min_segment_size`` rows with the highest error rate
    (ties: larger first).
    """
    if top_k < 0 or n_worst < 0:
        raise ValueError("top_k and n_worst must be ≥ 0")
    if n_bins < 1:
        raise ValueError("n_bins must be ≥ 1")
    if min_segment_size < 1:
        raise ValueError("min_segment_size must be ≥ 1")
    costs = costs or ErrorCosts()
    y, p = _check_inputs(X, y_true, proba, spec, threshold)
    n = len(y)
    notes: list[str] = []
    if ids is None and spec.id is not None and spec.id in X.columns:
        ids = X[spec.id]
    id_values = None if ids is None else np.asarray(ids, dtype=object).ravel()
    if id_values is not None and len(id_values) != n:
        raise ValueError(f"ids ({len(id_values)}) and X ({n}) differ in rows")

    fn_row_cost, fp_row_cost, basis = _row_costs(X, costs, notes)
    declined = p >= threshold
    fp = declined & (y == 0)
    fn = ~declined & (y == 1)
    tp = declined & (y == 1)
    tn = ~declined & (y == 0)
    correct = tp | tn
    error_cost = np.where(fp, fp_row_cost, np.where(fn, fn_row_cost, 0.0))
    goods, bads = int((y == 0).sum()), int((y == 1).sum())
    error_rate = float((fp | fn).mean())

    def group(kind: ErrorKind, mask: np.ndarray, actual: int) -> ErrorGroup:
        count = int(mask.sum())
        return ErrorGroup(
            kind=kind,
            count=count,
            rate=count / actual if actual else None,
            share=count / n,
            total_cost=float(error_cost[mask].sum()),
            mean_cost=float(error_cost[mask].mean()) if count else None,
            mean_proba=float(p[mask].mean()) if count else None,
        )

    for kind, mask in (("false positives", fp), ("false negatives", fn)):
        if not mask.any():
            notes.append(f"No {kind} at this threshold: their statistics are empty.")

    features = spec.features
    frame = X[features]
    differences: list[NumericDifference | CategoricalDifference] = []
    segments: list[FeatureSegments] = []
    for feature in features:
        if feature in spec.numeric:
            values = pd.to_numeric(frame[feature], errors="coerce").astype("float64").to_numpy()
            differences.append(_numeric_difference(feature, values, fp, fn, correct))
            binning, bins = _numeric_bins(values, n_bins)
            kind_of: Literal["numeric", "categorical"] = "numeric"
        else:
            text = _category_text(frame[feature])
            differences.append(_categorical_difference(feature, text, fp, fn, correct))
            binning, bins = "categories", _categorical_bins(text)
            kind_of = "categorical"
        segments.append(
            FeatureSegments(
                feature=feature,
                kind=kind_of,
                binning=binning,
                segments=[
                    _segment(feature, b, y, fp, fn, error_cost, error_rate, min_segment_size)
                    for b in bins
                ],
            )
        )
    differences.sort(key=lambda d: -1.0 if d.score is None else d.score, reverse=True)

    eligible = [s for result in segments for s in result.segments if s.meets_min_size]
    worst = sorted(eligible, key=lambda s: (-s.error_rate, -s.size))[:n_worst]
    if not eligible:
        notes.append(f"No segment has at least {min_segment_size} rows: no worst segments.")

    fn_positions = np.flatnonzero(fn)
    fn_positions = fn_positions[np.argsort(p[fn_positions], kind="stable")][:top_k]
    fp_positions = np.flatnonzero(fp)
    fp_positions = fp_positions[np.argsort(-p[fp_positions], kind="stable")][:top_k]
    fn_explanations = fp_explanations = None
    if explain is not None and len(fn_positions) + len(fp_positions) > 0:
        explained = _explain(explain, frame.iloc[np.concatenate([fn_positions, fp_positions])])
        fn_explanations = explained[: len(fn_positions)]
        fp_explanations = explained[len(fn_positions) :]
    confident = {
        kind: _confident_errors(kind, positions, frame, features, id_values, y, p, error_cost, ex)
        for kind, positions, ex in (
            ("false_negative", fn_positions, fn_explanations),
            ("false_positive", fp_positions, fp_explanations),
        )
    }

    return ErrorReport(
        threshold=float(threshold),
        n=n,
        costs=costs,
        cost_basis=basis,
        confusion=ConfusionCounts(
            tn=int(tn.sum()), fp=int(fp.sum()), fn=int(fn.sum()), tp=int(tp.sum())
        ),
        error_rate=error_rate,
        false_positives=group("false_positive", fp, goods),
        false_negatives=group("false_negative", fn, bads),
        total_cost=float(error_cost.sum()),
        feature_differences=differences,
        feature_ranking=[_rank(d) for d in differences],
        segments=segments,
        worst_segments=worst,
        most_confident_false_negatives=confident["false_negative"],
        most_confident_false_positives=confident["false_positive"],
        n_bins=n_bins,
        min_segment_size=min_segment_size,
        top_k=top_k,
        notes=notes,
    )


# --------------------------------------------------------------------------- figure


def error_rate_figure(report: ErrorReport, *, n_features: int = 4) -> Figure:
    """Error rate by segment for the features holding the worst segments.

    Each bar is one segment, split into declined goods (FP) and approved defaulters (FN) as
    shares of the segment's rows, so its length is the segment's error rate; the dashed line is
    the overall error rate. Segments below ``min_segment_size`` are faded and hatched: too
    small to read.
    """
    chosen: list[str] = []
    for name in [s.feature for s in report.worst_segments] + [
        r.feature for r in report.feature_ranking
    ]:
        if name not in chosen:
            chosen.append(name)
    chosen = chosen[: max(n_features, 1)]
    panels = [report.feature_segments(name) for name in chosen]
    tallest = max((len(p.segments) for p in panels), default=1)
    figure = Figure(
        figsize=(4.2 * max(len(panels), 1), max(3.0, 0.35 * tallest + 1.6)),
        dpi=100,
        layout="constrained",
    )
    axes = figure.subplots(1, max(len(panels), 1), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=False):
        positions = np.arange(len(panel.segments))
        fp_share = [s.false_positives / s.size for s in panel.segments]
        fn_share = [s.false_negatives / s.size for s in panel.segments]
        fp_bars = ax.barh(positions, fp_share, color="tab:orange", label="declined goods (FP)")
        fn_bars = ax.barh(
            positions, fn_share, left=fp_share, color="tab:red", label="approved defaulters (FN)"
        )
        for segment, *bars in zip(panel.segments, fp_bars, fn_bars, strict=True):
            if not segment.meets_min_size:
                for bar in bars:
                    bar.set_alpha(0.35)
                    bar.set_hatch("//")
        ax.axvline(report.error_rate, color="black", linestyle="--", linewidth=1, label="overall")
        ax.set_yticks(
            positions, labels=[f"{s.label} (n={s.size})" for s in panel.segments], fontsize="small"
        )
        ax.invert_yaxis()
        widest = max([report.error_rate, *(s.error_rate for s in panel.segments)])
        ax.set_xlim(0, min(1.0, 1.15 * widest + 0.02))
        ax.set_xlabel("Error rate")
        ax.set_title(panel.feature, fontsize="medium")
    if panels:
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside lower center", ncols=3, fontsize="small")
    else:
        axes[0].text(0.5, 0.5, "no features", ha="center", va="center")
        axes[0].set_axis_off()
    figure.suptitle(f"Error rate by segment (decline when PD ≥ {report.threshold:.2f})")
    return figure
