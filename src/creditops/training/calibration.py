"""Fit the tuned pipeline and calibrate its probabilities only when that helps.

Class weights improve ranking on imbalanced data but inflate the predicted default rate, and
forests are under-confident; a calibrator fitted on out-of-fold training predictions usually
repairs that. The choice (none, sigmoid or isotonic) is made on validation log loss, so a
calibrator is kept only when it measurably improves the probabilities the business will use.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

from creditops.training.offload import Offload
from creditops.training.tune import make_folds

CALIBRATION_METHODS = ("none", "sigmoid", "isotonic")


@dataclass
class FittedCandidate:
    model: BaseEstimator
    calibration: str
    validation_log_loss: dict[str, float]
    # Where the model itself was fitted: "here", or the offload's name (e.g. "xgboost.dask").
    fitted_on: str = "here"


def fit_calibrated(
    pipeline: BaseEstimator,
    X: pd.DataFrame,
    y: np.ndarray,
    method: str,
    *,
    n_folds: int,
    seed: int,
    n_jobs: int,
) -> BaseEstimator:
    """The pipeline fitted on all of ``X``, with ``method``'s calibrator (fitted on
    out-of-fold predictions) around it unless ``method`` is "none"."""
    if method == "none":
        return clone(pipeline).fit(X, y)
    calibrated = CalibratedClassifierCV(
        clone(pipeline),
        method=method,
        cv=make_folds(n_folds, seed),
        ensemble=False,
        n_jobs=n_jobs,
    )
    return calibrated.fit(X, y)


def fit_with_calibration(
    pipeline: BaseEstimator,
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_val: pd.DataFrame,
    y_val: np.ndarray,
    *,
    n_folds: int,
    seed: int,
    n_jobs: int,
) -> FittedCandidate:
    fitted = {
        method: fit_calibrated(
            pipeline, X_train, y_train, method, n_folds=n_folds, seed=seed, n_jobs=n_jobs
        )
        for method in CALIBRATION_METHODS
    }
    losses = {
        method: float(log_loss(y_val, model.predict_proba(X_val)[:, 1], labels=[0, 1]))
        for method, model in fitted.items()
    }
    # Prefer no calibrator unless one wins clearly: fewer moving parts in production.
    best = min(losses, key=lambda m: losses[m] + (0.0 if m == "none" else 1e-4))
    return FittedCandidate(model=fitted[best], calibration=best, validation_log_loss=losses)


def fit_with_holdout_calibration(
    pipeline: BaseEstimator,
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_val: pd.DataFrame,
    y_val: np.ndarray,
    *,
    seed: int,
    offload: Offload | None = None,
) -> FittedCandidate:
    """One fit on all training rows, calibrated on the validation split: for large data, where
    the out-of-fold calibration of :func:`fit_with_calibration` costs many full fits. The fit
    runs on ``offload`` (a Dask cluster) when it takes this model and data.

    Each calibrator is fitted on one half of validation and judged by log loss on the other
    half; the chosen one is then refitted on all of validation around the frozen model. The
    calibrator is monotone, so what validation says about ranking is unchanged.
    """
    model, fitted_on = None, "here"
    if offload is not None:
        model = offload.fit(pipeline, X_train, y_train)
        fitted_on = "here" if model is None else offload.name
    if model is None:
        model = clone(pipeline).fit(X_train, y_train)
    fit_half, judge_half = train_test_split(
        np.arange(len(y_val)), test_size=0.5, stratify=y_val, random_state=seed
    )
    judged = X_val.iloc[judge_half]
    losses = {
        "none": float(log_loss(y_val[judge_half], model.predict_proba(judged)[:, 1], labels=[0, 1]))
    }
    for method in CALIBRATION_METHODS[1:]:
        calibrated = CalibratedClassifierCV(FrozenEstimator(model), method=method)
        calibrated.fit(X_val.iloc[fit_half], y_val[fit_half])
        proba = calibrated.predict_proba(judged)[:, 1]
        losses[method] = float(log_loss(y_val[judge_half], proba, labels=[0, 1]))
    best = min(losses, key=lambda m: losses[m] + (0.0 if m == "none" else 1e-4))
    if best != "none":
        model = CalibratedClassifierCV(FrozenEstimator(model), method=best).fit(X_val, y_val)
    return FittedCandidate(
        model=model, calibration=best, validation_log_loss=losses, fitted_on=fitted_on
    )
