"""The counterfactual hint: only actionable features move, within their observed range, and a
hint that cannot be found says why."""

import numpy as np
import pandas as pd
import pytest

from creditops.data.datasets import CATALOG
from creditops.evaluation.counterfactual import counterfactual
from creditops.exceptions import ConfigurationError

CREDIT_DATA_ACTIONABLE = CATALOG["credit_data"].spec.actionable


def _declined(model, X, threshold, upper):
    proba = model.predict_proba(X)[:, 1]
    candidates = np.flatnonzero((proba >= threshold) & (proba < upper))
    assert candidates.size, "the fixture should hold a narrowly declined applicant"
    return X.iloc[[candidates[0]]]


@pytest.mark.parametrize("name", ["logistic_regression", "xgboost"])
def test_counterfactual_changes_only_actionable_features_within_range(credit_case, name):
    model, spec, threshold = credit_case.models[name], credit_case.spec, 0.5
    row = _declined(model, credit_case.X_test, threshold, 0.6)
    result = counterfactual(model, row, spec, threshold=threshold)
    assert result.found, result.reason
    assert result.actionable == CREDIT_DATA_ACTIONABLE
    assert 1 <= len(result.changes) <= 2
    schema = {s.name: s for s in spec.schema_}
    moved = row.copy()
    for change in result.changes:
        assert change.feature in CREDIT_DATA_ACTIONABLE
        assert schema[change.feature].minimum <= change.proposed <= schema[change.feature].maximum
        assert change.original == row[change.feature].iloc[0]
        if change.direction == "decrease":
            assert change.proposed < change.original
        moved[change.feature] = change.proposed
    independent = model.predict_proba(moved)[0, 1]
    assert result.new_proba == pytest.approx(independent)
    assert independent < threshold <= result.original_proba
    unchanged = [f for f in spec.features if f not in {c.feature for c in result.changes}]
    pd.testing.assert_frame_equal(moved[unchanged], row[unchanged])
    spans = {
        c.feature: schema[c.feature].maximum - schema[c.feature].minimum for c in result.changes
    }
    assert result.distance == pytest.approx(
        sum(abs(c.proposed - c.original) / spans[c.feature] for c in result.changes)
    )


def test_counterfactual_reports_why_when_nothing_is_found(credit_case):
    model, spec = credit_case.models["logistic_regression"], credit_case.spec
    proba = model.predict_proba(credit_case.X_test)[:, 1]
    approved = credit_case.X_test.iloc[[int(np.argmin(proba))]]
    result = counterfactual(model, approved, spec, threshold=0.5)
    assert not result.found
    assert "not declined" in result.reason
    riskiest = credit_case.X_test.iloc[[int(np.argmax(proba))]]
    hopeless = counterfactual(
        model, riskiest, spec, threshold=0.01, actionable={"Expenses": "decrease"}
    )
    assert not hopeless.found
    assert hopeless.changes == []
    assert hopeless.actionable == {"Expenses": "decrease"}
    assert hopeless.best_proba >= 0.01
    assert "below" in hopeless.reason


def test_counterfactual_refuses_protected_or_unknown_levers(credit_case):
    model, spec = credit_case.models["logistic_regression"], credit_case.spec
    row = credit_case.X_test.iloc[[0]]
    protected_feature = spec.model_copy(update={"numeric": [*spec.numeric, "Age"]})
    with pytest.raises(ConfigurationError, match=r"protected"):
        counterfactual(model, row, protected_feature, threshold=0.5, actionable={"Age": "any"})
    with pytest.raises(ConfigurationError, match=r"numeric feature"):
        counterfactual(model, row, spec, threshold=0.5, actionable={"Home": "any"})
