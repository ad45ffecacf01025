"""What a policy would do, before it is adopted: approve/refer/decline rates, bad rate, money
and the four-fifths verdict of every protected group, for any pair of cut-offs on a labelled
sample. The dashboard's sliders call it on every move, so it stays vectorised: one sort of the
sample (inside :func:`policy_outcome`) and one approval-rate table per protected attribute."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from creditops.evaluation.business import PolicyOutcome, policy_outcome
from creditops.evaluation.fairness import ApprovalRates, approval_rates, protected_groups
from creditops.evaluation.policy import DecisionPolicy, Economics

__all__ = ["AttributeImpact", "WhatIf", "policy_what_if", "what_if_policy"]

DECISIONS = ("approve", "refer", "decline")


class AttributeImpact(BaseModel):
    attribute: str
    rates: ApprovalRates


class WhatIf(BaseModel):
    """The outcome of one candidate policy on one labelled sample."""

    model_config = ConfigDict(extra="forbid")

    policy: DecisionPolicy
    n: int
    outcome: PolicyOutcome
    net_profit: float  # approved loans' realised profit less the cost of reviewing referrals
    confusion: dict[str, dict[str, int]]  # decision -> {"good": n, "bad": n}
    fairness: list[AttributeImpact]


def what_if_policy(
    base: DecisionPolicy,
    approve_below: float,
    decline_at_or_above: float,
    economics: Economics | None = None,
) -> DecisionPolicy:
    """``base`` with other cut-offs (and economics): a manual policy. Raises ``ValueError``
    naming the field when the cut-offs are inconsistent."""
    return DecisionPolicy.model_validate(
        {
            **base.model_dump(),
            "approve_below": approve_below,
            "decline_at_or_above": decline_at_or_above,
            "threshold_source": "manual",
            "source_target": None,
            "objective": None,
            "refer_width": max(0.0, decline_at_or_above - approve_below),
            "economics": (economics or base.economics).model_dump(),
        }
    )


def policy_what_if(
    policy: DecisionPolicy,
    y_true: Any,
    proba: Any,
    amounts: Any,
    protected: pd.DataFrame | None = None,
    *,
    min_group_size: int = 30,
) -> WhatIf:
    """Apply ``policy`` to the sample (``y_true``: 1 = default) and measure it."""
    y = np.asarray(y_true).astype(np.int64)
    p = np.asarray(proba, dtype=np.float64)
    outcome = policy_outcome(policy, y, p, amounts)
    decisions = policy.decide_many(p)
    confusion = {
        d: {
            "good": int(((decisions == d) & (y == 0)).sum()),
            "bad": int(((decisions == d) & (y == 1)).sum()),
        }
        for d in DECISIONS
    }
    fairness = []
    if protected is not None and len(protected.columns):
        approved = decisions == "approve"
        for name, kind, _, labels in protected_groups(protected.reset_index(drop=True)):
            if kind == "attribute":
                rates = approval_rates(approved, labels, min_group_size=min_group_size)
                fairness.append(AttributeImpact(attribute=name, rates=rates))
    return WhatIf(
        policy=policy,
        n=len(y),
        outcome=outcome,
        net_profit=outcome.realised_profit_approved - outcome.review_cost,
        confusion=confusion,
        fairness=fairness,
    )
