"""The champion rule: cross-validated AUC with a one-standard-error rule toward simplicity.

Every candidate is tuned with the same stratified folds of the training split, so each has one
out-of-fold ROC AUC per fold, on the same rows. The candidate with the best mean is the
reference; another candidate's *gap* is the mean of its per-fold differences from the
reference, and the gap's standard error comes from those paired differences
(``std(ddof=1) / √k``). Pairing removes what the folds share (a hard fold is hard for every
model), so it tells real differences from fold noise far better than comparing two means with
their own spreads.

A candidate whose gap is within ``se_multiple`` standard errors of zero cannot be told apart
from the best on this data; among those, the simplest (lowest ``complexity``) wins, and equal
complexity goes to the higher mean.

The tuning folds are the folds each candidate's settings were chosen on, so the best of many
trials looks a little better on them than it is, and five folds of a small dataset give a wide
standard error. When that first round would hand the win to a simpler model, training measures
the finalists (the candidates within the rule) afresh, with their tuned settings, on repeated
cross-validation with new folds, and applies the rule again to that evidence
(:attr:`Selection.screening` keeps the first round). It does the same, with the ensemble and
the best single model as finalists, when the stacked ensemble wins the first round: its
evidence there is stacked on the tuning folds' predictions and leans a little its way.

Validation AUC (one split of a few hundred rows on small data) is recorded beside the rule but
not used by it: it chose noisy winners.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, Field

SELECTION_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CandidateScores:
    """What the rule reads of one candidate."""

    name: str
    label: str
    complexity: int
    fold_aucs: Sequence[float]
    validation_auc: float | None = None


class CandidateEvidence(BaseModel):
    name: str
    label: str
    complexity: int
    fold_aucs: list[float]
    cv_auc_mean: float
    cv_auc_std: float
    gap: float = Field(description="Mean per-fold AUC shortfall against the best by CV.")
    gap_se: float = Field(description="Standard error of that shortfall (paired folds).")
    within_rule: bool = Field(description="The gap is within the rule's standard errors.")
    validation_auc: float | None = None


class Selection(BaseModel):
    """The champion, the rule that chose it, and every candidate's evidence."""

    schema_version: int = SELECTION_SCHEMA_VERSION
    rule: str
    se_multiple: float
    n_folds: int
    best_by_cv: str
    champion: str
    reason: str
    candidates: list[CandidateEvidence]
    # the first round on the tuning folds, when the finalists were measured again on new folds
    screening: Selection | None = None

    def evidence(self, name: str) -> CandidateEvidence:
        """This round's evidence on ``name``, else the screening round's."""
        found = next((c for c in self.candidates if c.name == name), None)
        if found is None and self.screening is not None:
            return self.screening.evidence(name)
        if found is None:
            raise KeyError(name)
        return found

    def finalists(self) -> list[str]:
        return [c.name for c in self.candidates if c.within_rule]


def rule_text(se_multiple: float, n_folds: int) -> str:
    if se_multiple == 0:
        return f"highest mean out-of-fold ROC AUC over {n_folds} cross-validation folds"
    return (
        f"the simplest candidate whose mean out-of-fold ROC AUC over {n_folds} "
        f"cross-validation folds is within {se_multiple:g} standard error"
        f"{'' if se_multiple == 1 else 's'} (paired by fold) of the best"
    )


def confirmed(screening: Selection, fresh: Selection, repeats: int) -> Selection:
    """The second round's verdict, carrying the first round and a rule that names both."""
    return fresh.model_copy(
        update={
            "screening": screening,
            "rule": (
                f"{screening.rule}; when it favours a simpler candidate than the best, or the "
                "stacked ensemble leads, the finalists (those within the rule; the ensemble "
                "and the best single model) are cross-validated again with their tuned "
                f"settings on {repeats} × {screening.n_folds} new folds, and the rule is "
                "applied to those"
            ),
            "reason": f"{fresh.reason} (on {fresh.n_folds} new folds)",
        }
    )


def choose_champion(candidates: Sequence[CandidateScores], se_multiple: float = 1.0) -> Selection:
    """Apply the rule (module docstring) to candidates scored on the same folds."""
    if not candidates:
        raise ValueError("no candidates to choose from")
    n_folds = {len(c.fold_aucs) for c in candidates}
    if len(n_folds) != 1 or min(n_folds) < 2:
        raise ValueError("every candidate needs the same number (≥ 2) of fold AUCs")
    k = n_folds.pop()
    folds = {c.name: np.asarray(c.fold_aucs, dtype=float) for c in candidates}
    means = {name: float(values.mean()) for name, values in folds.items()}
    best = max(candidates, key=lambda c: (means[c.name], -c.complexity))
    evidence = []
    for c in candidates:
        differences = folds[best.name] - folds[c.name]
        gap = float(differences.mean())
        se = float(differences.std(ddof=1) / math.sqrt(k))
        evidence.append(
            CandidateEvidence(
                name=c.name,
                label=c.label,
                complexity=c.complexity,
                fold_aucs=[float(v) for v in folds[c.name]],
                cv_auc_mean=means[c.name],
                cv_auc_std=float(folds[c.name].std()),
                gap=gap,
                gap_se=se,
                within_rule=gap <= se_multiple * se + 1e-12,
                validation_auc=c.validation_auc,
            )
        )
    eligible = [e for e in evidence if e.within_rule]
    winner = min(eligible, key=lambda e: (e.complexity, -e.cv_auc_mean))
    return Selection(
        rule=rule_text(se_multiple, k),
        se_multiple=se_multiple,
        n_folds=k,
        best_by_cv=best.name,
        champion=winner.name,
        reason=_reason(winner, best.label, eligible, se_multiple),
        candidates=sorted(evidence, key=lambda e: -e.cv_auc_mean),
    )


def _reason(
    winner: CandidateEvidence,
    best_label: str,
    eligible: list[CandidateEvidence],
    se_multiple: float,
) -> str:
    text = f"{winner.label} has cross-validated ROC AUC {winner.cv_auc_mean:.4f}"
    if winner.gap == 0:
        text += ", the highest of all candidates"
        others = [e.label for e in eligible if e.name != winner.name]
        if others:
            verb = "is" if len(others) == 1 else "are"
            text += f"; {', '.join(others)} came within the rule's margin but {verb} not simpler"
        return text
    return (
        text + f", {winner.gap:.4f} below {best_label} with a paired standard error of "
        f"{winner.gap_se:.4f}: within {se_multiple:g} standard error"
        f"{'' if se_multiple == 1 else 's'}, so the simpler model wins"
    )


__all__ = [
    "SELECTION_SCHEMA_VERSION",
    "CandidateEvidence",
    "CandidateScores",
    "Selection",
    "choose_champion",
    "confirmed",
    "rule_text",
]
