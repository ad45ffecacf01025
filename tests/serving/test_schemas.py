"""Request models generated from the dataset spec, their errors (strict JSON in front of them)
and the static response models, on credit_data's real resolved spec."""

from __future__ import annotations

import functools
import json
import math
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from creditops.data.datasets import load_builtin
from creditops.data.spec import FeatureSchema, ResolvedSpec
from creditops.data.validate import ValidatedDataset, validate_dataset
from creditops.exceptions import JSONBodyError
from creditops.models.zoo import FeatureSet, get_candidates
from creditops.serving.parsing import parse_json_strict, validation_errors
from creditops.serving.schemas import (
    ApplicationModel,
    BatchDecision,
    Decision,
    ErrorBody,
    FeedbackRequest,
    Reason,
    build_application_model,
    build_batch_model,
    example_application,
    split_application,
)

HOME = ["ignore", "other", "owner", "parents", "priv", "rent"]
NEVER_MISSING = ["Seniority", "Time", "Expenses", "Amount", "Price", "Records"]
SECRET = "S3CR3T-VALUE"


@pytest.fixture(scope="module")
def validated() -> ValidatedDataset:
    return validate_dataset(*load_builtin("credit_data"), dataset_name="credit_data")


@pytest.fixture(scope="module")
def spec(validated: ValidatedDataset) -> ResolvedSpec:
    return validated.spec


@pytest.fixture(scope="module")
def example(validated: ValidatedDataset) -> dict[str, Any]:
    return example_application(validated.spec, validated.frame)


@pytest.fixture(scope="module")
def app_model(spec: ResolvedSpec, example: dict[str, Any]) -> type[ApplicationModel]:
    return build_application_model(spec, example=example)


def _errors(model: type, payload: Any) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(payload)
    errors = validation_errors(caught.value)
    assert all(set(error) == {"field", "problem"} for error in errors)
    return errors


def _one_error(model: type, payload: Any) -> dict[str, str]:
    errors = _errors(model, payload)
    assert len(errors) == 1, errors
    return errors[0]


# --- valid applications ----------------------------------------------------------------------


def test_example_is_medians_and_most_frequent_categories(
    example: dict[str, Any], validated: ValidatedDataset
) -> None:
    assert list(example) == validated.spec.features
    assert example["Income"] == round(validated.frame["Income"].median())
    assert example["Home"] == validated.frame["Home"].mode().iloc[0]
    assert isinstance(example["Amount"], int)


def test_valid_application_passes_and_splits(
    app_model: type[ApplicationModel], example: dict[str, Any], spec: ResolvedSpec
) -> None:
    application = app_model.model_validate(example)
    features, protected, missing = split_application(application)
    assert list(features) == spec.features
    assert features["Income"] == float(example["Income"])
    assert isinstance(features["Amount"], float)
    assert features["Home"] == example["Home"]
    assert protected == {"Age": None, "Marital": None}
    assert missing == []


def test_integral_floats_and_ints_are_accepted_for_whole_number_features(
    app_model: type[ApplicationModel], example: dict[str, Any]
) -> None:
    application = app_model.model_validate({**example, "Seniority": 5.0, "Amount": 1200})
    features, _, _ = split_application(application)
    assert features["Seniority"] == 5.0
    assert features["Amount"] == 1200.0


def test_missing_optional_features_are_reported_in_spec_order(
    app_model: type[ApplicationModel], example: dict[str, Any]
) -> None:
    payload = {k: v for k, v in example.items() if k != "Income"} | {"Debt": None, "Job": None}
    features, _, missing = split_application(app_model.model_validate(payload))
    assert missing == ["Income", "Debt", "Job"]
    assert features["Income"] is None
    assert features["Job"] is None


def test_features_feed_a_real_pipeline_with_missing_values_imputed(
    app_model: type[ApplicationModel], example: dict[str, Any], validated: ValidatedDataset
) -> None:
    candidate = get_candidates(["logistic_regression"])[0]
    spec = validated.spec
    pipeline = candidate.build(FeatureSet(spec.numeric, spec.categorical), {}, 0.0, 0)
    pipeline.fit(validated.X, validated.y)
    complete = split_application(app_model.model_validate(example))[0]
    partial = split_application(app_model.model_validate({**example, "Income": None}))[0]
    proba = pipeline.predict_proba(pd.DataFrame([complete, partial]))[:, 1]
    assert np.all((proba > 0) & (proba < 1))
    assert proba[0] != proba[1]  # the missing income was imputed, not read as zero


def test_required_features_follow_training_missingness(
    app_model: type[ApplicationModel], spec: ResolvedSpec, example: dict[str, Any]
) -> None:
    assert sorted(app_model.model_json_schema()["required"]) == sorted(NEVER_MISSING)
    error = _one_error(app_model, {k: v for k, v in example.items() if k != "Seniority"})
    assert error == {"field": "Seniority", "problem": "Field required"}
    error = _one_error(app_model, {**example, "Records": None})
    assert error["field"] == "Records"

    lenient = build_application_model(spec, require_never_missing=False)
    assert "required" not in lenient.model_json_schema()
    _, _, missing = split_application(lenient.model_validate({"Income": 100}))
    assert missing == [f for f in spec.features if f != "Income"]


# --- refused inputs: the field is named, the value never echoed ------------------------------


BAD_INPUTS = [
    # (field, value, expected problem fragment, text that must not appear in the errors)
    ("Income", "9137", "must be a JSON number", "9137"),
    ("Amount", True, "must be a JSON number", "true"),
    ("Seniority", False, "must be a JSON number", "false"),
    ("Income", float("nan"), "finite number", "nan"),
    ("Income", float("inf"), "finite number", "inf'"),
    ("Debt", -float("inf"), "finite number", "-inf"),
    ("Price", 10**400, "must be a JSON number", "0000000"),
    ("Income", [9137], "must be a JSON number", "9137"),
    ("Income", {"v": 9137}, "must be a JSON number", "9137"),
    ("Seniority", 2.5, "whole number", "2.5"),
    ("Home", SECRET * 1000, "'rent'", SECRET),
    ("Home", "re\ud800nt", "unicode string", "\\ud800"),
    ("Home", 3, "'rent'", "3'"),
    ("Records", True, "'yes'", "true"),
    ("Marital", SECRET * 10, "at most 64 characters", SECRET),
    ("Marital", "ab\ud800" + SECRET, "unpaired surrogate", SECRET),
    ("Age", True, "must be a number, a string", "true"),
    ("Age", float("nan"), "finite number", "nan"),
    ("Age", 1e13, "finite number", "1e+13"),
    ("Age", [SECRET], "must be a number, a string", SECRET),
]


@pytest.mark.parametrize(("field", "value", "problem", "leak"), BAD_INPUTS)
def test_bad_value_is_refused_naming_the_field_without_echo(
    app_model: type[ApplicationModel],
    example: dict[str, Any],
    field: str,
    value: Any,
    problem: str,
    leak: str,
) -> None:
    error = _one_error(app_model, {**example, field: value})
    assert error["field"] == field
    assert problem in error["problem"]
    text = json.dumps(error, ensure_ascii=True).lower()
    assert leak.lower() not in text
    assert str(value).lower()[:50] not in error["problem"].lower()


def test_extra_fields_are_refused_including_target_and_id(
    app_model: type[ApplicationModel], example: dict[str, Any]
) -> None:
    errors = _errors(app_model, {**example, "Status": "good", "applicant_id": 7, "Foo": 1})
    assert {e["field"] for e in errors} == {"Status", "applicant_id", "Foo"}
    assert all(e["problem"] == "Extra inputs are not permitted" for e in errors)


def test_body_that_is_not_an_object_is_refused(app_model: type[ApplicationModel]) -> None:
    assert _one_error(app_model, [1, 2]) == {"field": "body", "problem": "must be a JSON object"}


def test_protected_attributes_are_accepted_and_kept_apart(
    app_model: type[ApplicationModel], example: dict[str, Any], spec: ResolvedSpec
) -> None:
    application = app_model.model_validate({**example, "Age": 37, "Marital": "widow"})
    features, protected, _ = split_application(application)
    assert protected == {"Age": 37, "Marital": "widow"}
    assert set(features) == set(spec.features)
    assert not set(features) & set(spec.protected)
    # any short text is fine for a protected attribute: no category list is known for it
    _, protected, _ = split_application(app_model.model_validate({**example, "Age": "40-59"}))
    assert protected["Age"] == "40-59"


def test_protected_attribute_that_is_also_a_feature_is_one_field(spec: ResolvedSpec) -> None:
    numeric = [*spec.numeric, "Age"]
    schema = [
        *spec.schema_,
        FeatureSchema(name="Age", kind="numeric", missing_rate=0, minimum=18, maximum=68),
    ]
    with_age = spec.model_copy(update={"numeric": numeric, "schema_": schema})
    model = build_application_model(with_age)
    assert list(model.model_json_schema()["properties"]).count("Age") == 1
    features, protected, _ = split_application(
        model.model_validate({**model.example, "Age": 30, "Marital": "single"})
    )
    assert features["Age"] == 30.0
    assert protected == {"Age": 30.0, "Marital": "single"}
    assert _one_error(model, {**model.example, "Age": 94})["field"] == "Age"  # 68 + 25 max


# --- bounds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("Income", -1, False),
        ("Income", 0, True),
        ("Income", 1000, True),  # above the training maximum (959), within the margin
        ("Income", 1435, True),  # 959 + 50% of the range 6..959
        ("Income", 1436, False),
        ("Income", 9590, False),  # ten times the maximum: a unit mistake
        ("Assets", 3_000_000, False),
        ("Debt", -5, False),
        ("Time", 0, True),  # never below 0, but down to 0
    ],
)
def test_bounds_widen_the_training_range(
    app_model: type[ApplicationModel],
    example: dict[str, Any],
    field: str,
    value: float,
    accepted: bool,
) -> None:
    payload = {**example, field: value}
    if accepted:
        assert split_application(app_model.model_validate(payload))[0][field] == value
    else:
        error = _one_error(app_model, payload)
        assert error["field"] == field
        assert "Input should be" in error["problem"]
        assert str(value) not in error["problem"]


def test_accepted_range_widens_the_training_range() -> None:
    money = FeatureSchema(
        name="m", kind="numeric", missing_rate=0, minimum=6, maximum=959, integer=True
    )
    assert money.accepted_range(0.5) == (0.0, 1435.0)
    assert money.accepted_range(0.0) == (6.0, 959.0)
    assert money.model_copy(update={"integer": False}).accepted_range(0.5) == (0.0, 1435.5)
    signed = FeatureSchema(name="s", kind="numeric", missing_rate=0, minimum=-1.0, maximum=1.0)
    assert signed.accepted_range(0.5) == (-2.0, 2.0)
    real = FeatureSchema(name="r", kind="numeric", missing_rate=0, minimum=0.1, maximum=0.3)
    assert real.accepted_range(0.5) == pytest.approx((0.0, 0.4))
    constant = FeatureSchema(name="c", kind="numeric", missing_rate=0, minimum=4, maximum=4)
    assert constant.accepted_range(0.5) == (2.0, 6.0)
    unknown = FeatureSchema(name="u", kind="numeric", missing_rate=1)
    assert unknown.accepted_range() == (-math.inf, math.inf)


def test_margin_must_be_sensible(spec: ResolvedSpec) -> None:
    with pytest.raises(ValueError, match=r"margin"):
        build_application_model(spec, margin=-0.1)
    with pytest.raises(ValueError, match=r"margin"):
        build_application_model(spec, margin=float("nan"))
    tight = build_application_model(spec, margin=0.0)
    assert _one_error(tight, {**tight.example, "Income": 960})["field"] == "Income"


# --- categories -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["rnet", "Rent", " rent", ""])
def test_unseen_category_is_refused_listing_the_allowed_values(
    app_model: type[ApplicationModel], example: dict[str, Any], value: str
) -> None:
    error = _one_error(app_model, {**example, "Home": value})
    assert error["field"] == "Home"
    assert all(f"'{category}'" in error["problem"] for category in HOME)
    assert f"'{value}'" not in error["problem"]


@settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(value=st.text(max_size=40).filter(lambda text: text not in HOME))
def test_any_other_text_gets_the_same_category_message(value: str) -> None:
    model = _credit_model()
    error = _one_error(model, {**model.example, "Home": value})
    assert error["problem"] == (
        "Input should be 'ignore', 'other', 'owner', 'parents', 'priv' or 'rent'"
    )


@functools.cache
def _credit_model() -> type[ApplicationModel]:
    # hypothesis cannot take function-scoped fixtures; build the model once instead
    return build_application_model(validate_dataset(*load_builtin("credit_data")).spec)


@settings(max_examples=200, deadline=None, database=None)
@given(
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=-(10**6), max_value=10**6),
    )
)
def test_income_is_accepted_exactly_when_finite_whole_and_in_range(value: float) -> None:
    model = _credit_model()
    expected = math.isfinite(value) and float(value).is_integer() and 0 <= value <= 1435
    try:
        application = model.model_validate({**model.example, "Income": value})
    except ValidationError as exc:
        assert not expected
        (error,) = validation_errors(exc)
        assert error["field"] == "Income"
        assert repr(value) not in error["problem"]
    else:
        assert expected
        assert split_application(application)[0]["Income"] == value


# --- batches --------------------------------------------------------------------------------


def test_batch_errors_carry_the_row_index(
    app_model: type[ApplicationModel], example: dict[str, Any]
) -> None:
    batch = build_batch_model(app_model, max_items=5)
    rows = [example, example, example, {**example, "Income": -3}, {**example, "Home": "x"}]
    errors = _errors(batch, {"applications": rows})
    assert errors == [
        {
            "field": "applications[3].Income",
            "problem": "Input should be greater than or equal to 0",
        },
        {
            "field": "applications[4].Home",
            "problem": "Input should be 'ignore', 'other', 'owner', 'parents', 'priv' or 'rent'",
        },
    ]
    valid = batch.model_validate({"applications": [example, {**example, "Debt": None}]})
    assert [split_application(row)[2] for row in valid.applications] == [[], ["Debt"]]


def test_batch_size_is_limited(app_model: type[ApplicationModel], example: dict[str, Any]) -> None:
    batch = build_batch_model(app_model, max_items=2)
    assert _one_error(batch, {"applications": [example] * 3})["field"] == "applications"
    assert _one_error(batch, {"applications": []})["field"] == "applications"
    assert _one_error(batch, {"applications": [example], "more": 1})["field"] == "more"
    schema = batch.model_json_schema()
    assert schema["properties"]["applications"]["maxItems"] == 2
    assert schema["examples"] == [{"applications": [example]}]
    with pytest.raises(ValueError, match=r"max_items"):
        build_batch_model(app_model, max_items=0)


# --- JSON schema and example ----------------------------------------------------------------


def test_json_schema_carries_enums_bounds_and_the_example(
    app_model: type[ApplicationModel], example: dict[str, Any]
) -> None:
    schema = app_model.model_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["examples"] == [example]
    properties = schema["properties"]
    assert properties["Records"]["enum"] == ["no", "yes"]
    home_enum = next(part["enum"] for part in properties["Home"]["anyOf"] if "enum" in part)
    assert home_enum == HOME
    income = next(part for part in properties["Income"]["anyOf"] if part.get("type") == "number")
    assert (income["minimum"], income["maximum"], income["multipleOf"]) == (0, 1435, 1)
    assert "8.6%" in properties["Income"]["description"]
    assert {"Age", "Marital"} <= set(properties)
    assert {"Age", "Marital"}.isdisjoint(schema["required"])


def test_example_from_the_spec_alone_is_valid_and_a_bad_example_is_refused(
    spec: ResolvedSpec,
) -> None:
    model = build_application_model(spec)
    assert model.example is not None
    assert model.example["Home"] == "ignore"  # the spec records no frequencies
    assert model.example["Time"] == 39  # middle of 6..72
    assert split_application(model.model_validate(model.example))[2] == []
    with pytest.raises(ValueError, match=r"example: not a valid application \(Income: "):
        build_application_model(spec, example={**model.example, "Income": -1})


def test_column_names_that_are_not_python_identifiers_work_by_their_json_name() -> None:
    names = ["loan amount", "class", "model_config", "example", "_private", "field_1"]
    spec = ResolvedSpec(
        dataset="odd",
        target="y",
        positive=1,
        negative=0,
        protected=["home-owner"],
        id=None,
        numeric=names[:5],
        categorical=["field_1"],
        schema=[
            *(
                FeatureSchema(name=n, kind="numeric", missing_rate=0, minimum=0, maximum=10)
                for n in names[:5]
            ),
            FeatureSchema(name="field_1", kind="categorical", missing_rate=0.1, categories=["a"]),
        ],
        n_rows=100,
        positive_rate=0.3,
    )
    model = build_application_model(spec)
    payload = {name: 1.5 for name in names[:5]} | {"field_1": "a", "home-owner": "yes"}
    features, protected, missing = split_application(model.model_validate(payload))
    assert features == {name: 1.5 for name in names[:5]} | {"field_1": "a"}
    assert protected == {"home-owner": "yes"}
    assert missing == []
    assert set(model.model_json_schema()["properties"]) == {*names, "home-owner"}
    assert len(set(model.attribute_of.values())) == len(names) + 1
    error = _one_error(model, {**payload, "field_0": 1.0})  # attribute names are not keys
    assert error["field"] == "field_0"


# --- strict JSON ----------------------------------------------------------------------------


def test_strict_body_then_model_refuses_what_json_loads_would_let_through(
    app_model: type[ApplicationModel], example: dict[str, Any]
) -> None:
    for literal in ("NaN", "Infinity", "1e400"):
        body = json.dumps(example).replace('"Income": 125', f'"Income": {literal}').encode()
        assert literal in body.decode()
        assert not math.isfinite(json.loads(body)["Income"])  # what the stdlib does
        with pytest.raises(JSONBodyError):
            parse_json_strict(body)
        # pydantic's own JSON parser, if a caller uses it, refuses the value as well
        with pytest.raises(ValidationError) as caught:
            app_model.model_validate_json(body)
        assert validation_errors(caught.value)[0]["field"] in {"Income", "body"}
    body = json.dumps({**example, "Home": "\ud800"}).encode()
    with pytest.raises(ValidationError) as caught:
        app_model.model_validate_json(body)
    assert "ud800" not in json.dumps(validation_errors(caught.value))


# --- error formatting -----------------------------------------------------------------------


def test_validation_errors_drop_input_and_urls(
    app_model: type[ApplicationModel], example: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError) as caught:
        app_model.model_validate({**example, "Income": SECRET, "Home": SECRET})
    errors = validation_errors(caught.value)
    assert len(errors) == 2
    dumped = json.dumps(errors)
    assert SECRET not in dumped
    assert "http" not in dumped
    body = ErrorBody(detail="invalid application", errors=errors)
    assert body.model_dump()["errors"][0]["field"] == "Income"


# --- response and feedback models -----------------------------------------------------------


def _decision(**changes: Any) -> dict[str, Any]:
    return {
        "prediction_id": str(uuid.uuid4()),
        "model_name": "credit-default",
        "model_version": "3",
        "probability_of_default": 0.41,
        "score_points": 585,
        "risk_grade": "D",
        "decision": "decline",
        "reasons": [
            {"code": "R01", "text": "Debt is high", "feature": "Debt", "contribution": 0.8}
        ],
        "imputed_fields": ["Income"],
        "latency_ms": 0.9,
        **changes,
    }


def test_decision_round_trips_through_json() -> None:
    decision = Decision.model_validate(_decision())
    assert isinstance(decision.reasons[0], Reason)
    again = Decision.model_validate_json(decision.model_dump_json())
    assert again == decision
    batch = BatchDecision(decisions=[decision, decision], count=2, latency_ms=1.5)
    assert BatchDecision.model_validate_json(batch.model_dump_json()).count == 2


@pytest.mark.parametrize(
    "changes",
    [
        {"probability_of_default": 1.2},
        {"probability_of_default": float("nan")},
        {"decision": "maybe"},
        {"prediction_id": "not-a-uuid"},
        {"latency_ms": -1},
        {"unexpected": 1},
    ],
)
def test_decision_refuses_impossible_values(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Decision.model_validate(_decision(**changes))


def test_feedback_outcome_is_a_word_not_an_ambiguous_number() -> None:
    prediction_id = uuid.uuid4()
    feedback = FeedbackRequest.model_validate(
        {"prediction_id": str(prediction_id), "outcome": "default"}
    )
    assert feedback.prediction_id == prediction_id
    assert feedback.defaulted == 1
    repaid = FeedbackRequest.model_validate_json(
        json.dumps(
            {
                "prediction_id": str(prediction_id),
                "outcome": "repaid",
                "observed_at": "2026-03-01T00:00:00Z",
            }
        )
    )
    assert repaid.defaulted == 0
    for bad in ({"outcome": 1}, {"outcome": True}, {"outcome": "bad"}, {"extra": 1}):
        with pytest.raises(ValidationError):
            FeedbackRequest.model_validate(
                {"prediction_id": str(prediction_id), "outcome": "repaid", **bad}
            )
    with pytest.raises(ValidationError, match=r"timezone"):
        FeedbackRequest.model_validate(
            {
                "prediction_id": str(prediction_id),
                "outcome": "repaid",
                "observed_at": "2026-03-01T00:00:00",
            }
        )
