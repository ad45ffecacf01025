"""Batch decisions on a file (``creditops predict`` and the dashboard's batch upload): the same
validation, scoring, policy, reasons and decision log as ``POST /predict/batch``, for files of
any length.

The whole file is validated before anything is decided, so one bad row rejects the file with
its row number and column. Decisions are then made and logged in chunks of ``max_batch`` rows,
each chunk one transaction; the output file is written beside its target and renamed, so it
appears complete or not at all.
"""

from __future__ import annotations

import io
import math
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ValidationError

from creditops.config import Settings
from creditops.data.experience import OUT_OF_RANGE_CODE, OUT_OF_RANGE_TEXT
from creditops.data.io import table_format, write_table
from creditops.exceptions import BatchValidationError, CellError, DataValidationError, JSONBodyError
from creditops.registry import CHAMPION
from creditops.serving.parsing import (
    format_location,
    located_errors,
    parse_csv_applications,
    read_text_cells,
    validation_errors,
)
from creditops.serving.schemas import ApplicationModel, build_batch_model
from creditops.serving.served import ServedModel
from creditops.serving.service import DecisionService
from creditops.store.predlog import PredictionLog

_MAX_FILE_ROWS = 5_000_000
_SHOWN_ERRORS = 5


class BatchSummary(BaseModel):
    """What ``creditops predict`` did."""

    rows: int
    model_name: str
    model_version: str
    decisions: dict[str, int]
    logged: bool
    output: str
    scoring_seconds: float
    total_seconds: float


def read_applications(
    data: bytes, name: str, spec: Any, *, max_rows: int = _MAX_FILE_ROWS
) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """The rows of a file's bytes (``name`` says CSV or Parquet) as request dicts, missing
    cells as None, and its id column if any; the outcome column of a labelled file is dropped.

    Raises :class:`BatchValidationError`: a cell that is not its column's type names its row
    and column; an empty, binary, wrongly encoded or malformed file says so.
    """
    fmt = table_format(Path(name))
    if fmt is None:
        raise BatchValidationError(f"{name}: use a .csv or .parquet file")
    if not data:
        raise BatchValidationError(f"{name}: the file is empty")
    if fmt == "csv":
        rows = _csv_rows(data, name, spec, max_rows)
    else:
        try:
            frame = pd.read_parquet(io.BytesIO(data))
        except Exception as error:  # pyarrow raises many types for a broken file
            raise BatchValidationError(
                f"{name}: not a readable Parquet file ({_first_line(error)})"
            ) from None
        if len(frame) > max_rows:
            raise BatchValidationError(f"{name}: more than {max_rows} rows")
        rows = typed_rows(frame)
    if not rows:
        raise BatchValidationError(f"{name}: no rows to score")
    return split_inputs(rows, spec)


def typed_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A typed frame's rows (Parquet) as request dicts: missing cells None, numpy scalars plain."""
    return [
        {str(k): (None if is_missing_cell(v) else plain_value(v)) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def text_rows(frame: pd.DataFrame, spec: Any, name: str) -> list[dict[str, Any]]:
    """A frame of text cells (a CSV read as text) as request dicts, read as a CSV upload is;
    a cell that is not its column's type raises :class:`BatchValidationError` (row from 1)."""
    try:
        return read_text_cells(frame.to_dict(orient="records"), spec)
    except CellError as error:
        problem = {"row": error.row + 1, "column": error.column, "problem": error.problem}
        raise BatchValidationError(
            f"{name}: 1 invalid value(s), nothing decided: {error}", [problem]
        ) from None


def split_inputs(
    rows: list[dict[str, Any]], spec: Any
) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """The rows without their id column (returned apart, if the file has one) and without the
    outcome column of a labelled file, which is not an input."""
    ids = None
    if rows and spec.id is not None and spec.id in rows[0]:
        ids = [row.pop(spec.id) for row in rows]
    if rows and spec.target in rows[0]:
        for row in rows:
            row.pop(spec.target, None)
    return rows, ids


def _csv_rows(data: bytes, name: str, spec: Any, max_rows: int) -> list[dict[str, Any]]:
    if b"\x00" in data[:8192]:
        raise BatchValidationError(
            f"{name}: this is not a text file (it holds binary data); upload a CSV or a "
            "Parquet file"
        )
    try:
        body = parse_csv_applications(data, spec, max_rows=max_rows)
    except CellError as error:
        problem = {"row": error.row + 1, "column": error.column, "problem": error.problem}
        raise BatchValidationError(
            f"{name}: 1 invalid value(s), nothing decided: {error}", [problem]
        ) from None
    except JSONBodyError as error:
        hint = ""
        if "UTF-8" in str(error):
            hint = '; save it as CSV in UTF-8 ("CSV UTF-8" in spreadsheet programs)'
        raise BatchValidationError(f"{name}: {error}{hint}") from None
    return body["applications"]


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else type(error).__name__


def is_missing_cell(value: Any) -> bool:
    """A cell of a typed table that stands for a missing value (null, NaN, pandas' NA)."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def plain_value(value: Any) -> Any:
    """A typed table's cell as a plain Python value (numpy scalars unwrapped)."""
    return value.item() if hasattr(value, "item") else value


def validate_applications(
    rows: list[dict[str, Any]], application_model: type[ApplicationModel], name: str
) -> list[ApplicationModel]:
    """Every row validated as the API validates one application, all before any is decided;
    raises :class:`BatchValidationError` listing each bad value by row (from 1) and column."""
    batch_model = build_batch_model(application_model, len(rows))
    try:
        return list(batch_model.model_validate({"applications": rows}).applications)
    except ValidationError as error:
        located = located_errors(error)
        problems = validation_errors(error)
    shown = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:_SHOWN_ERRORS])
    more = len(problems) - _SHOWN_ERRORS
    raise BatchValidationError(
        f"{name}: {len(problems)} invalid value(s), nothing decided: {shown}"
        + (f" (and {more} more)" if more > 0 else ""),
        [_row_problem(location, problem) for location, problem in located],
    )


def _row_problem(location: tuple[str | int, ...], problem: str) -> dict[str, Any]:
    # ("applications", 3, "Income") → row 4 (counted from 1), column Income
    row = location[1] + 1 if len(location) > 1 and isinstance(location[1], int) else None
    column = format_location(location[2:]) if len(location) > 2 else None
    return {"row": row, "column": column, "problem": problem}


@dataclass(frozen=True)
class DecidedBatch:
    """The decisions of a file, one row per application in its order, and the words of the
    reason codes they cite (the table carries only the codes)."""

    frame: pd.DataFrame
    reason_texts: dict[str, str]


def decide_applications(
    service: DecisionService,
    served: ServedModel,
    applications: list[ApplicationModel],
    *,
    ids: list[Any] | None = None,
    log: bool = True,
    chunk: int,
    prediction_ids: list[uuid.UUID] | None = None,
    actor: str | None = None,
) -> DecidedBatch:
    """Decide validated applications ``chunk`` at a time (each chunk one transaction of the
    decision log, ``log=False``: recorded nowhere).

    ``prediction_ids``: the decisions' ids, fixed by the caller so that a rerun after a crash
    finds what was logged: a chunk whose first id is already in the log (chunks are logged all
    or nothing) is decided again for the output but not logged twice."""
    decisions = []
    for start in range(0, len(applications), chunk):
        part = applications[start : start + chunk]
        chunk_ids = None if prediction_ids is None else prediction_ids[start : start + chunk]
        logged = chunk_ids is not None and log and service.log.get(chunk_ids[0]) is not None
        decisions.extend(
            service.decide_batch(part, served, log=log and not logged, ids=chunk_ids, actor=actor)
        )
    texts = {
        r.code: OUT_OF_RANGE_TEXT if r.code == OUT_OF_RANGE_CODE else r.text
        for d in decisions
        for r in d.reasons
    }
    frame = pd.DataFrame(
        {
            "prediction_id": [str(d.prediction_id) for d in decisions],
            "probability_of_default": [d.probability_of_default for d in decisions],
            "score_points": [d.score_points for d in decisions],
            "risk_grade": [d.risk_grade for d in decisions],
            "decision": [d.decision for d in decisions],
            "reasons": [";".join(r.code for r in d.reasons) for d in decisions],
            "imputed_fields": [";".join(d.imputed_fields) for d in decisions],
            "out_of_range": [";".join(d.out_of_range) for d in decisions],
        }
    )
    if ids is not None and served.spec.id is not None:
        frame.insert(0, served.spec.id, ids)
    return DecidedBatch(frame=frame, reason_texts=dict(sorted(texts.items())))


def decide_file(
    service: DecisionService,
    served: ServedModel,
    data: bytes,
    name: str,
    *,
    log: bool = True,
    chunk: int,
    actor: str | None = None,
) -> DecidedBatch:
    """A file of applications (CSV or Parquet bytes) read, validated whole, then decided:
    what ``creditops predict`` and the dashboard's batch upload both do."""
    rows, ids = read_applications(data, name, served.spec)
    applications = validate_applications(rows, served.application_model, name)
    return decide_applications(
        service, served, applications, ids=ids, log=log, chunk=chunk, actor=actor
    )


def predict_file(
    settings: Settings,
    source: Path,
    output: Path,
    *,
    log: bool = True,
    ref: str = CHAMPION,
    actor: str | None = None,
) -> BatchSummary:
    """Decide every application in ``source`` (CSV or Parquet) with the ``ref`` version and
    write the decisions to ``output`` (.csv or .parquet)."""
    started = time.perf_counter()
    if table_format(output) is None:
        raise DataValidationError(f"{output.name}: the output must be a .csv or .parquet file")
    if not source.is_file():
        raise DataValidationError(f"{source}: no such file")
    decision_log = PredictionLog.from_settings(settings)
    try:
        service = DecisionService(settings, decision_log)
        served = service.load(ref)
        rows, ids = read_applications(source.read_bytes(), source.name, served.spec)
        applications = validate_applications(rows, served.application_model, source.name)
        scoring_started = time.perf_counter()
        frame = decide_applications(
            service, served, applications, ids=ids, log=log, chunk=settings.max_batch, actor=actor
        ).frame
        scoring_seconds = time.perf_counter() - scoring_started
    finally:
        decision_log.close()
    write_table(frame, output)
    return BatchSummary(
        rows=len(frame),
        model_name=served.name,
        model_version=served.version,
        decisions=dict(Counter(frame["decision"])),
        logged=log,
        output=str(output),
        scoring_seconds=scoring_seconds,
        total_seconds=time.perf_counter() - started,
    )
