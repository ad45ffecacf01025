"""Every candidate is a pipeline that survives what production sends: missing values, categories
never seen in training, integer columns, and columns in another order."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from creditops.data.datasets import load_builtin
from creditops.data.validate import validate_dataset
from creditops.exceptions import ConfigurationError
from creditops.models.zoo import CANDIDATES, FeatureSet, get_candidates

FAST_PARAMS = {
    "logistic_regression": {},
    "scorecard": {},
    "pca_logistic": {},
    "random_forest": {"n_estimators": 50, "max_depth": 6},
    "xgboost": {"n_estimators": 50},
    "lightgbm": {"n_estimators": 100},
    "neural_network": {"max_epochs": 15},
}


@pytest.fixture(scope="module")
def data():
    frame, spec = load_builtin("credit_data")
    validated = validate_dataset(frame, spec)
    features = FeatureSet.from_spec(validated.spec)
    return validated, features


@pytest.mark.parametrize("name", list(CANDIDATES))
def test_candidate_handles_missing_and_unseen_values(name, data):
    validated, features = data
    X, y = validated.X, validated.y
    model = CANDIDATES[name].build(features, FAST_PARAMS[name], 2.5, 0)
    model.fit(X.iloc[:3000], y[:3000])

    held_out = X.iloc[3000:].copy()
    assert roc_auc_score(y[3000:], model.predict_proba(held_out)[:, 1]) > 0.75

    odd = held_out.head(20).copy()
    odd.loc[odd.index[:5], "Income"] = np.nan
    odd.loc[odd.index[5:10], "Home"] = "castle"  # never seen in training
    odd.loc[odd.index[10:15], "Job"] = None
    odd = odd[list(reversed(odd.columns))]  # column order must not matter
    proba = model.predict_proba(odd)[:, 1]
    assert np.isfinite(proba).all()
    assert ((proba >= 0) & (proba <= 1)).all()


def test_candidates_come_in_order_of_complexity():
    names = [c.name for c in get_candidates()]
    assert names == [
        "logistic_regression",
        "scorecard",
        "pca_logistic",
        "random_forest",
        "lightgbm",
        "xgboost",
        "neural_network",
    ]
    assert [c.name for c in get_candidates(["xgboost", "logistic_regression"])] == [
        "logistic_regression",
        "xgboost",
    ]


def test_unknown_candidate_is_named():
    with pytest.raises(ConfigurationError, match=r"unknown model.*'?svm'?"):
        get_candidates(["svm"])
