"""The table-driven interventional TreeSHAP equals shap's own, value for value: on the zoo's
XGBoost, on deep trees that reuse features along a path, with missing values going each node's
default way, and with early stopping; what the tables cannot hold is left to shap."""

import numpy as np
import pandas as pd
import pytest
import shap
import xgboost

from creditops.evaluation.explain import build_explainer
from creditops.evaluation.treeshap import InterventionalTreeShap
from creditops.exceptions import UnsupportedModel


def _shap_interventional(model, background, rows):
    explainer = shap.TreeExplainer(
        model, data=background, feature_perturbation="interventional", model_output="raw"
    )
    return np.asarray(explainer.shap_values(rows, check_additivity=False)), float(
        np.atleast_1d(explainer.expected_value)[-1]
    )


def test_the_zoos_xgboost_is_explained_by_the_tables_exactly(credit_case):
    explainer = build_explainer(
        credit_case.models["xgboost"], credit_case.X_train, credit_case.spec
    )
    assert explainer._native is not None  # the tables, not shap
    Xt = explainer.transform(credit_case.X_test)
    expected, base = _shap_interventional(
        credit_case.models["xgboost"][-1], explainer.background, Xt
    )
    np.testing.assert_allclose(explainer.transformed_contributions(Xt), expected, atol=1e-6)
    assert explainer.base_value == pytest.approx(base, abs=1e-6)


def test_deep_trees_missing_values_and_early_stopping():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] - 0.5 * X[:, 3] ** 2 + rng.normal(size=3000) > 0).astype(int)
    X[rng.random(X.shape) < 0.15] = np.nan  # missing everywhere, learned default directions
    model = xgboost.XGBClassifier(
        n_estimators=400, max_depth=6, learning_rate=0.1, early_stopping_rounds=10,
        eval_metric="logloss",
    )  # fmt: skip
    model.fit(X[:2000], y[:2000], eval_set=[(X[2000:2500], y[2000:2500])], verbose=False)
    assert model.best_iteration < 399  # stopped early: only the kept trees are explained
    background, rows = X[2500:2600], X[2600:]
    tables = InterventionalTreeShap(model, background)
    assert tables.slots >= 4  # paths that test a feature more than once share one slot
    values = tables.contributions(rows)
    expected, base = _shap_interventional(model, background, rows)
    np.testing.assert_allclose(values[:, :-1], expected, atol=1e-6)
    assert values[0, -1] == pytest.approx(base, abs=1e-6)
    margin = model.predict(rows, output_margin=True)
    np.testing.assert_allclose(values.sum(axis=1), margin, atol=1e-4)  # additive


def test_one_row_at_a_time_values_on_the_splits_and_infinities_match_shap():
    """A single decision takes the row-by-row loop and a batch the leaf-by-leaf one: both give
    shap's values, for values exactly on a split (which go right, as in XGBoost), and for
    infinities (which no validated application holds, but the tables must not misplace)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(1500, 4)).astype(np.float32)
    y = (X[:, 0] - X[:, 1] + X[:, 2] * X[:, 3] + rng.normal(size=1500) > 0).astype(int)
    model = xgboost.XGBClassifier(n_estimators=60, max_depth=5, learning_rate=0.2)
    model.fit(X, y)
    splits = model.get_booster().trees_to_dataframe()
    splits = splits[splits["Feature"] != "Leaf"]
    rows = X[1000:1040].copy()
    for i, (_, node) in enumerate(splits.head(20).iterrows()):
        rows[i, int(str(node["Feature"]).removeprefix("f"))] = node["Split"]  # on the split
    rows[20:25, 0], rows[25:30, 1], rows[30:35, 2] = np.inf, -np.inf, np.nan
    background = X[:100]
    tables = InterventionalTreeShap(model, background)
    expected, _ = _shap_interventional(model, background, rows)
    batch = tables.contributions(rows)
    one_by_one = np.vstack([tables.contributions(rows[i : i + 1]) for i in range(len(rows))])
    np.testing.assert_allclose(batch[:, :-1], expected, atol=1e-6)
    np.testing.assert_allclose(one_by_one, batch, atol=1e-12)


def test_categorical_splits_are_left_to_shap():
    frame = pd.DataFrame(
        {"home": pd.Categorical(["own", "rent", "other", "rent"] * 100), "debt": range(400)}
    )
    y = (frame["home"] == "rent").astype(int) ^ (frame["debt"] % 3 == 0).astype(int)
    model = xgboost.XGBClassifier(n_estimators=5, enable_categorical=True, tree_method="hist")
    model.fit(frame, y)
    with pytest.raises(UnsupportedModel, match="categorical"):
        InterventionalTreeShap(model, frame.head(20))


def test_a_missing_value_other_than_nan_is_left_to_shap():
    """XGBoost sends its ``missing`` value (here 0) the default way; the tables send NaN only,
    so such a model must not be explained by them."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 3)).astype(np.float32)
    X[rng.random(X.shape) < 0.2] = 0.0
    y = (X[:, 0] > 0).astype(int)
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=3, missing=0.0).fit(X, y)
    with pytest.raises(UnsupportedModel, match="missing value other than NaN"):
        InterventionalTreeShap(model, X[:50])
    default = xgboost.XGBClassifier(n_estimators=5, max_depth=3).fit(X, y)
    InterventionalTreeShap(default, X[:50])  # NaN, the default: the tables hold it
