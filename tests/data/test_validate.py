"""Every validation failure gets a message that names the column and the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from creditops.data.io import read_table
from creditops.data.spec import DatasetSpec
from creditops.data.validate import check_dataset, validate_dataset
from creditops.exceptions import ConfigurationError, DataValidationError


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    income = rng.lognormal(5, 0.5, n)
    debt = rng.gamma(2, 100, n)
    risk = 1 / (1 + np.exp(-(debt / income - 1.5)))
    return pd.DataFrame(
        {
            "Income": income,
            "Debt": debt,
            "Home": rng.choice(["rent", "owner", "parents"], n),
            "Age": rng.integers(18, 80, n),
            "Status": np.where(rng.random(n) < risk, "bad", "good"),
        }
    )


SPEC = DatasetSpec(target="Status", positive="bad", protected=["Age"])


def test_valid_data_resolves_types_and_excludes_protected(frame):
    result = validate_dataset(frame, SPEC)
    assert result.spec.numeric == ["Income", "Debt"]
    assert result.spec.categorical == ["Home"]
    assert "Age" not in result.spec.features
    assert result.spec.negative == "good"
    assert result.y.tolist() == (frame["Status"] == "bad").astype(int).tolist()
    home = next(s for s in result.spec.schema_ if s.name == "Home")
    assert home.categories == ["owner", "parents", "rent"]
    assert result.warnings == []


def test_protected_attribute_is_a_feature_only_when_listed(frame):
    spec = DatasetSpec(
        target="Status",
        positive="bad",
        protected=["Age"],
        features={"numeric": ["Income", "Age"], "categorical": ["Home"]},
    )
    assert validate_dataset(frame, spec).spec.numeric == ["Income", "Age"]


def test_personal_data_is_never_a_feature_nor_kept_in_the_training_frame(frame):
    frame = frame.assign(Name=[f"person {i}" for i in range(len(frame))])
    spec = DatasetSpec(target="Status", positive="bad", protected=["Age"], pii=["Name"])
    result = validate_dataset(frame, spec)
    assert "Name" not in result.spec.features
    assert "Name" not in result.frame.columns
    assert result.spec.pii == ["Name"]
    assert result.spec.dataset_spec().pii == ["Name"]
    for clash in ({"protected": ["Name"]}, {"id": "Name"}, {"target": "Name"},
                  {"features": {"numeric": [], "categorical": ["Name"]}}):  # fmt: skip
        with pytest.raises(ValueError, match="pii column 'Name' is also"):
            DatasetSpec(**{"target": "Status", "positive": "bad", "pii": ["Name"], **clash})
    with pytest.raises(DataValidationError, match="'Nope' \\(personal data\\)"):
        validate_dataset(frame, DatasetSpec(target="Status", positive="bad", pii=["Nope"]))


def test_missing_target(frame):
    with pytest.raises(DataValidationError, match=r"target column 'Outcome' not found") as error:
        validate_dataset(frame, DatasetSpec(target="Outcome", positive="bad"))
    assert error.value.column == "Outcome"


def test_target_with_one_class(frame):
    frame["Status"] = "good"
    with pytest.raises(DataValidationError, match=r"target 'Status' has only one class"):
        validate_dataset(frame, DatasetSpec(target="Status", positive="good"))


def test_positive_value_not_in_target(frame):
    with pytest.raises(
        DataValidationError, match=r"positive value 'default' does not occur in target 'Status'"
    ):
        validate_dataset(frame, DatasetSpec(target="Status", positive="default"))


def test_more_than_two_classes(frame):
    frame.loc[:5, "Status"] = "unknown"
    with pytest.raises(DataValidationError, match=r"target 'Status' has 3 classes"):
        validate_dataset(frame, SPEC)


def test_unknown_columns_in_spec(frame):
    spec = DatasetSpec(
        target="Status",
        positive="bad",
        protected=["Gender"],
        features={"numeric": ["Income", "Salary"], "categorical": []},
    )
    with pytest.raises(
        DataValidationError, match=r"not in the data: 'Gender' \(protected\), 'Salary'"
    ):
        validate_dataset(frame, spec)


def test_all_missing_and_constant_columns_are_dropped_with_warning(frame):
    frame["Empty"] = np.nan
    frame["Country"] = "ES"
    result = validate_dataset(frame, SPEC)
    assert "Empty" not in result.spec.features
    assert "Country" not in result.spec.features
    messages = {w.column: w.message for w in result.warnings}
    assert messages["Empty"] == "column 'Empty' dropped: all values missing"
    assert messages["Country"] == "column 'Country' dropped: constant (every value is 'ES')"
    assert result.spec.dropped == {
        "Empty": "all values missing",
        "Country": "constant (every value is 'ES')",
    }


def test_too_few_minority_rows_for_five_folds(frame):
    frame["Status"] = "good"
    frame.loc[:5, "Status"] = "bad"
    with pytest.raises(
        DataValidationError, match=r"only 6 row\(s\) of its minority class .* needs at least 8"
    ):
        validate_dataset(frame, SPEC)


def test_leakage_warning_names_feature_and_auc(frame):
    frame["DaysInArrears"] = (
        np.where(frame["Status"] == "bad", 90.0, 0.0) + np.arange(len(frame)) % 3
    )
    result = validate_dataset(frame, SPEC)
    leak = [w for w in result.warnings if w.code == "possible_leakage"]
    assert [w.column for w in leak] == ["DaysInArrears"]
    assert "ROC AUC 1.000" in leak[0].message


def test_non_numeric_values_in_numeric_column(frame):
    frame["Income"] = frame["Income"].astype(object)
    frame.loc[3, "Income"] = "n/a"
    spec = DatasetSpec(
        target="Status", positive="bad", features={"numeric": ["Income"], "categorical": []}
    )
    with pytest.raises(
        DataValidationError, match=r"numeric column 'Income' has 1 non-numeric.*'n/a'"
    ):
        validate_dataset(frame, spec)


def test_infinite_values_are_refused(frame):
    frame.loc[0, "Debt"] = np.inf
    with pytest.raises(DataValidationError, match=r"numeric column 'Debt' has 1 infinite value"):
        validate_dataset(frame, SPEC)


def test_rows_with_missing_target_are_dropped_with_warning(frame):
    frame.loc[:9, "Status"] = None
    result = validate_dataset(frame, SPEC)
    assert result.spec.n_rows == len(frame) - 10
    assert any("10 row(s) with a missing target 'Status'" in w.message for w in result.warnings)


def test_duplicated_ids_are_refused(frame):
    frame["id"] = np.arange(len(frame))
    frame.loc[1, "id"] = 0
    with pytest.raises(DataValidationError, match=r"id column 'id' has duplicated values"):
        validate_dataset(frame, DatasetSpec(target="Status", positive="bad", id="id"))


def test_numeric_positive_label_matches_integer_target(frame):
    frame["Status"] = (frame["Status"] == "bad").astype(int)
    result = validate_dataset(frame, DatasetSpec(target="Status", positive=1))
    assert result.y.sum() == frame["Status"].sum()
    assert result.spec.negative == 0


# -- files --------------------------------------------------------------------------------------


def test_duplicated_header_in_csv(tmp_path: Path, frame):
    path = tmp_path / "dup.csv"
    path.write_text("Income,Debt,Income,Status\n1,2,3,bad\n")
    with pytest.raises(
        DataValidationError, match=r"dup.csv: duplicated column name\(s\) in the header: Income"
    ):
        read_table(path)


def test_wrong_delimiter(tmp_path: Path, frame):
    path = tmp_path / "semi.csv"
    frame.to_csv(path, sep=";", index=False)
    with pytest.raises(DataValidationError, match=r"looks ';'-delimited, pass --delimiter ';'"):
        read_table(path)
    assert read_table(path, delimiter=";").shape == frame.shape


def test_unreadable_encoding(tmp_path: Path):
    path = tmp_path / "latin.csv"
    path.write_bytes("Income,Home,Status\n1,Espa\xf1a,bad\n".encode("latin-1"))
    with pytest.raises(DataValidationError, match=r"latin.csv is not valid utf-8.*byte 0xf1"):
        read_table(path)
    assert read_table(path, encoding="latin-1")["Home"].iloc[0] == "España"


def test_empty_and_header_only_files(tmp_path: Path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataValidationError, match=r"empty.csv is empty"):
        read_table(empty)
    header = tmp_path / "header.csv"
    header.write_text("Income,Status\n")
    with pytest.raises(DataValidationError, match=r"header.csv has a header but no rows"):
        read_table(header)


def test_garbage_parquet_and_unknown_suffix(tmp_path: Path):
    garbage = tmp_path / "broken.parquet"
    garbage.write_bytes(b"\x00\x01not parquet at all")
    with pytest.raises(DataValidationError, match=r"broken.parquet is not a readable Parquet file"):
        read_table(garbage)
    excel = tmp_path / "data.xlsx"
    excel.write_bytes(b"PK")
    with pytest.raises(DataValidationError, match=r"unsupported file type \.xlsx"):
        read_table(excel)


def test_parquet_round_trip(tmp_path: Path, frame):
    path = tmp_path / "data.parquet"
    frame.to_parquet(path)
    pd.testing.assert_frame_equal(read_table(path), frame)


def test_spec_yaml_errors_name_the_field(tmp_path: Path):
    path = tmp_path / "spec.yaml"
    path.write_text("target: Status\npositive: bad\nfeatures:\n  numerik: [Income]\n")
    with pytest.raises(
        ConfigurationError, match=r"features.numerik: Extra inputs are not permitted"
    ):
        DatasetSpec.from_yaml(path)
    path.write_text("positive: bad\n")
    with pytest.raises(ConfigurationError, match=r"target: Field required"):
        DatasetSpec.from_yaml(path)
    path.write_text("target: [unclosed\n")
    with pytest.raises(ConfigurationError, match=r"not valid YAML"):
        DatasetSpec.from_yaml(path)


def test_the_report_names_every_problem_with_its_column(frame):
    frame["Income"] = frame["Income"].astype(object)
    frame.loc[3, "Income"] = "n/a"
    frame.loc[5, "Debt"] = np.inf
    frame["Id"] = range(len(frame))
    frame.loc[7, "Id"] = 0
    spec = DatasetSpec(
        target="Status",
        positive="bad",
        id="Id",
        features={"numeric": ["Income", "Debt"], "categorical": ["Home"]},
    )
    report = check_dataset(frame, spec)
    assert not report.ok
    assert [p.column for p in report.problems] == ["Id", "Income", "Debt"]
    assert "duplicated values" in report.problems[0].message
    assert "'n/a'" in report.problems[1].message
    assert "infinite" in report.problems[2].message
    # The first of them is what training would refuse the data for.
    with pytest.raises(DataValidationError) as raised:
        validate_dataset(frame, spec)
    assert str(raised.value) in {p.message for p in report.problems}


def test_a_clean_report_carries_the_warnings_and_the_resolved_spec(frame):
    frame["Empty"] = np.nan
    report = check_dataset(frame, SPEC)
    assert report.ok
    assert report.spec is not None
    assert report.spec.n_rows == len(frame)
    assert [w.column for w in report.warnings] == ["Empty"]


def test_a_spec_naming_absent_columns_stops_the_report_there(frame):
    spec = DatasetSpec(target="Outcome", positive="bad")
    report = check_dataset(frame, spec)
    assert [p.column for p in report.problems] == ["Outcome"]
    assert check_dataset(frame.iloc[0:0], SPEC).problems[0].message.startswith("the data has no")
