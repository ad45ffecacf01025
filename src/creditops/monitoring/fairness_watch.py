"""Fairness of live decisions over time: approval rate by protected group in each window.

A model that was fair on its test split can stop being fair when the applicants change, so the
decisions actually made are watched: per window and protected attribute, the approval rate of
every group and the disparate impact ratio (lowest / highest approval rate among groups large
enough to judge), judged by the four-fifths rule. Approval means ``decision == "approve"``;
"refer" counts as not approved. The figures come from
:func:`creditops.evaluation.fairness.approval_rates`, the one home of approval by group and the
four-fifths verdict, so monitoring and evaluation cannot disagree.

A low ratio is flagged only when the gap between the least and the most approved group is also
statistically significant (two-proportion z-test, Bonferroni-adjusted over the pairs of judged
groups, since the extremes were picked): a few refusals in a group of 40 raise no alarm.

:class:`FairnessCalculator` (check ``fairness``) reads the decision log window by window with
the other decision checks (:mod:`.windows`, the ``performance`` section of the config). It
needs no reference: the groups are compared with each other, not with the test split.

A window is counted chunk by chunk: per protected attribute, its rows and approvals by distinct
value; the groups are formed from those counts at the end (quartile edges weighted by them), so
millions of decisions cost one counter per distinct value of each attribute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field
from scipy.stats import norm

from creditops.evaluation.fairness import (
    FOUR_FIFTHS,
    NOT_RECORDED,
    ApprovalRates,
    GroupApprovalRate,
    approval_rates_from_counts,
    bin_protected,
)
from creditops.exceptions import DataValidationError
from creditops.features.preprocessing import MISSING_CATEGORY
from creditops.monitoring.base import (
    Flag,
    Level,
    StrictResult,
    register_calculator,
    worst_level,
)
from creditops.monitoring.gauges import MonitorGauges
from creditops.monitoring.windows import PerformanceConfig, WindowedCalculator, WindowedStream

# Rows and approvals per distinct value (None: missing) of each protected attribute.
_Counts = dict[str, dict[Any, list[int]]]

__all__ = [
    "AttributeApproval",
    "FairnessCalculator",
    "FairnessResult",
    "FairnessWindow",
    "approval_fairness",
    "fairness_flags",
]


class AttributeApproval(ApprovalRates):
    """Approval by group for one protected attribute in one window, with the significance of
    the gap between the least and the most approved judged group."""

    attribute: str
    column: str
    # Least vs most approved judged group: two-proportion z-test, Bonferroni-adjusted.
    p_value: float | None


def _two_proportion_p(a: GroupApprovalRate, b: GroupApprovalRate) -> float:
    """Two-sided p-value of the z-test that two groups share one approval rate."""
    pooled = (a.approved + b.approved) / (a.size + b.size)
    variance = pooled * (1.0 - pooled) * (1.0 / a.size + 1.0 / b.size)
    if variance <= 0.0:
        return 1.0
    z = (a.approval_rate - b.approval_rate) / math.sqrt(variance)
    return float(2.0 * norm.sf(abs(z)))


def approval_fairness(
    frame: pd.DataFrame,
    columns: Mapping[str, str],
    *,
    min_group: int = 30,
) -> list[AttributeApproval]:
    """Approval rate per group and the disparate impact ratio, per protected attribute.

    ``columns`` maps each attribute name to its column in ``frame`` (as
    ``frame.attrs["protected_columns"]`` does). Groups come from
    :func:`creditops.evaluation.fairness.bin_protected` (age in credit bins, missing values as
    their own group, shown but never compared: not a group of people); groups under
    ``min_group`` rows are shown but left out of the ratio.
    """
    counts: _Counts = {}
    _count(counts, frame, columns)
    return _approvals(counts, columns, min_group)


def _count(counts: _Counts, frame: pd.DataFrame, columns: Mapping[str, str]) -> None:
    """Fold ``frame``'s rows and approvals by value of each attribute into ``counts``."""
    approved = (frame["decision"] == "approve").to_numpy(dtype=np.int64)
    for attribute, column in columns.items():
        by_value = counts.setdefault(attribute, {})
        codes, uniques = pd.factorize(frame[column], use_na_sentinel=True)
        sizes = np.bincount(codes + 1, minlength=len(uniques) + 1)
        yes = np.bincount(codes + 1, weights=approved, minlength=len(uniques) + 1)
        values = [None, *np.asarray(uniques, dtype=object).tolist()]
        for value, size, ok in zip(values, sizes.tolist(), yes.tolist(), strict=True):
            if size:
                found = by_value.setdefault(value, [0, 0])
                found[0] += size
                found[1] += int(ok)


def _approvals(
    counts: _Counts, columns: Mapping[str, str], min_group: int
) -> list[AttributeApproval]:
    out: list[AttributeApproval] = []
    for attribute, column in columns.items():
        by_value = counts.get(attribute, {})
        values = list(by_value)
        sizes = np.array([by_value[v][0] for v in values], dtype=np.int64)
        yes = np.array([by_value[v][1] for v in values], dtype=np.int64)
        labels = bin_protected(pd.Series(values, dtype=object if not values else None),
                               attribute, weights=sizes)  # fmt: skip
        text = labels.astype(str).to_numpy()
        order = [str(c) for c in labels.cat.categories] if values else []
        size_by = pd.Series(sizes).groupby(text).sum().to_dict()
        yes_by = pd.Series(yes).groupby(text).sum().to_dict()
        rates = approval_rates_from_counts(
            size_by,
            yes_by,
            min_group_size=min_group,
            not_judged={MISSING_CATEGORY: NOT_RECORDED},
            order=order,
        )
        p_value = None
        if rates.most_approved_group is not None and rates.least_approved_group is not None:
            by_name = {g.group: g for g in rates.groups}
            judged = len(rates.judged_groups)
            pairs = judged * (judged - 1) // 2
            p_value = min(
                1.0,
                pairs
                * _two_proportion_p(
                    by_name[rates.least_approved_group], by_name[rates.most_approved_group]
                ),
            )
        out.append(
            AttributeApproval(**dict(rates), attribute=attribute, column=column, p_value=p_value)
        )
    return out


def fairness_flags(
    attributes: list[AttributeApproval],
    *,
    label: str,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
    threshold: float = FOUR_FIFTHS,
    critical: float = 0.6,
    alpha: float | None = 0.05,
) -> list[Flag]:
    """A flag per attribute whose disparate impact ratio is below ``threshold`` (critical below
    ``critical``) with a gap significant at ``alpha`` (None: the ratio alone decides).
    ``label`` names the window in the sentence ("in the week of 2026-11-16")."""
    flags: list[Flag] = []
    for attribute in attributes:
        di = attribute.disparate_impact_ratio
        if di is None or di >= threshold:
            continue
        significant = alpha is None or (attribute.p_value is not None and attribute.p_value < alpha)
        if not significant:
            continue
        severity, limit = (
            (Level.CRITICAL, critical) if di < critical else (Level.WARNING, threshold)
        )
        rule = (
            f"the four-fifths threshold {limit:.2f}"
            if limit == FOUR_FIFTHS
            else f"the limit {limit:.2f}"
        )
        rates = {g.group: g.approval_rate for g in attribute.groups}
        low, high = attribute.least_approved_group, attribute.most_approved_group
        p_text = f"{attribute.p_value:.2g}" if attribute.p_value is not None else "n/a"
        flags.append(
            Flag(
                check="fairness",
                kind="disparate_impact",
                metric="disparate_impact_ratio",
                value=di,
                threshold=limit,
                level=severity,
                subject=attribute.attribute,
                message=(
                    f"Disparate impact ratio for {attribute.attribute} {label} is "
                    f"{di:.2f}, below {rule}: approval {rates[low]:.0%} for '{low}' vs "
                    f"{rates[high]:.0%} for '{high}' (p = {p_text})."
                ),
                window_start=window_start,
                window_end=window_end,
            )
        )
    return flags


# --------------------------------------------------------------------------- the check


class FairnessWindow(StrictResult):
    """Approval by group in one window (``start`` inclusive, ``end`` exclusive), per
    protected attribute."""

    start: datetime
    end: datetime
    label: str
    rows: int
    attributes: list[AttributeApproval]


class FairnessResult(StrictResult):
    schema_version: int = 1
    config: PerformanceConfig
    windows: list[FairnessWindow]
    flags: list[Flag]
    notes: list[str] = Field(default_factory=list)

    @property
    def level(self) -> Level:
        """The most severe flag's level, or "ok"."""
        return worst_level(flag.level for flag in self.flags)


@register_calculator("fairness")
class FairnessCalculator(WindowedCalculator[FairnessResult]):
    """Approval rate by protected group and the disparate impact ratio, by window.

    The protected attributes are ``config.protected`` or, by default, the frame's
    ``attrs["protected_columns"]`` (as ``PredictionLog.window`` sets them). ``fit`` takes
    nothing: the check compares the groups of each window with each other.
    """

    def _fit(self, reference: Any = None) -> None:
        """Nothing to learn: approval rates are judged between the groups of one window."""

    def _windowed_stream(self) -> WindowedStream[FairnessResult]:
        notes: list[str] = []
        found: dict[str, Any] = {}  # the protected columns, from the first chunk
        recorded: set[str] | None = None

        def fold(counts: _Counts, rows: pd.DataFrame) -> None:
            nonlocal recorded
            if "columns" not in found:
                found["columns"] = self._protected_columns(rows, notes)
            if "recorded_protected" in rows.attrs:
                recorded = (recorded or set()) | set(rows.attrs["recorded_protected"])
            _count(counts, rows, found["columns"])

        def done(windows: list[tuple[Any, Any, str, int, _Counts]]) -> FairnessResult:
            columns = dict(found.get("columns") or {})
            if recorded is not None:  # attributes no decision of the window carries: none
                columns = {a: c for a, c in columns.items() if a in recorded}
            return self._result(windows, columns, notes)

        return WindowedStream(self.config, dict, fold, done)

    def _result(
        self,
        found: list[tuple[Any, Any, str, int, _Counts]],
        protected: dict[str, str],
        notes: list[str],
    ) -> FairnessResult:
        """Every window, with its flags."""
        config = self.config
        windows: list[FairnessWindow] = []
        flags: list[Flag] = []
        for start, end, label, rows, counts in found:
            attributes = (
                _approvals(counts, protected, config.fairness_min_group) if protected else []
            )
            windows.append(
                FairnessWindow(start=start, end=end, label=label, rows=rows, attributes=attributes)
            )
            flags.extend(
                fairness_flags(
                    attributes,
                    label=label,
                    window_start=start,
                    window_end=end,
                    threshold=config.di_threshold,
                    critical=config.di_critical,
                    alpha=config.di_alpha,
                )
            )
        if not windows:
            notes.append("The frame holds no decisions.")
        return FairnessResult(config=config, windows=windows, flags=flags, notes=list(notes))

    def _protected_columns(self, frame: pd.DataFrame, notes: list[str]) -> dict[str, str]:
        if self.config.protected is not None:
            columns = {name: name for name in self.config.protected}
        else:
            columns = dict(frame.attrs.get("protected_columns") or {})
        missing = [column for column in columns.values() if column not in frame.columns]
        if missing:
            raise DataValidationError(
                f"protected column(s) {', '.join(missing)} not in the frame", column=missing[0]
            )
        if columns and "decision" not in frame.columns:
            notes.append("No decision column: fairness of approvals is not available.")
            return {}
        return columns

    # -- in a monitor run -----------------------------------------------------------------------

    def export(self, result: FairnessResult, gauges: MonitorGauges) -> None:
        if result.windows:
            gauges.set_fairness(
                {a.attribute: a.disparate_impact_ratio for a in result.windows[-1].attributes}
            )
