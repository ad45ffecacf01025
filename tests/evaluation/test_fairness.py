"""Fairness of approvals: hand-computed ratios, fairlearn/sklearn cross-checks, the gate."""

import json
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    demographic_parity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score

from creditops.evaluation.fairness import (
    FairnessConfig,
    FairnessReport,
    approval_rate_figure,
    bin_protected,
    fairness_report,
)
from creditops.evaluation.gate import fairness_gate

# 20 applicants in two groups; approve when proba < 0.5 (0.50 itself is declined).
#   A: defaulters 0.9 0.8 0.6 | 0.3 approved;  goods 0.7 declined | 0.1 0.2 0.2 0.4 0.45 approved
#   B: defaulters 0.95 0.7 0.55 declined;      goods 0.6 0.65 0.8 0.5 declined | 0.1 0.3 0.35
HAND_TABLE = [
    ("A", 1, 0.90), ("A", 1, 0.80), ("A", 1, 0.60), ("A", 1, 0.30), ("A", 0, 0.10),
    ("A", 0, 0.20), ("A", 0, 0.20), ("A", 0, 0.40), ("A", 0, 0.45), ("A", 0, 0.70),
    ("B", 1, 0.95), ("B", 1, 0.70), ("B", 1, 0.55), ("B", 0, 0.10), ("B", 0, 0.30),
    ("B", 0, 0.60), ("B", 0, 0.65), ("B", 0, 0.80), ("B", 0, 0.50), ("B", 0, 0.35),
]  # fmt: skip
SMALL_OK = FairnessConfig(min_group_size=5, min_group_defaults=1, min_group_goods=1)


def _hand(rows=HAND_TABLE):
    frame = pd.DataFrame(rows, columns=["group", "y", "proba"])
    return frame["y"].to_numpy(), frame["proba"].to_numpy(), frame[["group"]]


def _by_group(result):
    return {g.group: g for g in result.groups}


def test_hand_computed_rates_and_ratios_on_twenty_rows():
    y, proba, protected = _hand()
    report = fairness_report(y, proba, protected, threshold=0.5, config=SMALL_OK, n_boot=0)
    result = report.attribute("group")
    a, b = _by_group(result)["A"], _by_group(result)["B"]

    assert (a.size, a.defaults, a.goods, a.share) == (10, 4, 6, 0.5)
    assert a.base_rate == pytest.approx(0.4)
    assert a.approval_rate == pytest.approx(6 / 10)
    assert a.tpr == pytest.approx(3 / 4)  # defaulters declined
    assert a.fpr == pytest.approx(1 / 6)  # goods declined
    assert a.precision == pytest.approx(3 / 4)  # 3 of the 4 declined defaulted
    assert a.auc == pytest.approx(20 / 24)  # 20 of 24 (default, good) pairs ranked right
    assert b.approval_rate == pytest.approx(3 / 10)  # 0.50 is declined: approval is PD < 0.5
    assert b.tpr == pytest.approx(1.0)
    assert b.fpr == pytest.approx(4 / 7)
    assert b.precision == pytest.approx(3 / 7)
    assert b.auc == pytest.approx(17 / 21)

    assert result.demographic_parity_difference.value == pytest.approx(0.3)
    assert result.demographic_parity_ratio.value == pytest.approx(0.5)
    assert result.disparate_impact_ratio.value == pytest.approx(0.5)
    # Approval among goods: A 5/6, B 3/7; among defaulters: A 1/4, B 0.
    assert result.equal_opportunity_difference.value == pytest.approx(float(Fraction(17, 42)))
    assert result.equalized_odds_difference.value == pytest.approx(float(Fraction(17, 42)))
    assert (result.most_approved_group, result.least_approved_group) == ("A", "B")
    assert result.four_fifths_verdict == "adverse impact presumed"
    assert result.disparate_impact_ratio.ci_low is None  # n_boot=0: no interval
    assert [r.attribute for r in report.attributes] == ["group"]  # one attribute: no intersection


def _rows(group, approved_goods, declined_goods, approved_bads, declined_bads):
    return (
        [(group, 0, 0.2)] * approved_goods
        + [(group, 0, 0.8)] * declined_goods
        + [(group, 1, 0.3)] * approved_bads
        + [(group, 1, 0.9)] * declined_bads
    )


@pytest.mark.parametrize(
    ("b_approved", "ratio", "verdict"),
    [(4, 0.8, "no adverse impact presumed"), (3, 0.6, "adverse impact presumed")],
)
def test_four_fifths_verdict_turns_below_point_eight(b_approved, ratio, verdict):
    # A approves 5 of 10; B approves b_approved of 10: ratio exactly 0.8 is not below the line.
    rows = _rows("A", 4, 3, 1, 2) + _rows("B", b_approved - 1, 8 - b_approved, 1, 2)
    y, proba, protected = _hand(rows)
    result = fairness_report(y, proba, protected, threshold=0.5, config=SMALL_OK, n_boot=0)
    assert result.attributes[0].disparate_impact_ratio.value == pytest.approx(ratio)
    assert result.attributes[0].four_fifths_verdict == verdict


@pytest.mark.parametrize(
    ("age", "label"),
    [(18, "<25"), (24, "<25"), (24.9, "<25"), (25, "25–39"), (39, "25–39"), (39.5, "25–39"),
     (40, "40–59"), (59, "40–59"), (60, "60+"), (85, "60+")],
)  # fmt: skip
def test_age_bins_have_exact_edges_and_labels(age, label):
    assert bin_protected(pd.Series([age]), "Age").tolist() == [label]


def test_bin_protected_orders_groups_and_shows_missing():
    ages = bin_protected(pd.Series([70, 24, np.nan, 41, 30], index=[5, 6, 7, 8, 9]), "AGE")
    assert ages.tolist() == ["60+", "<25", "missing", "40–59", "25–39"]
    assert list(ages.cat.categories) == ["<25", "25–39", "40–59", "60+", "missing"]
    assert list(ages.index) == [5, 6, 7, 8, 9]  # aligned with the input
    assert bin_protected(pd.Series([31.0]), "applicant_age").tolist() == ["25–39"]
    # Already-binned labels pass through unchanged (binning is idempotent).
    assert bin_protected(ages, "Age").tolist() == ages.tolist()

    marital = bin_protected(pd.Series(["single", None, "married", " single"]), "Marital")
    assert marital.tolist() == ["single", "missing", "married", "single"]

    # Another numeric attribute with many values: quartiles with readable labels. "Mortgage"
    # contains "age" but is not an age.
    values = pd.Series(np.arange(1.0, 101.0))
    quartiles = bin_protected(values, "Mortgage")
    assert list(quartiles.cat.categories) == [
        "Q1 [1–25.75]",
        "Q2 (25.75–50.5]",
        "Q3 (50.5–75.25]",
        "Q4 (75.25–100]",
    ]
    assert quartiles.value_counts().tolist() == [25, 25, 25, 25]
    # A numeric code with few values stays a category.
    assert bin_protected(pd.Series([1.0, 2.0, 1.0]), "Region").tolist() == ["1", "2", "1"]


def test_small_groups_are_flagged_and_left_out_of_the_ratios():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 105)
    proba = np.r_[np.full(50, 0.2), np.full(50, 0.4), np.full(5, 0.9)]  # C never approved
    proba[:20] = 0.7  # A approves 30 of 50, B all 50
    groups = pd.DataFrame({"segment": ["A"] * 50 + ["B"] * 50 + ["C"] * 5})
    report = fairness_report(y, proba, groups, threshold=0.5, n_boot=50)
    result = report.attribute("segment")
    assert _by_group(result)["C"].too_small
    assert _by_group(result)["C"].status == "too small to judge"
    assert result.excluded_groups == ["C"]
    assert result.judged_groups == ["A", "B"]
    assert "too small to judge" in result.note
    assert "excluded from the ratios and the verdict: C." in result.note
    # C's approval rate of 0 would make the ratio 0 if it were judged.
    assert result.disparate_impact_ratio.value == pytest.approx(0.6)
    assert result.demographic_parity_difference.value == pytest.approx(0.4)
    assert result.least_approved_group == "A"

    only_one = fairness_report(
        y, proba, groups, threshold=0.5, config=FairnessConfig(min_group_size=60), n_boot=0
    )
    assert only_one.attributes[0].four_fifths_verdict == "not assessable"
    assert only_one.attributes[0].disparate_impact_ratio is None


def test_gate_fails_naming_the_attribute_when_disparate_impact_is_low():
    y, proba, protected = _hand()
    protected = protected.rename(columns={"group": "Region"})
    report = fairness_report(y, proba, protected, threshold=0.5, config=SMALL_OK, n_boot=0)
    gate = fairness_gate(report)
    assert not gate.passed
    di = [s for s in gate.failures if "disparate impact" in s]
    assert len(di) == 1
    assert di[0].startswith("Region: disparate impact ratio 0.500")
    assert di[0].endswith("below the minimum 0.80 (approval 30.0% for 'B' vs 60.0% for 'A').")
    assert any("demographic parity difference 0.300" in s for s in gate.failures)

    # B given exactly A's applicants: every rate equal, the gate passes.
    y_a, proba_a = y[:10], proba[:10]
    fair = fairness_report(
        np.r_[y_a, y_a],
        np.r_[proba_a, proba_a],
        pd.DataFrame({"Region": ["A"] * 10 + ["B"] * 10}),
        threshold=0.5,
        config=SMALL_OK,
        n_boot=0,
    )
    assert fair.attributes[0].disparate_impact_ratio.value == pytest.approx(1.0)
    assert fairness_gate(fair).passed
    assert fairness_gate(fair).failures == []

    # A looser policy passes the unfair report on disparate impact alone.
    loose = SMALL_OK.model_copy(
        update={
            "min_disparate_impact": 0.4,
            "max_parity_difference": 0.5,
            "max_equalized_odds_difference": 0.5,
        }
    )
    assert fairness_gate(report, loose).passed


@pytest.fixture(scope="module")
def xgb_case(credit_case):
    proba = credit_case.models["xgboost"].predict_proba(credit_case.X_test)[:, 1]
    report = fairness_report(credit_case.y_test, proba, credit_case.protected_test, threshold=0.5)
    return credit_case, proba, report


def _independent_age_bins(age: pd.Series) -> np.ndarray:
    cut = pd.cut(age, [0, 25, 40, 60, np.inf], right=False, labels=["<25", "25–39", "40–59", "60+"])
    return cut.astype(str).to_numpy()


def test_per_group_figures_match_fairlearn_and_sklearn_on_credit_data(xgb_case):
    case, proba, report = xgb_case
    y = case.y_test
    declined = (proba >= 0.5).astype(int)
    sensitive = {
        "Age": _independent_age_bins(case.protected_test["Age"]),
        "Marital": case.protected_test["Marital"].fillna("missing").astype(str).to_numpy(),
    }
    for attribute, groups in sensitive.items():
        frame = MetricFrame(
            metrics={
                "count": count,
                "tpr": true_positive_rate,
                "fpr": false_positive_rate,
                "approval": selection_rate,
            },
            y_true=y,
            y_pred=declined,
            sensitive_features=pd.Series(groups, name=attribute),
        ).by_group
        frame["approval"] = 1 - frame["approval"]  # selection of "declined" → approval
        ours = _by_group(report.attribute(attribute))
        assert set(ours) == set(frame.index)
        for group, row in frame.iterrows():
            mask = groups == group
            assert ours[group].size == row["count"]
            assert ours[group].approval_rate == pytest.approx(row["approval"])
            assert ours[group].base_rate == pytest.approx(y[mask].mean())
            if 0 < y[mask].sum() < mask.sum():
                assert ours[group].tpr == pytest.approx(row["tpr"])
                assert ours[group].fpr == pytest.approx(row["fpr"])
                assert ours[group].auc == pytest.approx(roc_auc_score(y[mask], proba[mask]))
            else:
                assert ours[group].auc is None

        # Between-group measures over the judged groups, recomputed with fairlearn.
        counts = pd.crosstab(groups, y)
        judged = [
            g for g in counts.index
            if counts.loc[g].sum() >= 30 and counts.loc[g, 0] >= 5 and counts.loc[g, 1] >= 5
        ]  # fmt: skip
        result = report.attribute(attribute)
        assert sorted(result.judged_groups) == sorted(judged)
        keep = np.isin(groups, judged)
        approved, good = 1 - declined[keep], 1 - y[keep]
        assert result.demographic_parity_difference.value == pytest.approx(
            demographic_parity_difference(good, approved, sensitive_features=groups[keep])
        )
        assert result.equalized_odds_difference.value == pytest.approx(
            equalized_odds_difference(good, approved, sensitive_features=groups[keep])
        )
        rates = [frame.loc[g, "approval"] for g in judged]
        assert result.disparate_impact_ratio.value == pytest.approx(min(rates) / max(rates))
        verdict = "adverse impact presumed" if min(rates) / max(rates) < 0.8 else "no adverse"
        assert result.four_fifths_verdict.startswith(verdict)


def test_intersection_groups_exist_with_crosstab_sizes(xgb_case):
    case, _, report = xgb_case
    assert [r.attribute for r in report.attributes] == ["Age", "Marital", "Age × Marital"]
    inter = report.attribute("Age × Marital")
    assert inter.kind == "intersection"
    assert inter.columns == ["Age", "Marital"]
    table = pd.crosstab(
        _independent_age_bins(case.protected_test["Age"]), case.protected_test["Marital"]
    )
    sizes = {g.group: g.size for g in inter.groups}
    expected = {f"{a} × {m}": int(table.loc[a, m]) for a in table.index for m in table.columns}
    assert sizes == {k: v for k, v in expected.items() if v > 0}
    assert inter.groups[0].group.startswith("<25 × ")  # ordered by age bin, then marital status
    assert sum(g.share for g in inter.groups) == pytest.approx(1.0)
    assert inter.excluded_groups  # many cells are too small on 669 rows
    assert all(g.too_small for g in inter.groups if g.group in inter.excluded_groups)
    assert not set(inter.excluded_groups) & set(inter.judged_groups)


def test_bootstrap_interval_contains_the_estimate_and_is_seeded(xgb_case):
    case, proba, report = xgb_case
    measures = (
        "demographic_parity_difference",
        "demographic_parity_ratio",
        "equal_opportunity_difference",
        "equalized_odds_difference",
        "disparate_impact_ratio",
    )
    for attribute in ("Age", "Marital"):
        result = report.attribute(attribute)
        for measure in measures:
            estimate = getattr(result, measure)
            assert estimate.ci_low <= estimate.value <= estimate.ci_high, (attribute, measure)
            assert estimate.ci_low < estimate.ci_high
    again = fairness_report(case.y_test, proba, case.protected_test, threshold=0.5, seed=0)
    other = fairness_report(case.y_test, proba, case.protected_test, threshold=0.5, seed=1)
    assert again.model_dump() == report.model_dump()
    di = report.attribute("Age").disparate_impact_ratio
    assert other.attribute("Age").disparate_impact_ratio.value == di.value
    assert other.attribute("Age").disparate_impact_ratio.ci_low != di.ci_low


def test_count_bootstrap_matches_resampling_rows():
    """Drawing approval counts must give the same interval as resampling rows within strata."""
    y, proba, protected = _hand()
    y, proba = np.tile(y, 3), np.tile(proba, 3)
    groups = np.tile(protected["group"].to_numpy(), 3)
    n_boot = 4000
    report = fairness_report(
        y, proba, pd.DataFrame({"g": groups}), threshold=0.5, config=SMALL_OK, n_boot=n_boot
    )
    rng = np.random.default_rng(11)
    approved = (proba < 0.5).astype(float)
    strata = {(g, c): np.flatnonzero((groups == g) & (y == c)) for g in "AB" for c in (0, 1)}
    resampled = {}
    for key, rows in strata.items():
        picks = rows[rng.integers(0, len(rows), size=(n_boot, len(rows)))]
        resampled[key] = approved[picks].sum(axis=1)
    rate = {g: (resampled[(g, 0)] + resampled[(g, 1)]) / (groups == g).sum() for g in "AB"}
    gap = np.abs(rate["A"] - rate["B"])
    low, high = np.quantile(gap, [0.025, 0.975])
    estimate = report.attributes[0].demographic_parity_difference
    assert estimate.ci_low == pytest.approx(low, abs=0.04)
    assert estimate.ci_high == pytest.approx(high, abs=0.04)


def test_report_serialises_and_round_trips(xgb_case):
    _, _, report = xgb_case
    dumped = report.model_dump(mode="json")
    text = json.dumps(dumped, allow_nan=False)
    assert dumped["schema_version"] == 1
    assert FairnessReport.model_validate(json.loads(text)) == report
    # A cell with one outcome only has no AUC and no TPR: None, not NaN.
    single = [g for g in report.attribute("Age × Marital").groups if g.defaults == 0]
    assert single
    assert all(g.auc is None and g.tpr is None for g in single)


def test_approval_rate_figure_draws_each_attribute_with_the_four_fifths_line(xgb_case):
    _, _, report = xgb_case
    figure = approval_rate_figure(report)
    assert isinstance(figure, Figure)
    axes = figure.get_axes()
    assert [ax.get_title().split("\n")[0] for ax in axes] == ["Age", "Marital"]
    age = report.attribute("Age")
    heights = [patch.get_height() for patch in axes[0].patches]
    assert heights == pytest.approx([g.approval_rate for g in age.groups])
    judged = max(g.approval_rate for g in age.groups if not g.too_small)
    line = next(ln for ln in axes[0].get_lines() if ln.get_linestyle() == "--")
    assert line.get_ydata()[0] == pytest.approx(0.8 * judged)
    assert len(approval_rate_figure(report, include_intersection=True).get_axes()) == 3


def test_inputs_must_line_up():
    y, proba, protected = _hand()
    with pytest.raises(ValueError, match=r"same rows"):
        fairness_report(y[:-1], proba, protected, threshold=0.5)
    with pytest.raises(ValueError, match=r"0/1"):
        fairness_report(y * 2, proba, protected, threshold=0.5)


def test_numbers_decoded_from_the_log_are_grouped_as_numbers_and_text_stays_text():
    logged = pd.Series([23, None, 45, 61.0, 30], dtype=object)  # JSON numbers, one missing
    assert bin_protected(logged, "Age").tolist() == ["<25", "missing", "40–59", "60+", "25–39"]
    codes = pd.Series(["1", "2", None], dtype=object)
    assert bin_protected(codes, "Code").tolist() == ["1", "2", "missing"]
