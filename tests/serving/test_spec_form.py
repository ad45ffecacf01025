"""The spec editor's form read back into a spec: every field it cannot take is named."""

from __future__ import annotations

import pytest

from creditops.data.spec import DatasetSpec
from creditops.serving.ui.spec_form import SpecFormError, spec_from_form, spec_rows

COLUMNS = {"id": "number", "Income": "number", "Home": "text", "Age": "number", "Status": "text"}


def _form(**overrides: str) -> dict[str, str]:
    form = {
        "target": "Status",
        "positive": "bad",
        "id": "id",
        "role_1": "numeric",
        "monotone_1": "decreasing",
        "reason_1": "Income is low",
        "role_2": "categorical",
        "monotone_2": "",
        "role_3": "protected",
        "monotone_3": "",
    }
    form.update(overrides)
    return form


def test_the_form_makes_the_spec_it_shows() -> None:
    spec = spec_from_form(_form(), COLUMNS)
    assert spec.target == "Status"
    assert spec.id == "id"
    assert spec.features.numeric == ["Income"]
    assert spec.features.categorical == ["Home"]
    assert spec.protected == ["Age"]
    assert spec.monotone.decreasing == ["Income"]
    assert spec.reasons == {"Income": "Income is low"}
    rows = spec_rows(COLUMNS, spec)
    assert [(r.name, r.role, r.monotone) for r in rows[1:4]] == [
        ("Income", "numeric", "decreasing"),
        ("Home", "categorical", ""),
        ("Age", "protected", ""),
    ]
    assert spec_from_form(_form(positive="1"), COLUMNS).positive == 1


def test_a_column_marked_personal_data_is_kept_out_of_the_features() -> None:
    columns = {**COLUMNS, "Name": "text"}
    spec = spec_from_form(_form(role_5="personal data", monotone_5=""), columns)
    assert spec.pii == ["Name"]
    assert "Name" not in spec.features.categorical
    assert [r.role for r in spec_rows(columns, spec) if r.name == "Name"] == ["personal data"]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"target": "Nope"}, "target", "choose one of the file's columns"),
        ({"id": "../x"}, "id", "choose one of the file's columns"),
        ({"positive": " "}, "positive", "value that means default"),
        ({"role_1": "admin"}, "role_1", "not one of"),
        ({"monotone_2": "increasing"}, "monotone_2", "Home: a monotone expectation needs"),
        ({"reason_1": "x" * 201}, "reason_1", "at most 200 characters"),
        ({"role_1": "ignore", "monotone_1": "", "role_2": "ignore"}, "role_0", "at least one"),
    ],
)
def test_a_field_the_form_cannot_take_is_named(overrides, field, words) -> None:
    with pytest.raises(SpecFormError, match=words) as raised:
        spec_from_form(_form(**overrides), COLUMNS)
    assert raised.value.field == field


def test_rows_of_a_spec_without_features_follow_the_stored_types() -> None:
    rows = spec_rows(COLUMNS, DatasetSpec(target="Status", positive="bad"))
    assert [r.role for r in rows] == ["numeric", "numeric", "categorical", "numeric", "categorical"]


def test_the_training_forms_candidates_are_checked_against_the_zoo() -> None:
    from creditops.serving.ui.pages.data import _unknown_candidates

    assert _unknown_candidates(None) is None  # the field not sent: every candidate
    assert _unknown_candidates(["logistic_regression", "xgboost"]) is None
    assert _unknown_candidates([]) == "models: choose at least one candidate"
    assert _unknown_candidates(["xgboost", "gpt"]) == "models: no candidate 'gpt'"
    # every box unticked: the browser sends no field, but the form said it listed them
    assert _unknown_candidates(None, listed=True) == "models: choose at least one candidate"
