"""Training orchestration: load → validate → split → tune each candidate → calibrate → choose
the champion on cross-validation (:mod:`creditops.training.select`) → test once → derive the
champion's decision policy on validation → track everything in MLflow. Registering the champion
with that policy is the registry's step (:func:`creditops.registry.register.train_and_register`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from creditops import __version__
from creditops.config import Profile, Settings
from creditops.data.datasets import DEFAULT_DATASET, load_builtin
from creditops.data.io import read_table
from creditops.data.spec import DatasetSpec
from creditops.data.split import Split, split_dataset
from creditops.data.validate import DataWarning, ValidatedDataset, validate_dataset
from creditops.evaluation.business import PolicyConfig, derive_policy
from creditops.evaluation.metrics import classification_metrics
from creditops.evaluation.plots import diagnostic_figures
from creditops.evaluation.policy import DecisionPolicy
from creditops.exceptions import ConfigurationError
from creditops.models.zoo import Candidate, FeatureSet, get_candidates
from creditops.training import tracking
from creditops.training.budget import Budget, tuning_rows
from creditops.training.candidate import (
    SCORECARD_POINTS_FILE,
    CandidateResult,
    Progress,
    Silent,
    train_candidate,
)
from creditops.training.ensemble import ENSEMBLE, stacked_out_of_fold, train_ensemble
from creditops.training.offload import Offload
from creditops.training.select import CandidateScores, Selection, choose_champion, confirmed
from creditops.training.tune import aucs_by_fold, fold_splits, out_of_fold


@dataclass
class TrainingResult:
    dataset: str
    profile: Profile
    n_rows: int
    positive_rate: float
    split_sizes: dict[str, int]
    candidates: list[CandidateResult]
    champion: str
    # the rule's one-sentence verdict, and its full evidence
    selection: str
    selection_evidence: Selection
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    warnings: list[dict[str, Any]]
    seconds: float
    # The champion's decision policy, derived on validation; registered with the version.
    policy: DecisionPolicy
    registered_model: str | None = None
    registered_version: str | None = None
    # The fitted pipelines by candidate name, for callers in the same process (not serialised).
    models: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        payload = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "models"}
        payload["candidates"] = [asdict(c) for c in self.candidates]
        payload["policy"] = self.policy.model_dump(mode="json")
        payload["selection_evidence"] = self.selection_evidence.model_dump(mode="json")
        return payload

    @property
    def champion_result(self) -> CandidateResult:
        return next(c for c in self.candidates if c.champion)


def load_training_data(
    *,
    dataset: str | None = None,
    data_path: str | Path | None = None,
    spec_path: str | Path | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8",
) -> tuple[pd.DataFrame, DatasetSpec, str]:
    """A built-in dataset by name, or a user file with its spec; returns (data, spec, name)."""

    if data_path is not None:
        if spec_path is None:
            raise ConfigurationError("--data needs --spec SPEC.yaml naming at least the target")
        spec = DatasetSpec.from_yaml(spec_path)
        frame = read_table(data_path, delimiter=delimiter, encoding=encoding)
        return frame, spec, Path(data_path).name
    if spec_path is not None:
        raise ConfigurationError("--spec is only used with --data")
    name = dataset or DEFAULT_DATASET
    frame, spec = load_builtin(name)
    return frame, spec, name


def train(
    settings: Settings,
    *,
    frame: pd.DataFrame,
    spec: DatasetSpec,
    dataset_name: str,
    profile: Profile | None = None,
    models: Sequence[str] | None = None,
    progress: Progress | None = None,
    policy_config: PolicyConfig | None = None,
    parallel: Offload | None = None,
) -> TrainingResult:
    """Train, compare and track; see the module docstring for the steps. ``parallel``: where
    the Optuna trials run (a Dask cluster, :mod:`creditops.scale.training`), else here."""
    started = time.perf_counter()
    profile = profile or settings.profile
    progress = progress or Silent()
    names = [n for n in models or () if n != ENSEMBLE]
    # The ensemble comes with the full list, or when asked for by name beside its members.
    wants_ensemble = not models or ENSEMBLE in models
    candidates = get_candidates(names or None)
    validated = validate_dataset(
        frame,
        spec,
        dataset_name=dataset_name,
        n_folds=settings.cv_folds,
        leakage_auc=settings.leakage_auc,
    )
    split = split_dataset(validated, seed=settings.seed)
    experiment_id = tracking.configure_tracking(settings)

    with tracking.start_run(f"train-{dataset_name}") as parent:
        _log_inputs(validated, split, spec, profile, settings)
        results: list[CandidateResult] = []
        fitted: dict[str, Any] = {}
        oof: dict[str, np.ndarray] = {}  # out-of-fold predictions on the tuning folds
        budget = Budget(settings.resolved_time_budget(len(split.train)))
        rows = tuning_rows(validated.y, split.train, settings)
        tracking.log_params({"time_budget_s": budget.seconds or "none", "tuning_rows": len(rows)})
        scale = (policy_config or PolicyConfig()).scale
        for i, candidate in enumerate(candidates):
            result, model, candidate_oof = train_candidate(
                candidate,
                validated,
                split,
                rows,
                profile,
                settings,
                progress,
                budget.tuning_deadline(candidate, candidates[i:]),
                scale,
                parallel,
            )
            results.append(result)
            fitted[candidate.name] = model
            if candidate_oof is not None:
                oof[candidate.name] = candidate_oof
        stackable = settings.ensemble_size >= 2 and len(results) >= 2
        if wants_ensemble and stackable and not budget.spent:
            stacked = train_ensemble(
                results, fitted, oof, candidates, validated, split, rows, settings, progress
            )
            if stacked is not None:
                results.append(stacked[0])
                fitted[ENSEMBLE] = stacked[1]

        selection = choose_champion(
            [
                CandidateScores(r.name, r.label, r.complexity, r.fold_aucs, r.validation["roc_auc"])
                for r in results
            ],
            settings.selection_se,
        )
        finalists = _finalists(selection)
        if len(finalists) > 1 and not budget.spent:
            selection = _confirm(
                selection, finalists, results, candidates, validated, rows, settings, progress
            )
        elif selection.champion == ENSEMBLE and settings.selection_repeats > 0:
            # The budget left no room to confirm the ensemble on new folds, and its first-round
            # evidence leans its way: the rule chooses among the single models instead.
            selection = _without_ensemble(selection, results, settings)
        champion, reason = selection.champion, selection.reason
        _log_selection(selection, results)
        _test_once(results, fitted, validated, split, settings)
        for result in results:
            result.champion = result.name == champion
        champion_result = next(r for r in results if r.champion)
        tracking.log_metrics(champion_result.test, prefix="champion_test_")
        tracking.log_metrics(champion_result.validation, prefix="champion_validation_")
        tracking.set_tags({"champion": champion, "selection": reason})
        summary_rows = [_summary_row(r) for r in results]
        tracking.log_frame(pd.DataFrame(summary_rows), "candidates.csv")
        policy = _champion_policy(
            champion_result, fitted[champion], validated, split, policy_config
        )

    return TrainingResult(
        dataset=dataset_name,
        profile=profile,
        n_rows=validated.spec.n_rows,
        positive_rate=validated.spec.positive_rate,
        split_sizes={part: len(index) for part, index in split.parts().items()},
        candidates=results,
        champion=champion,
        selection=reason,
        selection_evidence=selection,
        parent_run_id=parent.info.run_id,
        experiment_id=experiment_id,
        tracking_uri=settings.resolved_tracking_uri,
        warnings=[w.to_dict() for w in validated.warnings],
        seconds=time.perf_counter() - started,
        policy=policy,
        models=fitted,
    )


def _log_inputs(
    validated: ValidatedDataset,
    split: Split,
    spec: DatasetSpec,
    profile: Profile,
    settings: Settings,
) -> None:
    resolved = validated.spec
    tracking.log_params(
        {
            "dataset": resolved.dataset,
            "profile": profile,
            "seed": settings.seed,
            "cv_folds": settings.cv_folds,
            "decision_threshold": settings.decision_threshold,
            "n_rows": resolved.n_rows,
            "positive_rate": resolved.positive_rate,
            "n_features": len(resolved.features),
            "train_rows": len(split.train),
            "validation_rows": len(split.validation),
            "test_rows": len(split.test),
        }
    )
    tracking.set_tags(
        {
            "creditops_version": __version__,
            "git_commit": tracking.git_commit(),
            "data_fingerprint": tracking.data_fingerprint(validated.frame),
            "dataset": resolved.dataset,
        }
    )
    tracking.log_text(resolved.to_json(), tracking.SPEC_FILE)
    tracking.log_dict(spec.model_dump(mode="json"), "dataset_spec.yaml")
    ids = validated.frame[resolved.id] if resolved.id else None
    tracking.log_frame(split.to_frame(ids), tracking.SPLIT_FILE)
    # The validated data itself, so any version can be evaluated, explained and monitored
    # against exactly what it was trained on.
    tracking.log_parquet(validated.frame, tracking.TRAINING_DATA_FILE)
    tracking.log_dict({"warnings": [w.to_dict() for w in validated.warnings]}, "validation.json")


def _without_ensemble(
    screening: Selection, results: list[CandidateResult], settings: Settings
) -> Selection:
    singles = choose_champion(
        [
            CandidateScores(r.name, r.label, r.complexity, r.fold_aucs, r.validation["roc_auc"])
            for r in results
            if r.name != ENSEMBLE
        ],
        settings.selection_se,
    )
    return singles.model_copy(
        update={
            "screening": screening,
            "reason": f"{singles.reason}; the stacked ensemble led on the tuning folds, but the "
            "time budget left no room to confirm it on new folds",
        }
    )


def _finalists(selection: Selection) -> list[str]:
    """Who goes to the rule's second round: the candidates within the rule when it favours a
    simpler one than the best; the ensemble and the best single model when the ensemble wins
    (its first-round evidence leans a little its way, see :mod:`.ensemble`); else nobody."""
    if selection.champion != selection.best_by_cv:
        return selection.finalists()
    if selection.champion == ENSEMBLE:
        single = next(c.name for c in selection.candidates if c.name != ENSEMBLE)
        return [ENSEMBLE, single]
    return []


def _confirm(
    screening: Selection,
    finalists: list[str],
    results: list[CandidateResult],
    candidates: Sequence[Candidate],
    validated: ValidatedDataset,
    rows: np.ndarray,
    settings: Settings,
    progress: Progress,
) -> Selection:
    """The champion rule's second round: the finalists, with their tuned settings, on
    ``settings.selection_repeats`` repetitions of new folds (see :mod:`.select`); the
    ensemble, if a finalist, stacked on its members' predictions on those folds."""
    repeats = settings.selection_repeats
    if repeats <= 0:
        return screening
    features = FeatureSet.from_spec(validated.spec)
    X, y = validated.X.iloc[rows], validated.y[rows]
    splits = fold_splits(X, y, n_folds=settings.cv_folds, seed=settings.seed, repeats=repeats)
    by_name = {c.name: c for c in candidates}
    params = {r.name: r.params for r in results}
    fresh_oof: dict[str, np.ndarray] = {}

    def predictions(name: str) -> np.ndarray:
        if name not in fresh_oof:
            fresh_oof[name] = out_of_fold(
                by_name[name],
                features,
                X,
                y,
                params[name],
                splits=splits,
                seed=settings.seed,
                n_jobs=settings.n_jobs,
            )
        return fresh_oof[name]

    fresh = []
    progress.start("selection", "Champion rule, new folds", len(finalists))
    for result in results:
        if result.name not in finalists:
            continue
        if result.name == ENSEMBLE:
            members = {name: predictions(name) for name in result.params["members"]}
            proba = stacked_out_of_fold(members, y, splits)
        else:
            proba = predictions(result.name)
        aucs = aucs_by_fold(y, proba, splits)
        fresh.append(
            CandidateScores(
                result.name, result.label, result.complexity, aucs, result.validation["roc_auc"]
            )
        )
        progress.advance("selection", f"{result.name} {np.mean(aucs):.4f}")
    second = choose_champion(fresh, settings.selection_se)
    progress.finish("selection", f"{second.champion}")
    return confirmed(screening, second, repeats)


def _log_selection(selection: Selection, results: list[CandidateResult]) -> None:
    """The rule and every candidate's evidence on the training run, and each candidate's own
    figures on its run, so the report can say why the champion won."""
    tracking.log_text(selection.model_dump_json(indent=2), tracking.SELECTION_FILE)
    tracking.set_tags({"selection_rule": selection.rule, "best_by_cv": selection.best_by_cv})
    for result in results:
        evidence = selection.evidence(result.name)
        with tracking.start_run(result.name, nested=True, run_id=result.run_id):
            tracking.log_metrics(
                {"selection_cv_gap": evidence.gap, "selection_cv_gap_se": evidence.gap_se}
            )
            tracking.set_tags({"selection_within_rule": str(evidence.within_rule).lower()})


def _test_once(
    results: list[CandidateResult],
    fitted: dict[str, Any],
    validated: ValidatedDataset,
    split: Split,
    settings: Settings,
) -> None:
    """The only place the test split is scored: after the champion is chosen."""
    X_test, y_test = validated.X.iloc[split.test], validated.y[split.test]
    for result in results:
        proba = fitted[result.name].predict_proba(X_test)[:, 1]
        result.test = classification_metrics(y_test, proba, threshold=settings.decision_threshold)
        with tracking.start_run(result.name, nested=True, run_id=result.run_id):
            tracking.log_metrics(result.test, prefix="test_")
            tracking.log_figures(
                diagnostic_figures(
                    y_test, proba, threshold=settings.decision_threshold, title=result.label
                ),
                "plots/test",
            )


def _champion_policy(
    champion: CandidateResult,
    model: Any,
    validated: ValidatedDataset,
    split: Split,
    config: PolicyConfig | None,
) -> DecisionPolicy:
    """The champion's approve / refer / decline policy, chosen on validation like every other
    choice about the model, and stored on its run: the one place a policy is made."""
    validation = validated.frame.iloc[split.validation]
    proba = model.predict_proba(validation[validated.spec.features])[:, 1]
    policy = derive_policy(
        validated.y[split.validation], proba, validation, validated.spec, validated.frame, config
    )
    with tracking.start_run(champion.name, nested=True, run_id=champion.run_id):
        tracking.log_text(policy.model_dump_json(indent=2), tracking.POLICY_FILE)
        tracking.set_tags(policy.tags())
    tracking.set_tags(policy.tags())
    return policy


def _summary_row(result: CandidateResult) -> dict[str, Any]:
    return {
        "model": result.name,
        "cv_auc_mean": result.cv_auc_mean,
        "cv_auc_std": result.cv_auc_std,
        "cv_auc_folds": " ".join(f"{v:.4f}" for v in result.fold_aucs),
        "validation_auc": result.validation["roc_auc"],
        "test_auc": result.test.get("roc_auc", np.nan),
        "test_ks": result.test.get("ks", np.nan),
        "test_brier": result.test.get("brier", np.nan),
        "calibration": result.calibration,
        "fit_seconds": result.fit_seconds,
        "champion": result.champion,
    }


def summary_table(result: TrainingResult) -> pd.DataFrame:
    return pd.DataFrame([_summary_row(r) for r in result.candidates])


__all__ = [
    "SCORECARD_POINTS_FILE",
    "CandidateResult",
    "DataWarning",
    "Progress",
    "TrainingResult",
    "choose_champion",
    "load_training_data",
    "summary_table",
    "train",
]
