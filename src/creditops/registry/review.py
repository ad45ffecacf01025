"""Reviewing a registered version: load it with its data and stored policy, run every
evaluation on it, and store the result on its run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from creditops.config import Settings
from creditops.evaluation.report import write_report
from creditops.evaluation.review import (
    EVALUATION_FILE,
    Evaluation,
    EvaluationConfig,
    EvaluationResult,
    evaluate_loaded,
    gate_word,
)
from creditops.registry.catalog import FAIRNESS_TAG
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
    tracking.configure_tracking(settings)  # the run's tags are read, and its review written
    loaded = load_model(settings, ref)
    data = load_version_data(settings, loaded)
    parent = loaded.tags.get("parent_run_id")
    candidates = tracking.candidate_summaries(None, parent) if parent else []
    selection = _selection_sentence(parent) if parent else None
    return evaluate_loaded(
        loaded,
        data,
        policy=version_policy(settings, loaded),
        config=config,
        candidates=candidates,
        selection=selection,
    )


def _selection_sentence(parent_run_id: str) -> str | None:
    verdict = tracking.run_tag(parent_run_id, "selection")
    rule = tracking.run_tag(parent_run_id, "selection_rule")
    if verdict and rule:
        return f"Rule: {rule}. {verdict}."
    return verdict


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
                FAIRNESS_TAG: gate_word(result.fairness_gate),
                "behaviour": "pass" if result.behaviour.passed else "fail",
            }
        )
        for path, artifact_dir in (files or {}).items():
            tracking.log_artifact(path, artifact_dir)


def report_directory(settings: Settings, version: str) -> Path:
    """Where the report of a version (number) is written: one folder per version."""
    return settings.reports_dir / f"{settings.registered_model_name}-v{version}"


def review_and_store(
    settings: Settings,
    ref: str = CHAMPION,
    *,
    config: EvaluationConfig | None = None,
    directory: Path | None = None,
) -> tuple[Evaluation, dict[str, Path]]:
    """Review a version, write its report (HTML, model card, JSON, plots) to ``directory``
    (default: its report folder) and store all of it on the version's run: what
    ``creditops report`` and the dashboard do."""
    evaluation = evaluate_version(settings, ref, config=config)
    if directory is None:
        settings.ensure_home()
        directory = report_directory(settings, evaluation.result.model_version)
    paths = write_report(evaluation, directory)
    log_evaluation(evaluation, {str(paths["html"]): "report", str(paths["model_card"]): "report"})
    return evaluation, paths


def stored_review(settings: Settings, version: str) -> EvaluationResult | None:
    """The stored review of version ``version`` (a number), or None when there is none or it
    was written by a creditops whose results lack what this one shows."""
    path = report_directory(settings, version) / "evaluation.json"
    try:
        result = EvaluationResult.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    current = EvaluationResult.model_fields["schema_version"].default
    return result if result.schema_version >= current else None


@dataclass(frozen=True)
class ScoredSplit:
    """A version's test split scored by the version: what what-if questions are asked on."""

    version: str
    frame: pd.DataFrame  # the test rows (features, protected, target), index reset
    y: np.ndarray  # 1 = default
    proba: np.ndarray
    protected: pd.DataFrame | None


def scored_test_split(settings: Settings, version: str) -> ScoredSplit:
    """Load version ``version`` and score its own test split."""
    loaded = load_model(settings, version)
    spec = loaded.spec
    data = load_version_data(settings, loaded)
    frame, y = data.part("test", spec)
    frame = frame.reset_index(drop=True)
    proba = loaded.model.predict_proba(frame[spec.features])[:, 1]
    protected = frame[list(spec.protected)] if spec.protected else None
    return ScoredSplit(str(loaded.version), frame, np.asarray(y).astype(int), proba, protected)
