"""The stacked ensemble as one more candidate, judged by the same champion rule.

Its members are the candidates with the best cross-validated AUC (``Settings.ensemble_size``)
among those whose decisions are explained exactly: every adverse-action reason of the ensemble
is then exact too, and costs what its members' cost (the network's sampled permutation SHAP
costs tens of milliseconds per decision, so the network is left out).
Its evidence is built from what tuning already has: each member's out-of-fold probabilities on
the tuning folds (:func:`creditops.training.tune.out_of_fold`). For each fold the stacker is
fitted on the other folds' out-of-fold log-odds and scores this fold, so the ensemble gets
out-of-fold predictions, hence one AUC per fold, on the same folds as every other candidate, and
the rule pairs them as it pairs the rest. (The members' predictions for the other folds come
from models that saw this fold's rows; with two or three stacking weights that leaks next to
nothing, and it spares refitting every member inside every fold.) The ensemble is the most
complex candidate, so it is the champion only when no simpler candidate comes within the
rule's margin of it.

The fitted ensemble (:class:`~creditops.models.ensemble.StackedEnsembleClassifier`) stacks the
members as they were fitted on every training row, before their own calibration (the stacker
is the ensemble's calibration), with the stacker fitted on all the out-of-fold predictions.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.special import expit

from creditops.config import Settings
from creditops.data.split import Split
from creditops.data.validate import ValidatedDataset
from creditops.evaluation.metrics import classification_metrics
from creditops.models.anatomy import anatomy
from creditops.models.ensemble import StackedEnsembleClassifier, fit_stacker, member_log_odds
from creditops.models.zoo import Candidate, FeatureSet
from creditops.training import tracking
from creditops.training.candidate import CandidateResult, Progress
from creditops.training.tune import CV_METRICS, aucs_by_fold, fold_scores, fold_splits, out_of_fold

ENSEMBLE = "ensemble"
# Above every single model (the network is 6): ties go to a simpler candidate.
ENSEMBLE_COMPLEXITY = 7

Splits = list[list[tuple[np.ndarray, np.ndarray]]]

_IMBALANCE = "each member's own; the stacker is unweighted, so its probabilities are calibrated"


def ensemble_label(members: Sequence[str]) -> str:
    return f"Stacked ensemble ({' + '.join(members)})"


def choose_members(
    cv_means: Mapping[str, float], size: int, eligible: Sequence[str] | None = None
) -> list[str]:
    """The ``size`` candidates with the best mean CV AUC among ``eligible`` (default: all),
    best first (ties by name)."""
    names = [n for n in cv_means if eligible is None or n in set(eligible)]
    ranked = sorted(names, key=lambda name: (-cv_means[name], name))
    return ranked[:size]


def stacked_out_of_fold(
    oof: Mapping[str, np.ndarray], y: np.ndarray, splits: Splits, *, C: float = 1.0
) -> np.ndarray:
    """The ensemble's out-of-fold probabilities of default on ``splits`` (one row per
    repetition), from its members' (``oof``: name → the same shape): on each fold, the stacker
    fitted on the other folds' rows."""
    names = list(oof)
    stacked = np.full(np.shape(oof[names[0]]), np.nan)
    for r, folds in enumerate(splits):
        log_odds = member_log_odds(np.column_stack([oof[name][r] for name in names]))
        for fit_rows, score_rows in folds:
            kept, weights, intercept = fit_stacker(log_odds[fit_rows], y[fit_rows], C=C)
            stacked[r, score_rows] = expit(intercept + log_odds[np.ix_(score_rows, kept)] @ weights)
    return stacked


def assemble(
    members: Mapping[str, Any],
    oof: Mapping[str, np.ndarray],
    y: np.ndarray,
    X_example: Any,
    *,
    n_folds: int,
    seed: int,
) -> StackedEnsembleClassifier:
    """The ensemble of the fitted (possibly calibrated) candidate models ``members``: each
    one's pipeline fitted on every training row, stacked on its tuning-fold out-of-fold
    probabilities (``oof``: row 0 of each) for the outcomes ``y`` of those rows."""
    names = list(members)
    return StackedEnsembleClassifier.from_fitted(
        [(name, anatomy(members[name]).pipeline) for name in names],
        np.column_stack([oof[name][0] for name in names]),
        y,
        X_example,
        cv=n_folds,
        random_state=seed,
    )


def train_ensemble(
    results: list[CandidateResult],
    fitted: dict[str, Any],
    oof: dict[str, np.ndarray],
    candidates: Sequence[Candidate],
    validated: ValidatedDataset,
    split: Split,
    rows: np.ndarray,
    settings: Settings,
    progress: Progress,
) -> tuple[CandidateResult, Any] | None:
    """The stacked ensemble of the best candidates as one more candidate, logged on its own
    run, or None when fewer than two members keep a positive weight.

    ``oof``: the candidates' out-of-fold predictions on the tuning folds where tuning kept
    them; the grid-tuned members' are computed here (and added)."""
    started = time.perf_counter()
    exact = [c.name for c in candidates if c.exact_explanations]
    members = choose_members(
        {r.name: r.cv_auc_mean for r in results}, settings.ensemble_size, exact
    )
    if len(members) < 2:
        return None
    features = FeatureSet.from_spec(validated.spec)
    X, y = validated.X.iloc[rows], validated.y[rows]
    splits = fold_splits(X, y, n_folds=settings.cv_folds, seed=settings.seed)
    by_name = {c.name: c for c in candidates}
    params = {r.name: r.params for r in results}
    progress.start(ENSEMBLE, ensemble_label(members), len(members))
    for name in members:
        if name not in oof:  # grid-tuned candidates: their chosen setting's predictions
            oof[name] = out_of_fold(
                by_name[name],
                features,
                X,
                y,
                params[name],
                splits=splits,
                seed=settings.seed,
                n_jobs=settings.n_jobs,
            )
        progress.advance(ENSEMBLE, name)
    member_oof = {name: oof[name] for name in members}
    stacked = stacked_out_of_fold(member_oof, y, splits)
    X_train = validated.X.iloc[split.train]
    model = assemble(
        {name: fitted[name] for name in members},
        member_oof,
        y,
        X_train.head(5),
        n_folds=settings.cv_folds,
        seed=settings.seed,
    )
    if len(model.members_) < 2:
        progress.finish(ENSEMBLE, f"not formed: only {model.member_names_[0]} weighs positive")
        return None
    per_fold = [fold_scores(y[score], stacked[0][score]) for _, score in splits[0]]
    cv_mean = {m: float(np.mean([f[m] for f in per_fold])) for m in CV_METRICS}
    cv_std = {m: float(np.std([f[m] for f in per_fold])) for m in CV_METRICS}
    X_val, y_val = validated.X.iloc[split.validation], validated.y[split.validation]
    validation = classification_metrics(
        y_val, model.predict_proba(X_val)[:, 1], threshold=settings.decision_threshold
    )
    stack = {
        "members": members,
        "kept": list(model.member_names_),
        "weights": [round(float(w), 6) for w in model.weights_],
        "intercept": round(model.intercept_, 6),
    }
    label = ensemble_label(model.member_names_)
    with tracking.start_run(ENSEMBLE, nested=True) as run:
        tracking.set_tags({"candidate": ENSEMBLE, "tuner": "stacking"})
        tracking.log_params(
            {
                **{f"param_{k}": v for k, v in stack.items()},
                "calibration": "stacked",
                "imbalance_handling": _IMBALANCE,
                "tuner": "stacking",
            }
        )
        tracking.log_metrics(cv_mean, prefix="cv_")
        tracking.log_metrics({f"{k}_std": v for k, v in cv_std.items()}, prefix="cv_")
        tracking.log_metrics(validation, prefix="validation_")
        tracking.log_metrics({"fit_seconds": time.perf_counter() - started})
        tracking.log_dict(stack, "ensemble.json")
        info = tracking.log_model(model, validated.spec, X_train.head(5))
    progress.finish(
        ENSEMBLE, f"CV AUC {cv_mean['roc_auc']:.4f}, validation AUC {validation['roc_auc']:.4f}"
    )
    result = CandidateResult(
        name=ENSEMBLE,
        label=label,
        complexity=ENSEMBLE_COMPLEXITY,
        params=stack,
        calibration="stacked",
        cv_auc_mean=cv_mean["roc_auc"],
        cv_auc_std=cv_std["roc_auc"],
        cv={"mean": cv_mean, "std": cv_std},
        fold_aucs=aucs_by_fold(y, stacked, splits),
        validation=validation,
        fit_seconds=time.perf_counter() - started,
        run_id=run.info.run_id,
        model_uri=info.model_uri,
    )
    return result, model


__all__ = [
    "ENSEMBLE",
    "ENSEMBLE_COMPLEXITY",
    "assemble",
    "choose_members",
    "ensemble_label",
    "stacked_out_of_fold",
    "train_ensemble",
]
