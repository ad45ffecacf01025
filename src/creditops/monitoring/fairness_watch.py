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
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

import pandas as pd

from creditops.evaluation.fairness import (
    FOUR_FIFTHS,
    NOT_RECORDED,
    ApprovalRates,
    GroupApprovalRate,
    approval_rates,
    bin_protected,
)
from creditops.features.preprocessing import MISSING_CATEGORY
from creditops.monitoring.base import Flag, Level

__all__ = ["AttributeApproval", "approval_fairness", "fairness_flags"]


class AttributeApproval(ApprovalRates):
    """Approval by group for one protected attribute in one window, with the significance of
    the gap between the least and the most approved judged group."""

    attribute: str
    column: str
    # Least vs most approved judged group: two-proportion z-test, Bonferroni-adjusted.
    p_value: float | None


def _two_proportion_p(a: GroupApprovalRate, b: GroupApprovalRate) -> float:
    """Two-sided p-value of the z-test that two groups share one approval rate."""
    from scipy.stats import norm

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
    approved = (frame["decision"] == "approve").to_numpy()
    out: list[AttributeApproval] = []
    for attribute, column in columns.items():
        labels = bin_protected(frame[column].reset_index(drop=True), attribute)
        rates = approval_rates(
            approved,
            labels,
            min_group_size=min_group,
            not_judged={MISSING_CATEGORY: NOT_RECORDED},
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
