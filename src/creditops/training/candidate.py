"""One candidate, start to finish: tune it on the tuning folds, fit it on every training row,
calibrate it when that helps, score validation, and log it all on its own MLflow run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from creditops.config import Profile, Settings
from creditops.data.split import Split
from creditops.data.validate import ValidatedDataset
from creditops.evaluation.metrics import classification_metrics
from creditops.evaluation.plots import diagnostic_figures
from creditops.evaluation.points import points_table
from creditops.evaluation.policy import ScoreScale
from creditops.models.anatomy import model_kind
from creditops.models.zoo import Candidate, FeatureSet
from creditops.training import tracking
from creditops.training.calibration import fit_with_calibration, fit_with_holdout_calibration
from creditops.training.offload import Offload
from creditops.training.tune import fold_aucs, number_of_steps, tune

# A scorecard candidate's points table, on its run.
SCORECARD_POINTS_FILE = "scorecard/points_table.csv"


class Progress(Protocol):
    """What training reports while it runs (the CLI draws progress bars from it)."""

    def start(self, name: str, label: str, total: int) -> None: ...
    def advance(self, name: str, note: str) -> None: ...
    def finish(self, name: str, note: str) -> None: ...


class Silent:
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


def train_candidate(
    candidate: Candidate,
    validated: ValidatedDataset,
    split: Split,
    rows: np.ndarray,
    profile: Profile,
    settings: Settings,
    progress: Progress,
    deadline: float | None,
    scale: ScoreScale,
    parallel: Offload | None = None,
) -> tuple[CandidateResult, Any, np.ndarray | None]:
    """Tune, fit, calibrate and log one candidate; returns its result, its fitted model and
    its out-of-fold predictions on the tuning folds when tuning kept them. ``parallel``: where
    Optuna's trials run (:func:`~creditops.training.tune.tune`)."""
    resolved = validated.spec
    features = FeatureSet.from_spec(resolved)
    X, y = validated.X, validated.y
    X_train, y_train = X.iloc[split.train], y[split.train]
    X_val, y_val = X.iloc[split.validation], y[split.validation]

    progress.start(candidate.name, candidate.label, number_of_steps(candidate, profile) + 1)
    with tracking.start_run(candidate.name, nested=True) as run:
        X_tune, y_tune = X.iloc[rows], y[rows]
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
            parallel=parallel,
        )
        cost = None
        if deadline is None or time.monotonic() < deadline:  # evidence, not a necessity
            cost = constraint_cost(
                candidate, features, X_tune, y_tune, tuning.params, tuning.fold_aucs, settings
            )
        fit_started = time.perf_counter()
        pos_weight = float((y_train == 0).sum() / max(int(y_train.sum()), 1))
        pipeline = candidate.build(features, tuning.params, pos_weight, settings.seed)
        if len(rows) < len(split.train):
            # Large data: one fit on every training row (each forest tree drawing as many rows
            # as the tuning sample holds), calibrated on the validation split.
            final_params = dict(tuning.params)
            if candidate.rows_per_model:
                final_params[candidate.rows_per_model] = len(rows)
            fitted = fit_with_holdout_calibration(
                candidate.build(features, final_params, pos_weight, settings.seed),
                X_train,
                y_train,
                X_val,
                y_val,
                seed=settings.seed,
                offload=parallel,
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
        if fitted.fitted_on != "here":  # provenance; the model and its artifacts are the same
            tracking.set_tags({"fitted_on": fitted.fitted_on})
        tracking.log_params(
            {
                **{f"param_{k}": v for k, v in tuning.params.items()},
                "calibration": fitted.calibration,
                "imbalance_handling": imbalance_note(candidate.name),
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
        if cost is not None:
            tracking.log_metrics(
                {
                    "cv_roc_auc_unconstrained": cost[0],
                    "monotone_constraint_cost": cost[1],
                }
            )
        tracking.log_frame(tuning.history, "tuning_history.csv")
        tracking.log_figures(
            diagnostic_figures(
                y_val, val_proba, threshold=settings.decision_threshold, title=candidate.label
            ),
            "plots/validation",
        )
        if model_kind(fitted.model) == "scorecard":
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
        monotone_cost=None if cost is None else cost[1],
        validation=validation,
        fit_seconds=tuning.seconds + fit_seconds,
        n_trials=tuning.n_trials,
        n_pruned=tuning.n_pruned,
        run_id=run.info.run_id,
        model_uri=info.model_uri,
    )
    return result, fitted.model, tuning.oof


def constraint_cost(
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


def imbalance_note(name: str) -> str:
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


__all__ = [
    "SCORECARD_POINTS_FILE",
    "CandidateResult",
    "Progress",
    "Silent",
    "constraint_cost",
    "imbalance_note",
    "train_candidate",
]
