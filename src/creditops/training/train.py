"""Training orchestration: load → validate → split → tune each candidate → calibrate → choose
the champion on cross-validation (:mod:`creditops.training.select`) → test once → derive the
champion's decision policy on validation → track everything in MLflow. Registering the champion
with that policy is the registry's step (:func:`creditops.registry.register.train_and_register`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

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
from creditops.evaluation.points import points_table
from creditops.evaluation.policy import DecisionPolicy, ScoreScale
from creditops.exceptions import ConfigurationError
from creditops.models.anatomy import anatomy
from creditops.models.zoo import Candidate, FeatureSet, get_candidates
from creditops.training import tracking
from creditops.training.calibration import fit_with_calibration, fit_with_holdout_calibration
from creditops.training.select import CandidateScores, Selection, choose_champion, confirmed
from creditops.training.tune import fold_aucs, number_of_steps, tune

# The share of a time budget for tuning; the rest is for the final fits and calibration.
_TUNING_SHARE = 0.4

# A scorecard candidate's points table, on its run.
SCORECARD_POINTS_FILE = "scorecard/points_table.csv"


class Progress(Protocol):
    """What training reports while it runs (the CLI draws progress bars from it)."""

    def start(self, name: str, label: str, total: int) -> None: ...
    def advance(self, name: str, note: str) -> None: ...
    def finish(self, name: str, note: str) -> None: ...


class _Silent:
    def start(self, name: str, label: str, total: int) -> None:
        pass

    def advance(self, name: str, note: str) -> None:
        pass

    def finish(self, name: str, note: str) -> None:
        pass


@dataclass
class CandidateResult:
    name: str
    label: str
    complexity: int
    params: dict[str, Any]
    calibration: str
    cv_auc_mean: float
    cv_auc_std: float
    cv: dict[str, dict[str, float]]
    fold_aucs: list[float]
    validation: dict[str, float]
    # CV AUC given up to the spec's monotone constraints (same parameters, same folds); None
    # when the candidate takes no constraints or the spec names none
    monotone_cost: float | None = None
    test: dict[str, float] = field(default_factory=dict)
    fit_seconds: float = 0.0
    n_trials: int = 0
    n_pruned: int = 0
    run_id: str = ""
    model_uri: str = ""
    champion: bool = False


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
) -> TrainingResult:
    """Train, compare and track; see the module docstring for the steps."""
    started = time.perf_counter()
    profile = profile or settings.profile
    progress = progress or _Silent()
    candidates = get_candidates(models)
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
        budget = settings.resolved_time_budget(len(split.train))
        tuning_rows = _tuning_rows(validated.y, split.train, settings)
        tracking.log_params({"time_budget_s": budget or "none", "tuning_rows": len(tuning_rows)})
        scale = (policy_config or PolicyConfig()).scale
        # Tuning gets a share of the budget by each candidate's weight; the rest is kept for
        # the final fits and calibration, which cost more on all training rows.
        tuning_until = None if budget is None else time.monotonic() + _TUNING_SHARE * budget
        for i, candidate in enumerate(candidates):
            deadline = None
            if tuning_until is not None:
                weights = [c.tuning_cost for c in candidates[i:]]
                left = max(tuning_until - time.monotonic(), 0.0)
                deadline = time.monotonic() + left * candidate.tuning_cost / sum(weights)
            result, model = _train_candidate(
                candidate,
                validated,
                split,
                tuning_rows,
                profile,
                settings,
                progress,
                deadline,
                scale,
            )
            results.append(result)
            fitted[candidate.name] = model

        selection = choose_champion(
            [
                CandidateScores(r.name, r.label, r.complexity, r.fold_aucs, r.validation["roc_auc"])
                for r in results
            ],
            settings.selection_se,
        )
        over_budget = budget is not None and time.perf_counter() - started > budget
        if selection.champion != selection.best_by_cv and not over_budget:
            selection = _confirm(
                selection, results, candidates, validated, tuning_rows, settings, progress
            )
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


def _tuning_rows(y: np.ndarray, train: np.ndarray, settings: Settings) -> np.ndarray:
    """The training rows tuning and selection cross-validate on: all of them, or a seeded
    stratified sample of ``settings.tuning_rows`` on larger data (a few tens of thousands of
    rows rank settings as well as all of them, at a fraction of the cost)."""
    if len(train) <= settings.tuning_rows:
        return train
    sample, _ = train_test_split(
        train,
        train_size=settings.tuning_rows,
        stratify=y[train],
        random_state=settings.seed,
    )
    return np.sort(sample)


def _train_candidate(
    candidate: Candidate,
    validated: ValidatedDataset,
    split: Split,
    tuning_rows: np.ndarray,
    profile: Profile,
    settings: Settings,
    progress: Progress,
    deadline: float | None,
    scale: ScoreScale,
) -> tuple[CandidateResult, Any]:
    resolved = validated.spec
    features = FeatureSet.from_spec(resolved)
    X, y = validated.X, validated.y
    X_train, y_train = X.iloc[split.train], y[split.train]
    X_val, y_val = X.iloc[split.validation], y[split.validation]

    progress.start(candidate.name, candidate.label, number_of_steps(candidate, profile) + 1)
    with tracking.start_run(candidate.name, nested=True) as run:
        X_tune, y_tune = X.iloc[tuning_rows], y[tuning_rows]
        tuning = tune(
            candidate,
            features,
            X_tune,
            y_tune,
            profile=profile,
            n_folds=settings.cv_folds,
            seed=settings.seed,
            n_jobs=settings.n_jobs,
            on_step=lambda note: progress.advance(candidate.name, note),
            deadline=deadline,
        )
        constraint_cost = None
        if deadline is None or time.monotonic() < deadline:  # evidence, not a necessity
            constraint_cost = _constraint_cost(
                candidate, features, X_tune, y_tune, tuning.params, tuning.fold_aucs, settings
            )
        fit_started = time.perf_counter()
        pos_weight = float((y_train == 0).sum() / max(int(y_train.sum()), 1))
        pipeline = candidate.build(features, tuning.params, pos_weight, settings.seed)
        if len(tuning_rows) < len(split.train):
            # Large data: one fit on every training row (each forest tree drawing as many rows
            # as the tuning sample holds), calibrated on the validation split.
            final_params = dict(tuning.params)
            if candidate.rows_per_model:
                final_params[candidate.rows_per_model] = len(tuning_rows)
            fitted = fit_with_holdout_calibration(
                candidate.build(features, final_params, pos_weight, settings.seed),
                X_train,
                y_train,
                X_val,
                y_val,
                seed=settings.seed,
            )
        else:
            fitted = fit_with_calibration(
                pipeline,
                X_train,
                y_train,
                X_val,
                y_val,
                n_folds=settings.cv_folds,
                seed=settings.seed,
                n_jobs=settings.n_jobs,
            )
        fit_seconds = time.perf_counter() - fit_started
        val_proba = fitted.model.predict_proba(X_val)[:, 1]
        validation = classification_metrics(y_val, val_proba, threshold=settings.decision_threshold)

        tracking.set_tags({"candidate": candidate.name, "tuner": candidate.tuner})
        tracking.log_params(
            {
                **{f"param_{k}": v for k, v in tuning.params.items()},
                "calibration": fitted.calibration,
                "imbalance_handling": _imbalance_note(candidate.name),
                "tuner": candidate.tuner,
                "tuning_trials": tuning.n_trials,
                "tuning_pruned": tuning.n_pruned,
            }
        )
        tracking.log_metrics(tuning.cv_mean, prefix="cv_")
        tracking.log_metrics({f"{k}_std": v for k, v in tuning.cv_std.items()}, prefix="cv_")
        tracking.log_metrics(validation, prefix="validation_")
        tracking.log_metrics(
            {f"validation_log_loss_{m}": v for m, v in fitted.validation_log_loss.items()}
        )
        tracking.log_metrics({"tuning_seconds": tuning.seconds, "fit_seconds": fit_seconds})
        if constraint_cost is not None:
            tracking.log_metrics(
                {
                    "cv_roc_auc_unconstrained": constraint_cost[0],
                    "monotone_constraint_cost": constraint_cost[1],
                }
            )
        tracking.log_frame(tuning.history, "tuning_history.csv")
        tracking.log_figures(
            diagnostic_figures(
                y_val, val_proba, threshold=settings.decision_threshold, title=candidate.label
            ),
            "plots/validation",
        )
        if anatomy(fitted.model).kind == "scorecard":
            # The scorecard's bins in points on the scale its policy will use.
            tracking.log_frame(points_table(fitted.model, scale).to_frame(), SCORECARD_POINTS_FILE)
        info = tracking.log_model(fitted.model, resolved, X_train.head(5))
    progress.finish(
        candidate.name,
        f"CV AUC {tuning.cv_mean['roc_auc']:.4f}, validation AUC {validation['roc_auc']:.4f}",
    )
    result = CandidateResult(
        name=candidate.name,
        label=candidate.label,
        complexity=candidate.complexity,
        params=tuning.params,
        calibration=fitted.calibration,
        cv_auc_mean=tuning.cv_mean["roc_auc"],
        cv_auc_std=tuning.cv_std["roc_auc"],
        cv={"mean": tuning.cv_mean, "std": tuning.cv_std},
        fold_aucs=tuning.fold_aucs,
        monotone_cost=None if constraint_cost is None else constraint_cost[1],
        validation=validation,
        fit_seconds=tuning.seconds + fit_seconds,
        n_trials=tuning.n_trials,
        n_pruned=tuning.n_pruned,
        run_id=run.info.run_id,
        model_uri=info.model_uri,
    )
    return result, fitted.model


def _constraint_cost(
    candidate: Candidate,
    features: FeatureSet,
    X: pd.DataFrame,
    y: np.ndarray,
    params: dict[str, Any],
    constrained_aucs: list[float],
    settings: Settings,
) -> tuple[float, float] | None:
    """The unconstrained CV AUC of the tuned parameters, and what the constraints cost."""
    if not candidate.constrainable or not (
        features.increasing or features.decreasing or features.ordered
    ):
        return None
    free = fold_aucs(
        candidate,
        features,
        X,
        y,
        {**params, "monotone": False},
        n_folds=settings.cv_folds,
        seed=settings.seed,
        n_jobs=settings.n_jobs,
    )
    free_mean = float(np.mean(free))
    return free_mean, free_mean - float(np.mean(constrained_aucs))


def _confirm(
    screening: Selection,
    results: list[CandidateResult],
    candidates: Sequence[Candidate],
    validated: ValidatedDataset,
    tuning_rows: np.ndarray,
    settings: Settings,
    progress: Progress,
) -> Selection:
    """The champion rule's second round: the finalists, with their tuned settings, on
    ``settings.selection_repeats`` repetitions of new folds (see :mod:`.select`)."""
    repeats = settings.selection_repeats
    if repeats <= 0:
        return screening
    features = FeatureSet.from_spec(validated.spec)
    X, y = validated.X.iloc[tuning_rows], validated.y[tuning_rows]
    by_name = {c.name: c for c in candidates}
    fresh = []
    progress.start("selection", "Champion rule, new folds", len(screening.finalists()))
    for result in results:
        if result.name not in screening.finalists():
            continue
        aucs = fold_aucs(
            by_name[result.name],
            features,
            X,
            y,
            result.params,
            n_folds=settings.cv_folds,
            seed=settings.seed,
            n_jobs=settings.n_jobs,
            repeats=repeats,
        )
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


def _imbalance_note(name: str) -> str:
    if name == "scorecard":
        return "none (unweighted, so points match the observed odds)"
    if name == "xgboost":
        return "scale_pos_weight = goods/bads"
    if name == "lightgbm":
        return "none: early stopping on unweighted log loss; the policy sets the cut-offs"
    if name == "random_forest":
        return "class_weight=balanced_subsample"
    if name == "neural_network":
        return "BCE pos_weight = goods/bads"
    return "class_weight=balanced"


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
    "CandidateResult",
    "DataWarning",
    "Progress",
    "TrainingResult",
    "choose_champion",
    "load_training_data",
    "summary_table",
    "train",
]
