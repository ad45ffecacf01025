"""Data drift on real credit data: quiet on random splits, loud on real shifts, strict inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from creditops.exceptions import ConfigurationError, DataValidationError, NotFittedError
from creditops.monitoring.drift import DataDriftCalculator, DriftConfig, prediction_drift
from creditops.monitoring.drift_methods import population_stability_index

NUMERIC = ["Seniority", "Time", "Age", "Expenses", "Income", "Assets", "Debt", "Amount", "Price"]
CATEGORICAL = ["Home", "Marital", "Records", "Job"]


@pytest.fixture(scope="module")
def halves(credit_data: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    order = np.random.default_rng(7).permutation(len(credit_data))
    half = len(order) // 2
    reference = credit_data.iloc[order[:half]].reset_index(drop=True)
    current = credit_data.iloc[order[half:]].reset_index(drop=True)
    return reference, current


def _fit(reference: pd.DataFrame, config: DriftConfig | None = None) -> DataDriftCalculator:
    return DataDriftCalculator(config).fit(reference, NUMERIC, CATEGORICAL)


def _double_share(frame: pd.DataFrame, column: str, value: str, seed: int) -> pd.DataFrame:
    """Relabel other rows as ``value`` until its share doubles."""
    out = frame.copy()
    share = (out[column] == value).mean()
    others = np.flatnonzero((out[column] != value) & out[column].notna())
    chosen = np.random.default_rng(seed).choice(others, round(share * len(out)), replace=False)
    out.loc[chosen, column] = value
    return out


def test_random_split_shows_no_drift(halves: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = halves
    result = _fit(reference).calculate(current)

    assert result.level == "ok"
    assert result.drifted_features == []
    assert result.missing_flags == []
    assert result.unseen_flags == []
    # Large reference (2,227 rows): distances, as Evidently chooses them.
    assert {f.method for f in result.features if f.kind == "numeric"} == {"wasserstein"}
    assert {f.method for f in result.features if f.kind == "categorical"} == {"jensenshannon"}
    assert all(f.statistic is not None and f.statistic < f.threshold for f in result.features)
    income = result.feature("Income")
    assert 0.05 < income.missing_rate_ref < 0.12  # Income is the column with real gaps
    assert income.n_ref + round(income.missing_rate_ref * result.n_ref) == result.n_ref


def test_half_std_mean_shift_on_income_is_detected(
    halves: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, current = halves
    shifted = current.assign(Income=current["Income"] + 0.5 * reference["Income"].std())
    calculator = _fit(reference)

    income = calculator.calculate(shifted).feature("Income")
    assert income.drifted
    assert income.statistic == pytest.approx(0.5, abs=0.1)  # normed W1 ~ the shift in stds
    assert not calculator.calculate(current).feature("Income").drifted

    # Small samples take the KS test and still see it.
    small = _fit(reference.iloc[:500]).calculate(shifted.iloc[:500]).feature("Income")
    assert small.method == "ks"
    assert small.p_value is not None
    assert small.p_value < 0.05


@pytest.mark.parametrize(("rows", "config", "method"), [(600, None, "chi2"), (None, "psi", "psi")])
def test_doubled_category_share_is_detected(
    halves: tuple[pd.DataFrame, pd.DataFrame], rows: int | None, config: str | None, method: str
) -> None:
    reference, current = halves
    if rows:
        reference = reference.iloc[:rows]
        current = current.iloc[rows : 2 * rows].reset_index(drop=True)
    cfg = DriftConfig(categorical_method=config) if config else None
    calculator = _fit(reference, cfg)

    home = calculator.calculate(_double_share(current, "Home", "rent", seed=1)).feature("Home")
    assert home.method == method
    # chi2: p < 0.05; psi: at least the 0.10-0.25 band (doubling 22% gives about 0.22-0.30)
    assert home.drifted or home.warning
    baseline = calculator.calculate(current).feature("Home")
    assert not baseline.drifted
    assert not baseline.warning


def test_missing_value_increase_is_flagged_apart_from_drift(
    halves: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, current = halves
    holed = current.copy()
    present = np.flatnonzero(holed["Income"].notna())
    holed.loc[
        np.random.default_rng(3).choice(present, len(holed) // 5, replace=False), "Income"
    ] = np.nan

    result = _fit(reference).calculate(holed)
    income = result.feature("Income")
    assert income.missing_rate_cur - income.missing_rate_ref > 0.15
    assert income.missing_increase
    assert result.missing_flags == ["Income"]
    assert not income.drifted  # values missing at random leave the distribution alone
    flag = next(f for f in result.flags if f.kind == "missing_increase")
    assert (flag.check, flag.subject) == ("data_drift", "Income")
    assert flag.value == pytest.approx(income.missing_rate_cur)


def test_unseen_categories_are_listed(halves: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = halves
    changed = current.copy()
    changed["Home"] = changed["Home"].astype(object)
    changed.loc[:59, "Home"] = "council"
    changed.loc[60:64, "Home"] = "boat"

    home = _fit(reference).calculate(changed).feature("Home")
    assert home.unseen_categories == ["council", "boat"]  # most frequent first
    assert home.unseen_share == pytest.approx(65 / len(changed))
    assert home.unseen_flag


def test_method_override_by_name(halves: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = halves
    config = DriftConfig(
        numeric_method="ks",
        feature_methods={"Income": "psi", "Job": "chi2"},
        thresholds={"ks": 0.01},
    )
    result = _fit(reference, config).calculate(current)
    methods = {f.feature: f.method for f in result.features}
    assert methods["Income"] == "psi"
    assert methods["Age"] == "ks"
    assert methods["Job"] == "chi2"
    assert methods["Home"] == "jensenshannon"  # categorical stays on auto
    assert result.feature("Age").threshold == 0.01
    assert result.feature("Age").p_value is not None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"numeric_method": "kolmogorov"},
        {"feature_methods": {"Income": "kolmogorov"}},
        {"thresholds": {"kolmogorov": 0.1}},
    ],
)
def test_unknown_method_is_a_configuration_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError, match="kolmogorov"):
        DriftConfig(**kwargs)


def test_numeric_only_method_on_categorical_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="wasserstein"):
        DriftConfig(categorical_method="wasserstein")


def test_psi_matches_hand_computation() -> None:
    # Categories: reference 50/30/20, current 30/30/40.
    reference = pd.DataFrame({"grade": ["A"] * 5 + ["B"] * 3 + ["C"] * 2})
    current = pd.DataFrame({"grade": ["A"] * 3 + ["B"] * 3 + ["C"] * 4})
    config = DriftConfig(categorical_method="psi")
    result = DataDriftCalculator(config).fit(reference, categorical=["grade"]).calculate(current)
    expected = (0.3 - 0.5) * math.log(0.3 / 0.5) + (0.4 - 0.2) * math.log(0.4 / 0.2)
    assert result.feature("grade").statistic == pytest.approx(expected)  # 0.2408
    assert result.feature("grade").warning  # PSI 0.24: the 0.10-0.25 band
    assert not result.feature("grade").drifted

    # Numeric: reference 0..99 in quartiles; current fills only the outer two.
    reference = pd.DataFrame({"x": np.arange(100.0)})
    current = pd.DataFrame({"x": np.r_[np.arange(25.0), np.arange(75.0, 100.0)]})
    config = DriftConfig(numeric_method="psi", psi_bins=4)
    got = DataDriftCalculator(config).fit(reference, numeric=["x"]).calculate(current)
    eps = 1e-4
    expected = 2 * (0.5 - 0.25) * math.log(0.5 / 0.25) + 2 * (eps - 0.25) * math.log(eps / 0.25)
    assert got.feature("x").statistic == pytest.approx(expected)
    assert got.feature("x").drifted
    assert population_stability_index([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_result_is_json_serialisable(halves: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = halves
    rng = np.random.default_rng(0)
    calculator = DataDriftCalculator().fit(
        reference, NUMERIC, CATEGORICAL, reference_scores=rng.beta(2, 8, len(reference))
    )
    result = calculator.calculate(current, current_scores=rng.beta(4, 6, len(current)))

    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["schema_version"] == 1
    assert len(payload["features"]) == len(NUMERIC) + len(CATEGORICAL)
    assert payload["prediction"]["band"] == "drift"
    assert any(f["kind"] == "prediction_drift" for f in payload["flags"])


def test_prediction_drift_bands() -> None:
    rng = np.random.default_rng(1)
    reference = rng.beta(2, 8, 20_000)
    assert prediction_drift(reference, rng.beta(2, 8, 20_000)).band == "stable"
    moved = prediction_drift(reference, rng.beta(2.6, 8, 20_000))
    assert moved.band == "warning"
    assert 0.10 <= moved.psi < 0.25
    assert prediction_drift(reference, rng.beta(4, 6, 20_000)).band == "drift"
    assert len(moved.reference_shares) == len(moved.edges) + 1 == 10
    with pytest.raises(DataValidationError, match="current"):
        prediction_drift(reference, [0.1, np.nan])


@pytest.mark.parametrize(("shifted", "level"), [(4, "ok"), (5, "warning"), (7, "critical")])
def test_dataset_levels(shifted: int, level: str) -> None:
    rng = np.random.default_rng(2)
    columns = [f"x{i}" for i in range(10)]
    reference = pd.DataFrame(rng.normal(size=(3000, 10)), columns=columns)
    current = pd.DataFrame(rng.normal(size=(3000, 10)), columns=columns)
    current[columns[:shifted]] += 1.0

    result = DataDriftCalculator().fit(reference, numeric=columns).calculate(current)
    assert result.n_drifted == shifted
    assert result.drift_share == pytest.approx(shifted / 10)
    assert result.level == level
    assert any(f.kind == "dataset_drift" for f in result.flags) == (level != "ok")

    # Importance weights: the drifted features carry 90% of the weight.
    weights = {
        c: (9.0 / shifted if i < shifted else 1.0 / (10 - shifted)) for i, c in enumerate(columns)
    }
    weighted = DataDriftCalculator().fit(reference, numeric=columns, feature_weights=weights)
    assert weighted.calculate(current).drift_share == pytest.approx(0.9)
    assert weighted.calculate(current).level == "critical"


def test_few_valued_numeric_is_compared_as_categories() -> None:
    rng = np.random.default_rng(4)
    reference = pd.DataFrame({"dependants": rng.integers(0, 4, 5000)})
    current = pd.DataFrame({"dependants": np.r_[rng.integers(0, 4, 4900), np.full(100, 7)]})
    feature = DataDriftCalculator().fit(reference).calculate(current).feature("dependants")
    assert feature.method == "jensenshannon"
    assert feature.unseen_categories == ["7"]
    assert feature.unseen_share == pytest.approx(0.02)


def test_input_validation(halves: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = halves
    calculator = _fit(reference)

    with pytest.raises(DataValidationError, match="Debt") as missing:
        calculator.calculate(current.drop(columns=["Debt"]))
    assert missing.value.column == "Debt"
    with pytest.raises(DataValidationError, match="no rows"):
        calculator.calculate(current.iloc[:0])
    infinite = current.assign(Assets=current["Assets"].replace(0.0, np.inf))
    with pytest.raises(DataValidationError, match="Assets") as inf:
        calculator.calculate(infinite)
    assert inf.value.column == "Assets"
    with pytest.raises(DataValidationError, match="Age"):
        calculator.calculate(current.assign(Age="old"))
    with pytest.raises(NotFittedError):
        DataDriftCalculator().calculate(current)
    with pytest.raises(ConfigurationError, match="Typo"):
        DataDriftCalculator(DriftConfig(feature_methods={"Typo": "ks"})).fit(
            reference, NUMERIC, CATEGORICAL
        )

    # NaN is missing, not an error: an all-missing column reports no statistic and a flag.
    result = calculator.calculate(current.assign(Income=np.nan))
    assert result.feature("Income").statistic is None
    assert result.feature("Income").missing_rate_cur == 1.0
    assert "Income" in result.missing_flags


def test_decision_log_column_names_are_followed(
    halves: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, current = halves
    window = current.rename(columns={"Time": "feature.Time"})
    window.attrs["feature_columns"] = {"Time": "feature.Time"}
    result = _fit(reference).calculate(window)
    assert result.feature("Time").n_cur == len(window)
    assert result.level == "ok"
