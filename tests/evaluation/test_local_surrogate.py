"""LIME: seeded, on the original features, with missing values imputed for LIME only."""

import json

import numpy as np
import pytest

from creditops.evaluation.local_surrogate import explain_lime


def test_lime_is_seeded_and_names_original_features(credit_case):
    model = credit_case.models["xgboost"]
    sample = credit_case.X_train.iloc[:400]
    row = credit_case.X_test.iloc[[5]]
    first = explain_lime(model, sample, row, credit_case.spec, num_samples=800, seed=3)
    again = explain_lime(model, sample, row, credit_case.spec, num_samples=800, seed=3)
    other = explain_lime(model, sample, row, credit_case.spec, num_samples=800, seed=4)
    assert first == again
    assert first.weights != other.weights
    assert 0 < len(first.weights) <= 6
    assert all(np.isfinite(w.weight) for w in first.weights)
    assert all(w.feature in credit_case.spec.features for w in first.weights)
    assert all(w.feature in w.condition for w in first.weights)
    assert first.model_proba == pytest.approx(model.predict_proba(row)[0, 1])
    assert np.isfinite([first.intercept, first.local_prediction, first.score]).all()
    json.dumps(first.model_dump(mode="json"))


def test_lime_handles_missing_numeric_and_categorical_values(credit_case):
    model = credit_case.models["logistic_regression"]
    row = credit_case.X_test.iloc[[0]].copy()
    row["Income"] = np.nan
    row["Home"] = np.nan
    result = explain_lime(
        model, credit_case.X_train.iloc[:300], row, credit_case.spec, num_samples=500
    )
    assert result.imputed_for_lime == ["Income"]
    assert result.model_proba == pytest.approx(model.predict_proba(row)[0, 1])
