"""The compiled fast path must give the pipeline's probabilities for every model kind.

Models are built with the zoo on the credit_data training split (small settings) and compared
with ``model.predict_proba(DataFrame)[:, 1]`` on every credit_data row plus rows with injected
missing values, unseen categories, numbers sent as text and values far outside the training
range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from creditops.data.datasets import load_builtin
from creditops.data.spec import ResolvedSpec
from creditops.data.split import split_dataset
from creditops.data.validate import validate_dataset
from creditops.features.preprocessing import build_preprocessor, numbers_as_float
from creditops.models.zoo import CANDIDATES, FeatureSet
from creditops.serving.fastpath import FastScorer, UnsupportedModel, compile_or_none

# float64 models (logistic, PCA, network, their calibrations) differ from the pipeline only in
# summation order, ~1e-15. XGBoost (float32) and the forest are bit-identical: the fast path
# calls the same booster on the same float32 row and sums the trees in sklearn's order, so
# their documented tolerance is 0 (measured: 0 on every row below).
TOLERANCE = 1e-9
BIT_IDENTICAL = ("xgboost", "random_forest", "lightgbm")

PARAMS: dict[str, dict[str, Any]] = {
    "logistic_regression": {},
    "scorecard": {},
    "pca_logistic": {"n_components": 0.9},
    "random_forest": {"n_estimators": 40, "max_depth": 8, "min_samples_leaf": 5},
    "xgboost": {"n_estimators": 60, "max_depth": 3},
    "lightgbm": {"n_estimators": 80},
    "neural_network": {"max_epochs": 8},
}
# name → (candidate, calibration method or None)
MODELS: dict[str, tuple[str, str | None]] = {
    "logistic_regression": ("logistic_regression", None),
    "scorecard": ("scorecard", None),
    "pca_logistic": ("pca_logistic", None),
    "random_forest": ("random_forest", None),
    "xgboost": ("xgboost", None),
    "lightgbm": ("lightgbm", None),
    "neural_network": ("neural_network", None),
    "sigmoid_logistic_regression": ("logistic_regression", "sigmoid"),
    "sigmoid_scorecard": ("scorecard", "sigmoid"),
    "isotonic_scorecard": ("scorecard", "isotonic"),
    "sigmoid_xgboost": ("xgboost", "sigmoid"),
    "sigmoid_neural_network": ("neural_network", "sigmoid"),
    "isotonic_pca_logistic": ("pca_logistic", "isotonic"),
    "isotonic_random_forest": ("random_forest", "isotonic"),
    "isotonic_xgboost": ("xgboost", "isotonic"),
    "sigmoid_lightgbm": ("lightgbm", "sigmoid"),
}
KINDS = {
    "logistic_regression": "logistic_regression",
    "scorecard": "scorecard",
    "pca_logistic": "pca_logistic_regression",
    "random_forest": "random_forest",
    "xgboost": "xgboost",
    "lightgbm": "lightgbm",
    "neural_network": "neural_network",
}


@dataclass
class Case:
    spec: ResolvedSpec
    X_train: pd.DataFrame
    y_train: np.ndarray
    features: FeatureSet
    pos_weight: float
    records: list[dict[str, Any]]  # every credit_data row, then the perturbed rows
    n_original: int
    _models: dict[str, Any] = field(default_factory=dict)

    def model(self, name: str) -> Any:
        if name not in self._models:
            candidate, method = MODELS[name]
            pipeline = CANDIDATES[candidate].build(
                self.features, PARAMS[candidate], self.pos_weight, 0
            )
            if method is not None:
                pipeline = CalibratedClassifierCV(pipeline, method=method, cv=3, ensemble=False)
            self._models[name] = pipeline.fit(self.X_train, self.y_train)
        return self._models[name]

    def frame(self, records: list[dict[str, Any]]) -> pd.DataFrame:
        return pd.DataFrame.from_records(records, columns=self.spec.features)


def _as_request(row: dict[str, Any], i: int) -> dict[str, Any]:
    """A data row as a JSON request sends it: ints for whole numbers, missing as an absent
    key or null (alternating)."""
    record: dict[str, Any] = {}
    for key, value in row.items():
        if value is None or (isinstance(value, float) and np.isnan(value)):
            if i % 2:
                record[key] = None
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        record[key] = value
    return record


def _perturbed(records: list[dict[str, Any]], spec: ResolvedSpec, n: int) -> list[dict]:
    rng = np.random.default_rng(7)
    schema = {s.name: s for s in spec.schema_}
    out = []
    for _ in range(n):
        record = dict(records[int(rng.integers(len(records)))])
        for name in spec.features:
            if rng.random() > 0.3:
                continue
            s = schema[name]
            if s.kind == "numeric":
                top = float(s.maximum or 1.0)
                options = [None, "absent", np.nan, -1.0, 0, -25_000.5, top * 10 + 7, top * 1000]
                options += [f" {int(top // 2)} ", "n/a", round(float(rng.uniform(0, top)), 3)]
            else:
                options = [None, "absent", np.nan, "", "   ", "castle", "UNSEEN", "owner "]
                options += list(s.categories or [])
            value = options[int(rng.integers(len(options)))]
            if isinstance(value, str) and value == "absent":
                record.pop(name, None)
            else:
                record[name] = value
        out.append(record)
    return out


@pytest.fixture(scope="module")
def case() -> Case:
    frame, spec = load_builtin("credit_data")
    validated = validate_dataset(frame, spec, dataset_name="credit_data")
    split = split_dataset(validated, seed=42)
    X, y = validated.X, validated.y
    X_train, y_train = X.iloc[split.train], y[split.train]
    original = [_as_request(row, i) for i, row in enumerate(X.to_dict("records"))]
    records = original + _perturbed(original, validated.spec, 2500)
    return Case(
        spec=validated.spec,
        X_train=X_train,
        y_train=y_train,
        # with the spec's monotone expectations, as training builds them (the scorecard's bins)
        features=FeatureSet.from_spec(validated.spec),
        pos_weight=float((y_train == 0).sum() / y_train.sum()),
        records=records,
        n_original=len(original),
    )


@pytest.fixture(scope="module")
def expected(case: Case) -> Callable[[str], np.ndarray]:
    cache: dict[str, np.ndarray] = {}

    def probabilities(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = case.model(name).predict_proba(case.frame(case.records))[:, 1]
        return cache[name]

    return probabilities


@pytest.mark.parametrize("name", list(MODELS))
def test_fast_path_equals_pipeline_on_every_row(
    case: Case, expected: Callable[[str], np.ndarray], name: str
) -> None:
    scorer = FastScorer.compile(case.model(name), case.spec)
    candidate, method = MODELS[name]
    assert scorer.kind == KINDS[candidate] + ("" if method is None else f"+{method}")

    got = scorer.score_many(case.records)
    want = expected(name)

    assert got.shape == (len(case.records),)
    assert got.dtype == np.float64
    assert np.ptp(want) > 0.3  # a real spread of risks, not a constant
    if candidate in BIT_IDENTICAL:
        np.testing.assert_array_equal(got, want.astype(np.float64))
    else:
        np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("name", list(MODELS))
def test_score_one_equals_score_many(
    case: Case, expected: Callable[[str], np.ndarray], name: str
) -> None:
    scorer = FastScorer.compile(case.model(name), case.spec)
    rows = [*range(150), *range(case.n_original, case.n_original + 150)]
    sample = [case.records[i] for i in rows]
    batch = scorer.score_many(sample)
    one_by_one = np.array([scorer.score_one(r) for r in sample])

    assert all(type(scorer.score_one(r)) is float for r in sample[:3])
    np.testing.assert_allclose(one_by_one, batch, rtol=0, atol=1e-12)
    want = expected(name)[rows].astype(np.float64)
    if MODELS[name][0] in BIT_IDENTICAL:  # the few-rows forest walk sums like sklearn too
        np.testing.assert_array_equal(one_by_one, want)
    else:
        np.testing.assert_allclose(one_by_one, want, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("name", list(MODELS))
def test_columns_transform_and_score_as_the_records_do(case: Case, name: str) -> None:
    """Rows given as columns (what a large batch has) transform to the very same array as the
    records, for every request value the records hold (text numbers, missing keys, None,
    unseen categories); numbers given as a float array with NaN for missing, too."""
    scorer = FastScorer.compile(case.model(name), case.spec)
    records = case.records[: case.n_original + 1500]
    n = len(records)
    columns = {c: np.array([r.get(c) for r in records], dtype=object) for c in case.spec.features}
    want = scorer.transform_many(records)
    np.testing.assert_array_equal(scorer.transform_columns(columns, n), want)
    np.testing.assert_array_equal(scorer.score_columns(columns, n), scorer.score_many(records))
    numeric = [c for c in case.spec.numeric if c in case.spec.features]
    plain = [r for r in records if not any(isinstance(r.get(c), str) for c in numeric)]
    floats = {
        c: np.array([np.nan if r.get(c) is None else float(r[c]) for r in plain])
        if c in numeric
        else np.array([r.get(c) for r in plain], dtype=object)
        for c in case.spec.features
    }
    assert len(plain) > 500
    np.testing.assert_array_equal(
        scorer.transform_columns(floats, len(plain)), scorer.transform_many(plain)
    )


@pytest.mark.parametrize("name", ["logistic_regression", "random_forest"])
def test_transform_equals_the_column_transformer(case: Case, name: str) -> None:
    pipeline = case.model(name)
    preprocess = pipeline.steps[0][1]
    scorer = FastScorer.compile(pipeline, case.spec)

    want = preprocess.transform(case.frame(case.records))
    got = scorer.transform_many(case.records)

    assert scorer.feature_names == tuple(preprocess.get_feature_names_out())
    assert scorer.features == tuple(case.spec.features)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    for i in (0, case.n_original + 3):
        np.testing.assert_array_equal(scorer.transform_one(case.records[i]), got[i])


def test_scorecard_rows_are_its_woe_columns_and_feed_its_explanations(case: Case) -> None:
    from creditops.evaluation.explain import build_explainer

    pipeline = case.model("scorecard")
    estimator = pipeline[-1]
    scorer = FastScorer.compile(pipeline, case.spec)
    frame = case.frame(case.records)

    want = estimator.woe(pipeline[0].transform(frame))
    got = scorer.transform_many(case.records)
    np.testing.assert_array_equal(got, want)
    assert scorer.feature_names == estimator.features_
    assert scorer.features == tuple(case.spec.features)

    # Serving explains (and gives reasons) on the fast path's rows: the same points lost.
    explainer = build_explainer(pipeline, case.X_train, case.spec)
    sample = case.records[case.n_original - 50 : case.n_original + 50]
    np.testing.assert_allclose(
        explainer.contributions(scorer.transform_many(sample)),
        explainer.contributions(explainer.transform(case.frame(sample))),
        rtol=0,
        atol=1e-12,
    )

    record = dict(case.records[0]) | {"Home": "castle", "Records": "maybe", "Income": None}
    record.pop("Job", None)
    assert scorer.imputed_fields(record) == ["Income", "Job"]
    row = dict(zip(scorer.feature_names, scorer.transform_one(record), strict=True))
    bins = {b.feature: b for b in estimator.bins_}
    assert row["Home"] == bins["Home"].unknown_woe
    assert row["Records"] == bins["Records"].missing.woe  # outside the order: as missing
    assert row["Income"] == bins["Income"].missing.woe
    assert scorer.score_one(record) == pytest.approx(
        pipeline.predict_proba(case.frame([record]))[0, 1], abs=TOLERANCE
    )
    with pytest.raises(ValueError, match=r"infinity"):
        pipeline.predict_proba(case.frame([record | {"Income": np.inf}]))
    with pytest.raises(ValueError, match=r"infinity"):
        scorer.score_one(record | {"Income": np.inf})


def test_missing_fields_are_reported_and_imputed_as_the_pipeline_does(case: Case) -> None:
    pipeline = case.model("random_forest")  # no power transform: imputed values stay visible
    scorer = FastScorer.compile(pipeline, case.spec)
    complete = {k: v for k, v in case.records[0].items() if v is not None}
    assert scorer.imputed_fields(complete) == []

    record = dict(complete)
    del record["Income"]
    record |= {"Assets": None, "Debt": "not a number", "Home": "", "Records": "  ", "Job": None}
    record["Price"] = float("nan")
    assert scorer.imputed_fields(record) == [
        "Income",
        "Assets",
        "Debt",
        "Price",
        "Home",
        "Records",
        "Job",
    ]

    row = dict(zip(scorer.feature_names, scorer.transform_one(record), strict=True))
    medians = pipeline.steps[0][1].named_transformers_["numeric"].named_steps["impute"]
    statistics = dict(zip(case.spec.numeric, medians.statistics_, strict=True))
    for column in ("Income", "Assets", "Debt", "Price"):
        assert row[f"numeric__{column}"] == statistics[column]
    for column in ("Income", "Assets", "Debt"):  # the columns with missing values in training
        assert row[f"numeric__missingindicator_{column}"] == 1.0
    assert row["categorical__Home_infrequent_sklearn"] == 1.0  # "missing" is a rare category
    assert all(row[c] == 0.0 for c in row if c.startswith("categorical__Records_"))
    assert scorer.score_one(record) == pipeline.predict_proba(case.frame([record]))[0, 1]


def test_unseen_categories_fall_where_the_pipeline_puts_them(case: Case) -> None:
    pipeline = case.model("logistic_regression")
    scorer = FastScorer.compile(pipeline, case.spec)
    record = dict(case.records[1]) | {"Home": "castle", "Records": "maybe", "Job": " fixed "}

    row = dict(zip(scorer.feature_names, scorer.transform_one(record), strict=True))
    home = {c: v for c, v in row.items() if c.startswith("categorical__Home_")}
    records = {c: v for c, v in row.items() if c.startswith("categorical__Records_")}
    assert home["categorical__Home_infrequent_sklearn"] == 1.0
    assert sum(home.values()) == 1.0
    assert set(records.values()) == {0.0}  # Records has no infrequent bucket: all zeros
    assert row["categorical__Job_fixed"] == 1.0  # surrounding blanks are stripped
    assert scorer.score_one(record) == pytest.approx(
        pipeline.predict_proba(case.frame([record]))[0, 1], abs=TOLERANCE
    )


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize(
    ("name", "value"), [("logistic_regression", np.inf), ("random_forest", 1e39)]
)
def test_values_the_pipeline_refuses_are_refused(case: Case, name: str, value: float) -> None:
    pipeline = case.model(name)
    scorer = FastScorer.compile(pipeline, case.spec)
    record = dict(case.records[2]) | {"Income": value}
    with pytest.raises(ValueError, match=r"infinity"):
        pipeline.predict_proba(case.frame([record]))
    with pytest.raises(ValueError, match=r"infinity"):
        scorer.score_one(record)


def test_compiling_leaves_the_served_xgboost_untouched(case: Case) -> None:
    model = case.model("xgboost")
    before = model[-1].get_booster().save_config()
    scorer = FastScorer.compile(model, case.spec)
    assert model[-1].get_booster().save_config() == before
    assert '"nthread":"1"' in scorer._head.booster.save_config()


def test_the_self_check_rejects_a_path_that_disagrees(case: Case) -> None:
    scorer = FastScorer.compile(case.model("logistic_regression"), case.spec, verify=False)
    with pytest.raises(UnsupportedModel, match=r"disagrees with the pipeline"):
        scorer._verify(case.model("pca_logistic"), case.spec)


def test_empty_batch(case: Case) -> None:
    scorer = FastScorer.compile(case.model("logistic_regression"), case.spec)
    assert scorer.score_many([]).shape == (0,)


def _with_step_before_model(case: Case) -> tuple[Any, ResolvedSpec]:
    base = CANDIDATES["logistic_regression"].build(case.features, {}, case.pos_weight, 0)
    steps = [base.steps[0], ("scale", StandardScaler()), base.steps[-1]]
    return Pipeline(steps).fit(case.X_train, case.y_train), case.spec


def _with_scaler_in_preprocessing(case: Case) -> tuple[Any, ResolvedSpec]:
    numeric = Pipeline(
        [
            ("to_float", FunctionTransformer(numbers_as_float, feature_names_out="one-to-one")),
            ("impute", SimpleImputer(strategy="median")),
            ("scale", StandardScaler()),
        ]
    )
    preprocess = build_preprocessor(case.spec.numeric, case.spec.categorical, scale=False)
    categorical = preprocess.transformers[1]
    preprocess = ColumnTransformer([("numeric", numeric, case.spec.numeric), categorical])
    model = Pipeline([("preprocess", preprocess), ("model", LogisticRegression(max_iter=2000))])
    return model.fit(case.X_train, case.y_train), case.spec


def _with_unknown_estimator(case: Case) -> tuple[Any, ResolvedSpec]:
    preprocess = build_preprocessor(case.spec.numeric, case.spec.categorical, scale=False)
    model = Pipeline(
        [("preprocess", preprocess), ("model", GradientBoostingClassifier(n_estimators=5))]
    )
    return model.fit(case.X_train, case.y_train), case.spec


def _with_calibration_ensemble(case: Case) -> tuple[Any, ResolvedSpec]:
    base = CANDIDATES["logistic_regression"].build(case.features, {}, case.pos_weight, 0)
    model = CalibratedClassifierCV(base, method="sigmoid", cv=2, ensemble=True)
    return model.fit(case.X_train, case.y_train), case.spec


def _bare_estimator(case: Case) -> tuple[Any, ResolvedSpec]:
    return case.model("logistic_regression")[-1], case.spec  # the estimator alone


def _spec_without_a_feature(case: Case) -> tuple[Any, ResolvedSpec]:
    spec = case.spec.model_copy(update={"numeric": case.spec.numeric[1:]})
    return case.model("logistic_regression"), spec


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (_with_step_before_model, r"StandardScaler between preprocessing"),
        (_with_scaler_in_preprocessing, r"numeric step StandardScaler"),
        (_with_unknown_estimator, r"final estimator GradientBoostingClassifier"),
        (_with_calibration_ensemble, r"CalibratedClassifierCV with 2 calibrated models"),
        (_bare_estimator, r"not a Pipeline"),
        (_spec_without_a_feature, r"spec lacks: \['Seniority'\]"),
    ],
)
def test_unsupported_models_are_refused_and_left_to_the_pipeline(
    case: Case, build: Callable[[Case], tuple[Any, ResolvedSpec]], message: str
) -> None:
    model, spec = build(case)
    with pytest.raises(UnsupportedModel, match=message):
        FastScorer.compile(model, spec)
    assert compile_or_none(model, spec) is None


def test_compile_or_none_returns_a_scorer_when_supported(case: Case) -> None:
    scorer = compile_or_none(case.model("sigmoid_xgboost"), case.spec)
    assert isinstance(scorer, FastScorer)
    assert scorer.kind == "xgboost+sigmoid"


def _xgboost_on_noise(**params: Any) -> Any:
    import xgboost as xgb

    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] * X[:, 2] + rng.normal(size=3000) > 0).astype(int)
    X[rng.random(X.shape) < 0.1] = np.nan  # learnt default directions
    return xgb.XGBClassifier(n_estimators=80, max_depth=5, n_jobs=1, **params).fit(X, y), X


def test_xgboost_trees_walked_in_numpy_equal_the_booster_bit_for_bit() -> None:
    from creditops.serving.fastpath._xgboost import _XGBoostHead

    model, X = _xgboost_on_noise()
    head = _XGBoostHead(model)
    assert head.trees is not None, "the tree walk was not compiled: the booster would serve"
    rows = np.concatenate([X[:400], [[np.inf, -np.inf, np.nan, 0, 1e30, -1e30]]]).astype(np.float32)
    booster = model.get_booster()
    want_margin = booster.inplace_predict(rows, predict_type="margin")
    want = model.predict_proba(rows)[:, 1]
    for i in range(len(rows)):  # one row at a time: the numpy walk, not the booster
        assert head.margin(rows[i : i + 1])[0] == want_margin[i]
        assert head.response(rows[i : i + 1])[0] == want[i]
    # batches above the walk's size go to the booster, with the same results
    np.testing.assert_array_equal(head.response(rows), want)


def test_xgboost_trees_stop_at_the_best_iteration() -> None:
    import xgboost as xgb

    from creditops.serving.fastpath._xgboost import _XGBoostHead

    _, X = _xgboost_on_noise()
    y = (X[:, 0] > 0).astype(int)
    model = xgb.XGBClassifier(
        n_estimators=200, learning_rate=0.5, early_stopping_rounds=3, n_jobs=1
    ).fit(X[:2000], y[:2000], eval_set=[(X[2000:], y[2000:])], verbose=False)
    assert model.best_iteration + 1 < model.n_estimators
    head = _XGBoostHead(model)
    assert head.trees is not None
    want = model.predict_proba(X[:50])[:, 1]  # the wrapper predicts up to best_iteration
    got = np.array([head.response(X[i : i + 1])[0] for i in range(50)])
    np.testing.assert_array_equal(got, want)


def test_xgboost_models_the_walk_cannot_reproduce_are_served_by_the_booster() -> None:
    from creditops.serving.fastpath._xgboost import _XGBoostHead

    dart, X = _xgboost_on_noise(booster="dart", rate_drop=0.2)
    head = _XGBoostHead(dart)
    assert head.trees is None
    np.testing.assert_array_equal(head.response(X[:1]), dart.predict_proba(X[:1])[:, 1])


# -- the stacked ensemble ---------------------------------------------------------------------

ENSEMBLE_MEMBERS = ("logistic_regression", "scorecard", "random_forest", "sigmoid_xgboost")


@pytest.fixture(scope="module")
def ensemble(case: Case) -> Any:
    """Members of every compiled kind (a calibrated one too), stacked as training stacks them."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from creditops.models.ensemble import StackedEnsembleClassifier

    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    members = [(name, case.model(name)) for name in ENSEMBLE_MEMBERS]
    oof = np.column_stack(
        [
            cross_val_predict(
                clone(model), case.X_train, case.y_train, cv=folds, method="predict_proba"
            )[:, 1]
            for _, model in members
        ]
    )
    return StackedEnsembleClassifier.from_fitted(members, oof, case.y_train, case.X_train.head())


def test_stacked_ensemble_fast_path_equals_the_ensemble_on_every_row(
    case: Case, ensemble: Any
) -> None:
    from creditops.serving.fastpath import EnsembleScorer, compile_scorer

    scorer = compile_or_none(ensemble, case.spec)
    assert isinstance(scorer, EnsembleScorer)
    kinds = [FastScorer.compile(m, case.spec).kind for m in ensemble.members_]
    assert scorer.kind == "ensemble[" + ",".join(kinds) + "]"
    assert scorer.features == tuple(case.spec.features)

    want = ensemble.predict_proba(case.frame(case.records))[:, 1]
    got = scorer.score_many(case.records)
    assert np.ptp(want) > 0.3
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)
    sample = case.records[:50] + case.records[case.n_original : case.n_original + 50]
    one_by_one = np.array([scorer.score_one(r) for r in sample])
    np.testing.assert_allclose(one_by_one, scorer.score_many(sample), rtol=0, atol=1e-12)

    # A preprocessed row is the members' rows side by side.
    members = [compile_scorer(m, case.spec) for m in ensemble.members_]
    np.testing.assert_array_equal(
        scorer.transform_many(sample), np.hstack([m.transform_many(sample) for m in members])
    )
    assert scorer.width == sum(m.width for m in members) == len(scorer.feature_names)
    assert scorer.margin(scorer.transform_many(sample)) is None

    record = dict(case.records[0])
    record.pop("Income", None)
    record |= {"Home": "", "Debt": None}
    assert scorer.imputed_fields(record) == ["Income", "Debt", "Home"]
    assert scorer.score_one(record) == pytest.approx(
        ensemble.predict_proba(case.frame([record]))[0, 1], abs=TOLERANCE
    )


def test_stacked_ensemble_of_a_member_without_fast_path_is_left_to_the_pipeline(
    case: Case,
) -> None:
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    from creditops.models.ensemble import StackedEnsembleClassifier
    from creditops.serving.fastpath import compile_scorer

    preprocess = build_preprocessor(case.spec.numeric, case.spec.categorical, scale=False)
    odd = Pipeline(
        [("preprocess", preprocess), ("model", GradientBoostingClassifier(n_estimators=60))]
    ).fit(case.X_train, case.y_train)
    members = [("lr", case.model("logistic_regression")), ("odd", odd)]
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    oof = np.column_stack(
        [
            cross_val_predict(
                clone(model), case.X_train, case.y_train, cv=folds, method="predict_proba"
            )[:, 1]
            for _, model in members
        ]
    )
    mixed = StackedEnsembleClassifier.from_fitted(members, oof, case.y_train, case.X_train.head())
    assert mixed.member_names_ == ["lr", "odd"]
    with pytest.raises(UnsupportedModel, match="GradientBoostingClassifier"):
        compile_scorer(mixed, case.spec)
    assert compile_or_none(mixed, case.spec) is None
