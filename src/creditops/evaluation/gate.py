"""The fairness gate: a fairness report judged against the lender's limits.

The report measures; the gate decides. It reads only the point estimates and group verdicts of
a :class:`~creditops.evaluation.fairness.FairnessReport` and the limits of a
:class:`~creditops.evaluation.fairness.FairnessConfig`, so a stricter or looser policy can be
applied to a report already made, and each breach comes back as one sentence a reviewer reads.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from creditops.evaluation.fairness import Estimate, FairnessConfig, FairnessReport

__all__ = ["GateResult", "fairness_gate"]


class GateResult(BaseModel):
    """Whether the report is within the limits: one sentence per breach, and what went ungated."""

    schema_version: int = 1
    passed: bool
    failures: list[str]
    notes: list[str] = Field(default_factory=list)


def _ci(estimate: Estimate, level: float) -> str:
    if estimate.ci_low is None or estimate.ci_high is None:
        return ""
    return f" ({level:.0%} interval {estimate.ci_low:.3f}–{estimate.ci_high:.3f})"


def fairness_gate(report: FairnessReport, config: FairnessConfig | None = None) -> GateResult:
    """Pass/fail against the config's limits, with one sentence per breach.

    Judged on point estimates of each protected attribute (intersections only when
    ``gate_intersection``), over groups large enough to judge. Attributes with fewer than two
    such groups cannot fail and are listed in ``notes``.
    """
    config = config or report.config
    level = report.config.confidence_level
    failures: list[str] = []
    notes: list[str] = []
    for result in report.attributes:
        if result.kind == "intersection" and not config.gate_intersection:
            continue
        if result.four_fifths_verdict == "not assessable":
            notes.append(
                f"{result.attribute}: not gated, fewer than two groups large enough to judge."
            )
            continue
        rates = {g.group: g.approval_rate for g in result.groups}
        low_group, high_group = result.least_approved_group, result.most_approved_group
        spread = (
            f"approval {rates[low_group]:.1%} for '{low_group}' vs {rates[high_group]:.1%} for "
            f"'{high_group}'"
        )
        di = result.disparate_impact_ratio
        if di is not None and di.value < config.min_disparate_impact:
            failures.append(
                f"{result.attribute}: disparate impact ratio {di.value:.3f}{_ci(di, level)} is "
                f"below the minimum {config.min_disparate_impact:.2f} ({spread})."
            )
        dp = result.demographic_parity_difference
        if dp is not None and dp.value > config.max_parity_difference:
            failures.append(
                f"{result.attribute}: demographic parity difference {dp.value:.3f}{_ci(dp, level)} "
                f"exceeds the maximum {config.max_parity_difference:.2f} ({spread})."
            )
        eo = result.equalized_odds_difference
        if eo is not None and eo.value > config.max_equalized_odds_difference:
            failures.append(
                f"{result.attribute}: equalized odds difference {eo.value:.3f}{_ci(eo, level)} "
                f"exceeds the maximum {config.max_equalized_odds_difference:.2f}."
            )
        if result.excluded_groups:
            notes.append(
                f"{result.attribute}: groups too small to judge, not gated: "
                f"{', '.join(result.excluded_groups)}."
            )
    return GateResult(passed=not failures, failures=failures, notes=notes)
