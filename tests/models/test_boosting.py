"""The LightGBM candidate: the scikit-learn contract, early stopping, native categories and
monotone constraints from the spec."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from creditops.data.datasets import load_builtin
from creditops.data.split import split_dataset
from creditops.data.validate import validate_dataset
from creditops.evaluation.behaviour import behaviour_checks
from creditops.models.boosting import BoostedTreesClassifier
from creditops.models.zoo import CANDIDATES, FeatureSet


@parametrize_with_checks([BoostedTreesClassifier(n_estimators=20, random_state=0)])
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    # sklearn skips its array-API check unless this is set; the NumPy variant runs for real
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


@pytest.fixture(scope="module")
def credit():
    frame, spec = load_builtin("credit_data")
    validated = validate_dataset(frame, spec)
    split = split_dataset(validated, seed=42)
    return validated, split


def _fit(credit, params=None):
    validated, split = credit
    features = FeatureSet.from_spec(validated.spec)
    pipeline = CANDIDATES["lightgbm"].build(features, params or {}, 1.0, 0)
    return pipeline.fit(validated.X.iloc[split.train], validated.y[split.train])


def test_early_stopping_keeps_only_the_trees_up_to_the_best_round(credit):
    model = _fit(credit)[-1]
    assert 1 <= model.n_estimators_ < model.n_estimators
    assert model.booster_.num_trees() == model.n_estimators_


def test_categories_are_split_natively(credit):
    pipeline = _fit(credit)
    names = list(pipeline[0].get_feature_names_out())
    model = pipeline[-1]
    assert [names[c] for c in model.categorical_columns] == [
        "categorical__Home",
        "categorical__Job",
    ]
    dump = model.booster_.dump_model()
    decisions = set()

    def walk(node):
        if "split_feature" in node:
            decisions.add((node["split_feature"], node["decision_type"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in dump["tree_info"]:
        walk(tree["tree_structure"])
    categorical_splits = {f for f, kind in decisions if kind == "=="}
    assert categorical_splits <= set(model.categorical_columns)
    assert categorical_splits  # Home or Job is split on by category


def test_the_spec_monotone_expectations_hold_by_construction(credit):
    validated, split = credit
    constrained = _fit(credit)
    free = _fit(credit, {"monotone": False})
    assert list(constrained[-1].monotone_constraints)[5] == 1  # Debt, the sixth numeric
    rows = validated.X.iloc[split.test]
    report = behaviour_checks(constrained, rows, validated.spec, tolerance=0.0)
    assert {c.feature for c in report.checks} >= {"Debt", "Records"}
    assert all(c.violations == 0 for c in report.checks), report
    # without the constraint the trees are free to bend the other way somewhere
    assert free[-1].monotone_constraints == ()


def test_unseen_and_missing_categories_score(credit):
    validated, split = credit
    pipeline = _fit(credit)
    rows = validated.X.iloc[split.test[:3]].copy()
    rows.loc[rows.index[0], "Home"] = "houseboat"
    rows.loc[rows.index[1], "Job"] = None
    rows.loc[rows.index[2], "Income"] = np.nan
    proba = pipeline.predict_proba(rows)[:, 1]
    assert np.isfinite(proba).all()


def test_constraints_must_match_the_columns():
    X = np.random.default_rng(0).normal(size=(50, 3))
    y = (X[:, 0] > 0).astype(int)
    with pytest.raises(ValueError, match="monotone_constraints has 2 entries for 3 columns"):
        BoostedTreesClassifier(monotone_constraints=(1, 0)).fit(X, y)
