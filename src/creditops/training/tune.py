"""Hyper-parameter tuning with stratified k-fold cross-validation on the training split.

Classical models are small enough for an exhaustive grid; XGBoost and the network have larger,
continuous spaces and get Optuna's TPE sampler with median pruning between folds, so hopeless
trials stop after one or two folds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    make_scorer,
    roc_auc_score,
)
from sklearn.model_selection import (
    ParameterGrid,
    RepeatedStratifiedKFold,
    StratifiedKFold,
    cross_val_predict,
    cross_validate,
)

from creditops.config import Profile
from creditops.evaluation.metrics import ks_statistic
from creditops.models.zoo import Candidate, FeatureSet
from creditops.training.offload import Offload

CV_METRICS = ("roc_auc", "ks", "pr_auc", "log_loss", "brier")
_SKLEARN_SCORERS = {
    "roc_auc": "roc_auc",
    "ks": make_scorer(ks_statistic, response_method="predict_proba"),
    "pr_auc": "average_precision",
    "log_loss": "neg_log_loss",
    "brier": "neg_brier_score",
}
_LOWER_IS_BETTER = {"log_loss", "brier"}

Step = Callable[[str], None]


@dataclass
class TuningResult:
    params: dict[str, Any]
    cv_mean: dict[str, float]
    cv_std: dict[str, float]
    # out-of-fold ROC AUC of the chosen parameters, per fold (the same folds for every
    # candidate, so the champion rule can pair them)
    fold_aucs: list[float]
    history: pd.DataFrame
    n_trials: int
    n_pruned: int
    seconds: float
    # out-of-fold probabilities of default of the chosen parameters on the tuning folds, shape
    # (1, rows), where tuning produced them (Optuna); see :func:`out_of_fold`
    oof: np.ndarray | None = None


def make_folds(n_folds: int, seed: int) -> StratifiedKFold:
    return StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)


def tune(
    candidate: Candidate,
    features: FeatureSet,
    X: pd.DataFrame,
    y: np.ndarray,
    *,
    profile: Profile,
    n_folds: int,
    seed: int,
    n_jobs: int,
    on_step: Step | None = None,
    deadline: float | None = None,
    parallel: Offload | None = None,
) -> TuningResult:
    """Find the best parameters of ``candidate`` by cross-validated ROC AUC.

    ``deadline`` (a ``time.monotonic()`` instant): no new grid point or trial starts after it;
    the first always runs, so every candidate has evidence for the selection. ``parallel``:
    Optuna's trials run there, several at once, on one shared study.
    """
    pos_weight = float((y == 0).sum() / max(int(y.sum()), 1))
    step = on_step or (lambda _: None)
    started = time.perf_counter()
    if candidate.tuner == "grid":
        result = _grid(
            candidate, features, X, y, profile, n_folds, seed, n_jobs, pos_weight, step, deadline
        )
    else:
        result = _optuna(
            candidate, features, X, y, profile, n_folds, seed, pos_weight, step, deadline, parallel
        )
    result.seconds = time.perf_counter() - started
    return result


def fold_splits(
    X: pd.DataFrame, y: np.ndarray, *, n_folds: int, seed: int, repeats: int = 0
) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """The (fit, score) index pairs of each repetition: the tuning folds, or with ``repeats``
    that many repetitions of new folds (seeded from ``seed + 1``, the same for every
    candidate, so the scores pair by fold)."""
    if not repeats:
        return [list(make_folds(n_folds, seed).split(X, y))]
    splits = list(
        RepeatedStratifiedKFold(n_splits=n_folds, n_repeats=repeats, random_state=seed + 1).split(
            X, y
        )
    )
    return [splits[r * n_folds : (r + 1) * n_folds] for r in range(repeats)]


def out_of_fold(
    candidate: Candidate,
    features: FeatureSet,
    X: pd.DataFrame,
    y: np.ndarray,
    params: dict[str, Any],
    *,
    splits: list[list[tuple[np.ndarray, np.ndarray]]],
    seed: int,
    n_jobs: int,
) -> np.ndarray:
    """Out-of-fold probabilities of default of one parameter set, one row per repetition of
    ``splits`` (:func:`fold_splits`): each row's from the model that did not see it."""
    pos_weight = float((y == 0).sum() / max(int(y.sum()), 1))
    model = candidate.build(features, params, pos_weight, seed)
    return np.vstack(
        [
            cross_val_predict(model, X, y, cv=folds, method="predict_proba", n_jobs=n_jobs)[:, 1]
            for folds in splits
        ]
    )


def aucs_by_fold(
    y: np.ndarray, oof: np.ndarray, splits: list[list[tuple[np.ndarray, np.ndarray]]]
) -> list[float]:
    """ROC AUC of out-of-fold predictions (:func:`out_of_fold`) on each scored fold."""
    return [
        float(roc_auc_score(y[score], oof[r][score]))
        for r, folds in enumerate(splits)
        for _, score in folds
    ]


def fold_aucs(
    candidate: Candidate,
    features: FeatureSet,
    X: pd.DataFrame,
    y: np.ndarray,
    params: dict[str, Any],
    *,
    n_folds: int,
    seed: int,
    n_jobs: int,
    repeats: int = 0,
) -> list[float]:
    """Out-of-fold ROC AUC of one parameter set per fold (see :func:`fold_splits`)."""
    splits = fold_splits(X, y, n_folds=n_folds, seed=seed, repeats=repeats)
    oof = out_of_fold(candidate, features, X, y, params, splits=splits, seed=seed, n_jobs=n_jobs)
    return aucs_by_fold(y, oof, splits)


def number_of_steps(candidate: Candidate, profile: Profile) -> int:
    if candidate.tuner == "grid":
        return len(ParameterGrid(candidate.grid[profile]))
    return candidate.trials[profile]


def _grid(
    candidate: Candidate,
    features: FeatureSet,
    X: pd.DataFrame,
    y: np.ndarray,
    profile: Profile,
    n_folds: int,
    seed: int,
    n_jobs: int,
    pos_weight: float,
    step: Step,
    deadline: float | None,
) -> TuningResult:
    rows = []
    for params in ParameterGrid(candidate.grid[profile]):
        if rows and deadline is not None and time.monotonic() >= deadline:
            break
        scores = cross_validate(
            candidate.build(features, params, pos_weight, seed),
            X,
            y,
            cv=make_folds(n_folds, seed),
            scoring=_SKLEARN_SCORERS,
            n_jobs=n_jobs,
            error_score="raise",
        )
        row: dict[str, Any] = {"params": params}
        for metric in CV_METRICS:
            values = scores[f"test_{metric}"]
            values = -values if metric in _LOWER_IS_BETTER else values
            row[f"{metric}_mean"], row[f"{metric}_std"] = float(values.mean()), float(values.std())
        row["fold_aucs"] = [float(v) for v in scores["test_roc_auc"]]
        row["fit_seconds"] = float(scores["fit_time"].sum())
        rows.append(row)
        step(f"AUC {row['roc_auc_mean']:.4f}")
    history = pd.DataFrame(rows)
    best = history.loc[history["roc_auc_mean"].idxmax()]
    history = pd.concat(
        [history.drop(columns="params"), pd.json_normalize(history["params"].tolist())], axis=1
    )
    return TuningResult(
        params=dict(best["params"]),
        cv_mean={m: float(best[f"{m}_mean"]) for m in CV_METRICS},
        cv_std={m: float(best[f"{m}_std"]) for m in CV_METRICS},
        fold_aucs=list(best["fold_aucs"]),
        history=history,
        n_trials=len(rows),
        n_pruned=0,
        seconds=0.0,
    )


def fold_scores(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """The cross-validation metrics (``CV_METRICS``) of one fold's predictions."""
    return {
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "ks": ks_statistic(y_true, proba),
        "pr_auc": float(average_precision_score(y_true, proba)),
        "log_loss": float(log_loss(y_true, proba, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, proba)),
    }


@dataclass(frozen=True)
class _Search:
    """What every trial of one candidate's search needs (a runner elsewhere gets it once)."""

    candidate: Candidate
    features: FeatureSet
    X: pd.DataFrame
    y: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    profile: Profile
    pos_weight: float
    seed: int


def _objective(search: _Search, oof_by_trial: dict[int, np.ndarray]) -> Callable[[Any], float]:
    """The cross-validated ROC AUC of a trial's parameters, pruned between folds; the trial's
    out-of-fold predictions go to ``oof_by_trial``."""
    import optuna

    candidate, X, y = search.candidate, search.X, search.y
    assert candidate.suggest is not None

    def objective(trial: optuna.Trial) -> float:
        params = candidate.suggest(trial, search.profile)
        per_fold: list[dict[str, float]] = []
        oof = np.full(len(y), np.nan)
        for fold, (fit_idx, score_idx) in enumerate(search.folds):
            model = clone(candidate.build(search.features, params, search.pos_weight, search.seed))
            model.fit(X.iloc[fit_idx], y[fit_idx])
            proba = model.predict_proba(X.iloc[score_idx])[:, 1]
            oof[score_idx] = proba
            per_fold.append(fold_scores(y[score_idx], proba))
            trial.report(float(np.mean([s["roc_auc"] for s in per_fold])), fold)
            if trial.should_prune():
                raise optuna.TrialPruned()
        for metric in CV_METRICS:
            values = np.array([s[metric] for s in per_fold])
            trial.set_user_attr(f"{metric}_mean", float(values.mean()))
            trial.set_user_attr(f"{metric}_std", float(values.std()))
        trial.set_user_attr("fold_aucs", [s["roc_auc"] for s in per_fold])
        oof_by_trial[trial.number] = oof
        return float(np.mean([s["roc_auc"] for s in per_fold]))

    return objective


def _sampler(seed: int) -> Any:
    import optuna

    return optuna.samplers.TPESampler(seed=seed)


def _pruner() -> Any:
    import optuna

    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def _trials_elsewhere(
    study_name: str, storage: Any, runner: int, search: _Search, total: int, timeout: float | None
) -> dict[int, np.ndarray]:
    """One runner's share of a shared study: trials until the study holds ``total`` (counting
    those still running elsewhere) or ``timeout``; its trials' out-of-fold predictions."""
    import optuna
    from optuna.study import MaxTrialsCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Each runner samples from its own seed, or every runner's first random trials would be
    # the same parameters.
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=_sampler(search.seed + runner),
        pruner=_pruner(),
    )
    oof_by_trial: dict[int, np.ndarray] = {}
    if len(study.trials) >= total:
        return oof_by_trial
    study.optimize(
        _objective(search, oof_by_trial),
        n_trials=total,
        timeout=timeout,
        callbacks=[MaxTrialsCallback(total, states=None)],
    )
    return oof_by_trial


def _optuna(
    candidate: Candidate,
    features: FeatureSet,
    X: pd.DataFrame,
    y: np.ndarray,
    profile: Profile,
    n_folds: int,
    seed: int,
    pos_weight: float,
    step: Step,
    deadline: float | None,
    parallel: Offload | None = None,
) -> TuningResult:
    import optuna

    assert candidate.suggest is not None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folds = list(make_folds(n_folds, seed).split(X, y))
    search = _Search(candidate, features, X, y, folds, profile, pos_weight, seed)
    trials = candidate.trials[profile]
    oof_by_trial: dict[int, np.ndarray] = {}
    storage = None if parallel is None else parallel.storage()
    study = optuna.create_study(
        direction="maximize",
        sampler=_sampler(seed),
        pruner=_pruner(),
        study_name=candidate.name,
        storage=storage,
    )
    if candidate.first_trial:
        study.enqueue_trial(dict(candidate.first_trial))
    if parallel is None:

        def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            state = "pruned" if trial.state == optuna.trial.TrialState.PRUNED else "done"
            best = study.best_value if study.best_trial else float("nan")
            step(f"trial {trial.number + 1} {state}, best AUC {best:.4f}")

        objective = _objective(search, oof_by_trial)
        study.optimize(objective, n_trials=1, callbacks=[report])  # the first always runs
        left = None if deadline is None else deadline - time.monotonic()
        if trials > 1 and (left is None or left > 0):
            study.optimize(objective, n_trials=trials - 1, timeout=left, callbacks=[report])
    else:
        # Every runner starts at least one trial (Optuna checks the timeout after a trial), so
        # the first runs even when the budget is spent; the study stops them at ``trials``.
        left = None if deadline is None else max(deadline - time.monotonic(), 1e-3)
        runners = min(parallel.width, trials)
        copies = [
            (study.study_name, storage, runner, search, trials, left) for runner in range(runners)
        ]
        for done, found in enumerate(parallel.run(_trials_elsewhere, copies), start=1):
            oof_by_trial.update(found)
            best = study.best_value if oof_by_trial else float("nan")
            step(
                f"{done} of {runners} runners done, {len(study.trials)} trials, best AUC {best:.4f}"
            )
    best = study.best_trial
    history = study.trials_dataframe(attrs=("number", "value", "params", "user_attrs", "state"))
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
    return TuningResult(
        params={**candidate.suggest(optuna.trial.FixedTrial(best.params), profile)},
        cv_mean={m: best.user_attrs[f"{m}_mean"] for m in CV_METRICS},
        cv_std={m: best.user_attrs[f"{m}_std"] for m in CV_METRICS},
        fold_aucs=list(best.user_attrs["fold_aucs"]),
        history=history,
        n_trials=len(study.trials),
        n_pruned=pruned,
        seconds=0.0,
        oof=oof_by_trial[best.number][None, :],
    )
