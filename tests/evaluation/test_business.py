"""Business impact: scorecard scaling, profit by hand, target thresholds, grades, policy, report."""

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from pydantic import ValidationError

from creditops.evaluation.business import (
    BusinessReport,
    amounts_from,
    approval_rate_table,
    build_policy,
    business_report,
    optimal_threshold,
    profit_curve,
    risk_grades,
    threshold_for_approval_rate,
    threshold_for_bad_rate,
)
from creditops.evaluation.plots import business_figures
from creditops.evaluation.policy import (
    DecisionPolicy,
    Economics,
    ScoreScale,
    points_to_proba,
    to_points,
)

# Six loans, shuffled so nothing relies on input order. Margin 0.10, LGD 0.50.
#   p     y  amount | realised if approved | expected if approved = (1−p)·0.1·A − p·0.5·A
#   0.05  0  1000   | +100                 | 95 − 25   = +70
#   0.10  0  2000   | +200                 | 180 − 100 = +80
#   0.20  1  1000   | −500                 | 80 − 100  = −20
#   0.30  0   500   | +50                  | 35 − 75   = −40
#   0.50  1  1000   | −500                 | 50 − 250  = −200
#   0.80  1  3000   | −1500                | 60 − 1200 = −1140
SIX = [
    (0.30, 0, 500.0),
    (0.05, 0, 1000.0),
    (0.80, 1, 3000.0),
    (0.20, 1, 1000.0),
    (0.50, 1, 1000.0),
    (0.10, 0, 2000.0),
]
SIX_ECONOMICS = Economics(average_amount=1000.0, interest_margin=0.10, loss_given_default=0.5)
CREDIT_ECONOMICS = Economics(amount_column="Amount", loss_given_default=0.6, interest_margin=0.15)


def _six():
    proba, y, amounts = (np.array(column) for column in zip(*SIX, strict=True))
    return y.astype(int), proba, amounts


def _brute(y, proba, amounts, economics, threshold):
    """Independent per-threshold computation: mask, then plain sums."""
    approved = proba < threshold
    a = amounts[approved]
    p = proba[approved]
    bad = y[approved] == 1
    m, lgd = economics.interest_margin, economics.loss_given_default
    realised = float(np.sum(np.where(bad, -lgd * a, m * a)))
    expected = float(np.sum((1 - p) * m * a - p * lgd * a))
    bad_rate = float(bad.mean()) if approved.any() else None
    return int(approved.sum()), realised, expected, bad_rate


@pytest.fixture(scope="module")
def credit(credit_case):
    """Test-split probabilities of the xgboost models, labels and loan amounts."""
    return {
        "y": credit_case.y_test,
        "xgboost": credit_case.models["xgboost"].predict_proba(credit_case.X_test)[:, 1],
        "calibrated": credit_case.models["calibrated_xgboost"].predict_proba(credit_case.X_test)[
            :, 1
        ],
        "amounts": amounts_from(credit_case.X_test, CREDIT_ECONOMICS),
        "X": credit_case.X_test,
    }


# --------------------------------------------------------------------------- scorecard


def test_points_at_base_odds_are_base_points_and_pdo_doubles_the_odds():
    scale = ScoreScale()
    assert scale.factor == pytest.approx(20 / math.log(2))
    assert to_points(1 / 51, scale) == pytest.approx(600.0, abs=1e-9)  # odds 50:1
    assert to_points(1 / 101, scale) == pytest.approx(620.0, abs=1e-9)  # odds 100:1
    assert to_points(1 / 26, scale) == pytest.approx(580.0, abs=1e-9)  # odds 25:1
    assert to_points(0.5, scale) == pytest.approx(600 - 20 * math.log2(50), abs=1e-9)
    custom = ScoreScale(base_points=500, base_odds=20, pdo=50)
    assert to_points(1 / 21, custom) == pytest.approx(500.0)
    assert to_points(1 / 41, custom) == pytest.approx(550.0)


def test_points_round_trip_and_clipping():
    scale = ScoreScale(base_points=650, base_odds=30, pdo=25)
    proba = np.array([0.001, 0.02, 0.1, 0.3, 0.5, 0.77, 0.999])
    points = to_points(proba, scale)
    assert np.all(np.diff(points) < 0)  # riskier applicants score lower
    np.testing.assert_allclose(points_to_proba(points, scale), proba, rtol=1e-10)
    back = to_points(points_to_proba([480.0, 600.0, 731.5], scale), scale)
    np.testing.assert_allclose(back, [480.0, 600.0, 731.5])
    assert points_to_proba(600.0) == pytest.approx(1 / 51)
    # 0 and 1 are clipped to 1e-6 from the ends: finite, ±398.6 points around the offset
    ends = to_points(np.array([0.0, 1.0]))
    np.testing.assert_allclose(ends, to_points(np.array([1e-6, 1 - 1e-6])))
    half_range = 20 / math.log(2) * math.log((1 - 1e-6) / 1e-6)
    np.testing.assert_allclose(ends - to_points(0.5), [half_range, -half_range])


# --------------------------------------------------------------------------- profit


def test_profit_by_hand_on_six_rows():
    y, proba, amounts = _six()
    curve = profit_curve(y, proba, amounts, SIX_ECONOMICS, thresholds=[0.20, 0.25, 1.0])
    at = {point.threshold: point for point in curve.points}
    # 0.25 approves 0.05, 0.10, 0.20: 100 + 200 − 500 realised; 70 + 80 − 20 expected
    assert at[0.25].n_approved == 3
    assert at[0.25].approval_rate == pytest.approx(0.5)
    assert at[0.25].bad_rate == pytest.approx(1 / 3)
    assert at[0.25].realised_profit == pytest.approx(-200.0)
    assert at[0.25].expected_profit == pytest.approx(130.0)
    # exactly 0.20 does not approve the 0.20 row
    assert (at[0.20].n_approved, at[0.20].bad_rate) == (2, 0.0)
    assert at[0.20].realised_profit == pytest.approx(300.0)
    assert at[0.20].expected_profit == pytest.approx(150.0)
    # everyone: 100 + 200 − 500 + 50 − 500 − 1500
    assert at[1.0].realised_profit == pytest.approx(-2150.0)
    assert at[1.0].expected_profit == pytest.approx(70 + 80 - 20 - 40 - 200 - 1140)
    assert curve.total_amount == pytest.approx(8500.0)
    assert curve.defaults == 3


def test_average_amount_used_when_no_amounts():
    y, proba, _ = _six()
    point = profit_curve(y, proba, None, SIX_ECONOMICS, thresholds=[0.25]).points[0]
    assert point.realised_profit == pytest.approx(100 + 100 - 500)  # every loan 1000


def test_optimal_threshold_by_hand():
    y, proba, amounts = _six()
    # realised by number approved: 0, 100, 300, −200, −150, −650, −2150 → best: 2 approved,
    # cut between 0.10 and 0.20
    best = optimal_threshold(y, proba, amounts, SIX_ECONOMICS)
    assert best.threshold == pytest.approx(0.15)
    assert (best.n_approved, best.bad_rate) == (2, 0.0)
    assert best.realised_profit == pytest.approx(300.0)
    assert best.profit_per_application == pytest.approx(50.0)
    # Make the 0.30 loan large: realised 0, 100, 300, −200, 4800, ... → best is 4 approved.
    big = amounts.copy()
    big[proba == 0.30] = 100_000.0
    best = optimal_threshold(y, proba, big, SIX_ECONOMICS)
    assert best.threshold == pytest.approx(0.40)
    assert best.realised_profit == pytest.approx(300 - 500 + 10_000)
    assert best.bad_rate == pytest.approx(1 / 4)


def test_expected_optimum_is_the_break_even_pd(credit):
    # Expected profit per loan is positive exactly when p < margin / (margin + LGD) = 0.2.
    assert CREDIT_ECONOMICS.break_even_pd == pytest.approx(0.2)
    proba = credit["calibrated"]
    best = optimal_threshold(
        credit["y"], proba, credit["amounts"], CREDIT_ECONOMICS, objective="expected"
    )
    assert best.n_approved == int((proba < 0.2).sum())
    y, p6, a6 = _six()
    six = optimal_threshold(y, p6, a6, SIX_ECONOMICS, objective="expected")
    assert six.n_approved == int((p6 < SIX_ECONOMICS.break_even_pd).sum()) == 2


def test_curve_matches_brute_force_on_credit_data(credit):
    y, proba, amounts = credit["y"], credit["calibrated"], credit["amounts"]
    curve = profit_curve(y, proba, amounts, CREDIT_ECONOMICS)
    assert len(curve.points) > 100
    assert [p.threshold for p in curve.points] == sorted(p.threshold for p in curve.points)
    for point in curve.points:
        n, realised, expected, bad_rate = _brute(
            y, proba, amounts, CREDIT_ECONOMICS, point.threshold
        )
        assert point.n_approved == n
        assert point.realised_profit == pytest.approx(realised)
        assert point.expected_profit == pytest.approx(expected)
        assert point.bad_rate == (None if bad_rate is None else pytest.approx(bad_rate))
    best = optimal_threshold(y, proba, amounts, CREDIT_ECONOMICS)
    # No threshold at all (every distinct value, and beyond) beats the reported optimum.
    candidates = np.concatenate([np.unique(proba), [1.0]])
    brute_best = max(_brute(y, proba, amounts, CREDIT_ECONOMICS, t)[1] for t in candidates)
    assert best.realised_profit == pytest.approx(brute_best)


# --------------------------------------------------------------------------- target thresholds


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.5, 0.73, 0.95, 1.0])
def test_threshold_for_approval_rate_hits_the_rate(rate):
    proba = np.random.default_rng(3).uniform(size=997)
    threshold = threshold_for_approval_rate(proba, rate)
    assert abs(np.mean(proba < threshold) - rate) <= 1 / 997


def test_threshold_for_approval_rate_on_credit_data(credit):
    proba = credit["xgboost"]
    n = proba.size
    for rate in np.arange(0.5, 1.0, 0.05):
        achieved = np.mean(proba < threshold_for_approval_rate(proba, rate))
        assert abs(achieved - rate) <= 1 / n + 1e-12


def test_threshold_for_bad_rate_respects_the_target(credit):
    y, proba = credit["y"], credit["calibrated"]
    for target in (0.03, 0.08, 0.15, 0.25):
        threshold = threshold_for_bad_rate(y, proba, target)
        approved = proba < threshold
        assert y[approved].mean() <= target
        # brute force: the largest approval with a bad rate within target
        feasible = [
            (proba < t).sum()
            for t in np.concatenate([np.unique(proba), [1.0]])
            if (proba < t).any() and y[proba < t].mean() <= target
        ]
        assert approved.sum() == max(feasible)
    # the whole book's bad rate is 28%: a 30% target approves everyone
    assert threshold_for_bad_rate(y, proba, 0.30) == 1.0
    assert threshold_for_bad_rate([1, 0], [0.1, 0.2], 0.0) == 0.0  # safest row defaulted


def test_approval_rate_table(credit):
    y, proba, amounts = credit["y"], credit["calibrated"], credit["amounts"]
    table = approval_rate_table(y, proba, amounts, CREDIT_ECONOMICS)
    assert [row.target_rate for row in table] == pytest.approx(np.arange(0.5, 0.96, 0.05))
    for row in table:
        assert row.threshold == threshold_for_approval_rate(proba, row.target_rate)
        n, realised, _, bad_rate = _brute(y, proba, amounts, CREDIT_ECONOMICS, row.threshold)
        assert (row.n_approved, row.realised_profit) == (n, pytest.approx(realised))
        assert row.bad_rate == pytest.approx(bad_rate)
    assert [row.bad_rate for row in table] == sorted(row.bad_rate for row in table)


# --------------------------------------------------------------------------- risk grades


@pytest.mark.parametrize("method", ["scale", "quantile"])
def test_risk_grades_on_xgboost_rise_from_best_to_worst(credit, method):
    y, proba = credit["y"], credit["xgboost"]
    grades = risk_grades(proba, y, method=method)
    counts = [row.count for row in grades.grades]
    assert sum(counts) == y.size
    assert sum(row.share for row in grades.grades) == pytest.approx(1.0)
    assert sum(row.defaults for row in grades.grades) == y.sum()
    observed = [row.bad_rate for row in grades.grades if row.count]
    assert len(observed) >= 5
    # A tolerance of 2 points between neighbours: with 11–100 rows a grade, one default more or
    # less moves a bad rate by 1–9 points, so a strict test would hinge on single rows.
    assert all(b >= a - 0.02 for a, b in itertools.pairwise(observed))
    assert observed[-1] - observed[0] > 0.4
    assert grades.monotone == all(b >= a for a, b in itertools.pairwise(observed))
    # Independent recount: rounded points against the cut-offs.
    shown = np.round(to_points(proba))
    edges = [math.inf, *grades.cutoffs, -math.inf]
    for row, high, low in zip(grades.grades, edges, edges[1:], strict=False):
        members = (shown >= low) & (shown < high)
        assert row.count == members.sum()
        if row.count:
            assert row.bad_rate == pytest.approx(y[members].mean())
            assert row.min_pd <= row.mean_pd <= row.max_pd


def test_scale_grades_are_pdo_bands_and_points_input_agrees(credit):
    proba = credit["calibrated"]
    by_proba = risk_grades(proba, credit["y"])
    assert by_proba.cutoffs == [600, 580, 560, 540, 520, 500]
    assert [row.grade for row in by_proba.grades] == list("ABCDEFG")
    b = by_proba.grades[1]  # 580 ≤ rounded points < 600: odds 25:1 to 50:1
    assert (b.min_points, b.max_points) == (580, 600)
    assert b.min_pd == pytest.approx(points_to_proba(599.5))
    assert b.max_pd > 1 / 26
    by_points = risk_grades(to_points(proba), credit["y"], score_type="points")
    assert [r.count for r in by_points.grades] == [r.count for r in by_proba.grades]
    unlabelled = risk_grades(proba)
    assert unlabelled.monotone is None
    assert unlabelled.grades[-1].bad_rate is None


# --------------------------------------------------------------------------- policy


def _policy(approve_below=0.2, decline_at_or_above=0.3):
    return DecisionPolicy(
        approve_below=approve_below,
        decline_at_or_above=decline_at_or_above,
        threshold_source="manual",
        economics=SIX_ECONOMICS,
    )


def test_policy_bands_at_the_edges():
    policy = _policy()
    below = np.nextafter(0.2, 0.0)
    cases = {0.0: "approve", below: "approve", 0.2: "refer", 0.25: "refer", 0.3: "decline"}
    cases |= {np.nextafter(0.3, 0.0): "refer", 1.0: "decline"}
    for proba, expected in cases.items():
        assert policy.decide(proba) == expected, proba
    assert list(policy.decide_many(list(cases))) == list(cases.values())
    empty = _policy(0.25, 0.25)
    assert [empty.decide(p) for p in (np.nextafter(0.25, 0.0), 0.25)] == ["approve", "decline"]
    assert "refer" not in set(empty.decide_many(np.linspace(0, 1, 1001)))


def test_policy_json_round_trip_and_grades():
    y, proba, amounts = _six()
    policy = build_policy(y, proba, amounts, SIX_ECONOMICS, ScoreScale(pdo=25), refer_width=0.1)
    text = policy.model_dump_json()
    assert json.loads(text)["schema_version"] == 1
    again = DecisionPolicy.model_validate_json(text)
    assert again == policy
    grid = np.linspace(0, 1, 501)
    assert list(again.decide_many(grid)) == list(policy.decide_many(grid))
    assert list(again.grade(grid)) == list(policy.grade(grid))
    assert policy.points(1 / 51)[0] == 600
    assert list(policy.grade([1 / 51, 1 / 26, 0.9])) == ["A", "B", "G"]


def test_build_policy_bands_by_hand():
    y, proba, amounts = _six()
    policy = build_policy(y, proba, amounts, SIX_ECONOMICS, refer_width=0.1)
    # profit-maximising cut 0.15 (see test_optimal_threshold_by_hand); refer up to 0.25
    assert policy.threshold_source == "profit-maximizing"
    assert policy.objective == "realised"
    assert policy.approve_below == pytest.approx(0.15)
    assert policy.decline_at_or_above == pytest.approx(0.25)
    # A review can pay only while p < 1 − cost / (margin · mean amount); mean amount 8500/6.
    costly = SIX_ECONOMICS.model_copy(update={"review_cost": 120.0})
    ceiling = 1 - 120 / (0.1 * 8500 / 6)
    narrowed = build_policy(y, proba, amounts, costly, refer_width=0.5)
    assert narrowed.decline_at_or_above == pytest.approx(ceiling)
    too_costly = SIX_ECONOMICS.model_copy(update={"review_cost": 140.0})  # ceiling 0.012 < 0.15
    no_band = build_policy(y, proba, amounts, too_costly, refer_width=0.5)
    assert no_band.decline_at_or_above == no_band.approve_below
    by_rate = build_policy(y, proba, amounts, SIX_ECONOMICS, target_approval_rate=0.5)
    assert by_rate.threshold_source == "approval-rate"
    assert by_rate.source_target == 0.5
    assert by_rate.approve_below == pytest.approx(0.25)  # between 0.20 and 0.30


# --------------------------------------------------------------------------- report


def test_business_report_on_calibrated_xgboost(credit):
    y, proba = credit["y"], credit["calibrated"]
    amounts = amounts_from(credit["X"], CREDIT_ECONOMICS)
    np.testing.assert_array_equal(amounts, credit["X"]["Amount"].to_numpy(dtype=float))
    report = business_report(y, proba, amounts, CREDIT_ECONOMICS, ScoreScale())
    payload = json.loads(json.dumps(report.model_dump(mode="json")))
    assert payload["schema_version"] == 1
    assert BusinessReport.model_validate(payload) == report
    best = optimal_threshold(y, proba, amounts, CREDIT_ECONOMICS)
    assert report.optimal == best
    assert report.policy.approve_below == best.threshold
    assert best.threshold in [p.threshold for p in report.profit_curve.points]
    assert report.break_even_pd == pytest.approx(0.2)
    outcome = report.policy_outcome
    assert outcome.approve_rate == pytest.approx(best.approval_rate)
    assert outcome.approve_rate + outcome.refer_rate + outcome.decline_rate == pytest.approx(1.0)
    referred = (proba >= report.policy.approve_below) & (proba < report.policy.decline_at_or_above)
    assert outcome.review_cost == pytest.approx(referred.sum() * CREDIT_ECONOMICS.review_cost)
    figures = business_figures(report, "calibrated xgboost")
    assert set(figures) == {"profit_threshold.png", "profit_approval.png", "risk_grades.png"}
    assert all(isinstance(figure, Figure) for figure in figures.values())
    marked = [
        line
        for line in figures["profit_threshold.png"].axes[0].get_lines()
        if list(line.get_xdata()) == [best.threshold, best.threshold]
    ]
    assert marked  # the optimum is drawn


def test_amounts_from_frame():
    frame = pd.DataFrame({"Amount": [100.0, None, 300.0]})
    filled = Economics(amount_column="Amount", average_amount=250.0)
    np.testing.assert_array_equal(amounts_from(frame, filled), [100.0, 250.0, 300.0])
    with pytest.raises(ValueError, match=r"amount_column"):
        amounts_from(frame, Economics(amount_column="Amount"))
    with pytest.raises(ValueError, match=r"amount_column"):
        amounts_from(frame, Economics(amount_column="Loan"))
    np.testing.assert_array_equal(amounts_from(frame, Economics(average_amount=7.0)), [7.0] * 3)


# --------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"average_amount": 1000.0, "loss_given_default": 1.5}, "loss_given_default"),
        ({"average_amount": 1000.0, "loss_given_default": -0.1}, "loss_given_default"),
        ({"average_amount": 1000.0, "interest_margin": -0.01}, "interest_margin"),
        ({"average_amount": 1000.0, "review_cost": -1.0}, "review_cost"),
        ({"average_amount": -5.0}, "average_amount"),
        ({"average_amount": float("nan")}, "average_amount"),
        ({}, "amount_column"),
    ],
)
def test_bad_economics_name_the_field(kwargs, field):
    with pytest.raises(ValidationError, match=field):
        Economics(**kwargs)


def test_bad_inputs_name_the_field():
    y, proba, amounts = _six()
    negative = amounts.copy()
    negative[0] = -1.0
    with pytest.raises(ValueError, match=r"^amounts"):
        profit_curve(y, proba, negative, SIX_ECONOMICS)
    with_nan = proba.copy()
    with_nan[2] = np.nan
    with pytest.raises(ValueError, match=r"^proba"):
        profit_curve(y, with_nan, amounts, SIX_ECONOMICS)
    with pytest.raises(ValueError, match=r"^proba"):
        optimal_threshold(y, with_nan, amounts, SIX_ECONOMICS)
    with pytest.raises(ValueError, match=r"^proba"):
        _policy().decide(float("nan"))
    with pytest.raises(ValueError, match=r"^proba"):
        to_points([0.2, 1.2])
    with pytest.raises(ValueError, match=r"^y_true"):
        profit_curve(np.array([0, 1, 2, 0, 1, 1]), proba, amounts, SIX_ECONOMICS)
    with pytest.raises(ValueError, match=r"^target_rate"):
        threshold_for_approval_rate(proba, 1.5)
    with pytest.raises(ValueError, match=r"^target_bad_rate"):
        threshold_for_bad_rate(y, proba, -0.1)
    with pytest.raises(ValidationError, match=r"decline_at_or_above"):
        _policy(0.4, 0.3)
    with pytest.raises(ValidationError, match=r"approve_below"):
        _policy(-0.1, 0.3)
