"""The stacked ensemble: the scikit-learn contract, log-odds stacking, positive weights, and
assembling it from fitted members equal to fitting it whole."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit
from sklearn.base import clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.naive_bayes import GaussianNB
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.estimator_checks import parametrize_with_checks

from creditops.models.ensemble import (
    PROBABILITY_FLOOR,
    StackedEnsembleClassifier,
    fit_stacker,
    member_log_odds,
)


@parametrize_with_checks(
    [StackedEnsembleClassifier([("lr", LogisticRegression()), ("nb", GaussianNB())], cv=3)]
)
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(
        n_samples=1_200, n_features=8, n_informative=5, random_state=3, flip_y=0.05
    )
    return X, y


MEMBERS = [
    ("lr", LogisticRegression(C=0.5)),
    ("tree", DecisionTreeClassifier(max_depth=4, random_state=0)),
    ("nb", GaussianNB()),
]


def test_probability_is_the_stacked_log_odds_of_the_members(data):
    X, y = data
    model = StackedEnsembleClassifier(MEMBERS, cv=4, random_state=1).fit(X, y)
    log_odds = np.column_stack(
        [
            logit(np.clip(m.predict_proba(X)[:, 1], PROBABILITY_FLOOR, 1 - PROBABILITY_FLOOR))
            for m in model.members_
        ]
    )
    z = model.intercept_ + log_odds @ model.weights_
    np.testing.assert_allclose(model.decision_function(X), z, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.predict_proba(X)[:, 1], expit(z), rtol=0, atol=1e-15)
    assert (model.weights_ > 0).all()
    summary = model.summary()
    assert [m["name"] for m in summary["members"]] == model.member_names_
    assert summary["intercept"] == pytest.approx(model.intercept_)


def test_assembled_from_fitted_members_equals_fitting_it_whole(data):
    X, y = data
    whole = StackedEnsembleClassifier(MEMBERS, cv=4, random_state=1).fit(X, y)
    folds = StratifiedKFold(n_splits=4, shuffle=True, random_state=1)
    oof = np.column_stack(
        [
            cross_val_predict(clone(m), X, y, cv=folds, method="predict_proba")[:, 1]
            for _, m in MEMBERS
        ]
    )
    fitted = [(name, clone(m).fit(X, y)) for name, m in MEMBERS]
    assembled = StackedEnsembleClassifier.from_fitted(fitted, oof, y, X[:5], cv=4, random_state=1)
    np.testing.assert_allclose(assembled.weights_, whole.weights_, rtol=0, atol=1e-12)
    np.testing.assert_allclose(
        assembled.predict_proba(X), whole.predict_proba(X), rtol=0, atol=1e-12
    )
    # Its parameters describe the recipe, so cloning and refitting rebuild it.
    refitted = clone(assembled).fit(X, y)
    np.testing.assert_allclose(refitted.predict_proba(X), whole.predict_proba(X), atol=1e-12)


def test_a_member_that_only_corrects_the_others_is_dropped(data):
    X, y = data
    rng = np.random.default_rng(0)
    good = expit(2.0 * X[:, 0] + X[:, 1] + rng.normal(0, 1, len(y)))
    also_good = expit(1.5 * X[:, 0] + rng.normal(0, 1, len(y)))
    # A third member that is the first turned around, plus a little of the outcome.
    contrary = expit(-2.0 * X[:, 0] - X[:, 1] + 0.3 * (y - 0.5))
    log_odds = member_log_odds(np.column_stack([good, also_good, contrary]))
    kept, weights, _ = fit_stacker(log_odds, y)
    free = LogisticRegression(max_iter=1000).fit(log_odds, y).coef_.ravel()
    assert free.min() <= 0  # the unconstrained stack would give a member a negative weight
    assert len(kept) < 3
    assert (weights > 0).all()


def test_probabilities_of_exactly_zero_or_one_are_clipped():
    odds = member_log_odds(np.array([0.0, 1.0, 0.5]))
    assert np.isfinite(odds).all()
    assert odds[0] == pytest.approx(logit(PROBABILITY_FLOOR))
    assert odds[2] == 0.0


def test_refuses_multiclass_and_single_member():
    X, y = make_classification(n_samples=90, n_classes=3, n_informative=4, random_state=0)
    with pytest.raises(ValueError, match="Only binary"):
        StackedEnsembleClassifier(MEMBERS, cv=3).fit(X, y)
    with pytest.raises(ValueError, match="at least two"):
        StackedEnsembleClassifier(MEMBERS[:1], cv=3).fit(X, y % 2)
