"""Fitted models on credit_data shared by the evaluation tests (fitted once per session).

Each model is built exactly as training builds it (the zoo pipelines, calibrated with
CalibratedClassifierCV(ensemble=False) where noted) but with small settings to stay fast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from creditops.data.datasets import load_builtin
from creditops.data.spec import ResolvedSpec
from creditops.data.split import Split, split_dataset
from creditops.data.validate import validate_dataset
from creditops.models.ensemble import StackedEnsembleClassifier
from creditops.models.zoo import CANDIDATES, FeatureSet

# The stacked ensemble's members: log-odds (linear, points, TreeSHAP) and probability (forest)
ENSEMBLE_MEMBERS = ("logistic_regression", "scorecard", "random_forest", "lightgbm")

FAST_PARAMS = {
    "logistic_regression": {},
    "pca_logistic": {"n_components": 0.9},
    "random_forest": {"n_estimators": 60, "max_depth": 8, "min_samples_leaf": 5},
    "xgboost": {"n_estimators": 80, "max_depth": 3},
    "lightgbm": {"n_estimators": 200},
    "neural_network": {"max_epochs": 20},
}


@dataclass
class CreditCase:
    """credit_data validated and split, with fitted models keyed by candidate name."""

    spec: ResolvedSpec
    frame: pd.DataFrame  # validated frame: features, target, protected attributes, id
    X_train: pd.DataFrame
    y_train: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    protected_test: pd.DataFrame  # Age, Marital for the test rows
    models: dict[
        str, object
    ]  # plain pipelines by candidate name, plus "calibrated_xgboost", "calibrated_random_forest"
    # and "calibrated_scorecard", and "ensemble" (stacked on ENSEMBLE_MEMBERS)
    split: Split


@pytest.fixture(scope="session")
def credit_case() -> CreditCase:
    frame, spec = load_builtin("credit_data")
    validated = validate_dataset(frame, spec, dataset_name="credit_data")
    split = split_dataset(validated, seed=42)
    features = FeatureSet(validated.spec.numeric, validated.spec.categorical)
    X, y = validated.X, validated.y
    X_train, y_train = X.iloc[split.train], y[split.train]
    pos_weight = float((y_train == 0).sum() / y_train.sum())
    models: dict[str, object] = {}
    for name, params in FAST_PARAMS.items():
        models[name] = CANDIDATES[name].build(features, params, pos_weight, 0).fit(X_train, y_train)
    # The scorecard with the spec's monotone expectations, as training builds it.
    monotone = FeatureSet.from_spec(validated.spec)
    models["scorecard"] = CANDIDATES["scorecard"].build(monotone, {}, pos_weight, 0)
    models["scorecard"].fit(X_train, y_train)
    models["calibrated_scorecard"] = CalibratedClassifierCV(
        CANDIDATES["scorecard"].build(monotone, {}, pos_weight, 0),
        method="sigmoid",
        cv=3,
        ensemble=False,
    ).fit(X_train, y_train)
    models["calibrated_xgboost"] = CalibratedClassifierCV(
        CANDIDATES["xgboost"].build(features, FAST_PARAMS["xgboost"], pos_weight, 0),
        method="sigmoid",
        cv=3,
        ensemble=False,
    ).fit(X_train, y_train)
    models["calibrated_random_forest"] = CalibratedClassifierCV(
        CANDIDATES["random_forest"].build(features, FAST_PARAMS["random_forest"], pos_weight, 0),
        method="isotonic",
        cv=3,
        ensemble=False,
    ).fit(X_train, y_train)
    # The stacked ensemble as training assembles it: members fitted on every training row,
    # stacked on their out-of-fold predictions.
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    out_of_fold = np.column_stack(
        [
            cross_val_predict(clone(models[m]), X_train, y_train, cv=folds, method="predict_proba")[
                :, 1
            ]
            for m in ENSEMBLE_MEMBERS
        ]
    )
    models["ensemble"] = StackedEnsembleClassifier.from_fitted(
        [(m, models[m]) for m in ENSEMBLE_MEMBERS], out_of_fold, y_train, X_train.head(5)
    )
    test = split.test
    return CreditCase(
        spec=validated.spec,
        frame=validated.frame,
        X_train=X_train,
        y_train=y_train,
        X_test=X.iloc[test],
        y_test=y[test],
        protected_test=validated.frame.iloc[test][validated.spec.protected],
        models=models,
        split=split,
    )
