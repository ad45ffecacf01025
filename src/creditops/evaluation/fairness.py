"""Fairness of lending decisions across protected groups, measured with fairlearn.

A row is *approved* when its probability of default is below the decision threshold, and
approval is the favourable outcome: every rate below is about who gets credit. Per group the
report gives size, default (base) rate, approval rate, error rates and AUC; per attribute (and
for the intersection of all attributes) the disparity measures a fair-lending review reads, each
with a bootstrap interval:

* demographic parity difference / ratio: gap and ratio between the highest and lowest group
  approval rates (fairlearn's ``demographic_parity_*`` with approval as the selection);
* disparate impact ratio: lowest / highest group approval rate (equal to the demographic parity
  ratio), judged by the four-fifths rule: below 0.8 an adverse impact is presumed;
* equal opportunity difference: the gap in approval rates among actual non-defaulters, i.e. in
  a *good* applicant's chance of being approved (fairlearn's ``equal_opportunity_difference``
  with "good" as the positive label and approval as the prediction);
* equalized odds difference: the larger of the gaps in approval rates among goods and among
  defaulters (equivalently in TPR and FPR on the default class, defined below).

Groups too small to judge (fewer than ``min_group_size`` rows, or fewer than
``min_group_defaults`` defaulters or ``min_group_goods`` goods) are listed and flagged but left
out of every between-group measure and verdict: a ratio on a dozen rows is noise, not evidence.

Approval rate by group and the ratio to the most approved group have one home,
:func:`approval_rates`, and the four-fifths verdict one function, :func:`four_fifths_verdict`:
this report, the monitoring of decisions over time and the retraining fairness gate all read
them from there, so the three cannot disagree.

The gate that judges a report against a lender's limits lives in
:mod:`creditops.evaluation.gate`; what parity would cost, in :mod:`creditops.evaluation.mitigation`.
"""

from __future__ import annotations

import itertools
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from pydantic import BaseModel, ConfigDict, Field
from sklearn.metrics import precision_score, roc_auc_score

from creditops.features.preprocessing import MISSING_CATEGORY

FOUR_FIFTHS = 0.8
AGE_BINS = (-math.inf, 25.0, 40.0, 60.0, math.inf)
AGE_LABELS = ("<25", "25–39", "40–59", "60+")
INTERSECTION_SEPARATOR = " × "
# A numeric protected attribute with more distinct values than this is binned, not grouped.
MAX_NUMERIC_GROUPS = 10

Kind = Literal["attribute", "intersection"]
Verdict = Literal["adverse impact presumed", "no adverse impact presumed", "not assessable"]
TOO_SMALL = "too small to judge"
NOT_RECORDED = "not recorded"
GroupStatus = Literal["judged", "too small to judge", "not recorded"]

DEFINITIONS: dict[str, str] = {
    "approved": "probability of default < threshold; approval is the favourable outcome",
    "base_rate": "share of the group's rows that actually defaulted",
    "approval_rate": "share of the group's rows approved",
    "tpr": "on the default class: share of actual defaulters declined",
    "fpr": "on the default class: share of actual non-defaulters (goods) declined",
    "precision": "on the default class: share of declined rows that actually defaulted",
    "demographic_parity_difference": "highest minus lowest group approval rate",
    "demographic_parity_ratio": "lowest over highest group approval rate",
    "equal_opportunity_difference": (
        "highest minus lowest approval rate among actual non-defaulters (a good applicant's "
        "chance of approval), i.e. the gap in 1 − FPR"
    ),
    "equalized_odds_difference": (
        "larger of the gaps in approval rate among goods and among defaulters (= max of the TPR "
        "and FPR gaps)"
    ),
    "disparate_impact_ratio": (
        "lowest over highest group approval rate; below 0.8 (four-fifths rule) adverse impact "
        "is presumed"
    ),
    "interval": "percentile bootstrap, rows resampled within each group × outcome stratum",
}


# --------------------------------------------------------------------------- result models


class FairnessConfig(BaseModel):
    """When a group is large enough to judge, and the limits the fairness gate enforces.

    ``min_disparate_impact`` is the gate's policy limit (a lender may choose stricter than
    0.8); the reported four-fifths verdict always uses the rule's own 0.8.
    """

    model_config = ConfigDict(extra="forbid")

    min_group_size: int = Field(default=30, ge=1)
    # At least one of each outcome, so TPR and FPR are defined for every judged group.
    min_group_defaults: int = Field(default=5, ge=1)
    min_group_goods: int = Field(default=5, ge=1)
    max_parity_difference: float = Field(default=0.1, ge=0.0, le=1.0)
    min_disparate_impact: float = Field(default=FOUR_FIFTHS, ge=0.0, le=1.0)
    max_equalized_odds_difference: float = Field(default=0.2, ge=0.0, le=1.0)
    n_boot: int = Field(default=200, ge=0)
    seed: int = 0
    confidence_level: float = Field(default=0.95, gt=0.0, lt=1.0)
    gate_intersection: bool = False  # intersections are reported; gated only when asked


class Estimate(BaseModel):
    """A point estimate with its bootstrap interval (None when not bootstrapped)."""

    value: float
    ci_low: float | None = None
    ci_high: float | None = None


class GroupFairness(BaseModel):
    group: str
    size: int
    share: float
    defaults: int
    goods: int
    base_rate: float
    approval_rate: float
    tpr: float | None  # defaulters declined / defaulters; None without defaulters
    fpr: float | None  # goods declined / goods; None without goods
    precision: float | None  # defaulters among declined; None when nobody is declined
    auc: float | None  # None when the group holds one class only
    too_small: bool
    status: Literal["judged", "too small to judge"]


class AttributeFairness(BaseModel):
    attribute: str
    kind: Kind
    columns: list[str]
    groups: list[GroupFairness]
    judged_groups: list[str]
    excluded_groups: list[str]  # too small to judge: shown above, left out of everything below
    demographic_parity_difference: Estimate | None
    demographic_parity_ratio: Estimate | None
    equal_opportunity_difference: Estimate | None
    equalized_odds_difference: Estimate | None
    disparate_impact_ratio: Estimate | None
    most_approved_group: str | None
    least_approved_group: str | None
    four_fifths_verdict: Verdict
    note: str


class FairnessReport(BaseModel):
    schema_version: int = 1
    threshold: float
    n: int
    favourable_outcome: str = "approval (probability of default below the threshold)"
    config: FairnessConfig
    attributes: list[AttributeFairness]
    definitions: dict[str, str] = Field(default_factory=lambda: dict(DEFINITIONS))

    def attribute(self, name: str) -> AttributeFairness:
        """The results for one attribute (or intersection, e.g. ``"Age × Marital"``)."""
        for result in self.attributes:
            if result.attribute == name:
                return result
        raise KeyError(name)


class GroupApprovalRate(BaseModel):
    """One group's approvals. ``ratio_to_highest``: its approval rate over the most approved
    judged group's (None for groups not judged, or when no judged group is approved)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    group: str
    size: int
    approved: int
    approval_rate: float
    ratio_to_highest: float | None = None
    status: GroupStatus


class ApprovalRates(BaseModel):
    """Approval rate by group and the four-fifths verdict over the judged groups."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    groups: list[GroupApprovalRate]
    judged_groups: list[str]
    disparate_impact_ratio: float | None  # lowest / highest judged approval rate
    most_approved_group: str | None
    least_approved_group: str | None
    verdict: Verdict


def four_fifths_verdict(disparate_impact_ratio: float | None) -> Verdict:
    """The four-fifths rule on a disparate impact ratio: below :data:`FOUR_FIFTHS` adverse
    impact is presumed; without a ratio (fewer than two judged groups, none approved) the
    verdict is "not assessable". The one place the rule is applied."""
    if disparate_impact_ratio is None:
        return "not assessable"
    if disparate_impact_ratio < FOUR_FIFTHS:
        return "adverse impact presumed"
    return "no adverse impact presumed"


def approval_rates(
    approved: Any,
    groups: pd.Series,
    *,
    min_group_size: int = 1,
    not_judged: Mapping[str, GroupStatus] | None = None,
    order: Sequence[str] | None = None,
) -> ApprovalRates:
    """Approval rate per group (fairlearn's ``selection_rate``), each group's ratio to the most
    approved one and the disparate impact ratio (``demographic_parity_ratio``) over the judged
    groups, with the four-fifths verdict (:func:`four_fifths_verdict`).

    ``approved`` is 1/True for an approved row, aligned with ``groups`` by position. Groups
    under ``min_group_size`` rows are "too small to judge"; ``not_judged`` gives other groups
    the status they take instead of being judged (too few defaulters, a missing value that is
    no group of people). Groups are listed in ``order`` (default: the categories of a
    categorical ``groups``, else sorted); with fewer than two judged groups, or none approved,
    the verdict is "not assessable".
    """
    from fairlearn.metrics import MetricFrame, count, selection_rate

    flags = np.asarray(approved).astype(np.int64).ravel()
    labels = pd.Series(np.asarray(groups.astype(str), dtype=object), name="group")
    if len(flags) != len(labels):
        raise ValueError(f"approved ({len(flags)}) and groups ({len(labels)}) differ in length")
    if order is None:
        categories = groups.cat.categories if isinstance(groups.dtype, pd.CategoricalDtype) else []
        order = [str(c) for c in categories] or sorted(set(labels))
    present = set(labels)
    order = [g for g in order if g in present]
    if not order:
        return ApprovalRates(
            groups=[],
            judged_groups=[],
            disparate_impact_ratio=None,
            most_approved_group=None,
            least_approved_group=None,
            verdict="not assessable",
        )
    table = (
        MetricFrame(
            metrics={"size": count, "approval_rate": selection_rate},
            y_true=flags,
            y_pred=flags,
            sensitive_features=labels,
        )
        .by_group.reindex(order)
        .assign(approved=pd.Series(flags).groupby(labels.to_numpy()).sum())
    )
    return _approval_table(table, order, min_group_size, not_judged)


def approval_rates_from_counts(
    sizes: Mapping[str, int],
    approved: Mapping[str, int],
    *,
    min_group_size: int = 1,
    not_judged: Mapping[str, GroupStatus] | None = None,
    order: Sequence[str],
) -> ApprovalRates:
    """:func:`approval_rates` from each group's rows and approvals (as a monitor counts them
    chunk by chunk over millions of decisions): the same rates, statuses and verdict."""
    order = [g for g in order if sizes.get(g, 0) > 0]
    if not order:
        return approval_rates(np.array([], dtype=int), pd.Series([], dtype=object))
    size = pd.Series({g: int(sizes[g]) for g in order}, dtype="int64")
    yes = pd.Series({g: int(approved.get(g, 0)) for g in order}, dtype="int64")
    table = pd.DataFrame({"size": size, "approval_rate": yes / size, "approved": yes})
    return _approval_table(table, order, min_group_size, not_judged)


def _approval_table(
    table: pd.DataFrame,
    order: list[str],
    min_group_size: int,
    not_judged: Mapping[str, GroupStatus] | None,
) -> ApprovalRates:
    """Statuses, ratios and the verdict from a table of size / approval_rate / approved by
    group (in ``order``)."""
    excluded = dict(not_judged or {})
    status: dict[str, GroupStatus] = {
        group: excluded.get(group)
        or ("judged" if int(table.loc[group, "size"]) >= min_group_size else TOO_SMALL)
        for group in order
    }
    judged = [g for g in order if status[g] == "judged"]
    di = high = low = None
    top = 0.0
    if len(judged) >= 2:
        rates = table.loc[judged, "approval_rate"].astype(float)
        top = float(rates.max())
        high, low = str(rates.idxmax()), str(rates.idxmin())
        if top > 0:
            # demographic parity ratio over the judged groups: lowest / highest approval rate
            di = float(rates.min()) / top
    verdict = four_fifths_verdict(di)
    rows = [
        GroupApprovalRate(
            group=group,
            size=int(table.loc[group, "size"]),
            approved=int(table.loc[group, "approved"]),
            approval_rate=float(table.loc[group, "approval_rate"]),
            ratio_to_highest=(
                float(table.loc[group, "approval_rate"]) / top
                if status[group] == "judged" and top > 0
                else None
            ),
            status=status[group],
        )
        for group in order
    ]
    return ApprovalRates(
        groups=rows,
        judged_groups=judged,
        disparate_impact_ratio=di,
        most_approved_group=high,
        least_approved_group=low,
        verdict=verdict,
    )


# --------------------------------------------------------------------------- grouping


def _is_age(name: str) -> bool:
    tokens = re.split(r"[^A-Za-z]+|(?<=[a-z])(?=[A-Z])", str(name))
    return any(token.lower() == "age" for token in tokens)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _with_missing(labels: pd.Series, order: list[str], missing: pd.Series) -> pd.Series:
    text = labels.astype(object).where(~missing, MISSING_CATEGORY)
    categories = [c for c in order if c in set(text)]
    if missing.any():
        categories.append(MISSING_CATEGORY)
    return pd.Series(
        pd.Categorical(text, categories=categories, ordered=True), index=labels.index, name=None
    )


def _numbers_as_numbers(series: pd.Series) -> pd.Series:
    """An object column holding only numbers (and missing values), as decoded from the JSON of
    the decision log, as a numeric column; text such as "1" stays text."""
    if series.dtype != object:
        return series
    present = series.dropna()
    if len(present) and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool | np.bool_) for v in present
    ):
        return pd.to_numeric(series, errors="coerce")
    return series


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: list[float]) -> np.ndarray:
    """``np.nanquantile`` (linear) of the values each repeated ``weights`` times."""
    keep = ~np.isnan(values)
    order = np.argsort(values[keep], kind="stable")
    sorted_values, counts = values[keep][order], np.asarray(weights)[keep][order]
    ends = np.cumsum(counts)
    n = int(ends[-1])
    out = []
    for q in qs:
        h = (n - 1) * q
        lo = int(np.floor(h))
        a = sorted_values[np.searchsorted(ends, lo, side="right")]
        b = sorted_values[np.searchsorted(ends, min(lo + 1, n - 1), side="right")]
        out.append(a + (b - a) * (h - lo))
    return np.array(out)


def bin_protected(values: pd.Series, name: str | None = None, *, weights: Any = None) -> pd.Series:
    """Readable group labels for one protected attribute, as an ordered categorical.

    Age (a column named "age", case-insensitive) uses the credit bins ``<25``, ``25–39``,
    ``40–59``, ``60+``; other numeric columns with many values are cut at their quartiles
    (labels like ``Q2 (28–36]``); categorical and low-cardinality columns keep their values.
    Missing values become the group ``"missing"`` so they are seen, not dropped.
    ``weights``: how many rows each value stands for (the distinct values of a monitoring
    window with their counts), so quartiles are those of the rows.
    """
    name = str(values.name if name is None else name)
    series = _numbers_as_numbers(pd.Series(values).reset_index(drop=True))
    if isinstance(series.dtype, pd.CategoricalDtype) and series.cat.ordered:
        missing = series.isna() | (series.astype(object) == MISSING_CATEGORY)
        order = [str(c) for c in series.cat.categories if c != MISSING_CATEGORY]
        result = _with_missing(series.astype(object).map(str), order, missing)
        return result.set_axis(values.index).rename(name)
    numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
    if numeric:
        number = pd.to_numeric(series, errors="coerce").astype("float64")
        missing = number.isna()
        if _is_age(name):
            cut = pd.cut(number, bins=list(AGE_BINS), labels=list(AGE_LABELS), right=False)
            result = _with_missing(cut.astype(object), list(AGE_LABELS), missing)
            return result.set_axis(values.index).rename(name)
        if number.nunique() > MAX_NUMERIC_GROUPS:
            quartiles = [0.0, 0.25, 0.5, 0.75, 1.0]
            edges = np.unique(
                np.nanquantile(number, quartiles)
                if weights is None
                else _weighted_quantiles(number.to_numpy(), np.asarray(weights), quartiles)
            )
            labels = [
                f"Q{i + 1} {'[' if i == 0 else '('}{_fmt(lo)}–{_fmt(hi)}]"
                for i, (lo, hi) in enumerate(itertools.pairwise(edges))
            ]
            cut = pd.cut(number, bins=edges, labels=labels, include_lowest=True)
            result = _with_missing(cut.astype(object), labels, missing)
            return result.set_axis(values.index).rename(name)
        levels = sorted(number.dropna().unique())
        text = number.map(lambda v: _fmt(v) if pd.notna(v) else v)
        result = _with_missing(text, [_fmt(v) for v in levels], missing)
        return result.set_axis(values.index).rename(name)
    text = series.astype(object)
    present = text.notna()
    text = text.where(~present, text[present].map(lambda v: str(v).strip()))
    missing = text.isna() | (text == "")
    order = sorted({str(v) for v in text[~missing]})
    return _with_missing(text, order, missing).set_axis(values.index).rename(name)


def protected_groups(protected: pd.DataFrame) -> list[tuple[str, Kind, list[str], pd.Series]]:
    """(name, kind, columns, labels) for each attribute, then their intersection when ≥ 2.

    The one grouping of protected columns: the report and the mitigation comparison use it.
    """
    binned = {column: bin_protected(protected[column], column) for column in protected.columns}
    out: list[tuple[str, Kind, list[str], pd.Series]] = [
        (column, "attribute", [column], labels) for column, labels in binned.items()
    ]
    if len(binned) >= 2:
        columns = list(binned)
        order = [
            INTERSECTION_SEPARATOR.join(combo)
            for combo in itertools.product(*(list(binned[c].cat.categories) for c in columns))
        ]
        text = binned[columns[0]].astype(str)
        for column in columns[1:]:
            text = text + INTERSECTION_SEPARATOR + binned[column].astype(str)
        present = set(text)
        labels = pd.Series(
            pd.Categorical(text, categories=[o for o in order if o in present], ordered=True),
            index=protected.index,
        )
        out.append((INTERSECTION_SEPARATOR.join(columns), "intersection", columns, labels))
    return out


# --------------------------------------------------------------------------- metrics


def _none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def _auc(y_true: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y_true, score)) if len(np.unique(y_true)) == 2 else math.nan


def _precision(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(precision_score(y_true, y_pred, zero_division=np.nan))


def _base_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true))


def _group_table(
    y: np.ndarray, proba: np.ndarray, declined: np.ndarray, labels: pd.Series
) -> pd.DataFrame:
    """Per-group figures from fairlearn's MetricFrame, one row per group in ``labels`` order."""
    from fairlearn.metrics import (
        MetricFrame,
        count,
        false_positive_rate,
        true_positive_rate,
    )

    groups = pd.Series(labels.astype(str).to_numpy(), name="group")
    on_decline = MetricFrame(
        metrics={
            "size": count,
            "base_rate": _base_rate,
            "tpr": true_positive_rate,
            "fpr": false_positive_rate,
            "precision": _precision,
        },
        y_true=y,
        y_pred=declined,
        sensitive_features=groups,
    ).by_group
    auc = MetricFrame(metrics=_auc, y_true=y, y_pred=proba, sensitive_features=groups).by_group
    table = on_decline.assign(auc=auc)
    approved = 1 - declined
    counts = (
        pd.DataFrame(
            {
                "defaults": y,
                "goods": 1 - y,
                "approved_defaults": y * approved,
                "approved_goods": (1 - y) * approved,
            }
        )
        .groupby(groups.to_numpy())
        .sum()
    )
    table = table.join(counts)
    order = [str(c) for c in labels.cat.categories]
    return table.reindex(order)


def judgeable_groups(table: pd.DataFrame, config: FairnessConfig) -> pd.Series:
    """Per group (a table with ``size``, ``defaults`` and ``goods``): large enough to judge.

    Shared with the mitigation comparison, so both judge the same groups.
    """
    return (
        (table["size"] >= config.min_group_size)
        & (table["defaults"] >= config.min_group_defaults)
        & (table["goods"] >= config.min_group_goods)
    )


def _summary_point(
    y: np.ndarray, approved: np.ndarray, groups: np.ndarray
) -> dict[str, float | None]:
    """The between-group measures by fairlearn, on rows of judged groups only."""
    from fairlearn.metrics import (
        demographic_parity_difference,
        demographic_parity_ratio,
        equal_opportunity_difference,
        equalized_odds_difference,
    )

    good = 1 - y  # fairlearn's "positive label" is the favourable one here: a good applicant
    features = pd.Series(groups, name="group")
    return {
        "demographic_parity_difference": _none(
            demographic_parity_difference(good, approved, sensitive_features=features)
        ),
        "demographic_parity_ratio": _none(
            demographic_parity_ratio(good, approved, sensitive_features=features)
        ),
        "equal_opportunity_difference": _none(
            equal_opportunity_difference(good, approved, sensitive_features=features)
        ),
        "equalized_odds_difference": _none(
            equalized_odds_difference(good, approved, sensitive_features=features)
        ),
    }


def _summary_from_counts(
    approved_goods: np.ndarray, goods: np.ndarray, approved_bads: np.ndarray, bads: np.ndarray
) -> dict[str, np.ndarray]:
    """The same measures from approval counts per group (last axis), for many replicates."""
    rate = (approved_goods + approved_bads) / (goods + bads)
    good_rate, bad_rate = approved_goods / goods, approved_bads / bads
    high, low = rate.max(axis=-1), rate.min(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(high > 0, low / np.where(high > 0, high, 1.0), np.nan)
    good_gap = good_rate.max(axis=-1) - good_rate.min(axis=-1)
    bad_gap = bad_rate.max(axis=-1) - bad_rate.min(axis=-1)
    return {
        "demographic_parity_difference": high - low,
        "demographic_parity_ratio": ratio,
        "equal_opportunity_difference": good_gap,
        "equalized_odds_difference": np.maximum(good_gap, bad_gap),
        "disparate_impact_ratio": ratio,
    }


def _bootstrap(
    table: pd.DataFrame, n_boot: int, level: float, rng: np.random.Generator
) -> dict[str, tuple[float | None, float | None]]:
    """Percentile intervals from a bootstrap stratified by group × outcome.

    Resampling the n rows of a stratum with replacement, when k of them are approved, gives an
    approved count distributed Binomial(n, k / n); drawing those counts directly is the same
    bootstrap without materialising row indices, so 200 replicates cost microseconds. Every
    replicate keeps each group's size and default count, so no group vanishes or changes
    eligibility between replicates. Max-minus-min statistics are biased upwards under
    resampling, so when groups are nearly equal the interval can sit above a tiny estimate.
    """
    goods = table["goods"].to_numpy(dtype=np.int64)
    bads = table["defaults"].to_numpy(dtype=np.int64)
    approved_goods = table["approved_goods"].to_numpy(dtype=np.int64)
    approved_bads = table["approved_defaults"].to_numpy(dtype=np.int64)
    draws = _summary_from_counts(
        rng.binomial(goods, approved_goods / goods, size=(n_boot, len(goods))),
        goods,
        rng.binomial(bads, approved_bads / bads, size=(n_boot, len(bads))),
        bads,
    )
    tail = (1.0 - level) / 2.0
    intervals: dict[str, tuple[float | None, float | None]] = {}
    for key, values in draws.items():
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            intervals[key] = (None, None)
            continue
        low, high = np.quantile(finite, [tail, 1.0 - tail])
        intervals[key] = (float(low), float(high))
    return intervals


def _attribute_result(
    name: str,
    kind: Kind,
    columns: list[str],
    labels: pd.Series,
    y: np.ndarray,
    proba: np.ndarray,
    declined: np.ndarray,
    config: FairnessConfig,
    n_boot: int,
    rng: np.random.Generator,
) -> AttributeFairness:
    table = _group_table(y, proba, declined, labels)
    eligible = judgeable_groups(table, config)
    approval = approval_rates(
        1 - declined,
        labels,
        not_judged={str(g): TOO_SMALL for g in table.index[~eligible]},
        order=[str(g) for g in table.index],
    )
    rate_of = {g.group: g.approval_rate for g in approval.groups}
    n = len(y)
    groups = [
        GroupFairness(
            group=str(group),
            size=int(row["size"]),
            share=float(row["size"]) / n,
            defaults=int(row["defaults"]),
            goods=int(row["goods"]),
            base_rate=float(row["base_rate"]),
            approval_rate=rate_of[str(group)],
            tpr=_none(row["tpr"]) if row["defaults"] > 0 else None,
            fpr=_none(row["fpr"]) if row["goods"] > 0 else None,
            precision=_none(row["precision"]),
            auc=_none(row["auc"]),
            too_small=not bool(eligible[group]),
            status="judged" if eligible[group] else TOO_SMALL,
        )
        for group, row in table.iterrows()
    ]
    judged = [str(g) for g in table.index[eligible]]
    excluded = [str(g) for g in table.index[~eligible]]
    rule = (
        f"fewer than {config.min_group_size} rows, {config.min_group_defaults} defaulters or "
        f"{config.min_group_goods} goods"
    )
    excluded_text = (
        f"{len(excluded)} group(s) too small to judge ({rule}) are shown but excluded from the "
        f"ratios and the verdict: {', '.join(excluded)}."
        if excluded
        else "Every group is large enough to judge."
    )
    if len(judged) < 2:
        return AttributeFairness(
            attribute=name,
            kind=kind,
            columns=columns,
            groups=groups,
            judged_groups=judged,
            excluded_groups=excluded,
            demographic_parity_difference=None,
            demographic_parity_ratio=None,
            equal_opportunity_difference=None,
            equalized_odds_difference=None,
            disparate_impact_ratio=None,
            most_approved_group=None,
            least_approved_group=None,
            four_fifths_verdict="not assessable",
            note=f"Fewer than two groups large enough to judge; no disparity measured. "
            f"{excluded_text}",
        )
    mask = np.isin(labels.astype(str).to_numpy(), judged)
    point = _summary_point(y[mask], 1 - declined[mask], labels.astype(str).to_numpy()[mask])
    point["disparate_impact_ratio"] = approval.disparate_impact_ratio
    intervals = (
        _bootstrap(table.loc[judged], n_boot, config.confidence_level, rng) if n_boot > 0 else {}
    )

    def estimate(key: str) -> Estimate | None:
        value = point[key]
        if value is None:
            return None
        ci_low, ci_high = intervals.get(key, (None, None))
        return Estimate(value=value, ci_low=ci_low, ci_high=ci_high)

    return AttributeFairness(
        attribute=name,
        kind=kind,
        columns=columns,
        groups=groups,
        judged_groups=judged,
        excluded_groups=excluded,
        demographic_parity_difference=estimate("demographic_parity_difference"),
        demographic_parity_ratio=estimate("demographic_parity_ratio"),
        equal_opportunity_difference=estimate("equal_opportunity_difference"),
        equalized_odds_difference=estimate("equalized_odds_difference"),
        disparate_impact_ratio=estimate("disparate_impact_ratio"),
        most_approved_group=approval.most_approved_group,
        least_approved_group=approval.least_approved_group,
        four_fifths_verdict=approval.verdict,
        note=excluded_text,
    )


def _check_inputs(y_true: Any, proba: Any, rows: int) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).ravel()
    p = np.asarray(proba, dtype=np.float64).ravel()
    if len(y) != len(p) or len(y) != rows:
        raise ValueError(
            f"y_true ({len(y)}), proba ({len(p)}) and protected ({rows}) must have the same rows"
        )
    if not np.isin(y, [0, 1]).all():
        raise ValueError("y_true must be 0/1 with 1 = default")
    return y.astype(np.int64), p


def fairness_report(
    y_true: np.ndarray | pd.Series,
    proba: np.ndarray | pd.Series,
    protected: pd.DataFrame,
    *,
    threshold: float,
    config: FairnessConfig | None = None,
    n_boot: int | None = None,
    seed: int | None = None,
) -> FairnessReport:
    """Approval-based fairness per protected attribute and for their intersection.

    ``proba`` is the probability of default; a row is approved when ``proba < threshold``.
    Per group, TPR and FPR are defined on the default class, as in the model metrics:
    TPR = share of actual defaulters declined, FPR = share of actual goods declined (so a good
    applicant's chance of approval is 1 − FPR). ``protected`` is aligned to ``y_true`` by
    position; its columns are grouped with :func:`bin_protected`. ``n_boot`` and ``seed``
    override the config's.
    """
    config = config or FairnessConfig()
    n_boot = config.n_boot if n_boot is None else n_boot
    seed = config.seed if seed is None else seed
    protected = pd.DataFrame(protected).reset_index(drop=True)
    y, p = _check_inputs(y_true, proba, len(protected))
    declined = (p >= threshold).astype(np.int64)
    results = [
        _attribute_result(
            name,
            kind,
            columns,
            labels,
            y,
            p,
            declined,
            config,
            n_boot,
            np.random.default_rng([seed, index]),
        )
        for index, (name, kind, columns, labels) in enumerate(protected_groups(protected))
    ]
    return FairnessReport(
        threshold=float(threshold),
        n=len(y),
        config=config.model_copy(update={"n_boot": n_boot, "seed": seed}),
        attributes=results,
    )


# --------------------------------------------------------------------------- figure


def approval_rate_figure(report: FairnessReport, *, include_intersection: bool = False) -> Figure:
    """Approval rate by group for each attribute, with the four-fifths line.

    The dashed line is 0.8 × the highest judged group's approval rate: a judged bar below it
    is presumed adverse impact. Groups too small to judge are drawn hatched and grey.
    """
    results = [r for r in report.attributes if include_intersection or r.kind != "intersection"]
    panels = max(len(results), 1)
    widths = [max(3.0, 0.6 * len(r.groups) + 1.5) for r in results] or [4.0]
    figure = Figure(figsize=(sum(widths), 4.2), dpi=100, layout="constrained")
    axes = figure.subplots(1, panels, squeeze=False, width_ratios=widths)[0]
    for ax, result in zip(axes, results, strict=False):
        names = [g.group for g in result.groups]
        rates = [g.approval_rate for g in result.groups]
        colors = ["lightgrey" if g.too_small else "tab:blue" for g in result.groups]
        bars = ax.bar(range(len(names)), rates, color=colors, edgecolor="black", linewidth=0.5)
        for bar, group in zip(bars, result.groups, strict=True):
            if group.too_small:
                bar.set_hatch("//")
        judged = [g.approval_rate for g in result.groups if not g.too_small]
        if judged:
            line = FOUR_FIFTHS * max(judged)
            ax.axhline(line, color="tab:red", linestyle="--", label=f"four-fifths ({line:.1%})")
            ax.legend(loc="lower right", fontsize="small")
        if any(g.too_small for g in result.groups):
            handles, _ = ax.get_legend_handles_labels()
            handles.append(
                Patch(facecolor="lightgrey", edgecolor="black", hatch="//", label=TOO_SMALL)
            )
            ax.legend(handles=handles, loc="lower right", fontsize="small")
        di = result.disparate_impact_ratio
        subtitle = (
            f"DI = {di.value:.2f}: {result.four_fifths_verdict}"
            if di is not None
            else "DI not assessable"
        )
        ax.set_title(f"{result.attribute}\n{subtitle}", fontsize="medium")
        ax.set_xticks(
            range(len(names)),
            labels=names,
            rotation=30 if len(names) > 4 else 0,
            ha="right" if len(names) > 4 else "center",
            fontsize="small",
        )
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("Approval rate")
    figure.suptitle(f"Approval rate by group (approve when PD < {report.threshold:.2f})")
    return figure
