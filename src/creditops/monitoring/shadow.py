"""The champion beside its challenger in shadow, on the same live applications.

Outcomes take months; the challenger's shadow decisions (:mod:`creditops.store.shadow`) are
there from the first day. On the applications both scored, :func:`compare_shadow` measures:

* agreement: the share of applications both decided the same way, and the full table of
  champion decision × challenger decision;
* PSI between the two score distributions (the champion's deciles, the credit bands: under
  0.10 stable, 0.25 and above shifted), through the monitor's own :func:`prediction_drift`;
* for each model, its approval rate and, per protected attribute, approval by group with the
  disparate impact ratio and the four-fifths verdict, through
  :func:`creditops.evaluation.fairness.approval_rates`, the one home of that rule.

The monitor adds the comparison to its report when a version holds the ``challenger`` alias,
and the promotion gates may require enough shadow decisions and bounded divergence
(:class:`ShadowGates`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from creditops.evaluation.fairness import approval_rates, bin_protected
from creditops.monitoring.base import StrictResult
from creditops.monitoring.drift import prediction_drift

__all__ = [
    "COMPARE_ROWS",
    "ShadowComparison",
    "ShadowGates",
    "ShadowSide",
    "compare_shadow",
    "gate_failures",
]

#: Decisions a protected group needs before its approval rate is judged.
MIN_GROUP = 30
#: The newest shadow decisions a comparison reads (bounds its memory on a long shadow run).
COMPARE_ROWS = 200_000


class ShadowSide(StrictResult):
    """One model's decisions on the compared applications."""

    approval_rate: float | None = None
    mean_probability: float | None = None
    disparate_impact: dict[str, float | None] = Field(
        default_factory=dict, description="lowest / highest approval rate by group, per attribute"
    )
    verdicts: dict[str, str] = Field(default_factory=dict, description="four-fifths, per attribute")


class ShadowComparison(StrictResult):
    """Champion and challenger on the applications both scored."""

    challenger_version: str
    champion_versions: list[str] = Field(default_factory=list)
    rows: int
    agreement: float | None = Field(None, description="share decided the same way by both")
    decisions: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="champion decision → challenger decision → count"
    )
    psi: float | None = Field(None, description="PSI of the challenger's scores vs the champion's")
    champion: ShadowSide = Field(default_factory=ShadowSide)
    challenger: ShadowSide = Field(default_factory=ShadowSide)
    notes: list[str] = Field(default_factory=list)


class ShadowGates(BaseModel):
    """What the promotion of a challenger requires of its shadow decisions (0 / None: no
    requirement). Read from the ``retrain`` section of the monitoring YAML."""

    model_config = ConfigDict(extra="forbid")

    min_decisions: int = Field(0, ge=0, description="shadow decisions needed at least")
    min_agreement: float | None = Field(None, ge=0, le=1)
    max_psi: float | None = Field(None, ge=0)
    max_approval_gap: float | None = Field(
        None, ge=0, le=1, description="largest |approval rate difference| allowed"
    )


def compare_shadow(
    pairs: pd.DataFrame, challenger_version: str, *, min_group: int = MIN_GROUP
) -> ShadowComparison:
    """The comparison on ``pairs`` (:func:`creditops.store.shadow.shadow_pairs`)."""
    rows = len(pairs)
    if rows == 0:
        return ShadowComparison(
            challenger_version=str(challenger_version),
            rows=0,
            notes=["no shadow decisions yet"],
        )
    champion = pairs["champion_decision"].astype(str)
    challenger = pairs["challenger_decision"].astype(str)
    table = pd.crosstab(champion, challenger)
    decisions = {
        str(a): {str(b): int(n) for b, n in row.items() if n} for a, row in table.iterrows()
    }
    notes: list[str] = []
    psi = None
    if rows >= 2:
        psi = prediction_drift(
            pairs["champion_probability"].to_numpy(float),
            pairs["challenger_probability"].to_numpy(float),
        ).psi
    protected = pd.DataFrame(list(pairs["protected"].map(lambda v: v or {})))
    return ShadowComparison(
        challenger_version=str(challenger_version),
        champion_versions=sorted({str(v) for v in pairs["champion_version"]}),
        rows=rows,
        agreement=round(float((champion == challenger).mean()), 6),
        decisions=decisions,
        psi=None if psi is None or not np.isfinite(psi) else round(float(psi), 6),
        champion=_side(pairs["champion_probability"], champion, protected, min_group, notes),
        challenger=_side(pairs["challenger_probability"], challenger, protected, min_group, notes),
        notes=notes,
    )


def _side(
    probability: pd.Series,
    decision: pd.Series,
    protected: pd.DataFrame,
    min_group: int,
    notes: list[str],
) -> ShadowSide:
    approved = (decision == "approve").to_numpy(dtype=int)
    impact: dict[str, float | None] = {}
    verdicts: dict[str, str] = {}
    for attribute in protected.columns:
        groups = bin_protected(protected[attribute], str(attribute))
        rates = approval_rates(approved, groups, min_group_size=min_group)
        impact[str(attribute)] = rates.disparate_impact_ratio
        verdicts[str(attribute)] = rates.verdict
    if protected.empty and "no protected attributes" not in " ".join(notes):
        notes.append("no protected attributes were sent with these applications")
    return ShadowSide(
        approval_rate=round(float(approved.mean()), 6),
        mean_probability=round(float(probability.mean()), 6),
        disparate_impact={k: None if v is None else round(v, 6) for k, v in impact.items()},
        verdicts=verdicts,
    )


def gate_failures(comparison: ShadowComparison, gates: ShadowGates) -> list[str]:
    """What ``comparison`` lacks for ``gates``, in words (empty: it passes)."""
    failures = []
    if comparison.rows < gates.min_decisions:
        failures.append(
            f"{comparison.rows} shadow decision(s) of version {comparison.challenger_version} "
            f"(need {gates.min_decisions})"
        )
    if gates.min_agreement is not None and (
        comparison.agreement is None or comparison.agreement < gates.min_agreement
    ):
        failures.append(
            f"agreement with the champion {_share(comparison.agreement)} "
            f"(need {gates.min_agreement:.0%})"
        )
    if gates.max_psi is not None and (comparison.psi is None or comparison.psi > gates.max_psi):
        failures.append(f"score PSI {_number(comparison.psi)} (at most {gates.max_psi:g})")
    a, b = comparison.champion.approval_rate, comparison.challenger.approval_rate
    if gates.max_approval_gap is not None and (
        a is None or b is None or abs(a - b) > gates.max_approval_gap
    ):
        failures.append(
            f"approval rate {_share(b)} vs the champion's {_share(a)} "
            f"(at most {gates.max_approval_gap:.0%} apart)"
        )
    return failures


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"
