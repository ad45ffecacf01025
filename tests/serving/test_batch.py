"""Reading files of applications for ``creditops predict`` and the dashboard's batch upload,
and dashboard form fields, read as the API reads CSV cells: without a model version."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
import pytest
from pydantic import ValidationError

from creditops.data.datasets import load_builtin
from creditops.data.spec import ResolvedSpec
from creditops.data.validate import validate_dataset
from creditops.exceptions import BatchValidationError, CellError, JSONBodyError
from creditops.serving.batch import read_applications, validate_applications
from creditops.serving.parsing import (
    located_errors,
    parse_csv_applications,
    parse_form_application,
)
from creditops.serving.schemas import ApplicationModel, build_application_model


@pytest.fixture(scope="module")
def spec() -> ResolvedSpec:
    return validate_dataset(*load_builtin("credit_data"), dataset_name="credit_data").spec


@pytest.fixture(scope="module")
def app_model(spec: ResolvedSpec) -> type[ApplicationModel]:
    return build_application_model(spec)


@pytest.fixture(scope="module")
def applications() -> pd.DataFrame:
    frame, _ = load_builtin("credit_data")
    return frame.head(30)


def test_a_csv_file_reads_as_requests_without_its_id_and_outcome(
    spec: ResolvedSpec, applications: pd.DataFrame
) -> None:
    rows, ids = read_applications(applications.to_csv(index=False).encode(), "a.csv", spec)
    assert len(rows) == 30
    assert ids == applications[spec.id].astype(str).tolist()  # CSV cells carry no type
    assert spec.target not in rows[0]
    assert spec.id not in rows[0]
    assert isinstance(rows[0]["Amount"], int)


def test_a_parquet_file_reads_as_the_same_requests(
    spec: ResolvedSpec, applications: pd.DataFrame
) -> None:
    buffer = io.BytesIO()
    applications.to_parquet(buffer, index=False)
    rows, ids = read_applications(buffer.getvalue(), "a.parquet", spec)
    from_csv, _ = read_applications(applications.to_csv(index=False).encode(), "a.csv", spec)
    assert rows == from_csv
    assert ids == applications[spec.id].tolist()


@pytest.mark.parametrize(
    ("name", "body", "message"),
    [
        ("a.csv", b"", "the file is empty"),
        ("a.csv", bytes(range(256)) * 4, "not a text file"),
        ("a.csv", "Home\ncaf\xe9\n".encode("latin-1"), "not valid UTF-8.*CSV UTF-8"),
        ("a.csv", b"Seniority,Home\n", "no rows to score"),
        ("a.csv", b"Home,Home\nrent,rent\n", "repeats column"),
        ("a.parquet", b"PAR1 but not really", "not a readable Parquet file"),
        ("a.xlsx", b"PK", "use a .csv or .parquet file"),
    ],
)
def test_unusable_files_get_a_clear_message(
    spec: ResolvedSpec, name: str, body: bytes, message: str
) -> None:
    with pytest.raises(BatchValidationError, match=message) as refused:
        read_applications(body, name, spec)
    assert refused.value.problems == []  # the file's problem, not a cell's


def test_a_bad_cell_names_its_row_and_column(
    spec: ResolvedSpec, applications: pd.DataFrame
) -> None:
    broken = applications.astype({"Income": object})
    broken.loc[broken.index[7], "Income"] = "lots"
    with pytest.raises(BatchValidationError, match=r"applications\[7\]\.Income") as refused:
        read_applications(broken.to_csv(index=False).encode(), "b.csv", spec)
    assert refused.value.problems == [
        {"row": 8, "column": "Income", "problem": "must be a finite number"}
    ]
    assert "lots" not in str(refused.value)
    with pytest.raises(CellError) as cell:  # the API's CSV reading raises it as before
        parse_csv_applications(broken.to_csv(index=False).encode(), spec, max_rows=100)
    assert isinstance(cell.value, JSONBodyError)
    assert (cell.value.row, cell.value.column) == (7, "Income")


def test_every_invalid_value_is_listed_by_row_and_column(
    spec: ResolvedSpec, app_model: type[ApplicationModel], applications: pd.DataFrame
) -> None:
    broken = applications.copy()
    broken.loc[broken.index[3], "Amount"] = -50
    broken.loc[broken.index[5], "Home"] = "castle"
    rows, _ = read_applications(broken.to_csv(index=False).encode(), "c.csv", spec)
    rows[9]["Bogus"] = 1
    with pytest.raises(BatchValidationError, match="3 invalid value") as refused:
        validate_applications(rows, app_model, "c.csv")
    problems = {(p["row"], p["column"]): p["problem"] for p in refused.value.problems}
    assert set(problems) == {(4, "Amount"), (6, "Home"), (10, "Bogus")}
    assert "greater than or equal to 0" in problems[(4, "Amount")]
    assert "castle" not in str(refused.value.problems)


def test_a_form_reads_like_a_csv_row_with_empty_fields_left_out(spec: ResolvedSpec) -> None:
    values: dict[str, Any] = {
        "Amount": " 2000 ",
        "Income": "",
        "Seniority": "twelve",
        "Time": "nan",
        "Home": "rent",
        "Age": "46",
        "Marital": "single",
        "Assets": object(),  # a file where a value belongs
    }
    fields = [*values.items(), ("Home", "owner")]  # a forged form repeats a field
    application, problems = parse_form_application(fields, spec)
    assert application == {"Amount": 2000, "Age": 46, "Marital": "single"}
    assert problems == {
        "Seniority": "must be a finite number",
        "Time": "must be a finite number",
        "Assets": "must be a value typed in the form, not a file",
        "Home": "sent more than once; send each field once",
    }


def test_located_errors_keep_the_raw_location_and_the_apis_words(
    app_model: type[ApplicationModel],
) -> None:
    with pytest.raises(ValidationError) as refused:
        app_model.model_validate({"Amount": -5, "Records": "no"})
    located = dict(located_errors(refused.value))
    assert located[("Amount",)] == "Input should be greater than or equal to 0"
    assert located[("Seniority",)] == "Field required"
