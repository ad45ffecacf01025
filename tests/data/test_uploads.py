"""Uploads: streamed under a size cap, named by their content, never trusted as a path; and a
first guess at their spec."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from creditops.data.datasets import load_builtin
from creditops.data.uploads import (
    find_upload,
    infer_spec,
    list_uploads,
    read_spec,
    safe_filename,
    save_spec,
    store_upload,
    summarise_file,
)
from creditops.exceptions import DataValidationError


def _chunks(data: bytes, size: int = 1000):
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture(scope="module")
def credit_csv() -> bytes:
    frame, _ = load_builtin("credit_data")
    return frame.to_csv(index=False).encode()


def test_an_upload_is_stored_by_content_and_found_again(tmp_path: Path, credit_csv) -> None:
    first = store_upload(_chunks(credit_csv), "loans.csv", tmp_path, max_bytes=10**7)
    assert first.path.read_bytes() == credit_csv
    assert first.path.parent.name == first.sha256[:16]
    assert (first.size, first.reused) == (len(credit_csv), False)
    again = store_upload(_chunks(credit_csv, 4096), "other name.csv", tmp_path, max_bytes=10**7)
    assert again.reused
    assert again.path == first.path
    assert again.spec_path == first.path.parent / "spec.yaml"
    assert not list(tmp_path.glob(".incoming-*"))


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("../../etc/passwd.csv", "passwd.csv"),
        ("C:\\Users\\x\\loans 2024.csv", "loans_2024.csv"),
        ("..", "upload"),
        ("data;rm -rf.parquet", "data_rm_-rf.parquet"),
    ],
)
def test_uploaded_names_are_never_paths(name: str, safe: str) -> None:
    assert safe_filename(name) == safe


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("loans.xlsx", b"PK\x03\x04", r"upload a \.csv or \.parquet file"),
        ("loans.csv", b"", r"is empty"),
        ("loans.csv", b"x" * 5000, r"larger than the upload limit of 4,096 bytes"),
    ],
)
def test_refused_uploads_leave_nothing_behind(tmp_path: Path, name, data, message) -> None:
    with pytest.raises(DataValidationError, match=message):
        store_upload(_chunks(data), name, tmp_path, max_bytes=4096)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_spec_is_guessed_from_the_columns(tmp_path: Path, credit_csv) -> None:
    upload = store_upload(_chunks(credit_csv), "credit.csv", tmp_path, max_bytes=10**7)
    spec = infer_spec(upload.path)
    _, builtin = load_builtin("credit_data")
    assert (spec.target, spec.positive, spec.id) == ("Status", "bad", "applicant_id")
    assert spec.protected == builtin.protected
    assert set(spec.features.numeric) == {
        "Seniority",
        "Time",
        "Expenses",
        "Income",
        "Assets",
        "Debt",
        "Amount",
        "Price",
    }
    assert spec.features.categorical == ["Home", "Records", "Job"]


def test_a_numeric_outcome_gets_its_rarer_value_and_parquet_works(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"income": range(100), "region": ["n", "s"] * 50, "SeriousDlqin2yrs": [0] * 90 + [1] * 10}
    )
    path = tmp_path / "gmsc.parquet"
    frame.to_parquet(path)
    spec = infer_spec(path)
    assert (spec.target, spec.positive) == ("SeriousDlqin2yrs", 1)
    assert spec.features.numeric == ["income"]
    assert spec.features.categorical == ["region"]


def test_no_two_valued_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("a,b\n1,x\n2,y\n3,z\n")
    with pytest.raises(DataValidationError, match="no column looks like a two-valued outcome"):
        infer_spec(path)


def test_stored_uploads_are_listed_found_and_keep_their_spec(tmp_path: Path, credit_csv) -> None:
    first = store_upload(_chunks(credit_csv), "loans.csv", tmp_path, max_bytes=10**7)
    second = store_upload(_chunks(b"a,b\n1,2\n"), "other.csv", tmp_path, max_bytes=10**7)
    listed = list_uploads(tmp_path)
    assert {u.key for u in listed} == {first.path.parent.name, second.path.parent.name}
    found = find_upload(tmp_path, first.path.parent.name)
    assert found.path == first.path
    assert not found.has_spec
    assert read_spec(found) is None
    spec = infer_spec(found.path)
    spec = spec.model_copy(update={"reasons": {"Debt": "Debt is high"}})
    save_spec(found, spec)
    assert read_spec(found) == spec
    assert sorted(p.name for p in found.path.parent.iterdir()) == ["loans.csv", "spec.yaml"]
    for key in ("../etc", "0123", "g" * 16, "0" * 16):
        with pytest.raises(DataValidationError, match="no upload"):
            find_upload(tmp_path, key)


def test_a_file_is_summarised_in_one_read(tmp_path: Path, credit_csv) -> None:
    path = tmp_path / "loans.csv"
    path.write_bytes(credit_csv)
    summary = summarise_file(path)
    assert summary.rows == 4454
    assert summary.columns["Income"] == "number"
    assert summary.columns["Home"] == "text"
    assert summary.few_values["Status"] == ["bad", "good"]
    assert "Income" not in summary.few_values
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 64)
    with pytest.raises(DataValidationError, match=r"binary\.csv"):
        summarise_file(binary)
