"""Evaluation: metrics, behaviour, fairness (the report, its gate, the mitigation comparison),
error analysis, business impact and the decision policy, explanations, reason codes, a
scorecard's points table, and the model report built from them. Pure computation on a fitted
model and its data: nothing here reads the registry or writes to MLflow."""

from creditops.evaluation.behaviour import BehaviourReport, behaviour_checks
from creditops.evaluation.business import (
    PolicyConfig,
    build_policy,
    business_report,
    derive_policy,
)
from creditops.evaluation.counterfactual import Counterfactual, counterfactual
from creditops.evaluation.errors import ErrorCosts, ErrorReport, error_analysis
from creditops.evaluation.explain import (
    Explainer,
    build_explainer,
    explain_global,
    explain_local,
)
from creditops.evaluation.fairness import (
    FairnessConfig,
    FairnessReport,
    bin_protected,
    fairness_report,
)
from creditops.evaluation.gate import GateResult, fairness_gate
from creditops.evaluation.local_surrogate import LimeExplanation, explain_lime
from creditops.evaluation.metrics import (
    HEADLINE_METRICS,
    classification_metrics,
    detailed_metrics,
    ks_statistic,
)
from creditops.evaluation.mitigation import MitigationResult, compare_mitigation
from creditops.evaluation.points import PointsTable, applicant_points, points_table
from creditops.evaluation.policy import DecisionPolicy, Economics, ScoreScale, to_points
from creditops.evaluation.reasons import ReasonCode, ReasonMap, default_reason_map, reason_codes

__all__ = [
    "HEADLINE_METRICS",
    "BehaviourReport",
    "Counterfactual",
    "DecisionPolicy",
    "Economics",
    "ErrorCosts",
    "ErrorReport",
    "Explainer",
    "FairnessConfig",
    "FairnessReport",
    "GateResult",
    "LimeExplanation",
    "MitigationResult",
    "PointsTable",
    "PolicyConfig",
    "ReasonCode",
    "ReasonMap",
    "ScoreScale",
    "applicant_points",
    "behaviour_checks",
    "bin_protected",
    "build_explainer",
    "build_policy",
    "business_report",
    "classification_metrics",
    "compare_mitigation",
    "counterfactual",
    "default_reason_map",
    "derive_policy",
    "detailed_metrics",
    "error_analysis",
    "explain_global",
    "explain_lime",
    "explain_local",
    "fairness_gate",
    "fairness_report",
    "ks_statistic",
    "points_table",
    "reason_codes",
    "to_points",
]
