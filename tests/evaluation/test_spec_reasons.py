"""Reason texts and actionable directions come from the dataset spec: generated from column
names when the spec has none, the spec's own when given, and unchanged for specs stored before
specs carried them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditops.data.datasets import CATALOG, actionable_directions, reason_texts
from creditops.data.spec import DatasetSpec, FeatureSchema, MonotoneExpectations, ResolvedSpec
from creditops.data.validate import validate_dataset
from creditops.evaluation.explain import FeatureContribution, LocalExplanation
from creditops.evaluation.reasons import (
    default_reason_map,
    feature_words,
    generated_reason,
    reason_codes,
    reason_map_for,
    reasons_from_contributions,
)
from creditops.exceptions import ConfigurationError, DataValidationError


def _frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "monthly_income": rng.uniform(1000, 5000, n).round(),
            "DebtRatio": rng.uniform(0, 1, n),
            "home_ownership": rng.choice(["own", "rent", "mortgage"], n),
            "outcome": rng.choice(["good", "bad"], n),
        }
    )


def _resolved(**spec: object) -> ResolvedSpec:
    return validate_dataset(
        _frame(), DatasetSpec(target="outcome", positive="bad", **spec), dataset_name="toy"
    ).spec


def _explanation(values: dict[str, object], contributions: dict[str, float]) -> LocalExplanation:
    return LocalExplanation(
        model_type="logistic_regression",
        method="linear",
        output_space="log_odds",
        base_value=0.0,
        raw_output=sum(contributions.values()),
        additivity_gap=0.0,
        calibrated=False,
        proba=0.5,
        contributions=[
            FeatureContribution(feature=f, value=values.get(f), contribution=c)  # type: ignore[arg-type]
            for f, c in contributions.items()
        ],
    )


def test_column_names_become_words() -> None:
    assert feature_words("Debt") == "Debt"
    assert feature_words("monthly_income") == "Monthly income"
    assert feature_words("DebtRatio") == "Debt ratio"
    assert feature_words("loanAmountUSD") == "Loan amount USD"


def test_a_dataset_without_reasons_gets_generated_texts_in_the_direction_that_raised_risk() -> None:
    spec = _resolved()
    assert spec.reasons == {}
    assert spec.actionable == {}
    median = next(s.median for s in spec.schema_ if s.name == "monthly_income")
    assert median is not None
    explanation = _explanation(
        {"monthly_income": median - 500, "DebtRatio": 0.99, "home_ownership": "rent"},
        {"monthly_income": 0.9, "DebtRatio": 0.5, "home_ownership": 0.2},
    )
    reasons = reason_codes(explanation, spec)
    position = {f: i for i, f in enumerate(spec.features, start=1)}
    assert [(r.code, r.text) for r in reasons] == [
        (f"X{position['monthly_income']:02d}", "Monthly income is too low"),
        (f"X{position['DebtRatio']:02d}", "Debt ratio is too high"),
        (f"X{position['home_ownership']:02d}", "Home ownership (rent)"),
    ]
    assert generated_reason("DebtRatio", spec, None) == "Debt ratio is missing"
    # without the applicant's values: the spec's monotone expectation, else a neutral sentence
    assert generated_reason("DebtRatio", spec) == "Debt ratio raised the risk"
    monotone = spec.model_copy(update={"monotone": MonotoneExpectations(increasing=["DebtRatio"])})
    assert generated_reason("DebtRatio", monotone) == "Debt ratio is too high"


def test_a_spec_with_reasons_uses_them_with_codes_in_its_order() -> None:
    spec = _resolved(
        reasons={"DebtRatio": "Debt is high", "monthly_income": "Income is low"},
        actionable={"DebtRatio": "decrease"},
    )
    reasons = reasons_from_contributions(
        ["monthly_income", "DebtRatio", "home_ownership"],
        [0.1, 0.5, 0.2],
        spec,
        values={"monthly_income": 10.0, "DebtRatio": 0.9, "home_ownership": "own"},
    )
    assert [(r.code, r.text) for r in reasons] == [
        ("R01", "Debt is high"),
        ("X03", "Home ownership (own)"),
        ("R02", "Income is low"),
    ]
    assert actionable_directions(spec) == {"DebtRatio": "decrease"}
    assert reason_map_for(spec) == reason_map_for(spec)  # stable per version


def test_credit_data_keeps_its_reasons_and_levers() -> None:
    builtin = CATALOG["credit_data"].spec
    assert list(builtin.reasons)[:2] == ["Debt", "Records"]
    assert default_reason_map().entries["Debt"].code == "R01"
    assert default_reason_map().entries["Debt"].text == builtin.reasons["Debt"]


def test_a_spec_stored_before_reasons_existed_still_loads_and_words_as_before() -> None:
    spec = _resolved()
    stored = json.loads(spec.to_json())
    for key in ("reasons", "actionable"):
        del stored[key]
    stored["spec_version"] = 1
    for feature in stored["schema"]:
        feature.pop("median", None)
    old = ResolvedSpec.from_json(json.dumps(stored))
    assert old.reasons is None
    assert old.actionable is None
    assert reason_texts(old) == CATALOG["credit_data"].spec.reasons
    assert reason_map_for(old) == default_reason_map()
    assert actionable_directions(old) == {}  # none of the old levers is one of its features
    reasons = reason_codes(_explanation({}, {"DebtRatio": 0.4}), old)
    assert reasons[0].text == "DebtRatio contributed to the decision"


def test_spec_yaml_accepts_reasons_actionable_and_per_column_monotone(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "target: outcome\npositive: bad\n"
        "monotone: {DebtRatio: increasing, monthly_income: decreasing,\n"
        "           home_ownership: [own, rent]}\n"
        'reasons: {DebtRatio: "Debt is high"}\n'
        "actionable: {DebtRatio: decrease}\n",
        encoding="utf-8",
    )
    spec = DatasetSpec.from_yaml(path)
    assert spec.monotone.increasing == ["DebtRatio"]
    assert spec.monotone.decreasing == ["monthly_income"]
    assert spec.monotone.ordered == {"home_ownership": ["own", "rent"]}
    assert spec.reasons == {"DebtRatio": "Debt is high"}
    assert spec.declared_columns()["DebtRatio"] == "monotone expectation"
    path.write_text("target: outcome\npositive: bad\nactionable: {DebtRatio: up}\n")
    with pytest.raises(ConfigurationError, match="actionable"):
        DatasetSpec.from_yaml(path)


def test_an_actionable_column_must_be_an_unprotected_numeric_feature() -> None:
    with pytest.raises(DataValidationError, match="home_ownership"):
        _resolved(actionable={"home_ownership": "decrease"})
    with pytest.raises(DataValidationError, match="monthly_income"):
        _resolved(protected=["monthly_income"], actionable={"monthly_income": "increase"})


def test_schema_median_is_optional() -> None:
    assert FeatureSchema(name="a", kind="numeric", missing_rate=0.0).median is None


def test_reasons_and_levers_for_columns_the_data_lacks_are_not_required() -> None:
    frame = _frame()
    spec = DatasetSpec(
        target="outcome",
        positive="bad",
        reasons={"Absent": "Absent is high"},
        actionable={"Absent": "decrease", "DebtRatio": "decrease"},
    )
    validated = validate_dataset(frame, spec, dataset_name="toy")
    assert validated.spec.reasons == {"Absent": "Absent is high"}
    assert validated.spec.actionable == {"DebtRatio": "decrease"}
    assert any(w.column == "Absent" for w in validated.warnings)
