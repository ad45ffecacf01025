"""Error analysis: exact checks on a 12-row table worked by hand, binning edge cases, and a run on
credit_data compared with scikit-learn."""

import io
import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from creditops.data.spec import FeatureSchema, ResolvedSpec
from creditops.evaluation.errors import (
    ErrorCosts,
    ErrorReport,
    error_analysis,
    error_rate_figure,
)
from creditops.exceptions import DataValidationError


def _spec(numeric: list[str], categorical: list[str], id_column: str | None = None) -> ResolvedSpec:
    return ResolvedSpec(
        dataset="toy",
        target="y",
        positive=1,
        negative=0,
        protected=[],
        id=id_column,
        numeric=numeric,
        categorical=categorical,
        schema=[FeatureSchema(name=c, kind="numeric", missing_rate=0.0) for c in numeric]
        + [FeatureSchema(name=c, kind="categorical", missing_rate=0.0) for c in categorical],
        n_rows=12,
        positive_rate=0.5,
    )


# Rows, with the outcome at threshold 0.5 (declined = predicted default = proba ≥ 0.5):
#  0 TN, 1 TN, 2 TN, 3 FP, 4 FP, 5 TN, 6 TP, 7 TP, 8 FN, 9 FN, 10 FN, 11 FP
Y = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0]
PROBA = [0.10, 0.20, 0.30, 0.60, 0.80, 0.40, 0.90, 0.70, 0.20, 0.45, 0.05, 0.55]
INCOME = [100, 120, 90, 40, 30, 110, 20, 35, 130, 95, 150, 60]
HOME = ["own", None, "parents", "rent", "rent", "own", "rent", "rent", "own", "own", "own", "own"]
AMOUNT = [1000, 1000, 1000, 1000, 3000, 1000, 1000, 1000, 1000, 2000, 4000, 2000]
FP_ROWS, FN_ROWS, CORRECT_ROWS = [3, 4, 11], [8, 9, 10], [0, 1, 2, 5, 6, 7]
SMALL_SPEC = _spec(["income", "amount"], ["home"])
AMOUNT_COSTS = ErrorCosts(amount_column="amount", lgd=0.5, margin=0.1)


@pytest.fixture
def small() -> pd.DataFrame:
    # A non-default index, to check that cases are reported by X's labels, not positions.
    return pd.DataFrame(
        {"income": INCOME, "home": HOME, "amount": AMOUNT},
        index=[f"r{i}" for i in range(12)],
    ).astype({"income": "float64", "amount": "float64"})


def _analyse(X: pd.DataFrame, **kwargs) -> ErrorReport:
    options = {"threshold": 0.5, "costs": AMOUNT_COSTS, "n_bins": 2, "min_segment_size": 5}
    return error_analysis(X, np.array(Y), np.array(PROBA), SMALL_SPEC, **(options | kwargs))


def test_counts_rates_and_costs_match_the_hand_computation(small):
    report = _analyse(small)
    assert report.confusion.model_dump() == {"tn": 4, "fp": 3, "fn": 3, "tp": 2}
    assert report.error_rate == pytest.approx(6 / 12)
    fp, fn = report.false_positives, report.false_negatives
    assert (fp.count, fn.count) == (3, 3)
    assert fp.rate == pytest.approx(3 / 7)  # 7 goods
    assert fn.rate == pytest.approx(3 / 5)  # 5 defaulters
    # FN: lgd 0.5 × amounts 1000, 2000, 4000; FP: margin 0.1 × amounts 1000, 3000, 2000.
    assert fn.total_cost == pytest.approx(500 + 1000 + 2000)
    assert fn.mean_cost == pytest.approx(3500 / 3)
    assert fp.total_cost == pytest.approx(100 + 300 + 200)
    assert fp.mean_cost == pytest.approx(200)
    assert report.total_cost == pytest.approx(4100)
    assert report.cost_basis == "amount"
    assert fp.mean_proba == pytest.approx((0.60 + 0.80 + 0.55) / 3)


def test_flat_costs_apply_per_mistake(small):
    report = _analyse(small, costs=ErrorCosts())
    assert report.cost_basis == "flat"
    assert report.false_negatives.total_cost == pytest.approx(3 * 5.0)
    assert report.false_positives.total_cost == pytest.approx(3 * 1.0)


def test_numeric_differences_match_smd_and_ks_by_hand(small):
    report = _analyse(small)
    income = report.feature_difference("income")
    fp_income = [INCOME[i] for i in FP_ROWS]
    fn_income = [INCOME[i] for i in FN_ROWS]
    ok_income = [INCOME[i] for i in CORRECT_ROWS]

    def smd(error: list[float]) -> float:
        pooled = math.sqrt((statistics.variance(error) + statistics.variance(ok_income)) / 2)
        return (statistics.mean(error) - statistics.mean(ok_income)) / pooled

    assert income.false_positive.mean == pytest.approx(statistics.mean(fp_income))
    assert income.false_negative.median == pytest.approx(130)
    assert income.correct.median == pytest.approx(statistics.median(ok_income))
    assert income.smd_fp == pytest.approx(smd(fp_income))
    assert income.smd_fp == pytest.approx(-1.1454, abs=1e-4)
    assert income.smd_fn == pytest.approx(smd(fn_income))
    # ECDF gaps by hand: FP {30,40,60} vs correct {20,35,90,100,110,120}: 1 − 2/6 at 60;
    # FN {95,130,150} vs correct: 1 − 1/3 at 120.
    assert income.ks_fp == pytest.approx(2 / 3)
    assert income.ks_fn == pytest.approx(2 / 3)
    assert income.score == pytest.approx(2 / 3)


def test_categorical_shares_and_largest_shift_by_hand(small):
    report = _analyse(small)
    home = report.feature_difference("home")
    shares = {s.category: (s.false_positive, s.false_negative, s.correct) for s in home.shares}
    assert list(shares) == ["own", "parents", "rent", "missing"]
    assert shares["own"] == pytest.approx((1 / 3, 1.0, 2 / 6))
    assert shares["rent"] == pytest.approx((2 / 3, 0.0, 2 / 6))
    assert shares["missing"] == pytest.approx((0.0, 0.0, 1 / 6))
    assert home.largest_shift_fp.category == "rent"
    assert home.largest_shift_fp.difference == pytest.approx(2 / 3 - 2 / 6)
    assert home.largest_shift_fn.category == "own"
    assert home.largest_shift_fn.difference == pytest.approx(1 - 2 / 6)
    assert home.total_variation_fp == pytest.approx(0.5 * (0 + 1 / 6 + 1 / 3 + 1 / 6))
    assert home.total_variation_fn == pytest.approx(0.5 * (2 / 3 + 1 / 6 + 1 / 3 + 1 / 6))
    # Ranking: home (2/3, FN-driven) ties income's KS (2/3); amount's differences are smaller.
    ranking = {r.feature: r for r in report.feature_ranking}
    assert ranking["home"].driven_by == "false_negative"
    assert ranking["home"].measure == "total_variation"
    scores = [r.score for r in report.feature_ranking]
    assert scores == sorted(scores, reverse=True)


def test_segment_error_rates_by_hand(small):
    report = _analyse(small)
    home = {s.label: s for s in report.feature_segments("home").segments}
    own, rent = home["own"], home["rent"]  # own: rows 0 5 8 9 10 11; rent: rows 3 4 6 7
    assert (own.size, own.false_positives, own.false_negatives) == (6, 1, 3)
    assert own.error_rate == pytest.approx(4 / 6)
    assert own.fp_rate == pytest.approx(1 / 3)
    assert own.fn_rate == pytest.approx(1.0)
    assert own.cost == pytest.approx(200 + 500 + 1000 + 2000)
    assert own.lift == pytest.approx((4 / 6) / (6 / 12))
    assert (rent.size, rent.error_rate, rent.fp_rate, rent.fn_rate) == (4, 0.5, 1.0, 0.0)
    assert home["missing"].size == 1
    assert home["parents"].fn_rate is None  # no defaulters there
    # Income median (inverted cdf) is 90: [20, 90] holds the 3 FPs, (90, 150] the 3 FNs.
    income = {s.label: (s.size, s.errors) for s in report.feature_segments("income").segments}
    assert income == {"[20, 90]": (6, 3), "(90, 150]": (6, 3)}
    # Amount = 1000 fills half the rows, so it is a segment of its own.
    amount = {s.label: (s.size, s.errors) for s in report.feature_segments("amount").segments}
    assert amount == {"1000": (8, 2), "(1000, 4000]": (4, 4)}


def test_worst_segments_respect_the_minimum_size_and_are_sorted(small):
    report = _analyse(small, min_segment_size=5)
    worst = [(s.feature, s.label) for s in report.worst_segments]
    assert worst == [
        ("home", "own"),
        ("income", "[20, 90]"),
        ("income", "(90, 150]"),
        ("amount", "1000"),
    ]
    assert all(s.size >= 5 and s.meets_min_size for s in report.worst_segments)
    loose = _analyse(small, min_segment_size=1, n_worst=3)
    assert [(s.feature, s.label, s.error_rate) for s in loose.worst_segments][:2] == [
        ("amount", "(1000, 4000]", 1.0),
        ("home", "own", pytest.approx(4 / 6)),
    ]
    assert len(loose.worst_segments) == 3
    rates = [s.error_rate for s in loose.worst_segments]
    assert rates == sorted(rates, reverse=True)


def test_most_confident_errors_are_sorted_and_explained_with_exactly_those_rows(small):
    calls: list[pd.DataFrame] = []

    def explain(rows: pd.DataFrame) -> list[dict]:
        calls.append(rows.copy())
        return [
            {"row": str(i), "weight": np.float64(k), "n": np.int64(k)}
            for k, i in enumerate(rows.index)
        ]

    ids = pd.Series([f"A{i}" for i in range(12)])
    report = _analyse(small, explain=explain, ids=ids, top_k=2)
    fns, fps = report.most_confident_false_negatives, report.most_confident_false_positives
    # FN by lowest PD: rows 10 (0.05), 8 (0.20); FP by highest PD: rows 4 (0.80), 3 (0.60).
    assert [c.index for c in fns] == ["r10", "r8"]
    assert [c.index for c in fps] == ["r4", "r3"]
    assert [c.proba for c in fns] == [0.05, 0.20]
    assert [c.proba for c in fps] == [0.80, 0.60]
    assert [c.id for c in fns + fps] == ["A10", "A8", "A4", "A3"]
    assert [c.y_true for c in fns + fps] == [1, 1, 0, 0]
    assert [c.cost for c in fns + fps] == pytest.approx([2000, 500, 300, 100])
    assert fns[0].features == {"income": 150.0, "amount": 4000.0, "home": "own"}
    assert len(calls) == 1
    assert list(calls[0].index) == ["r10", "r8", "r4", "r3"]
    assert list(calls[0].columns) == SMALL_SPEC.features
    assert [c.explanation["row"] for c in fns + fps] == ["r10", "r8", "r4", "r3"]
    assert type(fps[1].explanation["n"]) is int  # numpy scalars made plain for JSON
    json.dumps(report.model_dump(mode="json"))


def test_explain_must_return_one_dict_per_row(small):
    with pytest.raises(ValueError, match=r"one dict per row"):
        _analyse(small, explain=lambda rows: [{}])


def test_without_ids_cases_use_the_spec_id_column_when_x_has_it(small):
    X = small.assign(key=range(100, 112))
    spec = _spec(["income", "amount"], ["home"], id_column="key")
    report = error_analysis(
        X, np.array(Y), np.array(PROBA), spec, threshold=0.5, top_k=1, min_segment_size=1
    )
    assert report.most_confident_false_negatives[0].id == 110
    assert report.most_confident_false_positives[0].id == 104


def test_bad_inputs_are_refused(small):
    with pytest.raises(DataValidationError, match=r"income"):
        _analyse(small.drop(columns="income"))
    with pytest.raises(ValueError, match=r"differ in rows"):
        error_analysis(small, np.array(Y[:-1]), np.array(PROBA), SMALL_SPEC, threshold=0.5)
    with pytest.raises(DataValidationError, match=r"price"):
        _analyse(small, costs=ErrorCosts(amount_column="price"))


# --------------------------------------------------------------------------- binning


def _in_segment(label: str, values: np.ndarray) -> np.ndarray:
    """Rows a segment label describes, read back from the label text alone."""
    if label == "missing":
        return np.isnan(values)
    if label[0] in "[(":
        low, high = (float(v) for v in label[1:-1].split(", "))
        above = values >= low if label[0] == "[" else values > low
        below = values <= high if label[-1] == "]" else values < high
        return above & below
    return values == float(label)


def _segments_of(values: np.ndarray, n_bins: int) -> dict[str, int]:
    n = len(values)
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"x": values})
    report = error_analysis(
        X,
        rng.integers(0, 2, n),
        rng.random(n),
        _spec(["x"], []),
        threshold=0.5,
        n_bins=n_bins,
        min_segment_size=1,
    )
    segments = report.feature_segments("x").segments
    labels = [s.label for s in segments]
    assert len(set(labels)) == len(labels)
    assert all(s.size > 0 for s in segments)
    assert sum(s.size for s in segments) == n
    covered = np.zeros(n, dtype=int)
    for segment in segments:
        inside = _in_segment(segment.label, values)
        assert inside.sum() == segment.size, segment.label
        covered += inside
    assert (covered == 1).all()  # every row in exactly one segment
    return {s.label: s.size for s in segments}


def test_quantile_bins_with_heavy_ties_and_missing_values_by_hand():
    values = np.array([0.0] * 50 + list(range(1, 31)) + [100.0] * 10 + [np.nan] * 10)
    # Quintile edges (inverted cdf, 90 values): 0, 0, 0, 4, 22, 100: zero is a point mass.
    assert _segments_of(values, 5) == {
        "0": 50,
        "(0, 4]": 4,
        "(4, 22]": 18,
        "(22, 100]": 18,
        "missing": 10,
    }


@pytest.mark.parametrize("n_bins", [1, 2, 3, 5, 10])
def test_quantile_bins_cover_every_row_once(n_bins):
    rng = np.random.default_rng(n_bins)
    tied = rng.choice([0.0, 0.0, 0.0, 1.0, 2.5, 7.0], size=300)
    spread = rng.lognormal(size=300).round(2)
    spread[rng.random(300) < 0.1] = np.nan
    for values in (tied, spread, np.full(40, 3.0), np.full(40, np.nan)):
        _segments_of(values, n_bins)


def test_categorical_segments_include_missing_for_string_dtype():
    X = pd.DataFrame({"c": pd.Series(["a", None, "b", "a", " "], dtype="str")})
    report = error_analysis(
        X,
        np.array([1, 0, 0, 1, 0]),
        np.array([0.1, 0.2, 0.9, 0.8, 0.3]),
        _spec([], ["c"]),
        threshold=0.5,
        min_segment_size=1,
    )
    sizes = {s.label: s.size for s in report.feature_segments("c").segments}
    assert sizes == {"a": 2, "b": 1, "missing": 2}


# --------------------------------------------------------------------------- credit data


def test_credit_data_xgboost_matches_sklearn_and_serialises(credit_case):
    model = credit_case.models["xgboost"]
    X, y = credit_case.X_test, credit_case.y_test
    proba = model.predict_proba(X)[:, 1]
    ids = credit_case.frame.loc[X.index, credit_case.spec.id]
    report = error_analysis(
        X,
        y,
        proba,
        credit_case.spec,
        threshold=0.5,
        costs=ErrorCosts(amount_column="Amount"),
        ids=ids,
    )
    tn, fp, fn, tp = confusion_matrix(y, (proba >= 0.5).astype(int), labels=[0, 1]).ravel()
    assert report.confusion.model_dump() == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    amount = X["Amount"].to_numpy()
    declined = proba >= 0.5
    assert report.false_negatives.total_cost == pytest.approx(
        0.45 * amount[~declined & (y == 1)].sum()
    )
    assert report.false_positives.total_cost == pytest.approx(
        0.10 * amount[declined & (y == 0)].sum()
    )
    for result in report.segments:
        assert sum(s.size for s in result.segments) == len(y), result.feature
    assert {r.feature for r in report.feature_ranking} == set(credit_case.spec.features)
    assert all(s.size >= 30 for s in report.worst_segments)
    rates = [s.error_rate for s in report.worst_segments]
    assert rates == sorted(rates, reverse=True)
    assert len(rates) == 10
    worst_fn = report.most_confident_false_negatives[0]
    assert worst_fn.proba == pytest.approx(proba[~declined & (y == 1)].min())
    assert worst_fn.id == int(ids.loc[worst_fn.index])

    payload = report.model_dump(mode="json")
    text = json.dumps(payload)
    assert ErrorReport.model_validate_json(text) == report

    figure = error_rate_figure(report)
    assert isinstance(figure, Figure)
    assert len(figure.axes) == 4
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    assert buffer.getvalue()[:4] == b"\x89PNG"
