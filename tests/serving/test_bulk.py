"""Decisions for large batches without an object per row (``serving.bulk``): the column checks
accept only what the application model accepts, and the decisions, reasons and logged rows
equal those of the row-by-row path."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pytest

from creditops.data.datasets import load_builtin
from creditops.data.spec import ACCEPTED_MARGIN
from creditops.exceptions import BatchValidationError
from creditops.serving.batch import (
    decide_applications,
    split_inputs,
    typed_rows,
    validate_applications,
)
from creditops.serving.bulk import column_rules, decide_records, table_is_valid, table_rows
from creditops.serving.schemas import split_application
from creditops.serving.served import ServedModel
from creditops.serving.service import DecisionService
from creditops.store.predlog import PredictionLog

pytestmark = pytest.mark.slow

LOGGED = "features, protected, imputed, probability, points, grade, decision, reasons, out_of_range"


@pytest.fixture
def service(trained_store) -> DecisionService:
    log = PredictionLog(trained_store.resolved_database_url)
    yield DecisionService(trained_store, log)
    log.close()


@pytest.fixture
def served(service: DecisionService) -> ServedModel:
    return service.load("champion")


@pytest.fixture
def table(served: ServedModel) -> pd.DataFrame:
    """credit_data's applications as a typed table (what Parquet gives), without id and
    outcome, with some optional features and protected attributes missing."""
    frame, _ = load_builtin("credit_data")
    spec = served.spec
    table = frame.drop(columns=[spec.target, spec.id]).head(1500).reset_index(drop=True)
    optional = [s.name for s in spec.schema_ if s.missing_rate > 0 and s.name in spec.features]
    for i, column in enumerate(optional):
        table.loc[i::7, column] = None
    for column in spec.protected:
        if column in table and column not in spec.features:
            table.loc[3::11, column] = None
    return table


def _row_path(table: pd.DataFrame, served: ServedModel) -> tuple[list[Any], list[Any]]:
    rows, _ = split_inputs(typed_rows(table), served.spec)
    applications = validate_applications(rows, served.application_model, "t")
    parts = [split_application(a) for a in applications]
    return applications, parts


def test_a_valid_table_gives_the_records_the_application_model_gives(table, served):
    assert table_is_valid(table, column_rules(served.application_model))
    rows = table_rows(table, served)
    features, protected = rows.features, rows.protected
    _, parts = _row_path(table, served)
    assert features == [f for f, _, _ in parts]
    assert protected == [p for _, p, _ in parts]
    # the same Python types too (a float stays a float, a protected int an int)
    assert [type(v) for v in features[7].values()] == [type(v) for v in parts[7][0].values()]


def _logged_rows(settings, ids: list[uuid.UUID]) -> list[tuple]:
    with sqlite3.connect(settings.home / "predictions.db") as conn:
        rows = {row[0]: row[1:] for row in conn.execute(f"SELECT id, {LOGGED} FROM predictions")}
    return [rows[str(i)] for i in ids]


def _shifted(table: pd.DataFrame, served: ServedModel) -> pd.DataFrame:
    """``table`` with some rows outside the model's experience: a number three times past
    the top of its training range, and a category training never saw."""
    spec = served.spec
    numeric = next(s for s in spec.schema_ if s.kind == "numeric" and s.name in spec.features)
    category = next(s for s in spec.schema_ if s.kind == "categorical" and s.name in spec.features)
    table = table.copy()
    table.loc[0::50, numeric.name] = numeric.maximum * 3 + 1
    table[category.name] = table[category.name].astype(object)
    table.loc[1::60, category.name] = "nonesuch"
    return table


@pytest.mark.parametrize("shift", [False, True], ids=["in range", "some out of range"])
def test_bulk_decisions_reasons_and_log_rows_equal_the_row_paths(
    table, served, service, trained_store, shift
):
    if shift:
        table = _shifted(table, served)
        assert table_is_valid(table, column_rules(served.application_model))
    applications, _ = _row_path(table, served)
    by_rows = [uuid.uuid4() for _ in applications]
    expected = decide_applications(
        service, served, applications, log=True, chunk=400, prediction_ids=by_rows
    ).frame
    rows = table_rows(table, served)
    in_bulk = [uuid.uuid4() for _ in rows.features]
    decided = decide_records(
        service, served, rows.features, rows.protected, prediction_ids=in_bulk, log=True,
        chunk=400, columns=rows.columns,
    )  # fmt: skip
    assert decided["prediction_id"].tolist() == [str(i) for i in in_bulk]
    columns = [c for c in expected.columns if c != "prediction_id"]
    pd.testing.assert_frame_equal(decided[columns], expected[columns])
    assert (decided["decision"] != "approve").sum() > 50  # reasons were ranked and compared
    assert (decided["imputed_fields"] != "").sum() > 50
    # What is stored is the same text, column by column.
    assert _logged_rows(trained_store, in_bulk) == _logged_rows(trained_store, by_rows)
    flagged = decided["out_of_range"] != ""
    if shift:
        # Referred with a reason naming the feature first; flagged in the log too.
        assert flagged.sum() == len(range(0, 1500, 50)) + len(range(1, 1500, 60))
        assert (decided.loc[flagged, "decision"] == "refer").all()
        assert decided.loc[flagged, "reasons"].str.startswith("OUT_OF_RANGE").all()
        with sqlite3.connect(trained_store.home / "predictions.db") as conn:
            logged = conn.execute(
                "SELECT count(*) FROM predictions WHERE out_of_range IS NOT NULL"
            ).fetchone()[0]
        assert logged == 2 * flagged.sum()  # both paths logged them
    else:
        assert not flagged.any()


def test_a_chunk_already_logged_is_decided_again_but_not_logged_twice(table, served, service):
    rows = table_rows(table.head(300), served)
    features, protected = rows.features, rows.protected
    ids = [uuid.uuid4() for _ in features]
    decide_records(
        service, served, features[:100], protected[:100], prediction_ids=ids[:100], log=True,
        chunk=100,
    )  # fmt: skip
    again = decide_records(
        service, served, features, protected, prediction_ids=ids, log=True, chunk=100
    )
    assert len(again) == 300
    assert service.log.count() == 300


def _set(column: str, value: Any) -> Any:
    """Put ``value`` into row 6 (index 5) of ``column``, the column made to hold it (an
    object column for a value of another type, as a Parquet file of mixed cells reads)."""

    def mutate(table: pd.DataFrame) -> pd.DataFrame:
        table = table.copy()
        if column not in table:
            table[column] = None
        table[column] = table[column].astype(object)
        table.at[5, column] = value
        return table

    return mutate


def _mutations(served: ServedModel) -> list[tuple[str, Any]]:
    spec = served.spec
    numeric = next(s for s in spec.schema_ if s.kind == "numeric" and s.name in spec.features)
    required = next(s for s in spec.schema_ if s.missing_rate == 0 and s.name in spec.features)
    whole = next(s for s in spec.schema_ if s.kind == "numeric" and s.integer)
    category = next(s for s in spec.schema_ if s.kind == "categorical")
    protected = next(c for c in spec.protected if c not in spec.features)
    assert numeric.minimum is not None
    assert numeric.minimum >= 0
    return [
        ("below zero", _set(numeric.name, -1.0)),
        ("infinity", _set(numeric.name, np.inf)),
        ("a required value missing", _set(required.name, None)),
        ("not a whole number", _set(whole.name, 1.5)),
        ("a boolean", _set(numeric.name, True)),
        ("text in a number", _set(numeric.name, "12")),
        ("a category text too long", _set(category.name, "x" * 101)),
        ("a number as a category", _set(category.name, 1)),
        ("an unknown column", _set("surplus", 1)),
        ("a protected text too long", _set(protected, "x" * 10_000)),
        ("a protected number too large", _set(protected, 1e300)),
        ("a protected boolean", _set(protected, False)),
    ]


def test_a_table_the_column_checks_refuse_is_one_the_model_refuses(table, served):
    """Every kind of bad cell, in one row only: the column checks say no, and the row-by-row
    validation then names the cell."""
    rules = column_rules(served.application_model)
    assert table_is_valid(table, rules)
    for name, mutate in _mutations(served):
        bad = mutate(table)
        assert not table_is_valid(bad, rules), name
        rows, _ = split_inputs(typed_rows(bad), served.spec)
        with pytest.raises(BatchValidationError) as error:
            validate_applications(rows, served.application_model, "t")
        # an unknown column is in every row (null elsewhere), so the first row is named
        assert error.value.problems[0]["row"] == (1 if "column" in name else 6), name


def test_the_edges_of_the_accepted_range_pass_both_checks(table, served):
    spec = served.spec
    numeric = [s for s in spec.schema_ if s.kind == "numeric" and s.name in spec.features]
    edge = table.head(2).copy()
    for schema in numeric:
        low, high = schema.accepted_range(ACCEPTED_MARGIN)
        if schema.integer:
            low, high = np.ceil(low), np.floor(high)
        edge[schema.name] = [low, high]
    rows, _ = split_inputs(typed_rows(edge), spec)
    validate_applications(rows, served.application_model, "t")  # accepted
    assert table_is_valid(edge, column_rules(served.application_model))
