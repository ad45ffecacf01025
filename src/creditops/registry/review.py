"""Reviewing a registered version: load it with its data and stored policy, run every
evaluation on it, and store the result on its run."""

from __future__ import annotations

from creditops.config import Settings
from creditops.evaluation.review import (
    EVALUATION_FILE,
    Evaluation,
    EvaluationConfig,
    evaluate_loaded,
    gate_word,
)
from creditops.registry.client import CHAMPION
from creditops.registry.load import load_model, load_version_data
from creditops.registry.policy import version_policy
from creditops.training import tracking


def evaluate_version(
    settings: Settings,
    ref: str = CHAMPION,
    *,
    config: EvaluationConfig | None = None,
) -> Evaluation:
    """Load a registered version (alias or number) with its data and review it against its
    stored decision policy."""
    loaded = load_model(settings, ref)
    data = load_version_data(settings, loaded)
    parent = loaded.tags.get("parent_run_id")
    candidates = tracking.candidate_summaries(None, parent) if parent else []
    selection = tracking.run_tag(parent, "selection") if parent else None
    return evaluate_loaded(
        loaded,
        data,
        policy=version_policy(settings, loaded),
        config=config,
        candidates=candidates,
        selection=selection,
    )


def log_evaluation(evaluation: Evaluation, files: dict[str, str] | None = None) -> None:
    """Store the result, the figures and any report files on the version's run (the policy is
    there already: it is only read)."""
    if evaluation.run_id is None:
        return
    result = evaluation.result
    with tracking.start_run("evaluation", nested=False, run_id=evaluation.run_id):
        tracking.log_text(result.model_dump_json(indent=2), EVALUATION_FILE)
        tracking.log_figures(evaluation.figures, "evaluation/plots")
        low, high = result.metrics["roc_auc_ci"]
        tracking.log_metrics(
            {
                "eval_test_roc_auc": result.metrics["roc_auc"],
                "eval_test_roc_auc_ci_low": low,
                "eval_test_roc_auc_ci_high": high,
                "eval_test_ece": result.metrics["ece"],
                "eval_policy_approve_below": result.policy.approve_below,
                "eval_policy_decline_at_or_above": result.policy.decline_at_or_above,
                "eval_test_approval_rate": result.policy_outcome.approve_rate,
            }
        )
        tracking.set_tags(
            {
                "fairness_gate": gate_word(result.fairness_gate),
                "behaviour": "pass" if result.behaviour.passed else "fail",
            }
        )
        for path, artifact_dir in (files or {}).items():
            tracking.log_artifact(path, artifact_dir)
