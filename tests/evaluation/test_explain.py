"""SHAP explanations: additivity on every model type, the linear fast path against shap itself,
and aggregation to original features."""

import json

import numpy as np
import pandas as pd
import pytest
import shap
from matplotlib.figure import Figure

from creditops.data.spec import FeatureSchema, ResolvedSpec
from creditops.evaluation.explain import (
    build_explainer,
    explain_global,
    explain_local,
    explain_rows,
)
from creditops.models.zoo import CANDIDATES, FeatureSet

MODELS = [
    "logistic_regression",
    "scorecard",
    "calibrated_scorecard",
    "pca_logistic",
    "random_forest",
    "xgboost",
    "lightgbm",
    "neural_network",
    "calibrated_xgboost",
    "calibrated_random_forest",
    "ensemble",
]
EXPECTED = {  # (method, output space) per model
    "logistic_regression": ("linear", "log_odds"),
    "scorecard": ("points", "log_odds"),
    "calibrated_scorecard": ("points", "log_odds"),
    "pca_logistic": ("linear", "log_odds"),
    "random_forest": ("tree_path_dependent", "probability"),
    "xgboost": ("tree_interventional", "log_odds"),
    "lightgbm": ("tree_path_dependent", "log_odds"),
    "neural_network": ("permutation", "log_odds"),
    "calibrated_xgboost": ("tree_interventional", "log_odds"),
    "calibrated_random_forest": ("tree_path_dependent", "probability"),
    "ensemble": ("stacked", "log_odds"),
}


@pytest.fixture(scope="module")
def explainers(credit_case):
    return {
        name: build_explainer(credit_case.models[name], credit_case.X_train, credit_case.spec)
        for name in MODELS
    }


def _pipeline(model):
    return (
        model.calibrated_classifiers_[0].estimator
        if hasattr(model, "calibrated_classifiers_")
        else model
    )


def _independent_raw(name, model, X):
    """The pre-calibration output each explainer claims to explain, straight from the model."""
    pipeline = _pipeline(model)
    if "random_forest" in name:
        return pipeline.predict_proba(X)[:, 1]
    if "xgboost" in name:
        return pipeline[-1].predict(pipeline[:-1].transform(X), output_margin=True)
    return pipeline.decision_function(X)


def _feature_of(column: str, spec: ResolvedSpec) -> str:
    """credit_data's preprocessed column names, mapped back by hand."""
    inner = column.split("__", 1)[1].removeprefix("missingindicator_")
    return next(f for f in spec.features if inner == f or inner.startswith(f + "_"))


@pytest.mark.parametrize("name", MODELS)
def test_base_plus_contributions_is_the_raw_model_output(credit_case, explainers, name):
    explainer = explainers[name]
    model = credit_case.models[name]
    rows = credit_case.X_test.iloc[:25]
    results = explain_rows(explainer, rows)
    raw = np.asarray(_independent_raw(name, model, rows), dtype=float)
    # XGBoost adds its float32 leaves in float32; shap adds them in float64.
    tolerance = 5e-6 if "xgboost" in name else 1e-6
    assert (explainer.method, explainer.output_space) == EXPECTED[name]
    for result, expected_raw, proba in zip(
        results, raw, model.predict_proba(rows)[:, 1], strict=True
    ):
        total = result.base_value + sum(c.contribution for c in result.contributions)
        assert result.raw_output == pytest.approx(expected_raw, abs=1e-9)
        assert total == pytest.approx(result.raw_output, abs=tolerance)
        assert result.proba == pytest.approx(proba, abs=1e-12)
        assert [c.feature for c in result.contributions] == credit_case.spec.features
    # One-row calls agree with the batch and serialise to plain JSON.
    single = explain_local(explainer, rows.iloc[[3]])
    assert [c.contribution for c in single.contributions] == pytest.approx(
        [c.contribution for c in results[3].contributions], abs=1e-12
    )
    assert single.proba == pytest.approx(results[3].proba, abs=1e-12)
    assert json.loads(json.dumps(single.model_dump(mode="json")))["schema_version"] == 1


def test_calibrated_proba_differs_from_the_explained_raw_output(credit_case, explainers):
    result = explain_local(explainers["calibrated_xgboost"], credit_case.X_test.iloc[[0]])
    assert result.calibrated
    assert not explain_local(explainers["xgboost"], credit_case.X_test.iloc[[0]]).calibrated
    assert result.proba != pytest.approx(1 / (1 + np.exp(-result.raw_output)), abs=1e-4)


def test_linear_fast_path_equals_shap_linear_explainer(credit_case, explainers):
    explainer = explainers["logistic_regression"]
    pipeline = credit_case.models["logistic_regression"]
    Xt = explainer.transform(credit_case.X_test.iloc[:40])
    reference = shap.LinearExplainer(pipeline[-1], explainer.background)
    np.testing.assert_allclose(
        explainer.transformed_contributions(Xt), reference.shap_values(Xt), atol=1e-12
    )
    assert explainer.base_value == pytest.approx(float(reference.expected_value), abs=1e-12)


def test_pca_logistic_is_exact_in_the_pre_pca_space(credit_case, explainers):
    explainer = explainers["pca_logistic"]
    pipeline = credit_case.models["pca_logistic"]
    pca, lr = pipeline.named_steps["pca"], pipeline.named_steps["model"]
    coef = pca.components_.T @ lr.coef_.ravel()
    intercept = lr.intercept_[0] - pca.mean_ @ coef
    Xt = explainer.transform(credit_case.X_test.iloc[:40])
    reference = shap.LinearExplainer((coef, intercept), explainer.background)
    np.testing.assert_allclose(
        explainer.transformed_contributions(Xt), reference.shap_values(Xt), atol=1e-10
    )
    # The PCA-space explanation of the same model has the same total per row.
    in_pca = shap.LinearExplainer(lr, pca.transform(explainer.background))
    np.testing.assert_allclose(
        explainer.contributions(Xt).sum(axis=1),
        in_pca.shap_values(pca.transform(Xt)).sum(axis=1),
        atol=1e-10,
    )


@pytest.mark.parametrize("name", ["scorecard", "calibrated_scorecard"])
def test_scorecard_contributions_are_points_lost_against_each_best_bin(
    credit_case, explainers, name
):
    from creditops.evaluation.points import applicant_points, points_table
    from creditops.evaluation.policy import ScoreScale

    explainer, model = explainers[name], credit_case.models[name]
    rows = credit_case.X_test.iloc[:60]
    contributions = explainer.contributions(explainer.transform(rows))
    assert (contributions >= -1e-12).all()  # nothing beats a feature's best bin
    scale = ScoreScale()
    table = points_table(model, scale)
    scored = applicant_points(model, rows, scale)
    features = list(credit_case.spec.features)
    for feature in features:
        j = features.index(feature)
        if feature not in table.features:
            assert (contributions[:, j] == 0).all()  # left out by the scorecard
            continue
        _, best = table.feature_range(feature)
        lost = best - scored[feature].to_numpy()
        # explained: the scorecard's own log-odds; the table folds a sigmoid calibration
        # (p = expit(−(a·L + b))) into its points, scaling every term by −a
        multiplier = 1.0
        if name == "calibrated_scorecard":
            multiplier = -model.calibrated_classifiers_[0].calibrators[0].a_
        np.testing.assert_allclose(
            scale.factor * multiplier * contributions[:, j], lost, rtol=0, atol=1e-9
        )


@pytest.mark.parametrize("name", ["logistic_regression", "random_forest", "xgboost"])
def test_feature_contribution_is_the_sum_of_its_columns(credit_case, explainers, name):
    explainer = explainers[name]
    Xt = explainer.transform(credit_case.X_test.iloc[:30])
    per_column = explainer.transformed_contributions(Xt)
    owners = [_feature_of(c, credit_case.spec) for c in explainer.column_names]
    assert {"Home", "Income", "Records"} <= set(owners)
    expected = np.column_stack(
        [
            per_column[:, [i for i, o in enumerate(owners) if o == feature]].sum(axis=1)
            for feature in credit_case.spec.features
        ]
    )
    np.testing.assert_allclose(explainer.contributions(Xt), expected, atol=1e-12)


def test_tree_values_match_a_fresh_shap_tree_explainer(credit_case, explainers):
    explainer = explainers["random_forest"]
    forest = credit_case.models["random_forest"][-1]
    Xt = explainer.transform(credit_case.X_test.iloc[:10])
    direct = shap.TreeExplainer(forest).shap_values(Xt)[..., 1]
    np.testing.assert_allclose(explainer.transformed_contributions(Xt), direct, atol=1e-12)


def test_xgboost_path_dependent_values_are_xgboosts_own_and_add_up(credit_case):
    model = credit_case.models["xgboost"]
    explainer = build_explainer(
        model, credit_case.X_train, credit_case.spec, tree_perturbation="tree_path_dependent"
    )
    assert (explainer.method, explainer.output_space) == ("tree_path_dependent", "log_odds")
    rows = credit_case.X_test.iloc[:40]
    Xt = explainer.transform(rows)
    direct = shap.TreeExplainer(model[-1], feature_perturbation="tree_path_dependent")
    np.testing.assert_allclose(
        explainer.transformed_contributions(Xt), direct.shap_values(Xt), atol=1e-5
    )
    margin = model[-1].predict(Xt, output_margin=True)
    for result, raw in zip(explain_rows(explainer, rows), margin, strict=True):
        total = result.base_value + sum(c.contribution for c in result.contributions)
        assert total == pytest.approx(float(raw), abs=5e-6)
    # Not the interventional values: another attribution of the same margin.
    interventional = build_explainer(model, credit_case.X_train, credit_case.spec)
    assert not np.allclose(interventional.contributions(Xt), explainer.contributions(Xt))


def _toy_spec() -> ResolvedSpec:
    return ResolvedSpec(
        dataset="toy",
        target="y",
        positive=1,
        negative=0,
        protected=[],
        id=None,
        numeric=["debt", "income"],
        categorical=["home"],
        schema=[
            FeatureSchema(name="debt", kind="numeric", missing_rate=0.1, minimum=0, maximum=10),
            FeatureSchema(name="income", kind="numeric", missing_rate=0.0, minimum=0, maximum=9),
            FeatureSchema(
                name="home", kind="categorical", missing_rate=0.0, categories=["own", "rent"]
            ),
        ],
        n_rows=8,
        positive_rate=0.5,
    )


def test_hand_made_linear_model_contributions_by_hand():
    """coef · (x − background mean), summed over a feature's value and missing-flag columns."""
    X = pd.DataFrame(
        {
            "debt": [1.0, np.nan, 3.0, 8.0, 2.0, 9.0, np.nan, 5.0],
            "income": [9.0, 7.0, 4.0, 1.0, 8.0, 2.0, 3.0, 6.0],
            "home": ["own", "rent", "own", "rent", "own", "rent", "rent", "own"],
        }
    )
    y = np.array([0, 1, 0, 1, 0, 1, 1, 0])
    model = (
        CANDIDATES["logistic_regression"]
        .build(FeatureSet(["debt", "income"], ["home"]), {}, 1.0, 0)
        .fit(X, y)
    )
    explainer = build_explainer(model, X, _toy_spec())
    pre, lr = model[0], model[-1]
    names = list(pre.get_feature_names_out())
    Z = pre.transform(X)
    coef, mean = lr.coef_.ravel(), Z.mean(axis=0)
    row = X.iloc[[1]]  # debt missing: its value and its indicator both count for "debt"
    z = pre.transform(row)[0]
    by_hand = {
        feature: sum(
            coef[i] * (z[i] - mean[i])
            for i, n in enumerate(names)
            if n.endswith(feature)
            or n.startswith(f"categorical__{feature}_")
            or n == f"numeric__{feature}"
        )
        for feature in ["debt", "income", "home"]
    }
    assert "numeric__missingindicator_debt" in names
    result = explain_local(explainer, row)
    assert {c.feature: c.contribution for c in result.contributions} == pytest.approx(by_hand)
    assert result.contributions[0].value is None  # missing debt reported as missing
    assert result.contributions[2].value == "rent"
    assert result.base_value == pytest.approx(lr.intercept_[0] + coef @ mean)


def test_permutation_explainer_is_deterministic_and_leaves_numpy_rng_alone(credit_case, explainers):
    explainer = explainers["neural_network"]
    row = credit_case.X_test.iloc[[7]]
    np.random.seed(123)
    expected_draw = np.random.random()
    np.random.seed(123)
    first = explain_local(explainer, row)
    second = explain_rows(explainer, credit_case.X_test.iloc[[2, 7]])[1]
    assert np.random.random() == expected_draw
    assert first.contributions == second.contributions


def test_explain_local_takes_one_row(credit_case, explainers):
    explainer = explainers["logistic_regression"]
    with pytest.raises(ValueError, match=r"one row"):
        explain_local(explainer, credit_case.X_test.iloc[:2])
    as_series = explain_local(explainer, credit_case.X_test.iloc[0])
    assert as_series.raw_output == pytest.approx(
        explain_local(explainer, credit_case.X_test.iloc[[0]]).raw_output
    )


@pytest.mark.parametrize("name", ["logistic_regression", "random_forest", "neural_network"])
def test_global_importance_is_sorted_mean_abs_per_feature(credit_case, explainers, name):
    explainer = explainers[name]
    rows = credit_case.X_test.iloc[:60] if name == "neural_network" else credit_case.X_test
    result = explain_global(explainer, rows, max_rows=200)
    features = [item.feature for item in result.importance]
    values = [item.mean_abs_contribution for item in result.importance]
    assert sorted(features) == sorted(credit_case.spec.features)
    assert values == sorted(values, reverse=True)
    assert min(values) >= 0
    assert sum(item.share for item in result.importance) == pytest.approx(1.0)
    # Independent: the same rows explained one by one.
    sample = (
        rows
        if len(rows) <= 200
        else rows.iloc[
            np.sort(np.random.default_rng(explainer.seed).choice(len(rows), 200, replace=False))
        ]
    )
    assert result.n_rows == len(sample) == min(len(rows), 200)
    local = np.array(
        [[c.contribution for c in r.contributions] for r in explain_rows(explainer, sample)]
    )
    top = credit_case.spec.features.index(features[0])
    assert values[0] == pytest.approx(np.abs(local[:, top]).mean())
    assert set(result.figures) == {"shap_importance.png", "shap_beeswarm.png"}
    for figure in result.figures.values():
        assert isinstance(figure, Figure)
        assert figure.axes
        assert figure.axes[0].has_data()
    assert "figures" not in result.model_dump(mode="json")


def test_column_names_map_back_to_credit_features(explainers, credit_case):
    explainer = explainers["neural_network"]
    for column, group in zip(explainer.column_names, explainer.groups, strict=True):
        assert credit_case.spec.features[group] == _feature_of(column, credit_case.spec)


def test_ensemble_contributions_are_its_members_weighted_in_log_odds(credit_case, explainers):
    """Each log-odds member's SHAP values times its weight, the forest's rescaled from
    probability to its log-odds; the ensemble's preprocessed row is its members' side by side."""
    from scipy.special import logit

    model = credit_case.models["ensemble"]
    explainer = explainers["ensemble"]
    rows = credit_case.X_test.iloc[:40]
    Xt = explainer.transform(rows)
    members = [explainers[name] for name in model.member_names_]
    assert len(model.member_names_) >= 2
    assert (model.weights_ > 0).all()
    assert Xt.shape[1] == sum(m.transform(rows).shape[1] for m in members)

    expected = np.zeros((len(rows), len(credit_case.spec.features)))
    for weight, member in zip(model.weights_, members, strict=True):
        values = member.contributions(member.transform(rows))
        if member.output_space == "probability":  # the forest
            p = member.proba(member.transform(rows))
            share = (logit(p) - logit(member.base_value)) / (p - member.base_value)
            values = values * share[:, None]
        expected += weight * values
    np.testing.assert_allclose(explainer.contributions(Xt), expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(
        explainer.raw_output(Xt), model.decision_function(rows), rtol=0, atol=1e-9
    )
    np.testing.assert_allclose(
        explainer.proba(Xt), model.predict_proba(rows)[:, 1], rtol=0, atol=1e-12
    )


def test_ensemble_explains_the_fast_path_rows(credit_case, explainers):
    from creditops.serving.fastpath import compile_scorer

    model = credit_case.models["ensemble"]
    explainer = explainers["ensemble"]
    scorer = compile_scorer(model, credit_case.spec)
    records = credit_case.X_test.iloc[:20].to_dict(orient="records")
    transformed = scorer.transform_many(records)
    np.testing.assert_allclose(
        transformed, explainer.transform(credit_case.X_test.iloc[:20]), rtol=0, atol=1e-12
    )
    served = explain_rows(explainer, records, transformed, proba=scorer.score_many(records))
    direct = explain_rows(explainer, credit_case.X_test.iloc[:20])
    for a, b in zip(served, direct, strict=True):
        assert a.proba == pytest.approx(b.proba, abs=1e-12)
        assert [c.contribution for c in a.contributions] == pytest.approx(
            [c.contribution for c in b.contributions], abs=1e-12
        )
        assert abs(a.additivity_gap) < 1e-9
    with pytest.raises(ValueError, match="members' features"):
        explainer.transformed_contributions(transformed)
