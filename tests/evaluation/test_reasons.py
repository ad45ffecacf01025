"""Adverse-action reason codes: at most four, only risk-raising contributions, largest first, in
plain words, and never a protected attribute, even one the model uses."""

import numpy as np
import pytest

from creditops.data.datasets import CATALOG
from creditops.data.spec import FeatureSchema, ResolvedSpec
from creditops.evaluation.explain import (
    FeatureContribution,
    LocalExplanation,
    build_explainer,
    explain_local,
    explain_rows,
)
from creditops.evaluation.reasons import (
    ReasonEntry,
    ReasonMap,
    default_reason_map,
    rank_reasons,
    reason_codes,
    reasons_from_contributions,
)
from creditops.models.zoo import CANDIDATES, FeatureSet

CREDIT_DATA_REASONS = CATALOG["credit_data"].spec.reasons


def _spec(numeric: list[str], categorical: list[str], protected: list[str]) -> ResolvedSpec:
    return ResolvedSpec(
        dataset="toy",
        target="y",
        positive=1,
        negative=0,
        protected=protected,
        id=None,
        numeric=numeric,
        categorical=categorical,
        schema=[FeatureSchema(name=n, kind="numeric", missing_rate=0.0) for n in numeric]
        + [FeatureSchema(name=c, kind="categorical", missing_rate=0.0) for c in categorical],
        n_rows=10,
        positive_rate=0.5,
    )


def _explanation(contributions: dict[str, float]) -> LocalExplanation:
    return LocalExplanation(
        model_type="logistic_regression",
        method="linear",
        output_space="log_odds",
        base_value=-1.0,
        raw_output=-1.0 + sum(contributions.values()),
        additivity_gap=0.0,
        calibrated=False,
        proba=0.5,
        contributions=[
            FeatureContribution(feature=f, value=None, contribution=c)
            for f, c in contributions.items()
        ],
    )


def test_four_largest_risk_raising_reasons_in_order_without_protected():
    contributions = {
        "Age": 2.0,  # the largest push, but protected
        "Debt": 0.9,
        "Income": -1.5,
        "Records": 1.2,
        "Seniority": 0.3,
        "Amount": 0.05,
        "Home": 0.6,
        "Job": 0.0,
    }
    spec = _spec(
        ["Age", "Debt", "Income", "Seniority", "Amount"], ["Records", "Home", "Job"], ["Age"]
    )
    reasons = reason_codes(_explanation(contributions), spec)
    assert [r.feature for r in reasons] == ["Records", "Debt", "Home", "Seniority"]
    assert [r.contribution for r in reasons] == [1.2, 0.9, 0.6, 0.3]
    assert [r.text for r in reasons] == [CREDIT_DATA_REASONS[r.feature] for r in reasons]
    codes = {f: f"R{i:02d}" for i, f in enumerate(CREDIT_DATA_REASONS, start=1)}
    assert [r.code for r in reasons] == [codes[r.feature] for r in reasons]
    assert reason_codes(_explanation(contributions), spec, max_reasons=2)[1].feature == "Debt"


def test_no_reasons_when_nothing_raises_the_risk():
    spec = _spec(["Debt", "Income"], [], [])
    assert reason_codes(_explanation({"Debt": -0.2, "Income": 0.0}), spec) == []
    with pytest.raises(ValueError, match=r"between 1 and 4"):
        reason_codes(_explanation({"Debt": 1.0}), spec, max_reasons=5)


def test_ranking_a_whole_batch_gives_each_rows_reasons_exactly():
    """The batch ranking equals the one-row function on every row: ties broken by name,
    negatives, zeros and NaN never a reason, a protected feature never one, mapped codes,
    and generated sentences that depend on the applicant's value (high, low, a category)."""
    names = ["Debt", "Income", "Age", "zeta_ratio", "alpha_home", "Records"]
    spec = _spec(["Debt", "Income", "Age", "zeta_ratio"], ["alpha_home", "Records"], ["Age"])
    schema = {s.name: s for s in spec.schema_}
    schema["zeta_ratio"] = schema["zeta_ratio"].model_copy(update={"median": 0.5})
    spec = spec.model_copy(update={"schema_": list(schema.values()), "reasons": {}})
    reason_map = ReasonMap.from_texts({"Debt": "Debt is high", "Records": "{feature} held"},
                                      generate=True)  # fmt: skip
    rng = np.random.default_rng(3)
    values = np.round(rng.normal(size=(400, len(names))), 1)  # many ties
    values[rng.random(values.shape) < 0.05] = np.nan
    applicants = [
        {"zeta_ratio": float(rng.choice([0.1, 0.5, 0.9])),
         "alpha_home": str(rng.choice(["own", "rent"]))}
        for _ in range(400)
    ]  # fmt: skip
    ranked = rank_reasons(
        names, values, spec, reason_map, value_of=lambda row, name: applicants[row].get(name)
    )
    for row, reasons in enumerate(ranked):
        one = reasons_from_contributions(
            names, values[row], spec, reason_map, values=applicants[row]
        )
        assert [tuple(r) for r in reasons] == [
            (r.code, r.text, r.feature, r.contribution) for r in one
        ]
    texts = {r.text for reasons in ranked for r in reasons}
    assert {"Zeta ratio is too high", "Zeta ratio is too low", "Alpha home (rent)"} <= texts
    assert all(r.feature != "Age" for reasons in ranked for r in reasons)
    assert max(len(r) for r in ranked) == 4
    assert min(len(r) for r in ranked) < 4


def test_unknown_features_get_generic_wording_and_positional_codes():
    spec = _spec(["loan_amnt", "dti", "Debt"], ["grade"], [])
    reasons = reason_codes(
        _explanation({"loan_amnt": 0.1, "dti": 0.7, "Debt": 0.4, "grade": 0.2}), spec
    )
    assert [(r.code, r.text) for r in reasons] == [
        ("X02", "dti contributed to the decision"),
        ("R01", "Debt is high relative to income"),
        ("X04", "grade contributed to the decision"),
        ("X01", "loan_amnt contributed to the decision"),
    ]
    custom = ReasonMap(
        entries={"dti": ReasonEntry(code="D1", text="{feature} (debt to income) is high")},
        fallback="Other: {feature}",
    )
    assert [
        r.text for r in reason_codes(_explanation({"dti": 0.7, "grade": 0.2}), spec, custom)
    ] == ["dti (debt to income) is high", "Other: grade"]


def test_reason_map_codes_are_stable_and_unique():
    numbered = ReasonMap.from_texts({"b": "B is high", "a": "A is low"})
    assert numbered.entries["b"].code == "R01"
    assert numbered.entries["a"].code == "R02"
    assert default_reason_map().entries["Debt"].code == "R01"
    assert default_reason_map() == default_reason_map()
    with pytest.raises(ValueError, match=r"unique"):
        ReasonMap(
            entries={"a": ReasonEntry(code="R1", text="x"), "b": ReasonEntry(code="R1", text="y")}
        )


def test_real_declined_applicants_get_mapped_reasons(credit_case):
    model = credit_case.models["xgboost"]
    explainer = build_explainer(model, credit_case.X_train, credit_case.spec)
    proba = model.predict_proba(credit_case.X_test)[:, 1]
    declined = credit_case.X_test.iloc[np.flatnonzero(proba >= 0.5)[:20]]
    texts = set(CREDIT_DATA_REASONS.values())
    for explanation in explain_rows(explainer, declined):
        reasons = reason_codes(explanation, credit_case.spec)
        by_feature = {c.feature: c.contribution for c in explanation.contributions}
        eligible = [
            v for f, v in by_feature.items() if v > 0 and f not in credit_case.spec.protected
        ]
        assert eligible, "a declined applicant has some feature raising the risk"
        # every risk-raising feature, largest first, up to the four Regulation B allows
        assert [r.contribution for r in reasons] == sorted(eligible, reverse=True)[:4]
        assert all(r.contribution == by_feature[r.feature] > 0 for r in reasons)
        assert all(r.text in texts for r in reasons)
        assert not {r.feature for r in reasons} & set(credit_case.spec.protected)


def test_a_protected_attribute_used_as_a_feature_is_never_a_reason(credit_case):
    """Make Age a model feature, find applicants where it is among the top risk drivers, and
    check it never surfaces as a reason (and that the next real reason takes its place)."""
    base = credit_case.spec
    spec = base.model_copy(
        update={
            "numeric": [*base.numeric, "Age"],
            "schema_": [*base.schema_, FeatureSchema(name="Age", kind="numeric", missing_rate=0)],
        }
    )
    assert "Age" in spec.features
    assert "Age" in spec.protected
    ages = credit_case.frame["Age"]
    X_train = credit_case.X_train.assign(Age=ages.loc[credit_case.X_train.index])
    X_test = credit_case.X_test.assign(Age=ages.loc[credit_case.X_test.index])
    model = (
        CANDIDATES["logistic_regression"]
        .build(FeatureSet(spec.numeric, spec.categorical), {}, 1.0, 0)
        .fit(X_train, credit_case.y_train)
    )
    explainer = build_explainer(model, X_train, spec)
    checked = 0
    for explanation in explain_rows(explainer, X_test.iloc[:300]):
        by_feature = {c.feature: c.contribution for c in explanation.contributions}
        ranked = sorted((f for f, v in by_feature.items() if v > 0), key=lambda f: -by_feature[f])
        if "Age" not in ranked[:4]:
            continue
        checked += 1
        reasons = reason_codes(explanation, spec)
        assert "Age" not in {r.feature for r in reasons}
        assert [r.feature for r in reasons] == [f for f in ranked if f != "Age"][:4]
        assert all("age" not in r.text.lower() for r in reasons)
    assert checked >= 5, "Age should drive the risk of several applicants in this model"
    single = explain_local(explainer, X_test.iloc[[0]])
    assert "Age" in {c.feature for c in single.contributions}


def test_scorecard_reasons_are_the_features_that_lost_the_most_points(credit_case):
    """The traditional adverse-action method: points lost against each feature's best bin."""
    from creditops.evaluation.points import applicant_points, points_table

    model = credit_case.models["scorecard"]
    explainer = build_explainer(model, credit_case.X_train, credit_case.spec)
    assert explainer.method == "points"
    proba = model.predict_proba(credit_case.X_test)[:, 1]
    declined = credit_case.X_test.iloc[np.flatnonzero(proba >= 0.5)[:30]]
    assert len(declined) >= 10
    table = points_table(model)
    points = applicant_points(model, declined)
    best = {f: table.feature_range(f)[1] for f in table.features}
    factor = table.scale.factor
    for explanation, (_, row) in zip(
        explain_rows(explainer, declined), points.iterrows(), strict=True
    ):
        lost = {f: best[f] - row[f] for f in table.features}
        reasons = reason_codes(explanation, credit_case.spec)
        assert reasons
        top = max(lost, key=lost.get)
        assert reasons[0].feature == top
        for reason in reasons:
            assert factor * reason.contribution == pytest.approx(lost[reason.feature], abs=1e-9)
        assert [r.feature for r in reasons] == sorted(
            (f for f in lost if lost[f] > 1e-12), key=lambda f: -lost[f]
        )[: len(reasons)]
