"""Batch decisions on a file (``creditops predict``): the same validation, scoring, policy,
reasons and decision log as ``POST /predict/batch``, for files of any length.

The whole file is validated before anything is decided, so one bad row rejects the file with
its row number and column. Decisions are then made and logged in chunks of ``max_batch`` rows,
each chunk one transaction; the output file is written beside its target and renamed, so it
appears complete or not at all.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ValidationError

from creditops.config import Settings
from creditops.data.io import table_format, write_table
from creditops.exceptions import DataValidationError, JSONBodyError
from creditops.registry import CHAMPION
from creditops.serving.parsing import parse_csv_applications, validation_errors
from creditops.serving.schemas import build_batch_model
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


def _records(source: Path, spec: Any) -> tuple[list[dict[str, Any]], list[Any] | None]:
    """The file's rows as request dicts (missing cells as None), and the id column if any."""
    suffix = source.suffix.lower()
    if not source.is_file():
        raise DataValidationError(f"{source}: no such file")
    if suffix == ".csv":
        try:
            body = parse_csv_applications(source.read_bytes(), spec, max_rows=_MAX_FILE_ROWS)
        except JSONBodyError as error:
            raise DataValidationError(f"{source.name}: {error}") from None
        rows: list[dict[str, Any]] = body["applications"]
    elif suffix in (".parquet", ".pq"):
        try:
            frame = pd.read_parquet(source)
        except Exception as error:  # pyarrow raises many types for a broken file
            raise DataValidationError(
                f"{source.name}: not a readable Parquet file ({error})"
            ) from None
        rows = [
            {k: (None if _missing(v) else _plain(v)) for k, v in row.items()}
            for row in frame.to_dict(orient="records")
        ]
    else:
        raise DataValidationError(f"{source.name}: use a .csv or .parquet file")
    if not rows:
        raise DataValidationError(f"{source.name}: no rows to score")
    ids = None
    if spec.id is not None and spec.id in rows[0]:
        ids = [row.pop(spec.id) for row in rows]
    if spec.target in rows[0]:  # a labelled file: the outcome is not an input
        for row in rows:
            row.pop(spec.target, None)
    return rows, ids


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def predict_file(
    settings: Settings,
    source: Path,
    output: Path,
    *,
    log: bool = True,
    ref: str = CHAMPION,
) -> BatchSummary:
    """Decide every application in ``source`` (CSV or Parquet) with the ``ref`` version and
    write the decisions to ``output`` (.csv or .parquet)."""
    started = time.perf_counter()
    if table_format(output) is None:
        raise DataValidationError(f"{output.name}: the output must be a .csv or .parquet file")
    decision_log = PredictionLog(settings.resolved_database_url)
    try:
        service = DecisionService(settings, decision_log)
        served = service.load(ref)
        rows, ids = _records(source, served.spec)
        batch_model = build_batch_model(served.application_model, len(rows))
        try:
            applications = list(batch_model.model_validate({"applications": rows}).applications)
        except ValidationError as error:
            problems = validation_errors(error)
            shown = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:_SHOWN_ERRORS])
            more = len(problems) - _SHOWN_ERRORS
            raise DataValidationError(
                f"{source.name}: {len(problems)} invalid value(s), nothing decided: {shown}"
                + (f" (and {more} more)" if more > 0 else "")
            ) from None
        scoring_started = time.perf_counter()
        decisions = []
        for start in range(0, len(applications), settings.max_batch):
            chunk = applications[start : start + settings.max_batch]
            decisions.extend(service.decide_batch(chunk, served, log=log))
        scoring_seconds = time.perf_counter() - scoring_started
    finally:
        decision_log.close()

    frame = pd.DataFrame(
        {
            "prediction_id": [str(d.prediction_id) for d in decisions],
            "probability_of_default": [d.probability_of_default for d in decisions],
            "score_points": [d.score_points for d in decisions],
            "risk_grade": [d.risk_grade for d in decisions],
            "decision": [d.decision for d in decisions],
            "reasons": [";".join(r.code for r in d.reasons) for d in decisions],
            "imputed_fields": [";".join(d.imputed_fields) for d in decisions],
        }
    )
    if ids is not None:
        frame.insert(0, served.spec.id, ids)
    write_table(frame, output)
    return BatchSummary(
        rows=len(decisions),
        model_name=served.name,
        model_version=served.version,
        decisions=dict(Counter(d.decision for d in decisions)),
        logged=log,
        output=str(output),
        scoring_seconds=scoring_seconds,
        total_seconds=time.perf_counter() - started,
    )
