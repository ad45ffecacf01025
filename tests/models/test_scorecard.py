"""The WoE scorecard: a scikit-learn estimator whose points table reproduces its score, whose
bins follow the spec's directions, and which drops what carries no information."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from creditops.data.datasets import load_builtin
from creditops.data.split import split_dataset
from creditops.data.validate import validate_dataset
from creditops.evaluation.behaviour import behaviour_checks
from creditops.evaluation.points import applicant_points, points_table
from creditops.evaluation.policy import ScoreScale, to_points
from creditops.models.anatomy import anatomy
from creditops.models.scorecard import FeatureBins, ScorecardClassifier
from creditops.models.zoo import CANDIDATES, FeatureSet


@parametrize_with_checks([ScorecardClassifier()])
def test_sklearn_estimator_checks(estimator, check, monkeypatch):
    # sklearn skips its array-API check (NumPy inputs with array_api_dispatch on) unless
    # this is set; the NumPy-only variant needs nothing else, so run it for real.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


@pytest.fixture(scope="module")
def credit() -> dict[str, Any]:
    frame, spec = load_builtin("credit_data")
    validated = validate_dataset(frame, spec, dataset_name="credit_data")
    split = split_dataset(validated, seed=42)
    X, y = validated.X, validated.y
    features = FeatureSet.from_spec(validated.spec)
    X_train, y_train = X.iloc[split.train], y[split.train]
    model = CANDIDATES["scorecard"].build(features, {}, 1.0, 0).fit(X_train, y_train)
    calibrated = CalibratedClassifierCV(
        CANDIDATES["scorecard"].build(features, {}, 1.0, 0), method="sigmoid", cv=3, ensemble=False
    ).fit(X_train, y_train)
    return {
        "spec": validated.spec,
        "X_train": X_train,
        "y_train": y_train,
        "X_test": X.iloc[split.test],
        "y_test": y[split.test],
        "model": model,
        "calibrated": calibrated,
    }


def _bin_row(bins: FeatureBins, value: Any) -> str:
    """The label of the bin ``value`` falls in, worked out from the bins' edges and categories
    (independently of the estimator's WoE transform)."""
    missing = value is None or (isinstance(value, float) and math.isnan(value))
    if missing:
        return bins.missing.label
    if bins.kind == "numeric":
        return bins.bins[int(np.digitize(float(value), bins.splits, right=False))].label
    text = str(value).strip()
    if bins.categories is None or text not in bins.categories:
        return "Unseen category" if bins.kind == "categorical" else bins.missing.label
    return bins.bins[bins.categories[text]].label


@pytest.mark.parametrize("which", ["model", "calibrated"])
def test_points_table_rows_sum_to_the_models_score(credit, which):
    model = credit[which]
    X = credit["X_test"]
    scale = ScoreScale()
    table = points_table(model, scale)
    assert table.calibration == ("none" if which == "model" else "sigmoid")
    assert table.reproduces_score
    estimator = anatomy(model).estimator
    lookup = {(r.feature, r.bin): r.points for r in table.rows}
    totals = [
        sum(lookup[(b.feature, _bin_row(b, row[b.feature]))] for b in estimator.bins_)
        for row in X.to_dict("records")
    ]
    want = to_points(model.predict_proba(X)[:, 1], scale)
    np.testing.assert_allclose(totals, want, rtol=0, atol=1e-6)
    per_feature = applicant_points(model, X, scale)
    np.testing.assert_allclose(per_feature.sum(axis=1), want, rtol=0, atol=1e-6)
    # The constant share sits in every row: a bin with WoE 0 is worth exactly that share.
    missing = next(r for r in table.rows if r.bin == "Missing" and r.woe == 0.0)
    assert missing.points == pytest.approx(table.base_points_per_feature, abs=1e-9)


def test_points_table_describes_every_bin(credit):
    model = credit["model"]
    estimator = model[-1]
    table = points_table(model).to_frame()
    assert list(table.columns) == ["feature", "bin", "count", "event_rate", "woe", "iv", "points"]
    assert list(dict.fromkeys(table["feature"])) == list(estimator.features_)
    missing_labels = {b.missing.label for b in estimator.bins_}
    assert missing_labels == {"Missing", "Missing or outside the order"}  # Records is ordered
    regular = table[~table["bin"].isin([*missing_labels, "Unseen category"])]
    assert regular["count"].sum() == len(credit["X_train"]) * len(estimator.features_) - sum(
        int(r.count) for r in table.itertuples() if r.bin in missing_labels
    )
    # Safer bins (higher WoE) earn more points, in every feature: all coefficients are < 0.
    assert all(b.coefficient < 0 for b in estimator.bins_)
    for _, rows in regular.groupby("feature"):
        order = np.argsort(rows["woe"].to_numpy())
        assert np.all(np.diff(rows["points"].to_numpy()[order]) > 0)


def test_bins_follow_the_spec_directions(credit):
    estimator = credit["model"][-1]
    bins = {b.feature: b for b in estimator.bins_}
    debt = bins["Debt"]  # spec: increasing
    rates = [b.event_rate for b in debt.bins]
    assert rates == sorted(rates)
    records = bins["Records"]  # spec: ordered no → yes
    assert records.kind == "ordered"
    no, yes = (records.bins[records.categories[level]] for level in ("no", "yes"))
    assert yes.event_rate >= no.event_rate
    # The risk is monotone in each expectation: the behaviour checks pass by construction.
    report = behaviour_checks(credit["model"], credit["X_test"], credit["spec"])
    assert [c.feature for c in report.checks] == ["Debt", "Records"]
    assert report.passed
    assert all(c.violations == 0 for c in report.checks)


def test_a_direction_against_the_data_is_still_honoured():
    rng = np.random.default_rng(1)
    n = 3000
    x = rng.uniform(0, 10, size=n)
    y = (rng.random(n) < 0.05 + 0.06 * x).astype(int)  # risk rises with x
    X = pd.DataFrame({"x": x, "z": rng.normal(size=n)})
    free = ScorecardClassifier().fit(X, y)
    forced = ScorecardClassifier(decreasing=("x",), min_iv=0.0).fit(X, y)
    rates_free = [b.event_rate for b in next(b for b in free.bins_ if b.feature == "x").bins]
    assert rates_free == sorted(rates_free)
    assert len(rates_free) > 2
    x_bins = next((b for b in forced.bins_ if b.feature == "x"), None)
    if x_bins is not None:  # merged into bins whose rate never rises with x
        rates = [b.event_rate for b in x_bins.bins]
        assert rates == sorted(rates, reverse=True)
    grid = pd.DataFrame({"x": np.linspace(0, 10, 50), "z": 0.0})
    assert np.all(np.diff(forced.predict_proba(grid)[:, 1]) <= 1e-12)


def test_information_value_selection_drops_noise_and_keeps_one_feature():
    rng = np.random.default_rng(2)
    n = 4000
    signal = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.5 * signal - 1)))).astype(int)
    X = pd.DataFrame(
        {
            "signal": signal,
            "noise": rng.normal(size=n),
            "noise_text": rng.choice(["a", "b", "c"], size=n).astype(object),
        }
    )
    model = ScorecardClassifier().fit(X, y)
    assert model.features_ == ("signal",)
    assert model.iv_["noise"] < 0.02
    assert model.iv_["noise_text"] < 0.02
    assert model.iv_["signal"] > 0.3
    assert roc_auc_score(y, model.predict_proba(X)[:, 1]) > 0.8

    pure_noise = X[["noise", "noise_text"]]
    only = ScorecardClassifier(min_iv=0.5).fit(pure_noise, y)
    best = max(only.iv_, key=only.iv_.get)
    assert only.features_ == (best,)
    assert np.isfinite(only.predict_proba(pure_noise)).all()


def test_unknown_categories_and_missing_values_get_a_finite_score(credit):
    model = credit["model"]
    rows = credit["X_test"].head(6).copy()
    rows.loc[rows.index[0], "Home"] = "castle"  # never seen in training
    rows.loc[rows.index[1], "Records"] = "maybe"  # outside the spec's order
    rows.loc[rows.index[2], "Income"] = np.nan
    rows.loc[rows.index[3], "Job"] = None
    rows.loc[rows.index[4], ["Seniority", "Home", "Amount"]] = [np.nan, "", np.nan]
    proba = model.predict_proba(rows)[:, 1]
    assert np.isfinite(proba).all()
    assert ((proba > 0) & (proba < 1)).all()
    estimator = model[-1]
    woe = dict(zip(estimator.features_, estimator.woe(model[0].transform(rows))[0], strict=True))
    home = next(b for b in estimator.bins_ if b.feature == "Home")
    assert woe["Home"] == home.unknown_woe == pytest.approx(0.0, abs=1e-12)  # average risk
    with pytest.raises(ValueError, match="infinity"):
        model.predict_proba(rows.assign(Income=np.inf))


def test_scorecard_is_recognised_cloned_and_ranked_in_the_zoo(credit):
    model = credit["model"]
    parts = anatomy(model)
    assert (parts.kind, parts.family) == ("scorecard", "scorecard")
    assert anatomy(credit["calibrated"]).calibrated
    assert model.steps[0][0] == "preprocess"
    candidate = CANDIDATES["scorecard"]
    assert candidate.complexity == 2
    assert CANDIDATES["logistic_regression"].complexity == 1
    grid_sizes = {
        profile: math.prod(len(v) for v in grid.values())
        for profile, grid in candidate.grid.items()
    }
    assert grid_sizes["fast"] == 1
    assert grid_sizes["full"] > 1
    copy = clone(model).fit(credit["X_train"], credit["y_train"])
    np.testing.assert_array_equal(
        copy.predict_proba(credit["X_test"]), model.predict_proba(credit["X_test"])
    )
    auc = roc_auc_score(credit["y_test"], model.predict_proba(credit["X_test"])[:, 1])
    assert auc > 0.8
