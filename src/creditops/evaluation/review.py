"""Review one registered model version: every figure a model-risk reviewer, a fair-lending
officer and a credit manager need, computed on the version's own data and split.

Which data answers which question:

* the decision policy (approve / refer / decline) is chosen on the **validation** split, like
  every other choice made about the model;
* metrics, fairness, error analysis and the policy's outcome are measured on the **test** split,
  which played no part in any choice;
* SHAP and LIME explain against a background drawn from the **training** split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from pydantic import BaseModel, ConfigDict, Field

from creditops import __version__
from creditops.data.spec import ResolvedSpec
from creditops.data.split import VersionData
from creditops.evaluation.behaviour import BehaviourReport, behaviour_checks
from creditops.evaluation.business import (
    BusinessReport,
    Economics,
    PolicyOutcome,
    ScoreScale,
    amounts_from,
    business_report,
    policy_outcome,
)
from creditops.evaluation.counterfactual import Counterfactual, counterfactual
from creditops.evaluation.errors import ErrorCosts, ErrorReport, error_analysis, error_rate_figure
from creditops.evaluation.explain import (
    GlobalExplanation,
    LocalExplanation,
    build_explainer,
    explain_global,
    explain_rows,
)
from creditops.evaluation.fairness import (
    FairnessConfig,
    FairnessReport,
    approval_rate_figure,
    bin_protected,
    fairness_report,
)
from creditops.evaluation.gate import GateResult, fairness_gate
from creditops.evaluation.local_surrogate import LimeExplanation, explain_lime
from creditops.evaluation.metrics import classification_metrics, detailed_metrics
from creditops.evaluation.mitigation import MitigationResult, compare_mitigation
from creditops.evaluation.plots import business_figures, diagnostic_figures
from creditops.evaluation.points import PointsTable, points_table
from creditops.evaluation.policy import DecisionPolicy
from creditops.evaluation.reasons import ReasonCode, ReasonMap, reason_codes, reason_map_for
from creditops.models.anatomy import model_kind

EVALUATION_FILE = "evaluation/evaluation.json"


class ReviewedModel(Protocol):
    """What a review needs of a model version (a registered version loaded from the registry
    has all of it)."""

    name: str
    version: str
    model: Any
    spec: ResolvedSpec
    tags: dict[str, str]
    run_id: str | None


class EvaluationConfig(BaseModel):
    """What the review assumes; everything has a documented default."""

    model_config = ConfigDict(extra="forbid")

    # Default: the economics and score scale stored in the version's policy, so the review
    # reports the figures the policy was chosen on; set them to ask "what if".
    economics: Economics | None = None
    scale: ScoreScale | None = None
    fairness: FairnessConfig = Field(default_factory=FairnessConfig)
    n_boot: int = Field(default=1000, ge=50, le=20000)
    mitigation: bool = True
    seed: int = 0


class ApplicantExample(BaseModel):
    """One declined test applicant explained end to end, as an adverse-action notice would."""

    row: int
    id: str | None
    proba: float
    decision: str
    shap: LocalExplanation
    reasons: list[ReasonCode]
    lime: LimeExplanation
    counterfactual: Counterfactual


class EvaluationResult(BaseModel):
    # 2: metrics carry roc_curve, pr_curve and score_histogram (the dashboard draws them).
    schema_version: int = 2
    created_at: str
    creditops_version: str
    model_name: str
    model_version: str
    candidate: str
    dataset: str
    evaluated_on: str = "test"
    data: dict[str, Any]
    candidates: list[dict[str, Any]]
    selection: str | None
    metrics: dict[str, Any]
    validation_metrics: dict[str, float]
    behaviour: BehaviourReport
    policy: DecisionPolicy
    policy_outcome: PolicyOutcome
    business: BusinessReport
    fairness: FairnessReport | None
    fairness_gate: GateResult | None
    mitigation: list[MitigationResult]
    errors: ErrorReport
    explanation: GlobalExplanation
    example: ApplicantExample | None
    # The points table when the version is a WoE scorecard (on the review's score scale).
    scorecard: PointsTable | None = None
    # The stack (members, weights, intercept) when the version is a stacked ensemble.
    ensemble: dict[str, Any] | None = None

    def headline(self) -> dict[str, Any]:
        """The figures `creditops evaluate` prints."""
        metrics = self.metrics
        return {
            "model": f"{self.model_name} v{self.model_version} ({self.candidate})",
            "test_rows": metrics["n"],
            "roc_auc": metrics["roc_auc"],
            "roc_auc_ci": metrics["roc_auc_ci"],
            "gini": metrics["gini"],
            "ks": metrics["ks"],
            "brier": metrics["brier"],
            "ece": metrics["ece"],
            "approve_below": self.policy.approve_below,
            "decline_at_or_above": self.policy.decline_at_or_above,
            "approval_rate": self.policy_outcome.approve_rate,
            "bad_rate_approved": self.policy_outcome.bad_rate_approved,
            "profit_optimal_threshold": self.business.optimal.threshold,
            "profit_optimal_approval_rate": self.business.optimal.approval_rate,
            "fairness_gate": gate_word(self.fairness_gate),
            "fairness_failures": self.fairness_gate.failures if self.fairness_gate else [],
            "behaviour": "pass" if self.behaviour.passed else "fail",
        }


def gate_word(gate: GateResult | None) -> str:
    """The fairness gate in one word for tags and headlines."""
    if gate is None:
        return "not assessed (no protected attributes in the spec)"
    return "pass" if gate.passed else "fail"


@dataclass
class Evaluation:
    """The serialisable result and the figures drawn from it (logged as PNGs, inlined in HTML)."""

    result: EvaluationResult
    figures: dict[str, Figure] = field(default_factory=dict)
    run_id: str | None = None  # the version's run, where log_evaluation stores it


def evaluate_loaded(
    loaded: ReviewedModel,
    data: VersionData,
    *,
    policy: DecisionPolicy,
    config: EvaluationConfig | None = None,
    candidates: list[dict[str, Any]] | None = None,
    selection: str | None = None,
    reason_map: ReasonMap | None = None,
) -> Evaluation:
    """Run every review on a loaded version and its stored data.

    ``policy``: the version's stored decision policy, which the review reports on (it is made
    once, at registration: see :mod:`creditops.registry.policy`)."""
    config = config or EvaluationConfig()
    spec, model = loaded.spec, loaded.model
    train_frame, y_train = data.part("train", spec)
    val_frame, y_val = data.part("validation", spec)
    test_frame, y_test = data.part("test", spec)
    X_train, X_val, X_test = (f[spec.features] for f in (train_frame, val_frame, test_frame))
    p_val = model.predict_proba(X_val)[:, 1]
    p_test = model.predict_proba(X_test)[:, 1]
    economics = config.economics or policy.economics
    amounts_val = amounts_from(val_frame, economics)
    amounts_test = amounts_from(test_frame, economics)

    business = business_report(
        y_val,
        p_val,
        amounts_val,
        economics,
        config.scale or policy.scale,
        policy=policy,
    )
    policy = business.policy
    threshold = policy.approve_below  # below it an applicant is approved without review
    outcome = policy_outcome(policy, y_test, p_test, amounts_test)
    metrics = detailed_metrics(
        y_test, p_test, threshold=threshold, n_boot=config.n_boot, seed=config.seed
    )

    protected = test_frame[spec.protected].reset_index(drop=True) if spec.protected else None
    fairness = (
        fairness_report(y_test, p_test, protected, threshold=threshold, config=config.fairness)
        if protected is not None
        else None
    )
    gate = fairness_gate(fairness, config.fairness) if fairness is not None else None
    mitigation = []
    if config.mitigation and fairness is not None:
        for attribute in spec.protected:
            mitigation.append(
                compare_mitigation(
                    model,
                    X_train,
                    y_train,
                    bin_protected(train_frame[attribute], attribute),
                    X_test,
                    y_test,
                    bin_protected(test_frame[attribute], attribute),
                    threshold=threshold,
                    config=config.fairness,
                    seed=config.seed,
                )
            )

    explainer = build_explainer(model, X_train, spec, seed=config.seed)
    explanation = explain_global(explainer, X_test)
    reasons = reason_map or reason_map_for(spec)

    def explain_for_errors(rows: pd.DataFrame) -> list[dict[str, Any]]:
        return [
            {
                "top_contributions": [
                    c.model_dump()
                    for c in sorted(local.contributions, key=lambda c: -abs(c.contribution))[:4]
                ],
                "reasons": [r.text for r in reason_codes(local, spec, reasons)],
            }
            for local in explain_rows(explainer, rows)
        ]

    ids = test_frame[spec.id].astype(str).reset_index(drop=True) if spec.id else None
    errors = error_analysis(
        X_test.reset_index(drop=True),
        y_test,
        p_test,
        spec,
        threshold=threshold,
        costs=ErrorCosts(
            amount_column=economics.amount_column,
            lgd=economics.loss_given_default,
            margin=economics.interest_margin,
        ),
        explain=explain_for_errors,
        ids=ids,
    )
    example = _example(model, explainer, spec, X_train, X_test, p_test, ids, policy, reasons)
    kind = model_kind(model)
    points = points_table(model, policy.scale) if kind == "scorecard" else None

    result = EvaluationResult(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        creditops_version=__version__,
        model_name=loaded.name,
        model_version=loaded.version,
        candidate=loaded.tags.get("candidate", "unknown"),
        dataset=spec.dataset,
        data={
            "rows": spec.n_rows,
            "positive_rate": spec.positive_rate,
            "split": {part: len(index) for part, index in data.split.parts().items()},
            "numeric": spec.numeric,
            "categorical": spec.categorical,
            "protected": spec.protected,
            "dropped": spec.dropped,
            "target": spec.target,
            "positive": spec.positive,
        },
        candidates=candidates or [],
        selection=selection,
        metrics=metrics,
        validation_metrics=classification_metrics(y_val, p_val, threshold=threshold),
        behaviour=behaviour_checks(model, X_test, spec),
        policy=policy,
        policy_outcome=outcome,
        business=business,
        fairness=fairness,
        fairness_gate=gate,
        mitigation=mitigation,
        errors=errors,
        explanation=explanation,
        example=example,
        scorecard=points,
        ensemble=model.summary() if kind == "ensemble" else None,
    )
    figures: dict[str, Figure] = {}
    title = f"{loaded.name} v{loaded.version}"
    figures.update(diagnostic_figures(y_test, p_test, threshold=threshold, title=title))
    figures.update(business_figures(business, title))
    if fairness is not None:
        figures["fairness_approval.png"] = approval_rate_figure(fairness)
    figures["error_segments.png"] = error_rate_figure(errors)
    figures.update(explanation.figures)
    return Evaluation(result=result, figures=figures, run_id=loaded.run_id)


def _example(
    model: Any,
    explainer: Any,
    spec: ResolvedSpec,
    X_train: pd.DataFrame,
    X_test: pd.DataFrame,
    proba: np.ndarray,
    ids: pd.Series | None,
    policy: DecisionPolicy,
    reasons: ReasonMap,
) -> ApplicantExample | None:
    """The declined applicant at the median risk of all declined test applicants."""
    declined = np.flatnonzero(proba >= policy.decline_at_or_above)
    if len(declined) == 0:
        return None
    median = np.median(proba[declined])
    position = int(declined[np.argmin(np.abs(proba[declined] - median))])
    row = X_test.iloc[[position]]
    local = explain_rows(explainer, row)[0]
    return ApplicantExample(
        row=position,
        id=None if ids is None else str(ids.iloc[position]),
        proba=float(proba[position]),
        decision=policy.decide(float(proba[position])),
        shap=local,
        reasons=reason_codes(local, spec, reasons),
        lime=explain_lime(model, X_train, row, spec, seed=0),
        counterfactual=counterfactual(model, row, spec, threshold=policy.decline_at_or_above),
    )
